"""Group commit (`Writer.submit`) against one `BEGIN IMMEDIATE; INSERT; COMMIT` per submission."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec

from server.clock import now
from server.forms import Form
from server.storage import Submission, Writer, connect, open_database

THREADS = 64
INSERT = """INSERT INTO responses (form_id, form_version, event, submission_key, submitted_at, answers)
            VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (submission_key) DO NOTHING RETURNING id"""


@dataclass
class WriteRate:
    submissions: int
    seconds: float
    commits: int
    busy_retries: int = 0

    @property
    def per_second(self) -> float:
        return self.submissions / self.seconds


def _in_threads(count: int, work: Callable[[int, int], None]) -> float:
    """Run work(thread, n) for count submissions spread over THREADS threads; wall seconds."""
    per_thread = count // THREADS
    start = threading.Barrier(THREADS + 1)

    def loop(thread: int) -> None:
        start.wait()
        for n in range(per_thread):
            work(thread, n)

    threads = [threading.Thread(target=loop, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began


def group_commit(path: Path, form: Form, answers: list[dict], count: int) -> WriteRate:
    """Each thread submits and waits for its receipt, as a request handler does."""
    open_database(path).conn.close()
    writer = Writer(path)
    writer.start()
    writer.submit(Submission(form, "warm-up-key-0000000", answers[0])).result()  # stores the form version
    commits_before = writer.commits

    def work(thread: int, n: int) -> None:
        key = f"group-{thread:02d}-{n:08d}"
        writer.submit(Submission(form, key, answers[n % len(answers)])).result()

    seconds = _in_threads(count, work)
    commits = writer.commits - commits_before
    writer.close()
    return WriteRate(count // THREADS * THREADS, seconds, commits)


def commit_per_request(path: Path, form: Form, answers: list[dict], count: int) -> WriteRate:
    """Each thread has its own connection (WAL, synchronous=FULL) and commits every row alone."""
    db = open_database(path)
    db.execute(
        "INSERT INTO form_versions VALUES (?, ?, ?, ?)",
        [form.id, form.version, msgspec.json.encode(form).decode(), now().isoformat()],
    )
    db.conn.close()
    connections = [connect(path, check_same_thread=False) for _ in range(THREADS)]
    retries = [0] * THREADS
    encode = msgspec.json.Encoder().encode  # as the writer does, so both store the same bytes

    def work(thread: int, n: int) -> None:
        conn = connections[thread]
        row = [
            form.id,
            form.version,
            None,
            f"alone-{thread:02d}-{n:08d}",
            now().isoformat(),
            encode(answers[n % len(answers)]).decode(),
        ]
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError:  # busy for longer than the 5 s timeout: try again
                retries[thread] += 1
        conn.execute(INSERT, row).fetchone()
        conn.execute("COMMIT")

    seconds = _in_threads(count, work)
    for db in connections:
        db.conn.close()
    total = count // THREADS * THREADS
    return WriteRate(total, seconds, total, sum(retries))
