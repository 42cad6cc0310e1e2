"""Sign-in under attack (issue 10, item 2): `python -m tests.bench.signin [--seconds N] [--checkout DIR]`.

Starts the real server (two workers), and while one resident submits the consumer survey
every 50 ms, 80 clients in turn: load the sign-in page (the control), post wrong passwords
from one address, post them each from its own loopback address (no per-address throttle
stops those; each tries a new name, so no account lock does either). Prints the
resident's latency in each case, what the clients were answered, and the servers' memory
(RSS of every process, summed) before and at its peak. `--checkout /work/main` measures
another checkout's code for a before/after.
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.answers import _posted
from tests.bench.serving import QUALITY_FORMS, ROOT, SUBMIT_FORM, Server, running

ATTACKERS = 80
FLOODS = {
    "pages": "load the sign-in page (the control: any busy clients cost this much)",
    "one address": "post wrong passwords from one address",
    "many addresses": "post wrong passwords, each from its own address",
}


def rss_mb(pid: int) -> float:
    """Resident memory of the process and all its descendants, in MiB."""
    pids, total = [pid], 0
    while pids:
        current = pids.pop()
        try:
            with open(f"/proc/{current}/status", encoding="ascii") as status:
                total += next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
            with open(f"/proc/{current}/task/{current}/children", encoding="ascii") as children:
                pids += [int(child) for child in children.read().split()]
        except (FileNotFoundError, StopIteration, ProcessLookupError):
            continue
    return total / 1024


def resident_latencies(base: str, seconds: float, stop: threading.Event | None = None) -> list[float]:
    """Milliseconds per submission (form page + POST), one every 50 ms."""
    rng = random.Random(1)
    times = []
    with httpx.Client(base_url=base, timeout=30) as client:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not (stop and stop.is_set()):
            page = client.get(f"/f/{SUBMIT_FORM}").text
            key = re.search(r'name="_key" value="([^"]+)"', page).group(1)
            data = {name: values for name, values in _posted(rng).items()} | {"_key": key}
            started = time.perf_counter()
            answer = client.post(f"/f/{SUBMIT_FORM}", data=data, follow_redirects=False)
            times.append((time.perf_counter() - started) * 1000)
            assert answer.status_code == 303, answer.status_code
            time.sleep(0.05)
    return times


def attacker(base: str, number: int, flood: str, stop: threading.Event, statuses: collections.Counter) -> None:
    if flood == "one address":
        number = 0
    transport = httpx.HTTPTransport(local_address=f"127.0.{number // 250}.{number % 250 + 2}")
    with httpx.Client(base_url=base, transport=transport, timeout=60) as client:
        tries = 0
        while not stop.is_set():
            page = client.get("/admin/login")
            if flood == "pages":
                statuses[page.status_code] += 1
                continue
            token = re.search(r'name="_csrf" value="([^"]+)"', page.text).group(1)
            tries += 1  # a new name each time: no account's lock-out stops the flood
            name = f"guess{number}x{tries}"
            answer = client.post("/admin/login", data={"_csrf": token, "username": name, "password": "wrong guess"})
            statuses[answer.status_code] += 1


def flood(base: str, seconds: float, kind: str, results: multiprocessing.Queue) -> None:
    """The attackers, in a process of their own: they must not share the resident's interpreter lock."""
    stop, statuses = threading.Event(), collections.Counter()
    threads = [threading.Thread(target=attacker, args=(base, n, kind, stop, statuses)) for n in range(ATTACKERS)]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    results.put(dict(statuses))


def under_flood(server: Server, seconds: float, kind: str) -> tuple[float, list[float], dict[int, int]]:
    """Peak RSS (MiB), the resident's latencies and the attackers' answers during one flood."""
    base = f"http://127.0.0.1:{server.port}"
    results: multiprocessing.Queue = multiprocessing.Queue()
    attackers = multiprocessing.Process(target=flood, args=(base, seconds, kind, results))
    attackers.start()
    peak, latencies, stop = 0.0, [], threading.Event()
    resident = threading.Thread(target=lambda: latencies.extend(resident_latencies(base, seconds, stop)))
    resident.start()
    while attackers.is_alive():
        peak = max(peak, rss_mb(server.process.pid))
        time.sleep(0.1)
    stop.set()
    resident.join()
    return peak, latencies, results.get()


def summary(times: list[float]) -> str:
    times = sorted(times)
    return (
        f"p50 {statistics.median(times):.0f} ms, p90 {times[int(len(times) * 0.9)]:.0f} ms ({len(times)} submissions)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--checkout", type=Path, default=ROOT, help="run the server from this checkout's code")
    args = parser.parse_args()
    os.environ["PYTHONPATH"] = str(args.checkout.resolve())
    with tempfile.TemporaryDirectory() as folder, running(Path(folder), workers=2) as server:
        db = ["--db", str(server.db)]
        subprocess.run([QUALITY_FORMS, "user", "add", "boss", *db], input=b"correct horse battery\n", check=True)
        quiet = resident_latencies(f"http://127.0.0.1:{server.port}", 3)
        before = rss_mb(server.process.pid)
        print(f"resident submissions, quiet: {summary(quiet)}")
        peak = before
        for kind, what in FLOODS.items():
            top, latencies, answers = under_flood(server, args.seconds, kind)
            peak = max(peak, top)
            print(f"  while {ATTACKERS} clients {what}: {summary(latencies)}; answers {dict(sorted(answers.items()))}")
        print(f"server RSS: {before:.0f} MiB before, {peak:.0f} MiB at the peak")
        print(f"load average at the end: {os.getloadavg()[0]:.1f} (2 cores: above 2, other work shares them)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
