"""Nothing a resident typed is ever lost: a real server killed, crowded, or out of disk.

These tests run `quality-forms serve` as a process in its own session, so SIGKILL reaches
granian's main process and its worker together, as a power cut or the OOM killer would.
Every wait has a deadline, so a hang fails the test instead of blocking CI.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from server.storage import StorageError, Submission, open_database
from tests.conftest import BUNDLED_FORMS, FIVE_INTO_ANSWERS, ROOT, database, free_port, make_app_client

FORM = "/f/five-into-session"
ANSWERS = FIVE_INTO_ANSWERS
STORED = {
    "venue_type": "school",
    "unit_name": "海口市第一中学",
    "topics": ["food", "elevator"],
    "satisfaction": 4,
    "suggestion": "多来学校讲讲电梯安全。",
}


class Server:
    """A `quality-forms serve` process group on a port, with its log file."""

    def __init__(self, workdir: Path, process: subprocess.Popen, port: int) -> None:
        self.workdir, self.process, self.port = workdir, process, port

    def post(self, path: str, answers: dict, timeout: float = 10) -> tuple[int, str]:
        """POST urlencoded answers without following the 303; (status, body)."""
        body = urllib.parse.urlencode(answers, doseq=True).encode()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request("POST", path, body, {"Content-Type": "application/x-www-form-urlencoded"})
            answer = connection.getresponse()
            return answer.status, answer.read().decode()
        finally:
            connection.close()

    def get(self, path: str, timeout: float = 10) -> tuple[int, str]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request("GET", path)
            answer = connection.getresponse()
            return answer.status, answer.read().decode()
        finally:
            connection.close()

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown hook, no last commit."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def log(self) -> str:
        return (self.workdir / "server.log").read_text(errors="replace")


@contextlib.contextmanager
def serve(
    workdir: Path, env: dict[str, str] | None = None, preexec_fn: Callable[[], None] | None = None
) -> Iterator[Server]:
    """Like conftest's `running_server`, but in its own session, and up once /healthz answers at all."""
    port = free_port()
    log = (workdir / "server.log").open("ab")  # appended: a restart keeps the first run's log
    process = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--port", str(port)],
        cwd=workdir,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=preexec_fn,
    )
    server = Server(workdir, process, port)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                server.get("/healthz", timeout=2)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(server.log()) from None
                time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
        log.close()


def workdir_with_bundled_forms(tmp_path: Path) -> Path:
    shutil.copytree(BUNDLED_FORMS, tmp_path / "forms")
    return tmp_path


def stored_keys(workdir: Path) -> list[str]:
    """Every submission key in the database, one entry per row (so duplicates would show)."""
    with contextlib.closing(sqlite3.connect(workdir / "data" / "quality-forms.db")) as db:
        return [row[0] for row in db.execute("SELECT submission_key FROM responses")]


def integrity(workdir: Path) -> str:
    with contextlib.closing(sqlite3.connect(workdir / "data" / "quality-forms.db")) as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]


def key(*parts: object) -> str:
    return "durability-" + "-".join(str(p).zfill(4) for p in parts)  # matches ^[A-Za-z0-9_-]{16,64}$


def test_every_submission_answered_303_before_sigkill_is_stored_and_stored_once(tmp_path):
    workdir = workdir_with_bundled_forms(tmp_path)
    env = {"QF_RATE_LIMIT": "0"}
    outcomes: dict[str, int | str] = {}  # key -> status, or "failed" when the connection broke
    lock = threading.Lock()
    killed = threading.Event()

    def submitter(thread: int, server: Server) -> None:
        for n in range(100_000):
            if killed.is_set():
                return
            k = key(thread, n)
            try:
                status, _ = server.post(FORM, ANSWERS | {"_key": k}, timeout=5)
            except OSError:
                status = "failed"
            with lock:
                outcomes[k] = status
            if status == "failed":
                return

    with serve(workdir, env) as server:
        threads = [threading.Thread(target=submitter, args=(t, server), daemon=True) for t in range(12)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 15
        while sum(s == 303 for s in list(outcomes.values())) < 150 and time.monotonic() < deadline:
            time.sleep(0.02)
        server.kill()  # mid-load: requests are in flight right now
        killed.set()
        for thread in threads:
            thread.join(timeout=10)
        assert not any(thread.is_alive() for thread in threads)

    accepted = {k for k, s in outcomes.items() if s == 303}
    unanswered = {k for k, s in outcomes.items() if s != 303}
    assert len(accepted) >= 50, "the load ran long enough to mean something"
    assert {s for s in outcomes.values()} <= {303, "failed"}, outcomes  # no 4xx/5xx under load
    assert "failed" in outcomes.values(), "the kill landed while requests were in flight"

    assert integrity(workdir) == "ok"  # before the restart too: a plain sqlite3 reader recovers it
    before_restart = stored_keys(workdir)
    assert accepted <= set(before_restart), "a 303 was answered for a response that was not committed"
    assert set(before_restart) <= accepted | unanswered, "no row appears from nowhere"

    with serve(workdir, env) as server:
        assert server.get("/healthz") == (200, "ok")
        # The resident whose phone saw an error presses 提交 again: same page, same key.
        for k in sorted(unanswered) + sorted(accepted)[:20]:
            status, _ = server.post(FORM, ANSWERS | {"_key": k})
            assert status == 303, k
        assert integrity(workdir) == "ok"
        keys = stored_keys(workdir)
    assert len(keys) == len(set(keys)), "no key is ever stored twice"
    assert set(keys) == accepted | unanswered
    with contextlib.closing(sqlite3.connect(workdir / "data" / "quality-forms.db")) as db:
        answers = {row[0] for row in db.execute("SELECT DISTINCT answers FROM responses")}
    assert [json.loads(a) for a in answers] == [STORED]


def test_two_hundred_concurrent_submissions_are_two_hundred_rows(tmp_path):
    workdir = workdir_with_bundled_forms(tmp_path)
    keys = [key("crowd", n) for n in range(200)]
    start = threading.Barrier(32, timeout=30)

    with serve(workdir) as server:  # the default rate limit: one event behind one NAT must fit

        def send(k: str) -> int:
            if keys.index(k) < 32:
                start.wait()  # the first 32 leave together
            return server.post(FORM, ANSWERS | {"_key": k}, timeout=15)[0]

        with ThreadPoolExecutor(max_workers=32) as pool:
            statuses = list(pool.map(send, keys, timeout=60))
        log = server.log()

    assert statuses == [303] * 200
    assert sorted(stored_keys(workdir)) == sorted(keys)
    assert "database is locked" not in log and "could not store" not in log and "Traceback" not in log
    assert integrity(workdir) == "ok"


def _child_pids(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children] + [g for c in children for g in _child_pids(int(c))]


def test_a_full_disk_answers_503_with_every_value_kept_and_recovers(tmp_path):
    """A real full disk needs a small filesystem we cannot mount here (and root ignores file
    modes), so the server gets RLIMIT_FSIZE: the kernel refuses to grow any of its files past
    the limit (EFBIG), root included, which SQLite meets exactly as it would meet ENOSPC: a
    write that fails while committing the WAL. Python ignores SIGXFSZ, so the process lives."""
    workdir = workdir_with_bundled_forms(tmp_path)
    db_path = workdir / "data" / "quality-forms.db"
    open_database(db_path).conn.close()
    limit = max(db_path.stat().st_size, 32 * 1024) + 16 * 1024  # the 32 KiB WAL index fits, a few commits fit

    def small_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    with serve(workdir, {"QF_RATE_LIMIT": "0"}, preexec_fn=small_disk) as server:
        accepted = []
        for n in range(60):
            status, page = server.post(FORM, ANSWERS | {"_key": key("full", n)})
            if status != 303:
                break
            accepted.append(key("full", n))
        assert status == 503, page
        assert "这次没有保存成功" in page and "您填写的内容都还在" in page
        assert 'value="海口市第一中学"' in page and "多来学校讲讲电梯安全。" in page
        assert 'value="school" checked' in page and 'value="4" checked' in page
        assert 'value="food" checked' in page and 'value="elevator" checked' in page
        assert f'value="{key("full", n)}"' in page  # the same key: pressing 提交 again stores once
        # The process that failed says so at once; another trusts its last probe for up to a second.
        deadline = time.monotonic() + 3
        while (health := server.get("/healthz")[0]) != 503 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert health == 503, "health says the database cannot take writes"
        assert set(stored_keys(workdir)) == set(accepted)

        for pid in [server.process.pid, *_child_pids(server.process.pid)]:  # space is freed
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        assert server.get("/healthz") == (200, "ok")
        assert server.post(FORM, ANSWERS | {"_key": key("full", n)})[0] == 303
        assert server.post(FORM, ANSWERS | {"_key": key("full", n)})[0] == 303
        keys = stored_keys(workdir)
    assert sorted(keys) == sorted([*accepted, key("full", n)])
    assert integrity(workdir) == "ok"


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make a file read-only even for root: the immutable attribute, else (not root) its mode."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        try:
            yield
        finally:
            path.chmod(0o644)
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
        pytest.skip("running as root on a filesystem without the immutable attribute")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_a_read_only_database_answers_503_with_the_form_and_health_says_so(tmp_path):
    db_path = tmp_path / "data" / "test.db"
    open_database(db_path).conn.close()
    with read_only(db_path), make_app_client(tmp_path, rate_limit=0) as client:
        assert client.get("/healthz").status_code == 503
        sent = {"_key": key("read-only", 1), "unit": "琼海市博鳌镇", "people": "30", "topics": ["电梯"]}
        answer = client.post("/f/all-types", data=sent, follow_redirects=False)
        assert answer.status_code == 503
        assert "这次没有保存成功" in answer.text and '<form class="survey"' in answer.text
        assert 'value="琼海市博鳌镇"' in answer.text and 'value="30"' in answer.text
        assert 'value="电梯" checked' in answer.text and f'value="{key("read-only", 1)}"' in answer.text
        assert database(client)["responses"].count == 0


def test_a_batch_that_cannot_be_stored_gets_its_answer_and_the_writer_keeps_writing(client):
    """Not only SQLite errors: anything that escaped the writer thread would leave every later
    request waiting forever. A lone surrogate cannot be encoded as UTF-8 JSON."""
    context = client.app.state["context"]
    form = context.catalog.get("all-types")
    broken = context.store.writer.submit(Submission(form, key("writer", 1), {"unit": "\ud800"}))
    with pytest.raises(StorageError):
        broken.result(timeout=10)
    stored = context.store.writer.submit(Submission(form, key("writer", 2), {"unit": "琼海"}))
    assert stored.result(timeout=10).duplicate is False
    assert client.post("/f/all-types", data={"unit": "博鳌镇"}, follow_redirects=False).status_code == 303
    keys = [row["submission_key"] for row in database(client)["responses"].rows]
    assert len(keys) == 2 and keys[0] == key("writer", 2)


def test_the_writer_starts_while_another_connection_holds_the_write_lock(tmp_path):
    """At start-up another process may be writing (a CLI command, the other server process):
    the writer must wait for it, not die and leave every later submission unanswered."""
    import threading

    from server.forms import load_form
    from server.storage import Store, Submission, connect
    from tests.conftest import TEST_FORMS

    store = Store(tmp_path / "test.db")
    other = connect(tmp_path / "test.db", check_same_thread=False)
    other.execute("PRAGMA locking_mode = EXCLUSIVE")  # held until closed: even setting up must wait
    other.execute("BEGIN IMMEDIATE")
    other.execute("COMMIT")
    store.start()
    threading.Timer(0.3, other.conn.close).start()
    form = load_form(TEST_FORMS / "all-types.toml")
    receipt = store.writer.submit(Submission(form, key("locked-at-start", 1), {"unit": "琼海市"})).result(timeout=10)
    assert not receipt.duplicate
    store.close()
