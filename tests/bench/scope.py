"""What a county account's view costs: the results page and the dashboard counts over many
responses spread over 2,000 events in every 市县, for an admin (everything) and for one county.

Run alone: `python -m tests.bench.scope [RESPONSES]` (default 100,000).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from sqlite_utils import Database

from server.campaign import COUNTIES, VENUE_TYPES
from server.clock import now
from server.events import Event, add_events
from server.forms import Form
from server.results import Filters, summarize
from server.scope import EVERYTHING, Scope
from server.storage import connect, dashboard_counts
from tests.bench.answers import form
from tests.bench.exporting import fill
from tests.bench.office import seconds

EVENTS = 2000
COUNTY = "白沙黎族自治县"


def spread_over_events(path: Path, responses: int) -> tuple[Database, Form]:
    """A database of `responses` answers to the benchmark survey, each sent at one of 2,000
    events (round robin) in every 市县, made by 40 staff accounts; and the survey."""
    fill(path, responses)
    db = connect(path)
    survey = form()
    events = [
        Event("", survey.id, f"活动{n}", VENUE_TYPES[n % 5], COUNTIES[n % len(COUNTIES)], created_by=f"staff{n % 40}")
        for n in range(EVENTS)
    ]
    codes = [event.code for event in add_events(db, events)]
    db.execute("CREATE TEMP TABLE numbered (n INTEGER PRIMARY KEY, code TEXT)")
    db.conn.executemany("INSERT INTO numbered VALUES (?, ?)", enumerate(codes))
    db.execute("BEGIN")  # each response to one of the events, round robin (the counts follow by trigger)
    db.execute(f"UPDATE responses SET event = (SELECT code FROM numbered WHERE n = id % {EVENTS})")
    db.execute("COMMIT")
    return db, survey


class ScopeFigures:
    def __init__(self, path: Path, responses: int) -> None:
        db, survey = spread_over_events(path, responses)
        county = Scope(county=COUNTY)
        today = now().date().isoformat()
        self.responses = responses
        self.results_all = seconds(lambda: summarize(db, survey, Filters(), EVERYTHING))
        self.results_county = seconds(lambda: summarize(db, survey, Filters(), county))
        self.results_staff = seconds(lambda: summarize(db, survey, Filters(), Scope(created_by="staff7")))
        self.dashboard_all = seconds(lambda: dashboard_counts(db, today, EVERYTHING))
        self.dashboard_county = seconds(lambda: dashboard_counts(db, today, county))
        db.conn.close()

    def rows(self) -> list[tuple[str, str, str, str]]:
        """The suite's table rows (tests/bench/run.py)."""
        return [
            (
                f"office results page over {self.responses:,} responses in {EVENTS:,} events, by account",
                f"admin **{self.results_all:.2f} s**, one county {self.results_county:.2f} s, one staff account "
                f"{self.results_staff:.2f} s; dashboard counts {self.dashboard_all * 1000:.1f} ms / "
                f"{self.dashboard_county * 1000:.1f} ms",
                "—",
                "",
            )
        ]


def main(argv: list[str]) -> None:
    responses = int(argv[0]) if argv else 100_000
    with tempfile.TemporaryDirectory() as work:
        figures = ScopeFigures(Path(work) / "scope.db", responses)
    print(
        f"{figures.responses:,} responses over {EVENTS:,} events: results page {figures.results_all:.3f} s for an admin, "
        f"{figures.results_county:.3f} s for one county, {figures.results_staff:.3f} s for one staff account; "
        f"dashboard counts {figures.dashboard_all * 1000:.1f} ms for an admin, {figures.dashboard_county * 1000:.1f} ms for one county"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
