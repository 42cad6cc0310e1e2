"""Office accounts: passwords, server-side sessions, the sign-in throttle, the audit log.

A session is a random token in an HttpOnly cookie; the database keeps only its SHA-256,
with the CSRF token that every admin form must carry back.

The throttle counts failed sign-ins over the last `WINDOW`, per client address (an IPv6
address by its /64, which one subscriber holds whole) and per account. One address may
fail `ADDRESS_LIMIT` times; an account, from all addresses together, `ACCOUNT_LIMIT` times,
more than one address ever can, so no single address can lock the owner out. A locked
account still lets in the address it last signed in from. An attempt is counted as a
failure *before* its password is checked, in the same transaction that decides whether
it may run, so parallel guesses cannot all slip past the count; a success takes it back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import math
import os
import re
import secrets
import sqlite3
import tempfile
from pathlib import Path

import msgspec
from sqlite_utils import Database

from server import passwords
from server.campaign import COUNTIES, county_named
from server.clock import now
from server.passwords import PasswordError
from server.scope import Scope, scope_for
from server.storage import transaction

ROLES = ("admin", "staff", "county", "organizer")
ROLE_LABELS = {"admin": "管理员", "staff": "工作人员"}
MAX_USERNAME = 32
USERNAME = re.compile(rf"[A-Za-z0-9_.-]{{2,{MAX_USERNAME}}}")  # fullmatch
SESSION_LIFETIME = dt.timedelta(hours=12)
WINDOW = dt.timedelta(minutes=15)
ADDRESS_LIMIT = 10
ACCOUNT_LIMIT = 50
SIGN_IN_PAGE_LIFETIME = dt.timedelta(hours=2)
MIN_SECRET_KEY = 32
MAX_UNIT = 100  # an event's organizer holds as much


class AccountError(ValueError):
    pass


class Throttled(Exception):
    """Too many failed sign-ins: try again in `seconds`."""

    def __init__(self, seconds: int) -> None:
        super().__init__(seconds)
        self.seconds = seconds


class Busy(Exception):
    """The database stayed locked: nothing was decided, try again in a moment."""


class User(msgspec.Struct, frozen=True):
    username: str
    role: str
    csrf: str = ""  # of the current session
    county: str = ""  # a county account's 市县 (full name, as events store it)
    organizer: str = ""  # an organizer account's unit (主办单位, as events store it)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def scope(self) -> Scope:
        """The events and responses this account may see (see `server.scope`)."""
        return scope_for(self.role, self.username, self.county, self.organizer)

    @property
    def role_label(self) -> str:
        """The role as the page header shows it: 管理员, 工作人员, or the county or unit."""
        return ROLE_LABELS.get(self.role) or self.county or self.organizer or self.role


class Account(msgspec.Struct, frozen=True):
    username: str
    role: str
    created_at: str
    disabled_at: str | None
    last_sign_in_at: str | None
    locked_for: int  # seconds; 0 when not locked
    county: str = ""
    organizer: str = ""


def add_user(db: Database, username: str, password: str, role: str, county: str = "", organizer: str = "") -> None:
    """Create an account. A `county` account names its 市县 (`白沙` or `白沙黎族自治县`), an
    `organizer` account its unit; no other role takes either."""
    if not USERNAME.fullmatch(username):
        raise AccountError("username: 2–32 letters, digits, '.', '_' or '-'")
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    county, organizer = account_scope(role, county, organizer)
    _check_password(password, username)
    with transaction(db):
        if db.execute("SELECT 1 FROM users WHERE username = ?", [username]).fetchone():
            raise AccountError(f"user {username!r} exists already")
        db.execute(
            """INSERT INTO users (username, password_hash, role, created_at, county, organizer)
               VALUES (?, ?, ?, ?, ?, ?)""",
            [username, passwords.hash_password(password), role, now().isoformat(), county, organizer],
        )


def account_scope(role: str, county: str, organizer: str, organizers: tuple[str, ...] = ()) -> tuple[str, str]:
    """(county, organizer) of a new account, checked: the 市县's full name for a county account,
    the unit for an organizer account (one of `organizers` when the campaign lists them)."""
    for option, needed_by in (("county", county), ("organizer", organizer)):
        if needed_by and role != option:
            raise AccountError(f"--{option} is for {option} accounts only (--role {option}), not {role}")
    if role == "county":
        if not county.strip():
            raise AccountError("a county account needs its county: --county 白沙 (one of Hainan's 市县)")
        full = county_named(county)
        if full is None:
            raise AccountError(
                f"unknown county {county!r}: not one of Hainan's 市县 ({COUNTIES[0]}, {COUNTIES[13]}, …)"
            )
        return full, ""
    if role == "organizer":
        unit = organizer.strip()
        if not unit:
            raise AccountError("an organizer account needs its unit: --organizer 省教育厅 (as events name it)")
        if organizers and unit not in organizers:
            raise AccountError(f"unknown organizer {unit!r}: not one of the campaign's organizers ({organizers[0]}, …)")
        if len(unit) > MAX_UNIT:
            raise AccountError(f"organizer: at most {MAX_UNIT} characters")
        return "", unit
    return "", ""


def _check_password(password: str, username: str) -> None:
    try:
        passwords.check_new_password(password, username)
    except PasswordError as exc:
        raise AccountError(str(exc)) from None


def plausible(username: str, password: str) -> bool:
    """Whether the pair could sign in at all: anything else is refused without hashing or storing."""
    return bool(USERNAME.fullmatch(username)) and 0 < len(password) <= passwords.MAX_LENGTH


def address_key(address: str) -> str:
    """What the throttle counts by: the address, or for IPv6 its /64."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def throttled_for(db: Database, username: str, address: str) -> int:
    """Seconds before this address may try this account (0: may try now)."""
    key = address_key(address)
    wait = _wait(db, "address", key, ADDRESS_LIMIT)
    if not _last_signed_in_from(db, username, key):
        wait = max(wait, _wait(db, "username", username, ACCOUNT_LIMIT))
    return wait


def _wait(db: Database, column: str, value: str, limit: int) -> int:
    """Seconds until fewer than `limit` failures with this value are left in the window."""
    row = db.execute(
        f"""SELECT failed_at FROM login_failures WHERE {column} = ? AND failed_at > ?
            ORDER BY failed_at DESC LIMIT 1 OFFSET ?""",
        [value, (now() - WINDOW).isoformat(), limit - 1],
    ).fetchone()
    if row is None:
        return 0
    return max(1, math.ceil((dt.datetime.fromisoformat(row[0]) + WINDOW - now()).total_seconds()))


def _last_signed_in_from(db: Database, username: str, key: str) -> bool:
    row = db.execute("SELECT last_sign_in_from FROM users WHERE username = ?", [username]).fetchone()
    return bool(row and row[0] == key)


def sign_in(db: Database, username: str, password: str, address: str) -> tuple[User, str] | None:
    """Check the password; on success start a session and return the user and cookie token.

    Raises `Throttled` when this address or account has failed too often, `Busy` when the
    database stayed locked.
    """
    key = address_key(address)
    try:
        with transaction(db):
            wait = throttled_for(db, username, address)
            if wait:
                raise Throttled(wait)
            db.execute("DELETE FROM login_failures WHERE failed_at <= ?", [(now() - WINDOW).isoformat()])
            db.execute("INSERT INTO login_failures VALUES (?, ?, ?)", [username, key, now().isoformat()])
            row = db.execute(
                "SELECT password_hash, role, county, organizer FROM users WHERE username = ? AND disabled_at IS NULL",
                [username],
            ).fetchone()
        ok, new_hash = passwords.verify(row[0] if row else None, password)
        if not ok:
            return None  # the attempt stays counted as a failure
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        with transaction(db):
            still = db.execute(
                "SELECT 1 FROM users WHERE username = ? AND password_hash = ? AND disabled_at IS NULL",
                [username, row[0]],
            ).fetchone()
            if still is None:  # `user passwd` or `user disable` ran while the password was checked
                return None
            # This address's earlier mistakes on the account are forgiven; other addresses' are not.
            db.execute("DELETE FROM login_failures WHERE username = ? AND address = ?", [username, key])
            db.execute("DELETE FROM sessions WHERE expires_at <= ?", [now().isoformat()])
            db.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?, ?)",
                [_digest(token), username, csrf, now().isoformat(), (now() + SESSION_LIFETIME).isoformat()],
            )
            db.execute(
                "UPDATE users SET last_sign_in_at = ?, last_sign_in_from = ?, password_hash = ? WHERE username = ?",
                [now().isoformat(), key, new_hash or row[0], username],  # new_hash: argon2 parameters of today
            )
            log_action(db, username, "sign-in", f"from {address}")
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise Busy() from None
        raise
    return User(username, row[1], csrf, row[2], row[3]), token


def list_accounts(db: Database) -> list[Account]:
    rows = db.execute(
        """SELECT username, role, created_at, disabled_at, last_sign_in_at, county, organizer
           FROM users ORDER BY username"""
    ).fetchall()
    return [
        Account(name, role, created, disabled, last, _wait(db, "username", name, ACCOUNT_LIMIT), county, organizer)
        for name, role, created, disabled, last, county, organizer in rows
    ]


def set_password(db: Database, username: str, password: str) -> int:
    """Give the account a new password and end its sessions; returns how many ended."""
    _check_password(password, username)
    new_hash = passwords.hash_password(password)
    with transaction(db):
        _existing(db, username)
        db.execute("UPDATE users SET password_hash = ? WHERE username = ?", [new_hash, username])
        ended = _end_sessions(db, username)
        log_action(db, "command line", "passwd", f"user {username}, {ended} session(s) ended")
    return ended


def disable(db: Database, username: str) -> int:
    """Refuse the account's sign-ins from now on and end its sessions; returns how many ended."""
    with transaction(db):
        _existing(db, username)
        db.execute(
            "UPDATE users SET disabled_at = coalesce(disabled_at, ?) WHERE username = ?", [now().isoformat(), username]
        )
        ended = _end_sessions(db, username)
        log_action(db, "command line", "disable", f"user {username}, {ended} session(s) ended")
    return ended


def enable(db: Database, username: str) -> None:
    with transaction(db):
        _existing(db, username)
        db.execute("UPDATE users SET disabled_at = NULL WHERE username = ?", [username])
        log_action(db, "command line", "enable", f"user {username}")


def unlock(db: Database, username: str) -> int:
    """Forget the account's failed sign-ins; returns how many there were."""
    with transaction(db):
        _existing(db, username)
        forgotten = db.execute("DELETE FROM login_failures WHERE username = ?", [username]).rowcount
        log_action(db, "command line", "unlock", f"user {username}, {forgotten} failed sign-in(s) forgotten")
    return forgotten


def _existing(db: Database, username: str) -> None:
    if not db.execute("SELECT 1 FROM users WHERE username = ?", [username]).fetchone():
        raise AccountError(f"no user {username!r}")


def _end_sessions(db: Database, username: str) -> int:
    return db.execute("DELETE FROM sessions WHERE username = ?", [username]).rowcount


def session_user(db: Database, token: str) -> User | None:
    row = db.execute(
        """SELECT u.username, u.role, s.csrf, u.county, u.organizer FROM sessions s JOIN users u USING (username)
           WHERE s.token_hash = ? AND s.expires_at > ? AND u.disabled_at IS NULL""",
        [_digest(token), now().isoformat()],
    ).fetchone()
    return User(*row) if row else None


def sign_out(db: Database, token: str) -> None:
    with transaction(db):
        db.execute("DELETE FROM sessions WHERE token_hash = ? OR expires_at <= ?", [_digest(token), now().isoformat()])


def record(db: Database, username: str, action: str, detail: str) -> None:
    """Write one line of the audit log (who did what, when) in its own transaction."""
    with transaction(db):
        log_action(db, username, action, detail)


def log_action(db: Database, username: str, action: str, detail: str) -> None:
    db.execute(
        "INSERT INTO audit_log (at, username, action, detail) VALUES (?, ?, ?, ?)",
        [now().isoformat(), username, action, detail],
    )


class AuditLine(msgspec.Struct, frozen=True):
    at: str
    username: str
    action: str
    detail: str


def audit_lines(db: Database, limit: int = 200) -> list[AuditLine]:
    """The newest lines of the audit log, newest first."""
    rows = db.execute("SELECT at, username, action, detail FROM audit_log ORDER BY id DESC LIMIT ?", [limit])
    return [AuditLine(*row) for row in rows]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_secret_key(configured: str) -> None:
    """Refuse a QF_SECRET_KEY that could be guessed: it signs every sign-in page."""
    if configured and (len(configured) < MIN_SECRET_KEY or len(set(configured)) < 8):
        raise AccountError(
            f"QF_SECRET_KEY is too weak: use at least {MIN_SECRET_KEY} random characters (e.g. `openssl rand -hex 32`)"
        )


def secret_key(configured: str, database: Path) -> bytes:
    """QF_SECRET_KEY, else the key in `secret.key` beside the database, made once (0600).

    Server processes start together: the key is written whole to a file of its own and
    linked into place, so no process ever reads a half-written key.
    """
    check_secret_key(configured)
    if configured:
        return configured.encode()
    path = database.parent / "secret.key"
    if not path.exists():
        descriptor, draft = tempfile.mkstemp(dir=database.parent, prefix=".secret-")  # mode 0600
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(48))
        try:
            os.link(draft, path)  # fails if another process was first: then theirs is the key
        except FileExistsError:
            pass
        finally:
            os.unlink(draft)
    return path.read_bytes().strip()


def signed_token(key: bytes, issued: int | None = None) -> str:
    """A random token with its time and signature, for the sign-in form (before any session exists)."""
    nonce = secrets.token_urlsafe(18)
    message = f"{nonce}.{int(now().timestamp()) if issued is None else issued}"
    return f"{message}.{hmac.new(key, message.encode(), 'sha256').hexdigest()}"


def signed_token_age(key: bytes, token: str) -> int | None:
    """Seconds since the token was made, or None when it is not ours or has expired."""
    message, _, signature = token.rpartition(".")
    expected = hmac.new(key, message.encode(), "sha256").hexdigest()
    issued = message.partition(".")[2]
    if not message or not issued.isdigit() or not hmac.compare_digest(signature, expected):
        return None
    age = int(now().timestamp()) - int(issued)
    return age if -60 <= age < SIGN_IN_PAGE_LIFETIME.total_seconds() else None  # a minute of clock skew
