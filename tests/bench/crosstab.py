"""What a cross-tab costs: two questions of the consumer survey crossed over many responses
spread over 2,000 events in every 市县 (a choice × a multi, a choice × 市县), for an admin and
for one county, and the workbook of the result.

Run alone: `python -m tests.bench.crosstab [RESPONSES]` (default 100,000).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from server.crosstab import crosstab, crosstab_xlsx
from server.results import Filters
from server.scope import EVERYTHING, Scope
from tests.bench.office import seconds
from tests.bench.scope import COUNTY, EVENTS, spread_over_events


class CrosstabFigures:
    def __init__(self, path: Path, responses: int) -> None:
        db, survey = spread_over_events(path, responses)
        county = Scope(county=COUNTY)
        self.responses = responses
        self.choice_multi = seconds(lambda: crosstab(db, survey, "know_12315", "concerns", Filters(), EVERYTHING))
        self.by_county = seconds(lambda: crosstab(db, survey, "know_12315", "county", Filters(), EVERYTHING))
        self.one_county = seconds(lambda: crosstab(db, survey, "know_12315", "concerns", Filters(), county))
        table = crosstab(db, survey, "know_12315", "county", Filters(), EVERYTHING)
        self.workbook = seconds(lambda: crosstab_xlsx(table, "bench", ""))
        db.conn.close()

    def rows(self) -> list[tuple[str, str, str, str]]:
        """The suite's table rows (tests/bench/run.py)."""
        return [
            (
                f"cross-tab over {self.responses:,} responses in {EVENTS:,} events (choice × multi, choice × 市县)",
                f"**{self.choice_multi:.2f} s** / {self.by_county:.2f} s for an admin, {self.one_county:.2f} s for "
                f"one county; its workbook {self.workbook * 1000:.0f} ms",
                "—",
                "",
            )
        ]


def main(argv: list[str]) -> None:
    responses = int(argv[0]) if argv else 100_000
    with tempfile.TemporaryDirectory() as work:
        figures = CrosstabFigures(Path(work) / "crosstab.db", responses)
    print(
        f"{figures.responses:,} responses over {EVENTS:,} events: know_12315 × concerns {figures.choice_multi:.3f} s, "
        f"know_12315 × 市县 {figures.by_county:.3f} s for an admin; × concerns {figures.one_county:.3f} s for one "
        f"county; workbook {figures.workbook * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
