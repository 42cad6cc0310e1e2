"""The sender: empties the webhooks' outbox, in a thread of every server process.

Each round it queues the 企业微信 summaries that fell due, claims due messages with a lease
(one statement, so two processes never send the same message at once), POSTs them signed,
up to SENDERS at a time, and records each attempt: sent, due again after the doubling delay
(`webhooks.retry_delay`), or failed after three days. Any failure counts: a timeout, a
refused or reset connection, any status but 2xx. Leases of a process that died (kill -9)
are freed by the next sender that looks; a message sent but not recorded goes again, and
the receiver dedupes it by `X-QF-Delivery`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import logging
import os
import secrets
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import msgspec
from sqlite_utils import Database

from server import dataout, wecom
from server.clock import now
from server.results import personal_fields_of
from server.storage import connect, transaction
from server.webhooks import FIRST_RETRY, Webhook, list_webhooks, retry_delay, signature

log = logging.getLogger(__name__)

TIMEOUT = 10  # seconds per connect or read
SENDERS = 16  # messages sent at once (one slow receiver must not hold up the others)
CLAIM = 32  # messages claimed per round
POLL = 1.0  # seconds between looks at the outbox when it has nothing due
MIN_REST = 0.05  # seconds between rounds when there is more to send
NICE = 10  # the sender's threads' priority, as `nice` counts
LEASE = dt.timedelta(minutes=5)  # a claimed message is another sender's again after this
DEAD_OWNERS_EVERY = 30.0  # seconds between looks for leases held by processes that died
MAX_ANSWER_BYTES = 64 * 1024
HOST = socket.gethostname()


class Claimed(msgspec.Struct, frozen=True):
    id: int
    webhook: Webhook
    delivery: str
    response_id: int | None
    body: str | None
    attempts: int
    give_up_at: str


class Outcome(msgspec.Struct, frozen=True):
    status_code: int | None
    error: str  # "" when delivered
    milliseconds: int
    final: bool = False  # no use trying again


class Sender:
    """Empties the outbox: in a thread of each server process, or one round at a time in tests."""

    def __init__(self, path: Path, first_retry: float = FIRST_RETRY, timeout: float = TIMEOUT) -> None:
        self.path = path
        self.first_retry = first_retry
        self.timeout = timeout
        self.owner = f"{HOST}:{os.getpid()}:{secrets.token_hex(4)}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="quality-forms-webhooks", daemon=True)
        self._pool = ThreadPoolExecutor(
            SENDERS, thread_name_prefix="quality-forms-webhook-post", initializer=_yield_cpu
        )
        self._dead_checked = -DEAD_OWNERS_EVERY

    def start(self) -> None:
        self.owner = f"{HOST}:{os.getpid()}:{secrets.token_hex(4)}"  # granian forks after the app is made
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            # A send in flight may take TIMEOUT; its message's lease is released by the next
            # process to look (its owner is gone), and the receiver dedupes a second copy.
            self._thread.join(timeout=2)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        _yield_cpu()
        db = self._connect()
        try:
            while not self._stop.is_set():
                began = time.monotonic()
                try:
                    sent = self.run_once(db)
                except Exception:  # the database was busy or broken: try again shortly
                    log.exception("webhook sender round failed")
                    sent = 0
                # Residents first: this thread shares the process (and its GIL) with the requests,
                # so with a backlog it rests as long as a round took, taking at most half the time.
                self._stop.wait(max(time.monotonic() - began, MIN_REST) if sent else POLL)
        finally:
            db.conn.close()

    def _connect(self) -> Database:
        db = connect(self.path, check_same_thread=False)
        # A lost status update only means a message is sent again (receivers dedupe), so the
        # sender's commits skip the fsync that residents' submissions wait for.
        db.execute("PRAGMA synchronous = NORMAL")
        return db

    def run_once(self, db: Database | None = None) -> int:
        """One round: queue due daily summaries, claim due messages, send them; returns how many."""
        if db is None:
            db = self._connect()
            with contextlib.closing(db.conn):
                return self.run_once(db)
        if not db.execute("SELECT 1 FROM webhooks LIMIT 1").fetchone():
            return 0
        wecom.queue_due_summaries(db, now())
        if time.monotonic() - self._dead_checked >= DEAD_OWNERS_EVERY:
            self._dead_checked = time.monotonic()
            release_dead_leases(db)
        claimed = claim(db, self.owner, CLAIM)
        if not claimed:
            return 0
        personal: dict[str, dict] = {}  # form id -> its personal fields, read once a round
        bodies = [self._body(db, message, personal) for message in claimed]
        outcomes = list(
            self._pool.map(
                lambda pair: pair[1] if isinstance(pair[1], Outcome) else self._post(pair[0], pair[1]),
                zip(claimed, bodies, strict=True),
            )
        )
        record(db, self.owner, claimed, outcomes, self.first_retry)
        return len(claimed)

    def _body(self, db: Database, message: Claimed, personal: dict[str, dict]) -> bytes | Outcome:
        """What to send, or the outcome when there is nothing to send (the response was deleted)."""
        if message.body is not None:
            return message.body.encode()
        found = dataout.response_row(db, message.response_id or 0)
        if found is None:
            return Outcome(None, "回答已删除，不再发送", 0, final=True)
        form_id, row = found
        if message.webhook.personal:
            return dataout.delivery_body(form_id, row, None)
        if form_id not in personal:
            personal[form_id] = personal_fields_of(db, form_id)
        return dataout.delivery_body(form_id, row, personal[form_id])

    def _post(self, message: Claimed, body: bytes) -> Outcome:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "quality-forms-webhook/1",
            "X-QF-Delivery": message.delivery,
            "X-QF-Attempt": str(message.attempts + 1),
        }
        if message.webhook.secret:
            headers["X-QF-Signature"] = signature(message.webhook.secret, body)
        started = time.monotonic()
        status, error = post(message.webhook.url, body, headers, self.timeout, message.webhook.format)
        return Outcome(status, error, round((time.monotonic() - started) * 1000))


def post(
    url: str, body: bytes, headers: dict[str, str], timeout: float, format: str = "json"
) -> tuple[int | None, str]:
    """POST once: (status or None, "" when delivered else what went wrong, in Chinese)."""
    parts = urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = kind(parts.hostname or "", parts.port, timeout=timeout)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("POST", path, body, headers)
        answer = connection.getresponse()
        text = answer.read(MAX_ANSWER_BYTES)
    except TimeoutError:
        return None, f"超时（{timeout:g} 秒未回应）"
    except ConnectionRefusedError:
        return None, "连接被拒绝"
    except (ConnectionResetError, http.client.RemoteDisconnected, BrokenPipeError):
        return None, "连接被对方断开"
    except (OSError, http.client.HTTPException) as exc:
        return None, f"发送失败：{exc.__class__.__name__} {exc}"[:300]
    finally:
        connection.close()
    if not 200 <= answer.status < 300:
        return answer.status, f"对方回应 HTTP {answer.status}"
    if format == "wecom":  # the robot answers 200 with an error code
        return answer.status, wecom.answer_error(text)
    return answer.status, ""


def _yield_cpu() -> None:
    """Lower this thread's priority (Linux schedules threads apart): a busy core serves
    residents' requests before deliveries."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)


def claim(db: Database, owner: str, limit: int) -> list[Claimed]:
    """Lease up to `limit` due messages to `owner`, in one statement: no other sender gets them."""
    moment = now()
    with transaction(db):
        rows = db.execute(
            """UPDATE webhook_messages SET lease_owner = ?, lease_until = ?
               WHERE id IN (
                   SELECT id FROM webhook_messages
                   WHERE status = 'pending' AND next_at <= ? AND (lease_until IS NULL OR lease_until <= ?)
                   ORDER BY next_at, id LIMIT ?)
               RETURNING id, webhook_id, delivery, response_id, body, attempts, give_up_at""",
            [owner, (moment + LEASE).isoformat(), moment.isoformat(), moment.isoformat(), limit],
        ).fetchall()
    hooks = {w.id: w for w in list_webhooks(db)}
    return [Claimed(r[0], hooks[r[1]], r[2], r[3], r[4], r[5], r[6]) for r in sorted(rows) if r[1] in hooks]


def record(db: Database, owner: str, claimed: list[Claimed], outcomes: list[Outcome], first_retry: float) -> None:
    """Write each attempt to the log and move its message on: sent, due again later, or failed."""
    moment = now()
    stamp = moment.isoformat()
    with transaction(db):
        for message, outcome in zip(claimed, outcomes, strict=True):
            db.execute(  # unless the webhook was removed meanwhile, its messages with it
                """INSERT INTO webhook_attempts SELECT id, ?, ?, ?, ? FROM webhook_messages WHERE id = ?""",
                [stamp, outcome.status_code, outcome.error, outcome.milliseconds, message.id],
            )
            failures = message.attempts + 1
            if not outcome.error:
                change = "status = 'sent', sent_at = ?, last_error = ''"
                values = [stamp]
            elif outcome.final or stamp >= message.give_up_at:
                change = "status = 'failed', last_error = ?"
                values = [outcome.error]
            else:
                later = moment + dt.timedelta(seconds=retry_delay(failures, first_retry))
                change = "next_at = ?, last_error = ?"
                values = [min(later.isoformat(), message.give_up_at), outcome.error]
            db.execute(
                f"""UPDATE webhook_messages SET {change}, attempts = ?, lease_owner = NULL, lease_until = NULL
                    WHERE id = ? AND (lease_owner = ? OR lease_owner IS NULL)""",
                [*values, failures, message.id, owner],
            )


def release_dead_leases(db: Database) -> int:
    """Free the messages leased by a process of this machine that no longer runs (killed)."""
    owners = [
        row[0]
        for row in db.execute(
            "SELECT DISTINCT lease_owner FROM webhook_messages WHERE status = 'pending' AND lease_owner IS NOT NULL"
        )
    ]
    dead = [owner for owner in owners if _gone(owner)]
    if not dead:
        return 0
    with transaction(db):
        cursor = db.execute(
            f"""UPDATE webhook_messages SET lease_owner = NULL, lease_until = NULL
                WHERE lease_owner IN ({", ".join("?" * len(dead))})""",
            dead,
        )
    return cursor.rowcount


def _gone(owner: str) -> bool:
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != HOST or not pid.isdigit():
        return False  # another machine's: only its lease's end frees it
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
