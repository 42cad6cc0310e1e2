"""Benchmarks against the real server: `quality-forms serve` in its own process, driven by wrk."""

from __future__ import annotations

import contextlib
import gzip
import http.client
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import brotli

from server.forms import form_files, load_form

ROOT = Path(__file__).resolve().parents[2]
BUNDLED_FORMS = ROOT / "forms"
QUALITY_FORMS = ROOT / ".venv" / "bin" / "quality-forms"
SUBMIT_LUA = Path(__file__).with_name("submit.lua")
SUBMIT_FORM = "consumer-survey"
CONNECTIONS = 64


@dataclass
class Server:
    port: int
    process: subprocess.Popen
    db: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_of(url: str) -> int | None:
    """The HTTP status of a GET, or None when nothing answers yet."""
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            answer.read()
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def start(workdir: Path, forms: Path, *, workers: int = 1) -> tuple[subprocess.Popen, int, Path]:
    """Start `quality-forms serve` as a user would: no rate limit (all load comes from one address)."""
    port = free_port()
    db = workdir / f"serve-{port}.db"
    log = (workdir / f"server-{port}.log").open("wb")
    process = subprocess.Popen(
        [
            QUALITY_FORMS,
            "serve",
            "--forms",
            str(forms),
            "--db",
            str(db),
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        cwd=workdir,
        env={**os.environ, "QF_RATE_LIMIT": "0", "PYTHONPATH": str(ROOT)},  # this checkout's code, not the venv's
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    return process, port, db


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def running(workdir: Path, forms: Path = BUNDLED_FORMS, *, workers: int = 1) -> Iterator[Server]:
    process, port, db = start(workdir, forms, workers=workers)
    server = Server(port, process, db)
    try:
        deadline = time.monotonic() + 60
        while status_of(server.url("/healthz")) != 200:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start; see {workdir}/server-{port}.log")
            time.sleep(0.05)
        yield server
    finally:
        stop(process)


# --- wrk ---------------------------------------------------------------------------------------------

_WRK_SUMMARY = re.compile(r"Requests/sec:\s+([\d.]+)")
_WRK_LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass
class Load:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    seconds: float
    non_2xx_3xx: int
    extra: dict
    cpu_us: float = 0.0  # the server's CPU time (all its processes) per request; 0 when not measured


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system time of a process and all its descendants (granian's workers), so far."""
    total, pids = 0.0, [pid]
    while pids:
        current = pids.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime
            for task in Path(f"/proc/{current}/task").iterdir():
                pids += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def wrk(
    url: str,
    seconds: int,
    *script_args: str,
    script: Path | None = None,
    headers: dict[str, str] | None = None,
    server_pid: int | None = None,
) -> Load:
    """Run wrk with CONNECTIONS connections on two threads; parse its figures.

    With `server_pid`, also the server's CPU time per request: it holds up better than
    requests per second on a machine that other work shares."""
    command = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "10s", "--latency"]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    if script:
        command += ["-s", str(script)]
    command += [url]
    if script_args:
        command += ["--", *script_args]
    cpu_before = cpu_seconds(server_pid) if server_pid else 0.0
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}"
        )
    out = done.stdout
    cpu = cpu_seconds(server_pid) - cpu_before if server_pid else 0.0
    latency = {p: float(v) * _UNITS_MS[unit] for p, v, unit in _WRK_LATENCY.findall(out)}
    requests = int(re.search(r"(\d+) requests in ([\d.]+)(\w+)", out).group(1))
    duration = re.search(r"requests in ([\d.]+)(ms|s|m)", out)
    seconds_run = float(duration.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[duration.group(2)]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    extra = json.loads(out.split("BENCH ", 1)[1].splitlines()[0]) if "BENCH " in out else {}
    return Load(
        requests_per_second=float(_WRK_SUMMARY.search(out).group(1)),
        p50_ms=latency["50"],
        p99_ms=latency["99"],
        requests=requests,
        seconds=seconds_run,
        non_2xx_3xx=int(bad.group(1)) if bad else 0,
        extra=extra,
        cpu_us=cpu / requests * 1e6 if requests else 0.0,
    )


@dataclass
class SubmitLoad:
    load: Load
    accepted: int  # 303 answers
    stored: int  # rows in the database with this run's keys
    per_second: float  # accepted and stored, per second

    @property
    def consistent(self) -> bool:
        # A request wrk had sent but not seen answered when it stopped may still be stored.
        return self.accepted <= self.stored <= self.accepted + CONNECTIONS and not self.load.extra["status_other"]


def submit_load(server: Server, seconds: int, prefix: str, *, flow: bool = False) -> SubmitLoad:
    """POST valid answers, each with its own key; count 303s and the rows they stored.

    With `flow`, a resident's visit: every POST follows a GET of the form page (with gzip)."""
    load = wrk(
        server.url(f"/f/{SUBMIT_FORM}"),
        seconds,
        prefix,
        *(["flow"] if flow else []),
        script=SUBMIT_LUA,
        server_pid=server.process.pid,
    )
    time.sleep(0.5)  # let the requests in flight when wrk stopped finish
    with contextlib.closing(sqlite3.connect(server.db)) as db:
        (stored,) = db.execute(
            "SELECT count(*) FROM responses WHERE submission_key LIKE ? || '-%'", [prefix]
        ).fetchone()
    accepted = load.extra["status_303"]
    return SubmitLoad(load, accepted, stored, min(accepted, stored) / (load.extra["duration_us"] / 1e6))


@dataclass
class FlowLoad:
    """Residents at 64 connections: GET the form page, POST it back (durable commit), again."""

    submits: SubmitLoad
    pages: int  # 200 answers to the GETs

    @property
    def requests_per_second(self) -> float:
        """Pages served and submissions stored, per second: the requests that did their work."""
        return self.pages / (self.submits.load.extra["duration_us"] / 1e6) + self.submits.per_second


def flow_load(server: Server, seconds: int, prefix: str) -> FlowLoad:
    submits = submit_load(server, seconds, prefix, flow=True)
    return FlowLoad(submits, submits.load.extra["status_200"])


# --- the bare stack --------------------------------------------------------------------------------


@contextlib.contextmanager
def bare_stack(workers: int) -> Iterator[tuple[str, int]]:
    """A Litestar "hello" on granian with `serve`'s settings (tests/bench/bare.py); yields its URL and pid."""
    port = free_port()
    command = [
        QUALITY_FORMS.with_name("python"),
        "-m",
        "tests.bench.bare",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while status_of(url) != 200:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the bare stack did not start")
            time.sleep(0.05)
        yield url, process.pid
    finally:
        stop(process)


def bare_ceiling(workers: int, seconds: int) -> Load:
    with bare_stack(workers) as (url, pid):
        wrk(url, 1)  # warm up as the server's runs do
        return wrk(url, seconds, server_pid=pid)


# --- page weight ---------------------------------------------------------------------------------------


@dataclass
class Transfer:
    path: str
    wire_bytes: int  # status line, headers and body as sent
    body_bytes: int
    encoding: str  # Content-Encoding, or "identity"
    gzip_level6_bytes: int  # what the body would weigh gzipped at level 6


PHONE_ENCODINGS = "gzip, deflate, br"  # what a phone's browser sends over HTTPS (over plain HTTP: no br)


def fetch(server: Server, path: str, accept: str = PHONE_ENCODINGS) -> tuple[Transfer, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("GET", path, headers={"Accept-Encoding": accept})
        answer = connection.getresponse()
        body = answer.read()  # http.client does not decompress: these are the bytes sent
        if answer.status != 200:
            raise RuntimeError(f"GET {path}: {answer.status}")
        head = len(f"HTTP/1.1 {answer.status} {answer.reason}\r\n") + 2
        head += sum(len(f"{name}: {value}\r\n".encode()) for name, value in answer.getheaders())
        encoding = answer.getheader("Content-Encoding") or "identity"
        plain = gzip.decompress(body) if encoding == "gzip" else brotli.decompress(body) if encoding == "br" else body
        transfer = Transfer(path, head + len(body), len(body), encoding, len(gzip.compress(plain, 6)))
        return transfer, plain
    finally:
        connection.close()


_ASSETS = re.compile(r'<(?:link[^>]*rel="stylesheet"[^>]*href|script[^>]*src)="([^"]+)"')


@dataclass
class PageWeight:
    form_id: str
    page: Transfer
    assets: list[Transfer]

    @property
    def first_visit(self) -> int:
        return self.page.wire_bytes + sum(a.wire_bytes for a in self.assets)

    @property
    def repeat_visit(self) -> int:  # assets carry a content hash and a year of max-age
        return self.page.wire_bytes

    @property
    def first_visit_if_gzipped(self) -> int:
        return sum(t.wire_bytes - t.body_bytes + t.gzip_level6_bytes for t in [self.page, *self.assets])

    @property
    def repeat_visit_if_gzipped(self) -> int:
        return self.page.wire_bytes - self.page.body_bytes + self.page.gzip_level6_bytes


def page_weight(server: Server, form_id: str, accept: str = PHONE_ENCODINGS) -> PageWeight:
    """A first visit as a phone makes it (over HTTPS, or with `accept="gzip"` as over plain HTTP)."""
    page, html = fetch(server, f"/f/{form_id}", accept)
    assets = [fetch(server, src, accept)[0] for src in _ASSETS.findall(html.decode("utf-8"))]
    return PageWeight(form_id, page, assets)


# --- start-up ----------------------------------------------------------------------------------------


def public_forms() -> list[Path]:
    """The bundled forms residents open (not the campaign file, not office-only forms)."""
    return [path for path in form_files(BUNDLED_FORMS) if load_form(path).is_public]


def many_forms(directory: Path, count: int) -> list[str]:
    """Copies of the bundled forms under new names; returns the ids, sorted."""
    directory.mkdir(parents=True, exist_ok=True)
    sources = public_forms()
    shutil.copyfile(BUNDLED_FORMS / "campaign.toml", directory / "campaign.toml")  # dates forms refer to
    ids = []
    for n in range(count):
        source = sources[n % len(sources)]
        form_id = f"{source.stem}-{n:03d}"
        shutil.copyfile(source, directory / f"{form_id}.toml")
        ids.append(form_id)
    return sorted(ids)


def start_up_seconds(workdir: Path, forms: Path, last_form: str) -> float:
    """From process start until /healthz answers ok and the last form's page is 200."""
    began = time.monotonic()
    process, port, _ = start(workdir, forms)
    try:
        base = f"http://127.0.0.1:{port}"
        while status_of(f"{base}/healthz") != 200:
            if process.poll() is not None or time.monotonic() - began > 60:
                raise RuntimeError(f"the server did not start with {forms}")
            time.sleep(0.01)
        while status_of(f"{base}/f/{last_form}") != 200:
            if time.monotonic() - began > 60:
                raise RuntimeError(f"/f/{last_form} never answered 200")
            time.sleep(0.01)
        return time.monotonic() - began
    finally:
        stop(process)
