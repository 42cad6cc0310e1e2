"""SQLite storage: connections, the group-commit writer, and the few queries we need.

Every write goes through one `Writer` thread. It takes all submissions waiting at that
moment, stores them in one `BEGIN IMMEDIATE … COMMIT` with `synchronous=FULL`, and only
then answers each of them: durable like one commit per row, fast like a batch.
Reads use one connection per thread (`Store.reader`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec
from sqlite_utils import Database

from server import photos
from server.clock import now
from server.forms import Form
from server.migrations import migrate
from server.scope import EVERYTHING, Scope

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000
MAX_BATCH = 512
HEALTH_TTL = 1.0
CHECKPOINT_EVERY = 50  # group commits between WAL checkpoints (a commit is a few pages)
EMPTY_WAL_ATTEMPTS = 20  # after a purge or deletion: tries to empty the WAL, EMPTY_WAL_PAUSE apart
EMPTY_WAL_PAUSE = 0.05


def connect(path: Path | str, *, check_same_thread: bool = True) -> Database:
    """Open the database with the settings every connection must have."""
    conn = sqlite3.connect(
        str(path), isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=check_same_thread
    )
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    # Zero what a write frees (a purged answer, a deleted row) instead of leaving it in free
    # space: Debian builds SQLite with this on, other builds do not, and every connection counts.
    conn.execute("PRAGMA secure_delete = ON")
    return Database(conn)


def open_database(path: Path) -> Database:
    """Create the folder and file when missing and bring the schema up to date."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = connect(path)
    migrate(db)
    return db


class Submission(msgspec.Struct, frozen=True):
    """A validated response, ready to be stored."""

    form: Form
    submission_key: str
    answers: dict[str, Any]
    event: str | None = None
    suspected_spam: bool = False  # the honeypot was filled: kept, but left out of results and exports


class Receipt(msgspec.Struct, frozen=True):
    response_id: int
    submitted_at: str
    duplicate: bool  # the key had been stored before: nothing new was written


class StorageError(Exception):
    """The database could not take the write (disk full, locked, read-only…)."""


_encoder = msgspec.json.Encoder()


# Who waits for a submission: a thread, or a request on an event loop.
Waiter = concurrent.futures.Future[Receipt] | tuple[asyncio.AbstractEventLoop, asyncio.Future[Receipt]]


class Writer:
    """The one thread that writes responses, committing waiting ones together."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._queue: queue.SimpleQueue[tuple[Submission, Waiter] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="quality-forms-writer", daemon=True)
        self._known_versions: set[tuple[str, str]] = set()
        self.commits = 0  # counted for benchmarks and tests
        self.failed_at = -1.0  # monotonic time of the last commit that failed

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    async def store(self, submission: Submission) -> Receipt:
        """Store one response; returns once the commit that holds it is done.

        The request waits on its event loop's own future, and the writer wakes each loop once
        per commit for all of its requests (`_answer`): a wake-up per request cost more CPU
        than the insert itself."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Receipt] = loop.create_future()
        self._queue.put((submission, (loop, waiter)))
        return await waiter

    def submit(self, submission: Submission) -> concurrent.futures.Future[Receipt]:
        future: concurrent.futures.Future[Receipt] = concurrent.futures.Future()
        self._queue.put((submission, future))
        return future

    def _run(self) -> None:
        db = connect(self.path)
        # Set up with the usual busy timeout (the WAL pragma may wait for another writer); from
        # here on the writer waits for the lock itself (see _begin), and checkpoints run after
        # answering (see _commit).
        db.execute("PRAGMA busy_timeout = 0")
        db.execute("PRAGMA wal_autocheckpoint = 0")
        # The counting trigger (see migrations.count_responses) makes each insert a statement
        # that needs a statement journal; in a temporary file that more than doubled the CPU
        # of an insert (8 -> 16 us), in memory it costs about 1 us. The writer only inserts
        # small rows, so its temporary storage stays a few pages.
        db.execute("PRAGMA temp_store = MEMORY")
        try:
            while (first := self._queue.get()) is not None:
                batch = [first]
                while len(batch) < MAX_BATCH:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        self._queue.put(None)  # finish this batch, then stop
                        break
                    batch.append(item)
                self._commit(db, batch)
        finally:
            db.conn.close()

    def _commit(self, db: Database, batch: list[tuple[Submission, Waiter]]) -> None:
        stamp = now().isoformat()
        try:
            _begin(db)
            receipts = self._insert(db, [submission for submission, _ in batch], stamp)
            db.execute("COMMIT")
        except Exception as exc:  # whatever went wrong, every waiting request must get its answer
            _rollback(db)
            self.failed_at = time.monotonic()
            self._known_versions.clear()  # the rollback may have taken new versions with it
            log.error("could not store %d response(s): %s", len(batch), exc)
            _answer(batch, [StorageError(str(exc))] * len(batch))
            return
        self.commits += 1
        _answer(batch, receipts)
        if self.commits % CHECKPOINT_EVERY == 0:  # after the answers, not before them
            with contextlib.suppress(sqlite3.Error):
                db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def _insert(self, db: Database, submissions: list[Submission], stamp: str) -> list[Receipt]:
        """Insert the batch in one statement; each submission's receipt, in order.

        One statement, not one per response: each call into SQLite lets go of the GIL and
        takes it back from the busy event loop, which cost more than the insert itself. A key
        stored before (or twice in this batch) inserts nothing, and gets the earlier receipt.
        The writer holds the write lock, so the rows with an id past the last one given
        before are this statement's."""
        for form in {(s.form.id, s.form.version): s.form for s in submissions}.values():
            if (form.id, form.version) not in self._known_versions:
                db.execute(
                    "INSERT OR IGNORE INTO form_versions VALUES (?, ?, ?, ?)",
                    [form.id, form.version, _encoder.encode(form).decode(), stamp],
                )
                self._known_versions.add((form.id, form.version))
        values: list[Any] = []
        for s in submissions:
            answers = _encoder.encode(s.answers).decode()
            values += (s.form.id, s.form.version, s.event, s.submission_key, stamp, answers, s.suspected_spam)
        # The last id given first, the rows without RETURNING, then: each row of a RETURNING
        # is one more call into SQLite (and one more wait for the GIL).
        (before,) = db.execute(_LAST_ID).fetchone()
        cursor = db.execute(
            f"""INSERT INTO responses
                   (form_id, form_version, event, submission_key, submitted_at, answers, suspected_spam)
               VALUES {_ROWS[len(submissions)]}
               ON CONFLICT (submission_key) DO NOTHING""",
            values,
        )
        if cursor.rowcount == len(submissions):  # all new: each row took the last id + 1, in order
            return [Receipt(before + n, stamp, duplicate=False) for n in range(1, len(submissions) + 1)]
        inserted = dict(db.execute("SELECT submission_key, id FROM responses WHERE id > ?", [before]).fetchall())
        receipts = []
        for s in submissions:
            if (response_id := inserted.pop(s.submission_key, None)) is not None:
                receipts.append(Receipt(response_id, stamp, duplicate=False))
            else:
                earlier = receipt_for_key(db, s.submission_key)
                assert earlier is not None  # the conflict says the key is there
                receipts.append(earlier)
        return receipts


# The last id given (`AUTOINCREMENT`: a deleted response's id is never given again).
_LAST_ID = """SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'responses'), 0),
                  coalesce((SELECT max(id) FROM responses), 0))"""
_ROWS = ["", *(", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * n) for n in range(1, MAX_BATCH + 1))]


def _answer(batch: list[tuple[Submission, Waiter]], outcomes: Sequence[Receipt | StorageError]) -> None:
    """Give each waiting request its receipt or error: one wake-up per event loop per commit."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Receipt], Receipt | StorageError]]] = {}
    for (_, waiter), outcome in zip(batch, outcomes, strict=True):
        if isinstance(waiter, concurrent.futures.Future):
            if isinstance(outcome, StorageError):
                waiter.set_exception(outcome)
            else:
                waiter.set_result(outcome)
        else:
            by_loop.setdefault(waiter[0], []).append((waiter[1], outcome))
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting any more
            loop.call_soon_threadsafe(_settle, settled)


def _settle(settled: list[tuple[asyncio.Future[Receipt], Receipt | StorageError]]) -> None:
    for future, outcome in settled:
        if future.done():  # the request was cancelled (its client went away)
            continue
        if isinstance(outcome, StorageError):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


def _begin(db: Database) -> None:
    """`BEGIN IMMEDIATE`, waiting up to BUSY_TIMEOUT_MS for another process's writer.

    SQLite's own busy handler sleeps in steps that grow to 100 ms, so with two server
    processes one commit in flight could stall the other's whole batch that long. Another
    writer holds the lock only for one group commit, so polling every half millisecond
    hands the lock over as soon as it is free.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            db.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() > deadline:
                raise
            time.sleep(0.0005)


class Store:
    """The database of one server: the writer, and a read connection per thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        open_database(path).conn.close()
        self.writer = Writer(path)
        self._local = threading.local()
        self._health_lock = threading.Lock()
        self._healthy_since = -1.0  # monotonic time of the last successful probe

    def start(self) -> None:
        self.writer.start()

    def close(self) -> None:
        self.writer.close()

    def healthy(self) -> bool:
        """Whether the database takes writes; a success is trusted for `HEALTH_TTL` seconds.

        Each probe is a durable one-page commit that competes with the writer for the lock,
        so a monitor polling /healthz under load must not add a commit per request. A
        failure is never remembered: the next check looks again.
        """
        if self.known_healthy():
            return True
        with self._health_lock:
            if self.known_healthy():
                return True
            probed_at = time.monotonic()
            ok = writable(self.reader())
            self._healthy_since = probed_at if ok else -1.0
            return ok

    def known_healthy(self) -> bool:
        """The last probe succeeded, recently, and no commit has failed since."""
        since = self._healthy_since
        return since >= 0 and time.monotonic() < since + HEALTH_TTL and self.writer.failed_at < since

    def reader(self) -> Database:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = connect(self.path)
        return db


def receipt_for_key(db: Database, submission_key: str) -> Receipt | None:
    row = db.execute("SELECT id, submitted_at FROM responses WHERE submission_key = ?", [submission_key]).fetchone()
    return Receipt(row[0], row[1], duplicate=True) if row else None


def answers_for_key(db: Database, submission_key: str) -> tuple[str, str | None, dict[str, Any]] | None:
    """(form id, event code, answers) of the response stored under a submission key."""
    row = db.execute(
        "SELECT form_id, event, answers FROM responses WHERE submission_key = ?", [submission_key]
    ).fetchone()
    return (row[0], row[1], msgspec.json.decode(row[2])) if row else None


class StoredResponse(msgspec.Struct, frozen=True):
    """A response as the office reads it back: answers decoded, personal ones not yet masked."""

    id: int
    form_id: str
    submitted_at: str
    event: str | None
    answers: dict[str, Any]
    suspected_spam: bool


_RESPONSE_COLUMNS = "r.id, r.form_id, r.submitted_at, r.event, r.answers, r.suspected_spam"


def _stored(row: tuple) -> StoredResponse:
    id_, form_id, submitted_at, event, answers, spam = row
    return StoredResponse(id_, form_id, submitted_at, event, msgspec.json.decode(answers), bool(spam))


def response_by_id(db: Database, response_id: int) -> StoredResponse | None:
    row = db.execute(f"SELECT {_RESPONSE_COLUMNS} FROM responses r WHERE r.id = ?", [response_id]).fetchone()
    return _stored(row) if row else None


def responses_where(
    db: Database, clause: str, params: list[Any], *, before: int | None = None, limit: int = 50
) -> list[StoredResponse]:
    """The newest responses matching a condition on `responses r` (from `results.where`),
    those with an id below `before` when given: one page of the office's list."""
    if before is not None:
        clause, params = f"({clause}) AND r.id < ?", [*params, before]
    rows = db.execute(
        f"SELECT {_RESPONSE_COLUMNS} FROM responses r WHERE {clause} ORDER BY r.id DESC LIMIT ?", [*params, limit]
    )
    return [_stored(row) for row in rows]


def event_response_count(db: Database, code: str, form_id: str) -> int:
    """Every response residents sent for an event to its form, suspected spam included (the
    event's report, a response of another form, is not one of them)."""
    sql = "SELECT count(*) FROM responses WHERE event = ? AND form_id = ?"
    return db.execute(sql, [code, form_id]).fetchone()[0]


def stored_definitions(db: Database, form_id: str) -> list[Form]:
    """Every version of a form that responses were stored under, oldest first."""
    rows = db.execute(
        "SELECT definition FROM form_versions WHERE form_id = ? ORDER BY first_seen, rowid", [form_id]
    ).fetchall()
    return [msgspec.json.decode(row[0], type=Form) for row in rows]


def fields_in_answers(db: Database, form_id: str, except_version: str) -> set[str]:
    """Names answered in responses stored under other versions of the form."""
    rows = db.execute(
        """SELECT DISTINCT key FROM responses, json_each(responses.answers)
           WHERE form_id = ? AND form_version != ?""",
        [form_id, except_version],
    ).fetchall()
    return {row[0] for row in rows}


def writable(db: Database) -> bool:
    """True when a write can be committed right now: the lock is free and the file takes it.

    An empty transaction writes nothing, so it commits on a read-only file or a full disk
    too; rewriting `user_version` (which the schema does not use) makes the commit write
    a page, as storing a response would.
    """
    try:
        db.execute("BEGIN IMMEDIATE")
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        db.execute(f"PRAGMA user_version = {version}")
        db.execute("COMMIT")
        return True
    except sqlite3.Error:
        _rollback(db)
        return False


@contextlib.contextmanager
def transaction(db: Database) -> Iterator[Database]:
    """`BEGIN IMMEDIATE … COMMIT`, or ROLLBACK when the block raises (for writes outside the writer)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        _rollback(db)
        raise
    db.execute("COMMIT")


def _rollback(db: Database) -> None:
    """End a failed transaction, if SQLite has not ended it already (it may, on I/O errors)."""
    if db.conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")


class Erased(msgspec.Struct, frozen=True):
    """What a purge or a deletion removed, and whether old copies may remain on disk."""

    responses: int  # responses that lost answers, or were deleted
    wal_left: int  # 0 when the WAL was emptied; else the bytes of the -wal file, old copies among them
    photos: int = 0  # photo files deleted with them (those no other response shows)


def purge_personal(db: Database, form_id: str, names: list[str], until: str) -> Erased:
    """Remove the answers to personal questions from responses submitted up to `until`.

    The rest of each response stays, so the statistics keep their numbers. `names` are
    every answer key to remove (a personal choice's `<name>_other` text included).
    """
    if not names:
        return Erased(0, empty_wal(db))
    paths = [f"$.{name}" for name in names]
    present = " OR ".join("json_type(answers, ?) IS NOT NULL" for _ in paths)
    chosen = f"form_id = ? AND submitted_at <= ? AND ({present})"
    with transaction(db):
        pictures = _photos_of(db, f"SELECT answers FROM responses WHERE {chosen}", [form_id, until, *paths], names)
        cursor = db.execute(
            f"UPDATE responses SET answers = json_remove(answers, {', '.join('?' * len(paths))}) WHERE {chosen}",
            [*paths, form_id, until, *paths],
        )
    return Erased(cursor.rowcount, empty_wal(db), remove_unused_photos(db, pictures))


def delete_response(db: Database, response_id: int, also: Callable[[Database], None] | None = None) -> Erased:
    """Delete one response (a PIPL request); `also` runs in the same transaction (the audit line).
    Its photo files go too, unless another response shows the same picture."""
    with transaction(db):
        pictures = _photos_of(db, "SELECT answers FROM responses WHERE id = ?", [response_id])
        cursor = db.execute("DELETE FROM responses WHERE id = ?", [response_id])
        if also is not None:
            also(db)
    return Erased(cursor.rowcount, empty_wal(db), remove_unused_photos(db, pictures))


def _photos_of(db: Database, sql: str, params: list[Any], names: list[str] | None = None) -> set[str]:
    """The photo names in the answers the query selects (only under `names`, when given)."""
    found: set[str] = set()
    for (answers_json,) in db.execute(sql, params):
        answers = msgspec.json.decode(answers_json)
        for name, value in answers.items():
            if names is None or name in names:
                found.update(photos.names_in(value))
    return found


_PHOTO_NAME = re.compile(r"[0-9a-f]{64}\.jpg")


def remove_unused_photos(db: Database, candidates: set[str]) -> int:
    """Delete the files of these photos that no stored response names any more.

    Files are named by their content, so two responses may share one; one scan of the
    answers that mention a photo at all tells which are still in use.
    """
    if not candidates:
        return 0
    in_use: set[str] = set()
    for (answers_json,) in db.execute("SELECT answers FROM responses WHERE instr(answers, '.jpg') > 0"):
        in_use.update(_PHOTO_NAME.findall(answers_json))
    return photos.remove(photos.folder_for(database_path(db)), candidates - in_use)


def database_path(db: Database) -> Path:
    return Path(db.execute("PRAGMA database_list").fetchone()[2])


def empty_wal(db: Database) -> int:
    """Checkpoint the WAL into the database and truncate it: 0, or the bytes the -wal still holds.

    The WAL keeps every earlier image of a changed page, so a purged phone number stays in
    the -wal file until it is checkpointed and truncated. A TRUNCATE checkpoint takes the
    write lock and then waits for readers on older snapshots (an export in progress), so
    each attempt waits for nobody (busy timeout 0) and the pause between attempts is spent
    without the lock: residents' submissions never queue behind it. A reader that stays
    past the attempts (Litestream holds one all the time) leaves the WAL as it is, and the
    caller reports what remains.
    """
    previous = db.execute("PRAGMA busy_timeout").fetchone()[0]
    db.execute("PRAGMA busy_timeout = 0")
    try:
        for attempt in range(EMPTY_WAL_ATTEMPTS):
            if attempt:
                time.sleep(EMPTY_WAL_PAUSE)
            with contextlib.suppress(sqlite3.OperationalError):  # locked: try again
                if db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0:
                    return 0
    finally:
        db.execute(f"PRAGMA busy_timeout = {int(previous)}")
    wal = Path(f"{database_path(db)}-wal")
    try:
        left = wal.stat().st_size
    except FileNotFoundError:  # another connection emptied it meanwhile
        return 0
    log.warning("a reader kept the WAL busy: removed answers stay in its %d bytes until a later checkpoint", left)
    return left


class Counts(msgspec.Struct, frozen=True):
    """A form's or an event's responses on the dashboard: all, today's, and suspected spam."""

    total: int = 0
    today: int = 0
    spam: int = 0


def dashboard_counts(
    db: Database, today: str, scope: Scope = EVERYTHING, office_forms: Collection[str] = ()
) -> tuple[dict[str, Counts], dict[str, Counts]]:
    """Counts per form and per event code, read from `response_counts` (see migrations).

    The table is kept by triggers, so this reads a row per form, event, day and spam flag,
    never the responses. A staff or county account counts only the events of its scope
    (`server.scope`); the form's own page has no event, so only an admin counts its answers.
    Spam is counted apart: `total` and `today` leave it out. The responses of `office_forms`
    (event reports) count for their form, not as answers to their event.
    """
    condition, params = scope.responses_sql("response_counts.event")
    per_form: dict[str, Counts] = {}
    per_event: dict[str, Counts] = {}
    rows = db.execute(
        f"""SELECT form_id, event, total(n * NOT suspected_spam), total(n * (day = ? AND NOT suspected_spam)),
                   total(n * suspected_spam)
            FROM response_counts WHERE {condition} GROUP BY form_id, event""",
        [today, *params],
    )
    for form_id, event, total, today_count, spam in rows:
        for tally, key in ((per_form, form_id), (per_event, "" if form_id in office_forms else event)):
            if key:
                seen = tally.get(key, Counts())
                tally[key] = Counts(seen.total + int(total), seen.today + int(today_count), seen.spam + int(spam))
    return per_form, per_event
