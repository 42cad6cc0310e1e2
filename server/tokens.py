"""Read-API tokens: made once, shown once, kept only as their SHA-256, revoked by name.

A token reads the responses of one form, or of every form (`form_id` None). It never
writes. Personal answers come masked, as on office screens, unless the token was made
with `personal` (for a platform that is allowed to hold them).
"""

from __future__ import annotations

import hashlib
import re
import secrets

import msgspec
from sqlite_utils import Database

from server.clock import now
from server.storage import transaction

PREFIX = "qf_"
NAME = re.compile(r"[A-Za-z0-9_.-]{1,40}")  # fullmatch
MAX_TOKEN = 100  # longer than any token we make: refused before hashing


class TokenError(ValueError):
    """A token that cannot be made or revoked as asked; the message is for a person."""


class Token(msgspec.Struct, frozen=True):
    name: str
    form_id: str | None  # None: every form
    personal: bool
    created_by: str
    created_at: str
    revoked_at: str | None = None

    def reaches(self, form_id: str) -> bool:
        return self.form_id is None or self.form_id == form_id


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_token(db: Database, name: str, form_id: str | None, personal: bool, created_by: str) -> str:
    """Make a token; returns it in clear, the one time it is seen."""
    if not NAME.fullmatch(name):
        raise TokenError("令牌名称应为 1–40 个字母、数字、'.'、'_' 或 '-'")
    token = PREFIX + secrets.token_urlsafe(32)  # 256 random bits
    with transaction(db):
        if db.execute("SELECT 1 FROM api_tokens WHERE name = ?", [name]).fetchone():
            raise TokenError(f"令牌 {name} 已经存在")
        db.execute(
            """INSERT INTO api_tokens (name, token_hash, form_id, personal, created_by, created_at)
               VALUES (?, ?, ?, ?, ?, ?)""",
            [name, _digest(token), form_id, int(personal), created_by, now().isoformat()],
        )
    return token


def list_tokens(db: Database) -> list[Token]:
    """Every token, working ones first, newest first."""
    rows = db.execute(
        """SELECT name, form_id, personal, created_by, created_at, revoked_at FROM api_tokens
           ORDER BY revoked_at IS NOT NULL, created_at DESC, name"""
    ).fetchall()
    return [Token(r[0], r[1], bool(r[2]), r[3], r[4], r[5]) for r in rows]


def revoke_token(db: Database, name: str) -> None:
    with transaction(db):
        row = db.execute("SELECT revoked_at FROM api_tokens WHERE name = ?", [name]).fetchone()
        if row is None:
            raise TokenError(f"没有名为 {name} 的令牌")
        if row[0] is None:
            db.execute("UPDATE api_tokens SET revoked_at = ? WHERE name = ?", [now().isoformat(), name])


def token_for(db: Database, token: str) -> Token | None:
    """The working token this bearer string is, or None (unknown, revoked, or not a token)."""
    if not token.startswith(PREFIX) or len(token) > MAX_TOKEN:
        return None
    row = db.execute(
        """SELECT name, form_id, personal, created_by, created_at FROM api_tokens
           WHERE token_hash = ? AND revoked_at IS NULL""",
        [_digest(token)],
    ).fetchone()
    return Token(row[0], row[1], bool(row[2]), row[3], row[4]) if row else None
