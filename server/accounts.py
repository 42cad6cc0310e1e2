"""Office accounts: argon2 passwords, server-side sessions, sign-in lock-out, the audit log.

A session is a random token in an HttpOnly cookie; the database keeps only its SHA-256,
with the CSRF token that every admin form must carry back. Failed sign-ins are recorded
per account: after `MAX_FAILURES` within `FAILURE_WINDOW` the account waits `LOCKOUT`
before the next try, so a password cannot be guessed at speed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import re
import secrets
import tempfile
from pathlib import Path

import msgspec
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlite_utils import Database

from server.clock import now
from server.storage import transaction

ROLES = ("admin", "staff")
USERNAME = re.compile(r"^[A-Za-z0-9_.-]{2,32}$")
MIN_PASSWORD = 8
SESSION_LIFETIME = dt.timedelta(hours=12)
MAX_FAILURES = 5
FAILURE_WINDOW = dt.timedelta(minutes=15)
LOCKOUT = dt.timedelta(minutes=5)

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not a password anyone has")


class AccountError(ValueError):
    pass


class User(msgspec.Struct, frozen=True):
    username: str
    role: str
    csrf: str = ""  # of the current session

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def add_user(db: Database, username: str, password: str, role: str) -> None:
    if not USERNAME.match(username):
        raise AccountError("username: 2–32 letters, digits, '.', '_' or '-'")
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"password: at least {MIN_PASSWORD} characters")
    with transaction(db):
        if db.execute("SELECT 1 FROM users WHERE username = ?", [username]).fetchone():
            raise AccountError(f"user {username!r} exists already")
        db.execute(
            "INSERT INTO users VALUES (?, ?, ?, ?)",
            [username, _hasher.hash(password), role, now().isoformat()],
        )


def sign_in(db: Database, username: str, password: str, address: str) -> tuple[User, str] | None:
    """Check the password; on success start a session and return the user and cookie token."""
    row = db.execute("SELECT password_hash, role FROM users WHERE username = ?", [username]).fetchone()
    try:
        _hasher.verify(row[0] if row else _DUMMY_HASH, password)  # same work for unknown names
        ok = row is not None
    except (VerificationError, InvalidHashError):
        ok = False
    with transaction(db):
        if not ok:
            db.execute("INSERT INTO login_failures VALUES (?, ?, ?)", [username, address, now().isoformat()])
            return None
        db.execute("DELETE FROM login_failures WHERE username = ?", [username])
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        db.execute(
            "INSERT INTO sessions VALUES (?, ?, ?, ?, ?)",
            [_digest(token), username, csrf, now().isoformat(), (now() + SESSION_LIFETIME).isoformat()],
        )
        log_action(db, username, "sign-in", f"from {address}")
    return User(username, row[1], csrf), token


def locked_for(db: Database, username: str) -> int:
    """Seconds this account must wait before the next try (0: may try now)."""
    since = (now() - FAILURE_WINDOW).isoformat()
    rows = db.execute(
        "SELECT failed_at FROM login_failures WHERE username = ? AND failed_at > ? ORDER BY failed_at DESC",
        [username, since],
    ).fetchall()
    if len(rows) < MAX_FAILURES:
        return 0
    until = dt.datetime.fromisoformat(rows[0][0]) + LOCKOUT
    return max(0, int((until - now()).total_seconds()) + 1) if until > now() else 0


def session_user(db: Database, token: str) -> User | None:
    row = db.execute(
        """SELECT u.username, u.role, s.csrf FROM sessions s JOIN users u USING (username)
           WHERE s.token_hash = ? AND s.expires_at > ?""",
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


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def secret_key(configured: str, database: Path) -> bytes:
    """QF_SECRET_KEY, else the key in `secret.key` beside the database, made once (0600).

    Server processes start together: the key is written whole to a file of its own and
    linked into place, so no process ever reads a half-written key.
    """
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


def signed_token(key: bytes) -> str:
    """A random token with its signature, for the sign-in form (before any session exists)."""
    nonce = secrets.token_urlsafe(18)
    return f"{nonce}.{hmac.new(key, nonce.encode(), 'sha256').hexdigest()}"


def valid_signed_token(key: bytes, token: str) -> bool:
    nonce, _, signature = token.partition(".")
    expected = hmac.new(key, nonce.encode(), "sha256").hexdigest()
    return bool(nonce) and hmac.compare_digest(signature, expected)
