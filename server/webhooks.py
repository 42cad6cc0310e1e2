"""Webhooks: where responses are sent, and the outbox of messages to send there.

A message is written by a trigger (migrations.send_data_out) in the very transaction that
stores its response, so a crash can neither lose one nor invent one; `server.sender`
empties the outbox. Any failure is retried with a doubling delay (10 s, 20 s, … at most an
hour) until three days have passed, then the message is marked failed; the office can send
it again. Receivers dedupe by `X-QF-Delivery`: a message may arrive twice, never zero times.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math
from urllib.parse import urlsplit

import msgspec
from sqlite_utils import Database

from server.campaign import county_named
from server.clock import now
from server.storage import transaction

FORMATS = ("json", "wecom")
FIRST_RETRY = 10  # seconds; doubles after each failure
MAX_RETRY = 3600
GIVE_UP_AFTER = dt.timedelta(days=3)


class WebhookError(ValueError):
    """A webhook that cannot be added or changed as asked; the message is for a person."""


class Webhook(msgspec.Struct, frozen=True):
    id: int
    url: str
    format: str
    form_id: str | None
    secret: str
    personal: bool
    county: str
    hour: int | None
    created_by: str
    created_at: str


class Attempt(msgspec.Struct, frozen=True):
    at: str
    status_code: int | None
    error: str
    milliseconds: int


class Message(msgspec.Struct, frozen=True):
    id: int
    webhook_id: int
    delivery: str
    status: str
    attempts: int
    next_at: str
    last_error: str
    created_at: str
    sent_at: str | None
    log: list[Attempt] = []


_WEBHOOK_COLUMNS = "id, url, format, form_id, secret, personal, county, hour, created_by, created_at"


def _webhook(row: tuple) -> Webhook:
    return Webhook(row[0], row[1], row[2], row[3], row[4], bool(row[5]), row[6], row[7], row[8], row[9])


def add_webhook(
    db: Database,
    url: str,
    *,
    form_id: str | None,
    created_by: str,
    format: str = "json",
    secret: str = "",
    personal: bool = False,
    county: str = "",
    hour: int | None = None,
) -> Webhook:
    """Check and store a webhook; json needs a form and a secret, wecom an hour (default 20)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookError(f"地址 {url!r} 不对，应以 http:// 或 https:// 开头")
    if format not in FORMATS:
        raise WebhookError(f"格式应为 {' 或 '.join(FORMATS)}")
    if format == "json" and (not form_id or not secret):
        raise WebhookError("json 格式需要表单（--form）和签名密钥（--secret）")
    if format == "json" and len(secret) < 16:
        raise WebhookError("签名密钥至少 16 个字符")
    if county:
        county = county_named(county) or ""
        if not county:
            raise WebhookError("市县不是海南省的市县")
    if format == "wecom":
        hour = 20 if hour is None else hour
        if not 0 <= hour <= 23:
            raise WebhookError("发送时间应为 0 到 23 点")
    else:
        hour, county = None, ""
    with transaction(db):
        row = db.execute(
            f"""INSERT INTO webhooks (url, format, form_id, secret, personal, county, hour, created_by, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {_WEBHOOK_COLUMNS}""",
            [url, format, form_id, secret, int(personal), county, hour, created_by, now().isoformat()],
        ).fetchone()
    return _webhook(row)


def list_webhooks(db: Database) -> list[Webhook]:
    return [_webhook(r) for r in db.execute(f"SELECT {_WEBHOOK_COLUMNS} FROM webhooks ORDER BY id")]


def get_webhook(db: Database, webhook_id: int) -> Webhook | None:
    row = db.execute(f"SELECT {_WEBHOOK_COLUMNS} FROM webhooks WHERE id = ?", [webhook_id]).fetchone()
    return _webhook(row) if row else None


def remove_webhook(db: Database, webhook_id: int) -> Webhook:
    """Delete a webhook with its messages and their log: nothing more is sent there."""
    with transaction(db):
        found = get_webhook(db, webhook_id)
        if found is None:
            raise WebhookError(f"没有编号为 {webhook_id} 的推送地址")
        db.execute("DELETE FROM webhooks WHERE id = ?", [webhook_id])
    return found


def message_counts(db: Database) -> dict[int, dict[str, int]]:
    """Webhook id -> status -> number of messages."""
    counts: dict[int, dict[str, int]] = {}
    for webhook_id, status, n in db.execute(
        "SELECT webhook_id, status, count(*) FROM webhook_messages GROUP BY webhook_id, status"
    ):
        counts.setdefault(webhook_id, {})[status] = n
    return counts


def recent_messages(db: Database, status: str = "", limit: int = 50) -> list[Message]:
    """The newest messages (of one status, when given), each with its attempts."""
    where, params = ("WHERE status = ?", [status]) if status else ("", [])
    rows = db.execute(
        f"""SELECT id, webhook_id, delivery, status, attempts, next_at, last_error, created_at, sent_at
            FROM webhook_messages {where} ORDER BY id DESC LIMIT ?""",
        [*params, limit],
    ).fetchall()
    messages = [Message(*row) for row in rows]
    logs: dict[int, list[Attempt]] = {}
    if messages:
        ids = [m.id for m in messages]
        for message_id, *attempt in db.execute(
            f"""SELECT message_id, at, status_code, error, milliseconds FROM webhook_attempts
                WHERE message_id IN ({", ".join("?" * len(ids))}) ORDER BY rowid""",
            ids,
        ):
            logs.setdefault(message_id, []).append(Attempt(*attempt))
    return [msgspec.structs.replace(m, log=logs.get(m.id, [])) for m in messages]


def resend(db: Database, message_id: int) -> str:
    """Queue a message again at once, with three more days of retries; returns its delivery key."""
    moment = now()
    with transaction(db):
        row = db.execute(
            """UPDATE webhook_messages SET status = 'pending', next_at = ?, give_up_at = ?,
                   lease_owner = NULL, lease_until = NULL
               WHERE id = ? RETURNING delivery""",
            [moment.isoformat(), (moment + GIVE_UP_AFTER).isoformat(), message_id],
        ).fetchone()
    if row is None:
        raise WebhookError(f"没有编号为 {message_id} 的推送消息")
    return str(row[0])


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def retry_delay(failures: int, first: float = FIRST_RETRY) -> int:
    """Whole seconds to wait after the n-th failure (1, 2, …): first, doubling, at most an hour."""
    return math.ceil(min(first * 2 ** min(failures - 1, 30), MAX_RETRY))
