"""The statistics table the office sends upward (issue 12): per 市县 × activity kind.

Every county of the campaign gets its eight rows (the five venues of 五进, 质量文化乡镇行,
消费者调查, 其他), zeros included, and a subtotal; events without a county and responses
sent from a form's own page (no event) follow, then the grand total. Figures per row:
events planned and held, people reached, materials, posters and photos (from the events'
reports), the responses collected and the satisfaction.

An event belongs to the days asked for by its date (an undated event by the day its report
says it was held); its responses count with it whenever they were sent. Satisfaction is
only the rating a form declares with `report_satisfaction`, put on 5 points and pooled over
the individual answers in exact fractions: totals are never averages of averages, and a
4.125 always rounds to 4.13.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import msgspec
import xlsxwriter
from sqlite_utils import Database

from server.campaign import COUNTIES
from server.clock import now
from server.export import BOM
from server.forms import Field, Form
from server.photos import names_in
from server.results import Filters, parse_filters
from server.scope import EVERYTHING, Scope
from server.xlsx import column_width, text_width, write_text, write_whole

FIVE_INTO_VENUES = ("机关", "企业", "乡镇", "社区", "学校")
ACTIVITIES = (*(f"五进{venue}" for venue in FIVE_INTO_VENUES), "质量文化乡镇行", "消费者调查", "其他")
HEADERS = (
    "市县",
    "活动类别",
    "计划场次",
    "已举办",
    "覆盖人数",
    "答卷数",
    "宣传资料（份）",
    "海报展板（块）",
    "照片（张）",
    "满意度（5分制）",
)
NO_COUNTY = "未填市县"  # events created without a county
UNLINKED = "未关联活动"  # responses sent from a form's own page
SUBTOTAL = "小计"
GRAND_TOTAL = "合计"
SCALE = 5  # every satisfaction answer is put on this scale so forms pool together
REPORT_KIND = "event-report"
REPORT_FORM_ID = "event-report"  # forms/event-report.toml
STATUS_LABELS = {"missing": "未填报", "pending": "待审核", "approved": "已通过", "returned": "已退回"}

RowKind = Literal["activity", "county", "unlinked", "total"]
Status = Literal["missing", "pending", "approved", "returned"]


class ReportError(ValueError):
    """A filter the report cannot use; the message is Chinese, for the office."""


class ReportRow(msgspec.Struct, frozen=True):
    """One line of the table, with its cells as shown."""

    kind: RowKind  # activity: county × activity kind; county: a county's subtotal; unlinked; total
    county: str  # 海口市…, 未填市县, 未关联活动 or 合计
    activity: str  # 五进机关…其他, 小计, or empty
    planned: int
    held: int
    people: int
    responses: int
    materials: int
    posters: int
    photos: int
    rated: int  # responses that answered the declared satisfaction question
    satisfaction: float | None  # pooled average on the 5-point scale, rounded half up to 2 decimals

    @property
    def is_total(self) -> bool:
        return self.kind in ("county", "total")

    def cells(self) -> list[str | int | float | None]:
        return [
            self.county,
            self.activity,
            self.planned,
            self.held,
            self.people,
            self.responses,
            self.materials,
            self.posters,
            self.photos,
            self.satisfaction,
        ]


class EventFigures(msgspec.Struct, frozen=True):
    """One event as the table and the package count it: its facts and its report's figures."""

    code: str
    title: str
    county: str
    township: str
    venue_type: str
    date: str  # the event's planned day, or empty
    organizer: str
    activity: str
    status: Status  # of its report
    counted: bool  # the report counts (always, or only once approved when asked so)
    held: bool | None  # None without a report
    held_on: str
    people: int
    materials: int
    posters: int
    photos: tuple[str, ...]  # stored photo names, in the report's order
    summary: str
    problems: str

    @property
    def day(self) -> str:
        """The day the event is filed under: the day held if reported, else the planned day."""
        return (self.held_on if self.held else "") or self.date

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.status]


class Report(msgspec.Struct, frozen=True):
    rows: tuple[ReportRow, ...]  # the last one is the grand total
    events: tuple[EventFigures, ...]  # the events counted, by county, day and code
    date_from: str  # YYYY-MM-DD as filtered, or empty
    date_to: str
    county: str
    approved_only: bool
    generated_at: str  # ISO 8601, +08:00

    @property
    def total(self) -> ReportRow:
        return self.rows[-1]


def report_filters(query: Mapping[str, str]) -> Filters:
    """The report's filters (date_from, date_to, county) from a query string or the command
    line, read as the results pages read them; ReportError with every problem."""
    wanted = {key: query.get(key) or "" for key in ("date_from", "date_to", "county")}
    filters, problems = parse_filters(wanted)
    if problems:
        raise ReportError("；".join(problems))
    return filters


def activity_of(form_kind: str | None, venue_type: str) -> str:
    """The activity kind an event is counted under, from its form's kind and its venue."""
    if form_kind == "five-into" and venue_type in FIVE_INTO_VENUES:
        return f"五进{venue_type}"
    return {"township-event": "质量文化乡镇行", "consumer-survey": "消费者调查"}.get(form_kind or "", "其他")


def satisfaction_field(form: Form) -> Field | None:
    """The rating the form declares with `report_satisfaction`; None when it declares none."""
    question = form.field(form.report_satisfaction) if form.report_satisfaction else None
    return question if question is not None and question.type == "rating" else None


def five_point(value: int, scale: int) -> Fraction:
    """An answer on a 1…scale rating, moved onto the 1…5 scale (1 stays 1, scale becomes 5)."""
    return 1 + Fraction((value - 1) * (SCALE - 1), scale - 1)


def build_report(
    db: Database,
    forms: Mapping[str, Form],
    filters: Filters | None = None,
    *,
    scope: Scope = EVERYTHING,
    approved_only: bool = False,
) -> Report:
    """The table over the events within the filters' days and county.

    An account's `scope` leaves out every event it may not see, and the responses without an
    event. With `approved_only`, only reports the province approved count.
    """
    filters = filters or Filters()
    events = event_figures(db, forms, filters, scope=scope, approved_only=approved_only)
    tallies: dict[tuple[str, str], _Tally] = {}
    for event in events:
        tally = tallies.setdefault((event.county or NO_COUNTY, event.activity), _Tally())
        tally.planned += 1
        if event.counted and event.held:
            tally.held += 1
            tally.people += event.people
            tally.materials += event.materials
            tally.posters += event.posters
            tally.photos += len(event.photos)
    where = {event.code: (event.county or NO_COUNTY, event.activity) for event in events}
    questions = {form_id: q for form_id, form in forms.items() if (q := satisfaction_field(form))}
    unlinked = scope.everything and not filters.county
    for code, form_id, value, count in _answers(db, forms, questions, list(where), filters if unlinked else None):
        tally = tallies.setdefault(where[code] if code else (UNLINKED, ""), _Tally())
        tally.responses += count
        question = questions.get(form_id)
        # Only whole numbers within the form's scale: an answer stored under an older scale is left out.
        if question and type(value) is int and 1 <= value <= question.scale:
            tally.rated += count
            tally.score += count * five_point(value, question.scale)
    counties = [filters.county] if filters.county else list(COUNTIES) if scope.everything else []
    return Report(
        rows=tuple(_rows(tallies, counties)),
        events=tuple(events),
        date_from=filters.date_from,
        date_to=filters.date_to,
        county=filters.county,
        approved_only=approved_only,
        generated_at=now().isoformat(),
    )


def event_figures(
    db: Database,
    forms: Mapping[str, Form],
    filters: Filters,
    *,
    scope: Scope = EVERYTHING,
    approved_only: bool = False,
) -> list[EventFigures]:
    """The events within the filters (and the scope), each with its report's figures, ordered
    by county (the notice's order), day and code."""
    condition, params = scope.events_sql("e")
    if filters.county:
        condition += " AND e.county = ?"
        params = [*params, filters.county]
    # An event's report is its one response to the event-report form (the latest, should a
    # second ever be stored).
    rows = db.query(
        f"""SELECT e.code, e.title, e.county, e.township, e.venue_type, e.date, e.organizer, e.form_id,
                   rep.answers AS answers, rv.status AS review
            FROM events e
            LEFT JOIN responses rep ON rep.id = (
                SELECT max(id) FROM responses
                WHERE event = e.code AND form_id IN (SELECT value FROM json_each(?)))
            LEFT JOIN report_reviews rv ON rv.event = e.code
            WHERE {condition}""",
        [_report_forms(forms), *params],
    )
    events = []
    for row in rows:
        event = _figures(row, forms, approved_only)
        day = event.day
        if (filters.date_from or filters.date_to) and not day:
            continue
        if (filters.date_from and day < filters.date_from) or (filters.date_to and day > filters.date_to):
            continue
        events.append(event)
    events.sort(key=lambda e: (_county_order(e.county), e.day or "9999", e.code))
    return events


def _report_forms(forms: Mapping[str, Form]) -> str:
    """The event-report forms' ids as a JSON array; the bundled one's id even when its file is
    gone, so stored reports still count (and are never counted as responses)."""
    ids = {REPORT_FORM_ID} | {form_id for form_id, form in forms.items() if form.kind == REPORT_KIND}
    return json.dumps(sorted(ids))


def _figures(row: dict[str, Any], forms: Mapping[str, Form], approved_only: bool) -> EventFigures:
    form = forms.get(row["form_id"])
    answers: dict[str, Any] = json.loads(row["answers"]) if row["answers"] else {}
    status: Status = "missing" if row["answers"] is None else row["review"] or "pending"
    held = None if row["answers"] is None else answers.get("held") == "yes"

    def number(name: str) -> int:
        value = answers.get(name)
        return value if type(value) is int and value >= 0 else 0

    def text(name: str) -> str:
        value = answers.get(name)
        return value.strip() if isinstance(value, str) else ""

    return EventFigures(
        code=row["code"],
        title=row["title"],
        county=row["county"] or "",
        township=row["township"] or "",
        venue_type=row["venue_type"] or "",
        date=row["date"] or "",
        organizer=row["organizer"] or "",
        activity=activity_of(form.kind if form else None, row["venue_type"] or ""),
        status=status,
        counted=status != "missing" and (status == "approved" or not approved_only),
        held=held,
        held_on=text("held_on") if held else "",
        people=number("people") if held else 0,
        materials=number("materials") if held else 0,
        posters=number("posters") if held else 0,
        photos=tuple(names_in(answers.get("photos"))) if held else (),
        summary=text("summary") if held else "",
        problems=text("problems") if held else "",
    )


def _answers(
    db: Database,
    forms: Mapping[str, Form],
    questions: Mapping[str, Field],
    codes: list[str],
    unlinked: Filters | None,
) -> list[tuple[str | None, str, object, int]]:
    """(event or None, form, satisfaction answer, responses): how many responses gave each
    answer, for the events in `codes` and, when `unlinked` is given, the responses without an
    event sent within its days. Reports and suspected spam are never counted."""
    params: dict[str, Any] = {
        "codes": json.dumps(codes),
        "report_forms": _report_forms(forms),
    }
    scope = "r.event IN (SELECT value FROM json_each(:codes))"
    if unlinked is not None:
        days = ["r.event IS NULL"]
        if unlinked.date_from:
            days.append("r.submitted_at >= :submitted_from")
            params["submitted_from"] = unlinked.date_from
        if unlinked.date_to:  # submitted_at holds a time: compare with the start of the next day
            days.append("r.submitted_at < :submitted_before")
            params["submitted_before"] = (dt.date.fromisoformat(unlinked.date_to) + dt.timedelta(days=1)).isoformat()
        scope = f"({scope} OR ({' AND '.join(days)}))"
    # A CASE over the forms rather than a join with a table of questions: SQLite then reads
    # each JSON once without a lookup per row.
    answer = "NULL"
    if questions:
        answer = "CASE r.form_id"
        for number, (form_id, question) in enumerate(questions.items()):
            answer += f" WHEN :form{number} THEN json_extract(r.answers, :path{number})"
            params |= {f"form{number}": form_id, f"path{number}": f"$.{question.name}"}
        answer += " END"
    sql = f"""
        SELECT r.event, r.form_id, {answer} AS answer, count(*)
        FROM responses r
        WHERE {scope} AND r.suspected_spam = 0
          AND r.form_id NOT IN (SELECT value FROM json_each(:report_forms))
        GROUP BY r.event, r.form_id, answer"""
    return db.execute(sql, params).fetchall()


@dataclass
class _Tally:
    planned: int = 0
    held: int = 0
    people: int = 0
    responses: int = 0
    materials: int = 0
    posters: int = 0
    photos: int = 0
    rated: int = 0
    score: Fraction = field(default_factory=Fraction)  # sum of the 5-point answers

    def add(self, other: _Tally) -> None:
        for name in ("planned", "held", "people", "responses", "materials", "posters", "photos", "rated", "score"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def row(self, kind: RowKind, county: str, activity: str) -> ReportRow:
        average = None
        if self.rated:  # round half up to 2 decimals, exactly
            average = math.floor(self.score * 100 / self.rated + Fraction(1, 2)) / 100
        return ReportRow(
            kind,
            county,
            activity,
            self.planned,
            self.held,
            self.people,
            self.responses,
            self.materials,
            self.posters,
            self.photos,
            self.rated,
            average,
        )


def _rows(tallies: Mapping[tuple[str, str], _Tally], counties: list[str]) -> list[ReportRow]:
    """`counties` with every activity kind, zeros too; any other county with figures, then
    events without a county, with their kinds that have figures; each with a subtotal. Then
    the responses without an event and the grand total."""
    rows: list[ReportRow] = []
    grand = _Tally()
    others = {county for county, _ in tallies} - set(counties) - {NO_COUNTY, UNLINKED}
    groups = [(county, True) for county in counties] + [(c, False) for c in sorted(others, key=_county_order)]
    groups += [(NO_COUNTY, False)] if any(county == NO_COUNTY for county, _ in tallies) else []
    for county, every_kind in groups:
        subtotal = _Tally()
        for activity in ACTIVITIES:
            tally = tallies.get((county, activity))
            if tally is None and not every_kind:
                continue
            tally = tally or _Tally()
            rows.append(tally.row("activity", county, activity))
            subtotal.add(tally)
        rows.append(subtotal.row("county", county, SUBTOTAL))
        grand.add(subtotal)
    unlinked = tallies.get((UNLINKED, ""))
    if unlinked:
        rows.append(unlinked.row("unlinked", UNLINKED, ""))
        grand.add(unlinked)
    rows.append(grand.row("total", GRAND_TOTAL, ""))
    return rows


def _county_order(county: str) -> tuple[int, int, str]:
    if county in COUNTIES:
        return (0, COUNTIES.index(county), "")
    return (2, 0, "") if county == "" else (1, 0, county)


def report_csv(report: Report) -> bytes:
    """The table as CSV, as the exports are: UTF-8 with BOM, CRLF, 2-decimal averages."""
    buffer = io.StringIO()
    buffer.write(BOM)
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HEADERS)
    for row in report.rows:
        writer.writerow([*row.cells()[:-1], "" if row.satisfaction is None else f"{row.satisfaction:.2f}"])
    return buffer.getvalue().encode("utf-8")


def report_xlsx(report: Report, path: Path | str) -> None:
    """The table as a one-sheet workbook: bold frozen header, bold totals, numbers as numbers."""
    with xlsxwriter.Workbook(str(path)) as workbook:
        sheet = workbook.add_worksheet("统计表")
        plain = {"valign": "vcenter"}
        styles = {
            (False, False): workbook.add_format(plain),
            (False, True): workbook.add_format(plain | {"num_format": "0.00"}),
            (True, False): workbook.add_format(plain | {"bold": True}),
            (True, True): workbook.add_format(plain | {"bold": True, "num_format": "0.00"}),
        }
        header = workbook.add_format(
            {"bold": True, "align": "center", "valign": "vcenter", "bottom": 1, "text_wrap": True}
        )
        sheet.write_row(0, 0, HEADERS, header)
        for index, row in enumerate(report.rows, start=1):
            bold = row.is_total
            cells = row.cells()
            write_text(sheet, index, 0, row.county, styles[(bold, False)])
            write_text(sheet, index, 1, row.activity, styles[(bold, False)])
            for column in range(2, len(HEADERS) - 1):
                sheet.write_number(index, column, cells[column], styles[(bold, False)])
            last = len(HEADERS) - 1
            if row.satisfaction is None:
                sheet.write_blank(index, last, None, styles[(bold, True)])
            else:
                sheet.write_number(index, last, row.satisfaction, styles[(bold, True)])
        for column, title in enumerate(HEADERS):
            shown = [str(row.cells()[column] or "") for row in report.rows]
            sheet.set_column(column, column, column_width(max(map(text_width, [title, *shown]))))
        sheet.freeze_panes(1, 2)


def write_report_files(
    db: Database, forms: Mapping[str, Form], out_dir: Path, filters: Filters | None = None, **options: Any
) -> list[Path]:
    """Write `report-<YYYYmmdd-HHMMSS>.csv` and `.xlsx` into out_dir; return their paths.

    `options` are build_report's keywords; each file appears whole or not at all.
    """
    report = build_report(db, forms, filters, **options)
    stem = f"report-{now():%Y%m%d-%H%M%S}"
    return [
        write_whole(out_dir / f"{stem}.csv", lambda path: _write_bytes(path, report_csv(report))),
        write_whole(out_dir / f"{stem}.xlsx", lambda path: report_xlsx(report, path)),
    ]


def _write_bytes(path: Path, content: bytes) -> None:
    path.write_bytes(content)
