"""A busy campaign evening (issue 10): residents submit while the office and an attacker load the server.

One server over a database of a million responses. First the residents alone: wrk with
`submit.lua` at 64 connections. Then the same again while 25 dashboards poll `/admin/live`
every 5 s, one CSV export of the million responses streams, and an attacker sends 20
sign-ins a second with wrong passwords, each to a new user name (so no account lock ever
saves the server its password hashing). The server processes' memory (RSS, from /proc)
is sampled throughout.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from server.accounts import add_user
from server.storage import connect
from tests.bench import serving
from tests.bench.exporting import fill
from tests.bench.serving import BUNDLED_FORMS, QUALITY_FORMS, SUBMIT_FORM

P99_GOAL_MS = 50
RATIO_GOAL = 0.8
RSS_GOAL_MB = 512
DASHBOARDS = 25
POLL_SECONDS = 5
SIGN_INS_PER_SECOND = 20
OFFICE_USER, OFFICE_PASSWORD = "bench-office", "bench-office-password"


@dataclass
class Polls:
    """What the office and the attacker saw while the residents submitted."""

    statuses: Counter = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, status: int, began: float) -> None:
        with self.lock:
            self.statuses[status] += 1
            self.latencies_ms.append((time.perf_counter() - began) * 1000)

    def p99_ms(self) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else 0.0

    def summary(self) -> str:
        counts = ", ".join(f"{count} × {status}" for status, count in sorted(self.statuses.items()))
        return f"{counts or 'none'} (p99 {self.p99_ms():.0f} ms)"


@dataclass
class Export:
    status: int = 0
    bytes: int = 0
    seconds: float = 0.0
    finished: bool = False


@dataclass
class Busy:
    """One run of the residents' load with the office's (and maybe the attacker's) beside it."""

    submits: serving.SubmitLoad
    dashboards: Polls
    export: Export
    sign_ins: Polls | None = None
    sign_ins_per_second: float = 0.0


@dataclass
class MixedFigures:
    responses: int
    alone: serving.SubmitLoad
    office: Busy  # dashboards and the export
    evening: Busy  # dashboards, the export and the attacker: the goal
    peak_rss_mb: float

    def ratio(self, busy: Busy) -> float:
        return busy.submits.per_second / self.alone.per_second


# --- the server, over a database made beforehand ----------------------------------------------


@contextlib.contextmanager
def running_over(workdir: Path, db: Path, workers: int) -> serving.Server:
    """`quality-forms serve` over db. PYTHONPATH makes it run this checkout's `server`, not the
    one an editable install elsewhere points to (a git worktree shares its .venv)."""
    port = serving.free_port()
    with (workdir / f"server-{port}.log").open("wb") as log:
        process = subprocess.Popen(
            [QUALITY_FORMS, "serve", "--forms", str(BUNDLED_FORMS), "--db", str(db), "--port", str(port),
             "--workers", str(workers)],
            cwd=workdir, env={**os.environ, "QF_RATE_LIMIT": "0", "PYTHONPATH": str(serving.ROOT)},
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = serving.Server(port, process, db)
    try:
        deadline = time.monotonic() + 60
        while serving.status_of(server.url("/healthz")) != 200:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start; see {workdir}/server-{port}.log")
            time.sleep(0.05)
        yield server
    finally:
        serving.stop(process)


def rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants (granian's workers), from /proc."""
    total_kb, pending = 0, [pid]
    while pending:
        current = pending.pop()
        with contextlib.suppress(OSError):
            with open(f"/proc/{current}/status", encoding="ascii") as status:
                total_kb += next((int(line.split()[1]) for line in status if line.startswith("VmRSS:")), 0)
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children", encoding="ascii") as children:
                    pending += [int(child) for child in children.read().split()]
    return total_kb / 1024


# --- the office and the attacker, over plain HTTP ---------------------------------------------


def _request(port: int, method: str, path: str, body: str = "", headers: dict | None = None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        extra = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
        connection.request(method, path, body=body.encode() or None, headers=extra | (headers or {}))
        answer = connection.getresponse()
        return answer.status, answer.getheaders(), answer.read()
    finally:
        connection.close()


def _cookie(headers: list[tuple[str, str]], name: str) -> str:
    for key, value in headers:
        if key.lower() == "set-cookie" and value.startswith(f"{name}="):
            return value.split(";", 1)[0]
    raise RuntimeError(f"no {name} cookie")


def login_form(port: int) -> tuple[str, str]:
    """The sign-in page's token and its cookie, as a browser (or a script) gets them."""
    _, headers, page = _request(port, "GET", "/admin/login")
    token = re.search(rb'name="_csrf" value="([^"]+)"', page).group(1).decode()
    return token, _cookie(headers, "qf_login")


def sign_in(port: int, username: str, password: str, form: tuple[str, str]) -> tuple[int, list]:
    token, cookie = form
    body = urlencode({"_csrf": token, "username": username, "password": password})
    status, headers, _ = _request(port, "POST", "/admin/login", body, {"Cookie": cookie})
    return status, headers


def office_session(port: int) -> str:
    status, headers = sign_in(port, OFFICE_USER, OFFICE_PASSWORD, login_form(port))
    if status != 303:
        raise RuntimeError(f"the office could not sign in: {status}")
    return _cookie(headers, "qf_session")


def poll_dashboard(port: int, session: str, offset: float, until: float, polls: Polls) -> None:
    """One open dashboard: htmx asks for the counts every 5 s."""
    next_poll = time.monotonic() + offset
    while True:
        time.sleep(max(0.0, next_poll - time.monotonic()))
        if time.monotonic() >= until:
            return
        began = time.perf_counter()
        try:
            status, _, _ = _request(port, "GET", "/admin/live", headers={"Cookie": session, "HX-Request": "true"})
        except OSError:
            status = 0
        polls.add(status, began)
        next_poll += POLL_SECONDS


def attack(port: int, until: float, polls: Polls) -> float:
    """20 wrong sign-ins a second, each sent on time whether or not the last was answered."""
    form = login_form(port)
    attempt = 0

    def one(n: int) -> None:
        began = time.perf_counter()
        try:
            status, _ = sign_in(port, f"guess-{n:06d}", "password123", form)
        except OSError:
            status = 0
        polls.add(status, began)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=64) as pool:
        while (due := started + attempt / SIGN_INS_PER_SECOND) < until:
            time.sleep(max(0.0, due - time.monotonic()))
            pool.submit(one, attempt)
            attempt += 1
        return attempt / (time.monotonic() - started)


def export_csv(port: int, session: str, until: float, export: Export) -> None:
    """Download the CSV a chunk at a time, as a browser saving it would, until the run ends
    (bytes as sent, gzipped)."""
    began = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        headers = {"Cookie": session, "Accept-Encoding": "gzip"}  # as every browser asks
        connection.request("GET", f"/admin/forms/{SUBMIT_FORM}/export.csv", headers=headers)
        answer = connection.getresponse()
        export.status = answer.status
        while time.monotonic() < until and (chunk := answer.read(64 * 1024)):
            export.bytes += len(chunk)
        export.finished = answer.isclosed()
    finally:
        connection.close()
        export.seconds = time.perf_counter() - began


def busy_run(server: serving.Server, sessions: list[str], seconds: int, prefix: str, attacker: bool) -> Busy:
    """The residents' wrk run while the dashboards poll, the export streams and (maybe) the attacker tries."""
    dashboards, sign_ins, export = Polls(), Polls(), Export()
    until = time.monotonic() + seconds + 1
    rate: list[float] = []
    port = server.port
    others = [
        threading.Thread(target=poll_dashboard, args=(port, s, n * POLL_SECONDS / DASHBOARDS, until, dashboards))
        for n, s in enumerate(sessions)
    ]
    others.append(threading.Thread(target=export_csv, args=(port, sessions[0], until, export)))
    if attacker:
        others.append(threading.Thread(target=lambda: rate.append(attack(port, until, sign_ins))))
    for thread in others:
        thread.start()
    time.sleep(0.5)  # the office's load is under way before the residents' run starts
    submits = serving.submit_load(server, seconds, prefix)
    for thread in others:
        thread.join()
    return Busy(submits, dashboards, export, sign_ins if attacker else None, rate[0] if rate else 0.0)


def mixed_load(workdir: Path, seconds: int, responses: int, workers: int) -> MixedFigures:
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "mixed.db"
    fill(db, responses)
    users = connect(db)
    add_user(users, OFFICE_USER, OFFICE_PASSWORD, "admin")
    users.conn.close()
    with running_over(workdir, db, workers) as server:
        peak = [rss_mb(server.process.pid)]
        done = threading.Event()

        def sample_memory() -> None:
            while not done.wait(0.25):
                peak.append(rss_mb(server.process.pid))

        sampler = threading.Thread(target=sample_memory)
        sampler.start()
        try:
            serving.submit_load(server, 1, "mixed-warm")
            alone = serving.submit_load(server, seconds, "mixed-alone")
            sessions = [office_session(server.port) for _ in range(DASHBOARDS)]
            office = busy_run(server, sessions, seconds, "mixed-office", attacker=False)
            evening = busy_run(server, sessions, seconds, "mixed-evening", attacker=True)
        finally:
            done.set()
            sampler.join()
    return MixedFigures(responses, alone, office, evening, max(peak))


def mixed_rows(figures: MixedFigures) -> list[tuple[str, str, str, str]]:
    """The busy evening's lines of the benchmark table."""
    alone = figures.alone
    rows = [
        (
            f"busy evening, residents alone (same server, {figures.responses:,} responses stored)",
            f"{alone.per_second:,.0f} /s, p50 / p99 {alone.load.p50_ms:.1f} / {alone.load.p99_ms:.1f} ms",
            "—",
            "",
        )
    ]
    for busy, what in (
        (figures.office, f"{DASHBOARDS} dashboards and a CSV export"),
        (figures.evening, f"{DASHBOARDS} dashboards, a CSV export and {SIGN_INS_PER_SECOND} wrong sign-ins/s"),
    ):
        submits, export = busy.submits, busy.export
        ratio = figures.ratio(busy)
        ok = ratio >= RATIO_GOAL and submits.load.p99_ms < P99_GOAL_MS and submits.consistent
        streamed = f"{export.bytes / 1e6:,.1f} MB in {export.seconds:.1f} s" + (" (whole)" if export.finished else "")
        office = f"dashboards {busy.dashboards.summary()}; export {export.status}, {streamed}"
        if busy.sign_ins is not None:
            office += f"; sign-ins {busy.sign_ins_per_second:.1f}/s sent: {busy.sign_ins.summary()}"
        rows += [
            (
                f"busy evening: submit with {what}",
                f"{submits.per_second:,.0f} /s = **{ratio:.2f}** of alone; p50 / p99 {submits.load.p50_ms:.1f} / "
                f"**{submits.load.p99_ms:.1f}** ms; {submits.load.extra['status_other']} non-303",
                f"≥ {RATIO_GOAL} of alone, p99 < {P99_GOAL_MS} ms",
                "met" if ok else "**not met**",
            ),
            (f"busy evening: what the office saw ({what})", office, "—", ""),
        ]
    rows.append(
        (
            "busy evening: server memory (RSS of all its processes, peak over the three runs)",
            f"**{figures.peak_rss_mb:.0f} MB**",
            f"< {RSS_GOAL_MB} MB",
            "met" if figures.peak_rss_mb < RSS_GOAL_MB else "**not met**",
        )
    )
    return rows
