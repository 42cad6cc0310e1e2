"""Serving figures against the bare stack (issues 6 and 15): `python -m tests.bench.overhead [--seconds N]`.

For one server process and for two, in the same run: the bare stack (a Litestar "hello"
on granian with `serve`'s settings, tests/bench/bare.py), then `quality-forms serve`:
`/healthz`, the thanks page, submissions, the form page without and with gzip, the
resident's flow (GET the form, POST it back) and the page weights. Every figure is also a
ratio to the bare stack; the server's CPU time per request is shown beside it, because
requests per second move with whatever else the machine runs and CPU per request does not
as much.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `tests.bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from server.cli import DEFAULT_WORKERS
from tests.bench import serving
from tests.bench.serving import SUBMIT_FORM

SUBMIT_RATIO_GOAL = 1 / 3  # of both ceilings (issue 6)
SUBMIT_P99_GOAL_MS = 50
HEALTHZ_GOAL = 0.8  # of the bare stack (issue 15)
FORM_PAGE_GOAL = 0.6
FLOW_GOAL = 0.35
PHONE = {"Accept-Encoding": "gzip, deflate, br"}  # what a phone's browser sends


def met(ok: bool) -> str:
    return "met" if ok else "**not met**"


@dataclass
class Serving:
    """The serving figures of one server process count, and of the bare stack with as many."""

    bare: serving.Load
    ceiling: serving.Load
    light: serving.Load
    submits: serving.SubmitLoad
    page: serving.Load
    page_gzip: serving.Load
    flow: serving.FlowLoad
    weights: list[serving.PageWeight]

    def of_bare(self, load: serving.Load) -> str:
        """`12,345 req/s = **0.61×** bare (p99 …; CPU … µs/request = 0.80× bare's)`."""
        return (
            f"{load.requests_per_second:,.0f} req/s = **{load.requests_per_second / self.bare.requests_per_second:.2f}×**"
            f" bare (p99 {load.p99_ms:.1f} ms; server CPU {load.cpu_us:.0f} µs/request,"
            f" bare's {self.bare.cpu_us:.0f})"
        )


def measure_workers(work: Path, workers: int, seconds: int) -> Serving:
    bare = serving.bare_ceiling(workers, seconds)
    with serving.running(work, workers=workers) as server:
        serving.wrk(server.url("/healthz"), 1)  # warm up: threads, connections, caches
        serving.submit_load(server, 1, f"warm{workers}")
        pid = server.process.pid
        ceiling = serving.wrk(server.url("/healthz"), seconds, server_pid=pid)
        light = serving.wrk(server.url(f"/f/{SUBMIT_FORM}/thanks"), seconds, server_pid=pid)
        submits = serving.submit_load(server, seconds, f"run{workers}")
        page = serving.wrk(server.url(f"/f/{SUBMIT_FORM}"), seconds, server_pid=pid)
        page_gzip = serving.wrk(server.url(f"/f/{SUBMIT_FORM}"), seconds, headers=PHONE, server_pid=pid)
        flow = serving.flow_load(server, seconds, f"flow{workers}")
        weights = [serving.page_weight(server, f.stem) for f in serving.public_forms()]
    return Serving(bare, ceiling, light, submits, page, page_gzip, flow, weights)


@dataclass
class OverheadFigures:
    by_workers: dict[int, Serving]

    def rows(self) -> list[tuple[str, str, str, str]]:
        m = self.by_workers[DEFAULT_WORKERS]
        bare, ceiling, light, submits, flow = m.bare, m.ceiling, m.light, m.submits, m.flow
        ratio = submits.per_second / ceiling.requests_per_second
        light_ratio = submits.per_second / light.requests_per_second
        flow_ratio = flow.requests_per_second / bare.requests_per_second
        p99 = submits.load.p99_ms
        return [
            (
                f"bare stack: Litestar `hello` on granian, `--workers {DEFAULT_WORKERS}` as `serve` (the anchor)",
                f"{bare.requests_per_second:,.0f} req/s (p99 {bare.p99_ms:.1f} ms; server CPU {bare.cpu_us:.0f}"
                " µs/request)",
                "—",
                "",
            ),
            (
                "`GET /healthz` ceiling, 64 connections",
                m.of_bare(ceiling),
                f"≥ {HEALTHZ_GOAL}× bare",
                met(ceiling.requests_per_second >= HEALTHZ_GOAL * bare.requests_per_second),
            ),
            (f"`GET /f/{SUBMIT_FORM}/thanks`: a small page, no database", m.of_bare(light), "—", ""),
            (
                "submit: accepted and stored per second",
                f"{submits.per_second:,.0f} /s = **{ratio:.2f}** of `/healthz`, {light_ratio:.2f} of the thanks page,"
                f" {submits.per_second / bare.requests_per_second:.2f}× bare (server CPU {submits.load.cpu_us:.0f}"
                " µs/request)",
                "≥ 0.33 of the ceiling (both)",
                met(min(ratio, light_ratio) >= SUBMIT_RATIO_GOAL),
            ),
            (
                "submit latency p50 / p99",
                f"{submits.load.p50_ms:.1f} / **{p99:.1f}** ms",
                f"p99 < {SUBMIT_P99_GOAL_MS} ms",
                met(p99 < SUBMIT_P99_GOAL_MS),
            ),
            (
                "submit: 303s vs rows stored",
                f"{submits.accepted:,} 303s, {submits.stored:,} rows, {submits.load.extra['status_other']} other statuses",
                "rows = 303s (+ ≤ 64 in flight at the end)",
                "ok" if submits.consistent else "**MISMATCH**",
            ),
            (
                f"`GET /f/{SUBMIT_FORM}`, no `Accept-Encoding`",
                f"{m.of_bare(m.page)}; {m.page.requests_per_second / ceiling.requests_per_second:.2f} of `/healthz`",
                "—",
                "",
            ),
            (
                f"`GET /f/{SUBMIT_FORM}` as a phone asks (`Accept-Encoding: gzip, deflate, br`)",
                f"{m.of_bare(m.page_gzip)}; {m.page_gzip.requests_per_second / ceiling.requests_per_second:.2f}"
                " of `/healthz`",
                f"≥ {FORM_PAGE_GOAL}× bare",
                met(m.page_gzip.requests_per_second >= FORM_PAGE_GOAL * bare.requests_per_second),
            ),
            (
                "resident flow: GET the form (gzip), POST it (durable commit), again",
                f"{flow.requests_per_second:,.0f} req/s = **{flow_ratio:.2f}×** bare: {flow.pages:,} pages and"
                f" {flow.submits.stored:,} stored submissions; p50 / p99 {flow.submits.load.p50_ms:.1f} /"
                f" **{flow.submits.load.p99_ms:.1f}** ms; server CPU {flow.submits.load.cpu_us:.0f} µs/request",
                f"≥ {FLOW_GOAL}× bare, p99 < {SUBMIT_P99_GOAL_MS} ms",
                met(flow_ratio >= FLOW_GOAL and flow.submits.load.p99_ms < SUBMIT_P99_GOAL_MS),
            ),
        ]

    def notes(self) -> list[str]:
        m = self.by_workers[DEFAULT_WORKERS]
        notes = []
        if not m.submits.consistent:
            notes.append("Submissions answered 303 and rows stored disagree: investigate before trusting the figures.")
        if not m.flow.submits.consistent:
            notes.append("Resident flow: 303s and rows stored disagree, or a GET was not 200.")
        return notes

    def worker_table(self) -> list[str]:
        lines = [
            "| workers | bare req/s | `/healthz` req/s | submits stored /s | submit p50 / p99 ms | form page req/s "
            "| form page (gzip) req/s | resident flow req/s |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for workers, w in self.by_workers.items():
            lines.append(
                f"| {workers} | {w.bare.requests_per_second:,.0f} | {w.ceiling.requests_per_second:,.0f} "
                f"| {w.submits.per_second:,.0f} | {w.submits.load.p50_ms:.1f} / {w.submits.load.p99_ms:.1f} "
                f"| {w.page.requests_per_second:,.0f} | {w.page_gzip.requests_per_second:,.0f} "
                f"| {w.flow.requests_per_second:,.0f} |"
            )
        return lines


def measure(work: Path, seconds: int, workers: tuple[int, ...] = (1, 2)) -> OverheadFigures:
    by_workers = {}
    for count in workers:
        by_workers[count] = measure_workers(work, count, seconds)
        print(f"  server with {count} worker(s) measured", file=sys.stderr, flush=True)
    return OverheadFigures(by_workers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="length of each wrk run (default 10)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="qf-bench-") as tmp:
        figures = measure(Path(tmp), args.seconds, (DEFAULT_WORKERS,))
    print("| measure | figure | goal | |\n| --- | --- | --- | --- |")
    print("\n".join(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in figures.rows()))
    print("\n" + "\n".join(figures.worker_table()))
    print("\n".join(f"- {note}" for note in figures.notes()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
