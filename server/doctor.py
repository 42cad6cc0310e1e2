"""`quality-forms doctor`: what stands between this deployment and a month of safe answers.

Each check gives one finding, `ok:`, `warning:` or `error:`; the command exits 1 when any
finding is an error. The checks only look: none of them changes a file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import os
import shutil
import sqlite3
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from sqlite_utils import Database

from server.backup import BackupError, backups, litestream
from server.clock import now
from server.forms import check_forms
from server.readiness import folder_warnings
from server.settings import Settings
from server.storage import writable

FREE_DISK_WARNING = 1 << 30  # a campaign's answers take tens of MB; a backup doubles that
FREE_DISK_ERROR = 100 << 20
BACKUP_AGE_WARNING = dt.timedelta(hours=26)  # a daily backup, with some slack
REPLICA_LAG_WARNING = dt.timedelta(minutes=1)  # Litestream ships changes every second
DEFAULT_TRUSTED_PROXIES = "127.0.0.1,::1"  # SPEC §5.1


@dataclass(frozen=True)
class Finding:
    level: str  # "ok", "warning" or "error"
    text: str

    def __str__(self) -> str:
        return f"{self.level}: {self.text}"


def ok(text: str) -> Finding:
    return Finding("ok", text)


def warning(text: str) -> Finding:
    return Finding("warning", text)


def error(text: str) -> Finding:
    return Finding("error", text)


def diagnose(settings: Settings) -> list[Finding]:
    """Every finding about this deployment, in the order an operator would fix them."""
    changed = last_change(settings.db)  # before check_database's probe writes a page
    return [
        check_base_url(settings.base_url),
        check_trusted_proxies(settings),
        *check_database(settings.db),
        check_free_disk(settings.db),
        *check_copies(settings, changed),
        check_secret_key(settings),
        *check_form_files(settings.forms, settings.db),
    ]


def check_base_url(base_url: str) -> Finding:
    if not base_url:
        return warning("QF_BASE_URL is not set: QR codes and links use the address each request came to")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return error(f"QF_BASE_URL {base_url!r} is not an http(s) address")
    if parts.scheme != "https" and parts.hostname not in ("localhost", "127.0.0.1", "::1"):
        return warning(f"QF_BASE_URL {base_url} is not https: sign-in passwords would cross the network in clear")
    return ok(f"QF_BASE_URL is {base_url}")


def check_trusted_proxies(settings: Settings) -> Finding:
    # QF_TRUSTED_PROXIES (SPEC §5.1) becomes a setting of its own, perhaps parsed into a list of
    # networks (empty for `none`); until then it is read from the environment.
    configured = getattr(settings, "trusted_proxies", None)
    if isinstance(configured, list | tuple | set | frozenset):
        value = ",".join(str(n) for n in configured) or "none"
    else:
        value = str(configured or os.environ.get("QF_TRUSTED_PROXIES") or "").strip() or DEFAULT_TRUSTED_PROXIES
    if value.lower() == "none":
        return ok("QF_TRUSTED_PROXIES is none: forwarded headers are ignored (no proxy in front)")
    networks = []
    for entry in (e.strip() for e in value.split(",") if e.strip()):
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            return error(f"QF_TRUSTED_PROXIES: {entry!r} is not an address or CIDR range")
    if any(n.prefixlen == 0 for n in networks):
        return error(f"QF_TRUSTED_PROXIES {value} trusts every address: any client can claim any address")
    return ok(f"trusted proxies: {value}")


def check_database(db: Path) -> list[Finding]:
    if not db.exists():
        return [warning(f"no database at {db} yet: `quality-forms serve` creates it")]
    findings = []
    try:
        with contextlib.closing(sqlite3.connect(db, isolation_level=None, timeout=5)) as conn:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if mode != "wal":
                findings.append(error(f"{db} is in journal mode {mode}, not wal: `quality-forms serve` sets it"))
            if writable(Database(conn)):
                findings.append(ok(f"database {db} takes writes" + (" (WAL)" if mode == "wal" else "")))
            else:
                findings.append(error(f"database {db} does not take writes (read-only, locked or disk full)"))
    except sqlite3.Error as exc:
        return [error(f"cannot open {db}: {exc}")]
    findings += [f for path in (db, Path(f"{db}-wal")) if (f := _private(path, "answers"))]
    return findings


def _private(path: Path, holds: str) -> Finding | None:
    """An error when others than the owner may read the file."""
    with contextlib.suppress(FileNotFoundError):
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            return error(f"{path} holds {holds} and is mode {mode:04o}: `chmod 600 {path}`")
    return None


def check_free_disk(db: Path) -> Finding:
    folder = next((p for p in (db.parent, *db.parent.parents) if p.exists()), Path("."))
    free = shutil.disk_usage(folder).free
    text = f"{free / 1e9:.1f} GB free on the database's disk ({folder})"
    if free < FREE_DISK_ERROR:
        return error(text + ": submissions will fail when it fills")
    if free < FREE_DISK_WARNING:
        return warning(text)
    return ok(text)


def last_change(db: Path) -> dt.datetime | None:
    """When the database (or its WAL) was last written, or None when there is none."""
    times = [p.stat().st_mtime for p in (db, Path(f"{db}-wal")) if p.exists()]
    return dt.datetime.fromtimestamp(max(times), now().tzinfo) if times else None


def check_copies(settings: Settings, changed: dt.datetime | None) -> list[Finding]:
    """The newest backup (in the default folder) and the replica: at least one must exist."""
    findings = []
    folder = settings.db.parent / "backups"
    found = backups(settings.db, folder)
    if found:
        newest = found[-1]
        age = now() - dt.datetime.fromtimestamp(newest.stat().st_mtime, now().tzinfo)
        finding = warning if age > BACKUP_AGE_WARNING else ok
        findings.append(finding(f"newest backup {newest} is {_age(age)} old"))
    if settings.replica_url:
        findings.append(check_replica(settings.replica_url, changed))
    elif not found:
        findings.append(
            error(f"no backup in {folder} and QF_REPLICA_URL is not set: a dead disk would lose every answer")
        )
    else:
        findings.append(warning("QF_REPLICA_URL is not set: answers since the last backup live on one disk"))
    return findings


def check_replica(url: str, changed: dt.datetime | None) -> Finding:
    """The replica's newest write; behind when the database changed well after it (a quiet night is fine)."""
    try:
        binary = litestream()
    except BackupError as exc:
        return error(str(exc))
    try:
        done = subprocess.run(
            [str(binary), "ltx", "-json", "-level", "all", url], capture_output=True, text=True, timeout=60
        )
        files = json.loads(done.stdout) if done.returncode == 0 else None
    except (subprocess.TimeoutExpired, ValueError):
        files = None
    if files is None:
        return error(f"cannot read the replica {url}: {(done.stderr.strip().splitlines() or ['no answer'])[-1]}")
    if not files:
        return error(f"the replica {url} is empty: is `quality-forms serve` running with QF_REPLICA_URL?")
    newest = max(dt.datetime.fromisoformat(f["timestamp"].replace("Z", "+00:00")) for f in files)
    text = f"replica {url} last written {_age(now() - newest)} ago"
    if changed and changed - newest > REPLICA_LAG_WARNING:
        return warning(f"{text}, {_age(changed - newest)} before the database's last change: is Litestream running?")
    return ok(text)


def _age(age: dt.timedelta) -> str:
    seconds = max(0, int(age.total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def check_secret_key(settings: Settings) -> Finding:
    if settings.secret_key:
        return ok("the sign-in key comes from QF_SECRET_KEY")
    path = settings.db.parent / "secret.key"
    if not path.exists():
        return ok(f"no {path} yet: `quality-forms serve` makes it (mode 0600)")
    return _private(path, "the key that signs sign-ins") or ok(f"{path} is readable by its owner only")


def check_form_files(forms: Path, db: Path) -> list[Finding]:
    if not forms.is_dir():
        return [error(f"no forms folder at {forms}")]
    loaded, errors = check_forms(forms)
    findings = [error(f"form: {line}") for line in errors]
    # the same warnings as `check` and the dashboard: open forms nobody could submit today
    findings += [warning(f"form: 警告：{line}") for line in folder_warnings(forms, db)]
    if not errors:
        findings.append(ok(f"{len(loaded)} form(s) in {forms} load without errors"))
    return findings
