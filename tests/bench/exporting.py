"""`quality-forms export` of a million responses against `sqlite3 -csv` over the same table."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import msgspec

from server.clock import now
from server.export import columns
from server.forms import Form
from server.storage import Submission, Writer, connect, open_database
from tests.bench.answers import form, variety
from tests.bench.serving import BUNDLED_FORMS, QUALITY_FORMS, ROOT, SUBMIT_FORM

# sqlite3 writes the rows the export reads, in the same order: first as stored (the answers as
# one JSON cell), then the export's own columns, one per answer (values, no labels, no BOM).
SQLITE_QUERY = "SELECT id, submitted_at, event, {} FROM responses WHERE form_id = '{}' ORDER BY id"


def sqlite_queries(survey: Form) -> tuple[str, str]:
    names = [column.name for column in columns(survey, [], set())]  # a grid's rows each have one
    extracts = ", ".join(f"json_extract(answers, '$.{name}')" for name in names)
    return SQLITE_QUERY.format("answers", survey.id), SQLITE_QUERY.format(extracts, survey.id)


@dataclass
class Run:
    seconds: float
    max_rss_mb: float
    bytes: int
    cpu_seconds: float


@dataclass
class ExportRate:
    responses: int
    insert_seconds: float
    export: Run
    sqlite: Run
    sqlite_columns: Run
    last_line_ok: bool

    @property
    def ratio(self) -> float:
        return self.export.seconds / self.sqlite.seconds

    @property
    def columns_ratio(self) -> float:
        """Against `sqlite3 -csv` writing the export's columns: the goal of issue 15."""
        return self.export.seconds / self.sqlite_columns.seconds


def fill(path: Path, count: int) -> float:
    """Store count responses: the first through the writer, the rest in one transaction."""
    survey = form()
    answers = [msgspec.json.encode(a).decode() for a in variety(5000)]
    open_database(path).conn.close()
    writer = Writer(path)
    writer.start()
    writer.submit(Submission(survey, "first-key-000000000", msgspec.json.decode(answers[0]))).result()
    writer.close()
    began = time.perf_counter()
    db = connect(path)
    db.execute("PRAGMA synchronous = OFF")  # a bench fixture, not a submission
    start = now() - timedelta(days=30)
    rows = (
        (
            survey.id,
            survey.version,
            None,
            f"bulk-{n:012d}",
            (start + timedelta(seconds=n * 2)).isoformat(timespec="seconds"),
            answers[n % len(answers)],
        )
        for n in range(1, count)
    )
    db.execute("BEGIN")
    db.conn.executemany(
        "INSERT INTO responses (form_id, form_version, event, submission_key, submitted_at, answers)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        rows,
    )
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.conn.close()
    return time.perf_counter() - began


def _timed(command: list[str], out: Path, workdir: Path, env: dict[str, str] | None = None) -> Run:
    """Wall time, processor time and peak memory of one process writing to out.

    The peak comes from GNU time: a child forked from this (large) Python process would
    report this process's size as its own peak. Processor time (user + system) is shown
    too: on a machine shared with other work it is steadier than the wall clock.
    """
    usage = workdir / "time.txt"
    with out.open("wb") as file:
        began = time.perf_counter()
        subprocess.run(
            ["/usr/bin/time", "-f", "%M %U %S", "-o", str(usage), *command],
            stdout=file,
            cwd=workdir,
            env=env,
            check=True,
        )
        seconds = time.perf_counter() - began
    peak, user, system = usage.read_text().split()[-3:]
    return Run(seconds, int(peak) / 1024, out.stat().st_size, float(user) + float(system))


def export_against_sqlite(workdir: Path, count: int) -> ExportRate:
    db = workdir / "export.db"
    insert_seconds = fill(db, count)
    csv = workdir / "export.csv"
    # Warm the page cache for both, then measure each once.
    subprocess.run(["sqlite3", str(db), "SELECT count(*) FROM responses"], check=True, capture_output=True)
    table, columns = sqlite_queries(form())
    sqlite = _timed(["sqlite3", "-csv", str(db), table], workdir / "sqlite.csv", workdir)
    sqlite_columns = _timed(["sqlite3", "-csv", str(db), columns], workdir / "sqlite-columns.csv", workdir)
    export = _timed(
        [str(QUALITY_FORMS), "export", SUBMIT_FORM, "--forms", str(BUNDLED_FORMS), "--db", str(db), "--out", "-"],
        csv,
        workdir,
        env={**os.environ, "PYTHONPATH": str(ROOT)},  # this checkout's code, whichever one installed the venv
    )
    with csv.open("rb") as file:
        file.seek(-4096, os.SEEK_END)
        last_line_ok = file.read().rstrip(b"\r\n").rsplit(b"\r\n", 1)[-1].startswith(f"{count},".encode())
    return ExportRate(count, insert_seconds, export, sqlite, sqlite_columns, last_line_ok)
