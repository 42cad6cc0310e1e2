"""The benchmark suite (issue 6): `make bench`, or `python -m tests.bench.run [--quick]`.

Starts the real server as a user would, measures it with wrk, and prints a Markdown
table that is also written to exports/bench-<date>.md. Ratios compare figures taken in
the same run on the same machine, so they hold up better than the absolute numbers.
See docs/benchmarks.md for what each figure means.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `tests.bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from server.cli import DEFAULT_WORKERS
from server.clock import now
from tests.bench import overhead, serving, video_upload, writes
from tests.bench.answers import form, variety
from tests.bench.api import api_against_csv, webhook_cost
from tests.bench.backup import backup_figures
from tests.bench.catalog import catalog_rows
from tests.bench.crosstab import CrosstabFigures
from tests.bench.events import EventFigures
from tests.bench.exporting import export_against_sqlite
from tests.bench.mixed import mixed_load, mixed_rows
from tests.bench.office import OfficeFigures
from tests.bench.package import package_figures
from tests.bench.scope import ScopeFigures
from tests.bench.serving import ROOT

EXPORT_RATIO_GOAL = 2
EXPORT_COLUMNS_RATIO_GOAL = 1.2  # issue 15: against sqlite3 writing the export's own columns
EXPORT_MEMORY_GOAL_MB = 64
FIRST_VISIT_GOAL = 30 * 1024
REPEAT_VISIT_GOAL = 8 * 1024
START_UP_FORMS = 200


def machine() -> str:
    model = "unknown CPU"
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} cores, {model}; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, granian {version('granian')}, "
        f"litestar {version('litestar')}; {subprocess.run(['wrk', '-v'], capture_output=True, text=True).stdout.split()[1]}"
        f" wrk; commit {commit.stdout.strip() or '?'}; load average at start {load}"
    )


def met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def kb(size: int) -> str:
    return f"{size / 1024:.1f} KB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="length of each wrk run (default 10)")
    parser.add_argument("--responses", type=int, default=1_000_000, help="responses to export (default 1,000,000)")
    parser.add_argument("--writes", type=int, default=6400, help="submissions per write benchmark (default 6400)")
    parser.add_argument("--quick", action="store_true", help="short runs, to check the suite itself")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.responses, args.writes = 2, 20_000, 640

    began = time.monotonic()
    today = now().date().isoformat()
    rows: list[tuple[str, str, str, str]] = []
    notes: list[str] = []
    print(f"quality-forms benchmarks, {today}: about {14 * args.seconds + 150} s…", file=sys.stderr, flush=True)
    os.environ["PYTHONPATH"] = str(ROOT)  # every command and server runs this checkout's code
    header = machine()

    with tempfile.TemporaryDirectory(prefix="qf-bench-") as tmp:
        work = Path(tmp)

        # 1. The server under load, one process and two, against the bare stack with as many.
        figures = overhead.measure(work, args.seconds)
        rows += figures.rows()
        notes += figures.notes()
        weights = figures.by_workers[DEFAULT_WORKERS].weights

        # 2. Group commit against one commit per submission, in-process.
        survey, answers = form(), variety(500)
        grouped = writes.group_commit(work / "group.db", survey, answers, args.writes)
        alone = writes.commit_per_request(work / "alone.db", survey, answers, args.writes)
        rows.append(
            (
                f"group commit vs one commit each ({grouped.submissions:,} submissions, 64 threads)",
                f"{grouped.per_second:,.0f} /s in {grouped.commits:,} commits vs {alone.per_second:,.0f} /s"
                f" = **{grouped.per_second / alone.per_second:.1f}×**",
                "—",
                "",
            )
        )
        if alone.busy_retries:
            notes.append(f"One commit per request: {alone.busy_retries} BEGIN IMMEDIATE waited over 5 s and retried.")
        print("  writes measured", file=sys.stderr, flush=True)

        # 3. Export.
        export = export_against_sqlite(work, args.responses)
        rows += [
            (
                f"`quality-forms export` of {export.responses:,} responses vs `sqlite3 -csv`",
                f"{export.export.seconds:.1f} s vs {export.sqlite.seconds:.1f} s = **{export.ratio:.1f}×**",
                f"≤ {EXPORT_RATIO_GOAL}×",
                met(export.ratio <= EXPORT_RATIO_GOAL),
            ),
            (
                "… vs `sqlite3 -csv` writing the same columns (`json_extract` per answer)",
                f"{export.export.seconds:.1f} s vs {export.sqlite_columns.seconds:.1f} s"
                f" = **{export.columns_ratio:.2f}×** (processor time {export.export.cpu_seconds:.1f} s"
                f" vs {export.sqlite_columns.cpu_seconds:.1f} s)",
                f"≤ {EXPORT_COLUMNS_RATIO_GOAL}×",
                met(export.columns_ratio <= EXPORT_COLUMNS_RATIO_GOAL),
            ),
            (
                "export peak memory (max RSS)",
                f"**{export.export.max_rss_mb:.0f} MB** (sqlite3: {export.sqlite.max_rss_mb:.0f} MB)",
                f"≤ {EXPORT_MEMORY_GOAL_MB} MB",
                met(export.export.max_rss_mb <= EXPORT_MEMORY_GOAL_MB),
            ),
        ]
        if not export.last_line_ok:
            notes.append("The export's last row is not the last response: the CSV is incomplete.")
        print("  export measured", file=sys.stderr, flush=True)

        # 4. Page weight, from the run with the default number of workers.
        for weight in weights:
            encodings = sorted({t.encoding for t in [weight.page, *weight.assets]})
            rows += [
                (
                    f"first visit `/f/{weight.form_id}` (HTML + {len(weight.assets)} assets, {'/'.join(encodings)})",
                    f"**{kb(weight.first_visit)}** (gzipped would be {kb(weight.first_visit_if_gzipped)})",
                    f"≤ {kb(FIRST_VISIT_GOAL)}",
                    met(weight.first_visit <= FIRST_VISIT_GOAL),
                ),
                (
                    f"repeat visit `/f/{weight.form_id}` (HTML only, {weight.page.encoding})",
                    f"**{kb(weight.repeat_visit)}** (gzipped would be {kb(weight.repeat_visit_if_gzipped)})",
                    f"≤ {kb(REPEAT_VISIT_GOAL)}",
                    met(weight.repeat_visit <= REPEAT_VISIT_GOAL),
                ),
            ]
        if any(t.encoding == "identity" for w in weights for t in [w.page, *w.assets]):
            notes.append(
                "The server does not compress: it answered `Accept-Encoding: gzip` without `Content-Encoding`. "
                "'gzipped would be' is the same bytes through gzip level 6."
            )

        # 5. Start-up.
        forms_dir = work / "many-forms"
        ids = serving.many_forms(forms_dir, START_UP_FORMS)
        many = serving.start_up_seconds(work, forms_dir, ids[-1])
        bundled = [f.stem for f in serving.public_forms()]
        few = serving.start_up_seconds(work, serving.BUNDLED_FORMS, bundled[-1])
        rows.append(
            (
                f"start-up with {START_UP_FORMS} forms, until `/healthz` is ok and the last form is 200",
                f"**{many:.2f} s** (with the {len(bundled)} bundled forms: {few:.2f} s)",
                "—",
                "",
            )
        )

        # 6. Events: the office's schedule, and posters for the whole campaign.
        events = EventFigures(work / "events")
        rows += [
            (
                "`quality-forms event import` of a 500-row schedule (whole command)",
                f"**{events.import_500:.2f} s**",
                "< 1 s",
                met(events.import_500 < 1),
            ),
            (
                "`quality-forms posters` for 1,000 events (whole command)",
                f"**{events.posters_1000:.2f} s**, {events.sheet_bytes / 1e6:.1f} MB of HTML",
                "—",
                "",
            ),
            (
                "QR codes (error correction H)",
                f"{events.png_per_second:,.0f} PNG/s, {events.svg_per_second:,.0f} SVG/s",
                "—",
                "",
            ),
        ]
        print("  events measured", file=sys.stderr, flush=True)

        # 7. The office's pages over many responses.
        office = OfficeFigures(work / "office.db", args.responses // 10)
        rows.append(
            (
                f"office results page over {office.responses:,} responses (counts and averages of every question)",
                f"**{office.results:.2f} s** ({office.results_filtered:.2f} s with a date filter);"
                f" statistics report {office.report:.2f} s",
                "—",
                "",
            )
        )
        print("  office measured", file=sys.stderr, flush=True)
        rows += ScopeFigures(work / "scope.db", args.responses // 10).rows()  # 7b. The same, as a county
        rows += video_upload.video_figures(work / "video").rows()  # an event report's 200 MB clip
        rows += api_against_csv(work / "api", args.responses // 10).rows()  # the read API against the CSV export
        rows += webhook_cost(work / "webhooks", args.seconds, DEFAULT_WORKERS)  # residents, with a webhook on
        rows += CrosstabFigures(work / "crosstab.db", args.responses // 10).rows()  # 7c. A cross-tab

        # 8. Backups: the whole command over the export's million responses, and submissions meanwhile.
        backup = backup_figures(work / "backup", args.responses, args.seconds)
        rows += backup.rows()
        print("  backup measured", file=sys.stderr, flush=True)
        rows.append(package_figures(0.02 if args.quick else None).row())  # the 10月14日 package (~8 GB of photos)

        # 9. A busy evening: residents, 25 dashboards, an export and an attacker at once.
        busy = mixed_load(work / "mixed", args.seconds, args.responses, DEFAULT_WORKERS)
        rows += mixed_rows(busy)
        print("  busy evening measured", file=sys.stderr, flush=True)

        rows += catalog_rows(work)  # the form workshop: publish reaches every process

    lines = [
        f"# quality-forms benchmarks, {today}",
        "",
        f"Machine: {header}.",
        "",
        f"Server: `quality-forms serve` (its default, `--workers {DEFAULT_WORKERS}` here) on a temporary database, "
        "`QF_RATE_LIMIT=0`; "
        f"wrk with 2 threads, 64 connections, {args.seconds} s per run.",
        "",
        "| measure | figure | goal | |",
        "| --- | --- | --- | --- |",
        *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows),
        "",
        "Server processes (`--workers`), same run:",
        "",
        *figures.worker_table(),
        "",
        *(f"- {note}" for note in notes),
        "",
        f"The suite took {time.monotonic() - began:.0f} s.",
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    out = ROOT / "exports" / f"bench-{today}.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(report, encoding="utf-8")
    print(f"written to {out.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
