"""Backups, restore and the Litestream replica, driven as an operator would: commands and a real server."""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import BUNDLED_FORMS, FIVE_INTO_ANSWERS, ROOT, free_port, run, running_server

FORM = "/f/five-into-session"
ANSWERS = FIVE_INTO_ANSWERS
BACKUP_NAME = re.compile(r"data/backups/quality-forms-\d{8}-\d{6}(-\d+)?\.db")


def post(port: int, answers: dict, timeout: float = 10) -> int:
    body = urllib.parse.urlencode(answers, doseq=True).encode()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("POST", FORM, body, {"Content-Type": "application/x-www-form-urlencoded"})
        answer = connection.getresponse()
        answer.read()
        return answer.status
    finally:
        connection.close()


def keys_in(db: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return {row[0] for row in conn.execute("SELECT submission_key FROM responses")}


def bundled_workdir(tmp_path: Path) -> Path:
    shutil.copytree(BUNDLED_FORMS, tmp_path / "forms")
    return tmp_path


def mode(path: Path) -> str:
    return f"{stat.S_IMODE(path.stat().st_mode):04o}"


def test_files_the_server_backup_and_export_create_are_readable_by_their_owner_only(tmp_path):
    workdir = bundled_workdir(tmp_path)
    with running_server(workdir, env={"QF_RATE_LIMIT": "0"}) as port:
        assert post(port, ANSWERS | {"_key": "permissions-key-0001"}) == 303
        data = workdir / "data"
        created = ["quality-forms.db", "quality-forms.db-wal", "quality-forms.db-shm", "secret.key"]
        assert {name: mode(data / name) for name in created} == dict.fromkeys(created, "0600")
        backup = run("backup", cwd=workdir)  # online, while the server runs
        assert backup.returncode == 0, backup.stderr
    export = run("export", "five-into-session", "--out", "answers.csv", cwd=workdir)
    assert export.returncode == 0, export.stderr
    assert mode(workdir / "answers.csv") == "0600"
    assert mode(workdir / backup.stdout.decode().strip()) == "0600"
    assert mode(data / "backups") == "0700"


def test_backup_is_a_checked_single_file_copy_named_by_time_and_keeps_the_newest(workdir):
    assert run("event", "list", cwd=workdir).returncode == 0  # creates the database
    paths = []
    for _ in range(3):
        done = run("backup", "--keep", "2", cwd=workdir)
        assert done.returncode == 0, done.stderr
        paths.append(done.stdout.decode().strip())
        assert BACKUP_NAME.fullmatch(paths[-1]), paths[-1]
    assert sorted(os.listdir(workdir / "data" / "backups")) == sorted(Path(p).name for p in paths[1:])
    with contextlib.closing(sqlite3.connect(workdir / paths[-1])) as copy:
        assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert not [p for p in os.listdir(workdir / "data" / "backups") if p.endswith(".partial")]


def test_backup_without_a_database_is_one_line_error(workdir):
    done = run("backup", "--out", "elsewhere", cwd=workdir)
    assert (done.returncode, done.stdout) == (2, b"")
    assert done.stderr.decode() == "quality-forms: no database at data/quality-forms.db\n"


def test_restore_puts_the_backup_back_and_keeps_the_replaced_file(tmp_path):
    workdir = bundled_workdir(tmp_path)
    with running_server(workdir, env={"QF_RATE_LIMIT": "0"}) as port:
        assert post(port, ANSWERS | {"_key": "before-backup-00001"}) == 303
        backup = run("backup", cwd=workdir).stdout.decode().strip()
        assert post(port, ANSWERS | {"_key": "after-backup-000001"}) == 303
        refused = run("restore", backup, cwd=workdir)
    assert refused.returncode == 2
    assert refused.stderr.decode() == (
        "quality-forms: a server is running on data/quality-forms.db (or its Litestream is finishing): stop it first\n"
    )
    done = run("restore", backup, cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode() == f"restored data/quality-forms.db from {backup}\n"
    [kept] = re.findall(r"kept at (\S+)\n", done.stderr.decode())
    assert keys_in(workdir / "data" / "quality-forms.db") == {"before-backup-00001"}
    assert keys_in(workdir / kept) == {"before-backup-00001", "after-backup-000001"}  # the -wal went along
    assert not (workdir / "data" / "quality-forms.db-wal").exists()


def test_restore_refuses_a_file_that_fails_the_check_and_changes_nothing(workdir):
    assert run("event", "list", cwd=workdir).returncode == 0
    db = workdir / "data" / "quality-forms.db"
    before = db.read_bytes()
    (workdir / "broken.db").write_bytes(b"SQLite format 3\x00" + b"\x07" * 5000)
    with contextlib.closing(sqlite3.connect(workdir / "other.db")) as other:
        other.execute("CREATE TABLE notes (text)")
    for name, problem in [
        ("broken.db", "file is not a database"),
        ("other.db", "not a quality-forms database (no table responses, form_versions)"),
        ("missing.db", None),
    ]:
        done = run("restore", name, cwd=workdir)
        assert done.returncode == 2
        expected = f"{name} fails the check, nothing restored: {problem}" if problem else f"no file at {name}"
        assert done.stderr.decode() == f"quality-forms: {expected}\n"
    assert db.read_bytes() == before
    assert sorted(p.name for p in db.parent.iterdir() if "replaced" in p.name or "restoring" in p.name) == []


def test_restore_from_replica_needs_a_replica_url(workdir):
    done = run("restore", "--from-replica", cwd=workdir, env={"QF_REPLICA_URL": ""})
    assert done.returncode == 2
    assert done.stderr.decode() == "quality-forms: QF_REPLICA_URL is not set: no replica to restore from\n"


# --- the restore drill -------------------------------------------------------------------------------------


@contextlib.contextmanager
def serve_in_own_session(workdir: Path, env: dict[str, str]) -> Iterator[tuple[subprocess.Popen, int]]:
    """`quality-forms serve` in a session of its own, so SIGKILL to the group is a crash of the whole server."""
    port = free_port()
    log = (workdir / "server.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--port", str(port)],
        cwd=workdir,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError((workdir / "server.log").read_text(errors="replace"))
            time.sleep(0.1)
        yield process, port
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        log.close()


def descendants(pid: int) -> set[int]:
    """Every living process below pid, found through /proc's parent links."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def submit_until_killed(port: int, prefix: str, process: subprocess.Popen) -> dict[str, int | str]:
    """Twelve phones submitting; the server is killed with SIGKILL once 200 answers got their 303."""
    outcomes: dict[str, int | str] = {}
    lock, killed = threading.Lock(), threading.Event()

    def phone(thread: int) -> None:
        for n in range(100_000):
            if killed.is_set():
                return
            key = f"{prefix}-{thread:02d}-{n:06d}"
            try:
                status: int | str = post(port, ANSWERS | {"_key": key}, timeout=5)
            except OSError:
                status = "failed"
            with lock:
                outcomes[key] = status
            if status == "failed":
                return

    threads = [threading.Thread(target=phone, args=(t,), daemon=True) for t in range(12)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    while sum(s == 303 for s in list(outcomes.values())) < 200 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)  # mid-load: the web server and its workers, at once
    killed.set()
    for thread in threads:
        thread.join(timeout=10)
    process.wait(timeout=10)
    return outcomes


def test_restore_drill_kill_9_under_load_lose_the_disk_restore_from_the_replica(tmp_path):
    workdir = bundled_workdir(tmp_path)
    env = {"QF_RATE_LIMIT": "0", "QF_REPLICA_URL": (tmp_path / "replica").as_uri()}
    data = workdir / "data"

    with serve_in_own_session(workdir, env) as (process, port):
        replication = {
            pid for pid in descendants(process.pid) if "litestream" in Path(f"/proc/{pid}/cmdline").read_text()
        }
        assert len(replication) == 1, "serve runs one litestream"
        # A deployment has been replicating for days when a disk dies: the drill starts once
        # Litestream has made its first copy (on a loaded machine that can take seconds).
        deadline = time.monotonic() + 30
        while not any((tmp_path / "replica").rglob("*.ltx")):
            assert time.monotonic() < deadline, "Litestream made no first copy in 30 s"
            time.sleep(0.1)
        outcomes = submit_until_killed(port, "drill-one", process)
    accepted = {k for k, s in outcomes.items() if s == 303}
    assert len(accepted) >= 100 and "failed" in outcomes.values(), "killed under load"
    assert set(outcomes.values()) <= {303, "failed"}

    # Litestream outlives the server only to copy the last committed transactions.
    deadline = time.monotonic() + 40
    while any(alive(pid) for pid in replication):
        assert time.monotonic() < deadline, "litestream outlived the killed server"
        time.sleep(0.1)

    shutil.rmtree(data)  # the disk is gone
    done = run("restore", "--from-replica", cwd=workdir, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode() == f"restored data/quality-forms.db from {env['QF_REPLICA_URL']}\n"
    assert accepted <= keys_in(data / "quality-forms.db"), "every answer that got its 303 is back"

    # Replication goes on from the restored file: a second round, stopped cleanly this time.
    with serve_in_own_session(workdir, env) as (_, port):
        assert accepted <= keys_in(data / "quality-forms.db")
        later = {f"drill-two-{n:010d}" for n in range(20)}
        assert {post(port, ANSWERS | {"_key": key}) for key in later} == {303}
    shutil.rmtree(data)
    assert run("restore", "--from-replica", cwd=workdir, env=env).returncode == 0
    assert accepted | later <= keys_in(data / "quality-forms.db")


def test_serve_refuses_a_replica_litestream_cannot_use(workdir):
    for url, problem in [
        (
            "ftp://backup.example.cn/forms",
            'ftp://backup.example.cn/forms: Error: unknown replica type in config: "ftp"',
        ),
        ("/srv/replica", "'/srv/replica' is not a URL such as file:///srv/replica or s3://bucket/path"),
    ]:
        done = run("serve", "--port", str(free_port()), cwd=workdir, env={"QF_REPLICA_URL": url})
        assert (done.returncode, done.stderr.decode()) == (2, f"quality-forms: QF_REPLICA_URL {problem}\n")


def test_restore_from_an_empty_replica_changes_nothing(workdir):
    assert run("event", "list", cwd=workdir).returncode == 0
    before = (workdir / "data" / "quality-forms.db").read_bytes()
    replica = (workdir / "replica").as_uri()
    done = run("restore", "--from-replica", cwd=workdir, env={"QF_REPLICA_URL": replica})
    assert done.returncode == 2
    assert (
        done.stderr.decode()
        == f"quality-forms: cannot restore from {replica}: Error: no matching backup files available\n"
    )
    assert (workdir / "data" / "quality-forms.db").read_bytes() == before
    assert sorted(os.listdir(workdir / "data")) == ["quality-forms.db", "quality-forms.db.lock"]
