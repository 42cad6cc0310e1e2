"""The read API paging through N responses, against `quality-forms export` of the same rows.

Both read the same database in the same run: the API through a real server (one worker,
keep-alive, `limit=1000`, each page decoded as a platform would), the export as a command
writing the CSV to a file. Figures are responses per second.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec

from tests.bench.exporting import fill
from tests.bench.serving import BUNDLED_FORMS, ROOT, SUBMIT_FORM, Server, free_port, status_of, stop, submit_load

PAGE = 1000
# This checkout's code, whichever checkout the venv's `quality-forms` script was installed from.
QUALITY_FORMS = [sys.executable, "-m", "server"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "QF_RATE_LIMIT": "0"}


@dataclass
class ApiFigures:
    responses: int
    api_seconds: float
    pages: int
    csv_seconds: float
    complete: bool  # the API returned every id once, in order

    def rows(self) -> list[tuple[str, str, str, str]]:
        api_rate, csv_rate = self.responses / self.api_seconds, self.responses / self.csv_seconds
        return [
            (
                f"read API paging {self.responses:,} responses (`limit={PAGE}`, {self.pages} pages, one worker)"
                " vs `quality-forms export` of the same rows",
                f"**{api_rate:,.0f}** responses/s ({self.api_seconds:.1f} s) vs {csv_rate:,.0f} /s"
                f" ({self.csv_seconds:.1f} s) = {api_rate / csv_rate:.2f} of the export's rate",
                "—",
                "ok" if self.complete else "**INCOMPLETE**",
            )
        ]


def api_against_csv(workdir: Path, count: int) -> ApiFigures:
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "api.db"
    fill(db, count)
    settings = ["--forms", str(BUNDLED_FORMS), "--db", str(db)]
    token = (
        subprocess.run(
            [*QUALITY_FORMS, "token", "add", "bench", *settings], capture_output=True, check=True, cwd=workdir, env=ENV
        )
        .stdout.decode()
        .strip()
    )

    began = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        export = [*QUALITY_FORMS, "export", SUBMIT_FORM, *settings, "--out", "-"]
        subprocess.run(export, stdout=sink, check=True, cwd=workdir, env=ENV)
    csv_seconds = time.perf_counter() - began

    with _serving(workdir, db, workers=1) as server:
        seconds, pages, ids = _page_through(server.port, token)
    complete = ids == list(range(1, count + 1))
    return ApiFigures(count, seconds, pages, csv_seconds, complete)


@contextlib.contextmanager
def _serving(workdir: Path, db: Path, workers: int) -> Iterator[Server]:
    port = free_port()
    with (workdir / f"server-{port}.log").open("wb") as log:
        process = subprocess.Popen(
            [*QUALITY_FORMS, "serve", "--port", str(port), "--workers", str(workers),
             "--forms", str(BUNDLED_FORMS), "--db", str(db)],
            cwd=workdir, env=ENV, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while status_of(f"http://127.0.0.1:{port}/healthz") != 200:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not start; see {workdir}/server-{port}.log")
                time.sleep(0.1)
            yield Server(port, process, db)
        finally:
            stop(process)


# The receiver runs in a process of its own at the lowest priority: on a real deployment it is
# another machine, so its CPU must not count against the residents' submissions here.
RECEIVER = """
import os, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
os.nice(19)
class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
class Server(ThreadingHTTPServer):
    request_queue_size = 128
    daemon_threads = True
Server(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def webhook_cost(workdir: Path, seconds: int, workers: int) -> list[tuple[str, str, str, str]]:
    """Submissions per second and p99 without a webhook, then with one to a local receiver
    (its own process, lowest priority) answering 200 at once: what the outbox trigger and the
    sender cost residents, and how fast the deliveries follow."""
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "webhooks.db"
    port = free_port()
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port)])
    url = f"http://127.0.0.1:{port}/hook"
    try:
        with _serving(workdir, db, workers) as server:
            submit_load(server, 1, "warm")
            without = submit_load(server, seconds, "plain")
            add = [*QUALITY_FORMS, "webhook", "add", url, "--form", SUBMIT_FORM, "--secret", "bench-secret-0123456789"]
            subprocess.run([*add, "--db", str(db), "--forms", str(BUNDLED_FORMS)], check=True, env=ENV, cwd=workdir)
            time.sleep(1.5)  # the senders notice the webhook
            began = time.monotonic()
            hooked = submit_load(server, seconds, "hooked")
            with contextlib.closing(sqlite3.connect(db)) as reading:
                unsent = "SELECT count(*) FROM webhook_messages WHERE status != 'sent'"
                while reading.execute(unsent).fetchone()[0] and time.monotonic() < began + 300:
                    time.sleep(0.2)
                (sent,) = reading.execute("SELECT count(*) FROM webhook_messages WHERE status = 'sent'").fetchone()
            drained = time.monotonic() - began
    finally:
        receiver.kill()
        receiver.wait()
    return [
        (
            f"submit with a webhook to a local receiver vs without (`--workers {workers}`)",
            f"{hooked.per_second:,.0f} /s, p99 **{hooked.load.p99_ms:.1f}** ms vs {without.per_second:,.0f} /s,"
            f" p99 {without.load.p99_ms:.1f} ms = **{hooked.per_second / without.per_second:.2f}**;"
            f" {sent:,} deliveries done {drained:.1f} s after the load began ({sent / drained:,.0f} /s)",
            "—",
            "",
        )
    ]


class _Page(msgspec.Struct):
    responses: list[dict]
    next: int | None


def _page_through(port: int, token: str) -> tuple[float, int, list[int]]:
    decode = msgspec.json.Decoder(_Page).decode
    ids: list[int] = []
    pages, after = 0, 0
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    with contextlib.closing(connection):
        began = time.perf_counter()
        while True:
            connection.request(
                "GET",
                f"/api/forms/{SUBMIT_FORM}/responses?after={after}&limit={PAGE}",
                headers={"Authorization": f"Bearer {token}"},
            )
            answer = connection.getresponse()
            body = answer.read()
            if answer.status != 200:
                raise RuntimeError(f"the API answered {answer.status}: {body[:200]!r}")
            page = decode(body)
            pages += 1
            ids += [r["id"] for r in page.responses]
            if page.next is None:
                break
            after = page.next
        return time.perf_counter() - began, pages, ids
