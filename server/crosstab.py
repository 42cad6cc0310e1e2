"""Cross-tabulation: how the answers to one question split by another (满意度 × 年龄段,
× 市县, × 活动), as counts and row percentages, for the results page and a workbook.

An axis is a question (choice, multi, rating, region — by its 市县) or the response's event:
its 市县 (`county`) or the event itself (`event`). Only responses that answered both count.
A multi answer counts once under each option chosen, so a row's cells may add up to more
than its respondents; row percentages are always of the row's respondents. Counting happens
in SQLite grouped by the pair of stored values: Python sees the few distinct pairs, not
every response. The filters and the account's scope are the results page's (`results.where`).
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

import msgspec
import xlsxwriter
from sqlite_utils import Database

from server.campaign import COUNTIES
from server.display import reader
from server.forms import Field, Form
from server.results import Filters, where
from server.scope import EVERYTHING, Scope
from server.xlsx import column_width, sheet_name, text_width, write_text

AXIS_TYPES = ("choice", "multi", "rating", "region")
BY_EVENT = {"county": "市县（活动所在）", "event": "活动"}
NO_EVENT = "（未经活动）"


class CrosstabError(ValueError):
    """Axes that cannot be crossed; the message is Chinese."""


class Axis(msgspec.Struct, frozen=True):
    key: str  # a question's name, or `county` / `event`
    label: str


class Crosstab(msgspec.Struct, frozen=True):
    rows: Axis
    columns: Axis
    row_labels: list[str]
    column_labels: list[str]
    counts: list[list[int]]  # [row][column]
    respondents: list[int]  # per row: responses that answered both
    total: int

    def percent(self, row: int, column: int) -> float:
        """A cell as a share of its row's respondents, in percent (one decimal)."""
        return round(100 * self.counts[row][column] / self.respondents[row], 1) if self.respondents[row] else 0.0

    def column_totals(self) -> list[int]:
        return [sum(row[c] for row in self.counts) for c in range(len(self.column_labels))]


def axes(form: Form) -> list[Axis]:
    """What a form's answers may be crossed by: its countable questions, then 市县 and 活动."""
    questions = [Axis(f.name, f.label) for f in form.answer_fields if f.type in AXIS_TYPES]
    return [*questions, *(Axis(key, label) for key, label in BY_EVENT.items())]


def crosstab(
    db: Database,
    form: Form,
    row_key: str,
    column_key: str,
    filters: Filters,
    scope: Scope = EVERYTHING,
    history: Iterable[Form] = (),
) -> Crosstab:
    """Counts of every pair of answers to the two axes over the responses the filters and
    scope select; `history` (older versions of the form) names removed options."""
    known = {axis.key: axis for axis in axes(form)}
    if row_key not in known or column_key not in known:
        raise CrosstabError("请从列表里选择两个题目")
    if row_key == column_key:
        raise CrosstabError("请选择两个不同的题目")
    clause, params = where(form.id, filters, scope)
    pick = [_value_sql(row_key), _value_sql(column_key)]
    pairs = db.execute(
        f"""SELECT {pick[0]} AS a, {pick[1]} AS b, count(*) FROM responses r
            LEFT JOIN events e ON e.code = r.event
            WHERE {clause} AND a IS NOT NULL AND b IS NOT NULL GROUP BY a, b""",
        params,
    ).fetchall()
    fields = {f.name: f for f in form.answer_fields}
    shown_by = reader([*history, form])
    by_event = {a for a, _, _ in pairs} if row_key == "event" else {b for _, b, _ in pairs}
    titles = _titles(db, sorted(by_event)) if "event" in (row_key, column_key) else {}

    def values(key: str, stored: Any) -> list[str]:
        field = fields.get(key)
        if field is None:  # by event
            return [stored or ""]
        items = msgspec.json.decode(stored) if field.type == "multi" and isinstance(stored, str) else [stored]
        if field.type == "region":
            return [str(item).split("/")[0] for item in items]
        return [str(item) for item in items]

    counts: dict[tuple[str, str], int] = {}
    respondents: dict[str, int] = {}
    for a, b, n in pairs:
        across = values(column_key, b)
        for row in values(row_key, a):
            respondents[row] = respondents.get(row, 0) + n
            for column in across:
                counts[row, column] = counts.get((row, column), 0) + n
    row_values = _ordered(fields.get(row_key), row_key, respondents.keys())
    column_values = _ordered(fields.get(column_key), column_key, {c for _, c in counts})

    def label(key: str, value: str) -> str:
        field = fields.get(key)
        if key == "event":
            return f"{titles.get(value, value)}（{value}）" if value else NO_EVENT
        if key == "county":
            return value or NO_EVENT
        if field is not None and field.type == "rating":
            words = field.rating_label(int(value)) if value.isdigit() else ""
            return f"{value} 分" + (f" {words}" if words and words != value else "")
        if field is not None and field.type in ("choice", "multi"):
            return shown_by.text(key, [value] if field.type == "multi" else value)
        return value

    return Crosstab(
        rows=known[row_key],
        columns=known[column_key],
        row_labels=[label(row_key, v) for v in row_values],
        column_labels=[label(column_key, v) for v in column_values],
        counts=[[counts.get((r, c), 0) for c in column_values] for r in row_values],
        respondents=[respondents[r] for r in row_values],
        total=sum(n for _, _, n in pairs),
    )


def _value_sql(key: str) -> str:
    """The SQL of an axis' stored value for a response (`r`, its event `e`)."""
    if key == "county":
        return "coalesce(e.county, '')"
    if key == "event":
        return "coalesce(r.event, '')"
    return f"json_extract(r.answers, '$.{key}')"  # a field name: ^[a-z][a-z0-9_]*$ (forms.py)


def _titles(db: Database, codes: list[str]) -> dict[str, str]:
    marks = ", ".join("?" * len(codes)) or "NULL"
    return dict(db.execute(f"SELECT code, title FROM events WHERE code IN ({marks})", codes).fetchall())


def _ordered(field: Field | None, key: str, seen: Iterable[str]) -> list[str]:
    """An axis' values in the form's order (options as defined, points high to low, 市县 as
    the province lists them), values no longer in the form after them."""
    seen = set(seen)
    if field is not None and field.type in ("choice", "multi"):
        order = [o.value for o in field.choices]
    elif field is not None and field.type == "rating":
        order = [str(n) for n in range(field.scale, 0, -1)]
    elif key == "county" or (field is not None and field.type == "region"):
        order = list(COUNTIES)
    else:
        order = []
    known = [v for v in order if v in seen]
    return known + sorted(seen - set(known), key=lambda v: (v == "", v))


def crosstab_xlsx(table: Crosstab, title: str, described: str) -> bytes:
    """The table as a workbook: counts, then row percentages, each with its totals."""
    output = io.BytesIO()
    with xlsxwriter.Workbook(output, {"in_memory": True}) as workbook:
        sheet = workbook.add_worksheet(sheet_name(f"{table.rows.label}×{table.columns.label}"))
        bold = workbook.add_format({"bold": True})
        percent = workbook.add_format({"num_format": "0.0%"})
        write_text(sheet, 0, 0, title, bold)
        write_text(sheet, 1, 0, described)
        widths = [text_width(table.rows.label)] + [text_width(c) for c in table.column_labels] + [6]
        line = 3
        for heading, as_share in (("人数", False), ("行百分比（占该行答题人数）", True)):
            write_text(sheet, line, 0, heading, bold)
            line += 1
            header = [f"{table.rows.label} \\ {table.columns.label}", *table.column_labels, "答题人数"]
            for column, text in enumerate(header):
                write_text(sheet, line, column, text, bold)
            for r, row_label in enumerate(table.row_labels):
                line += 1
                write_text(sheet, line, 0, row_label)
                widths[0] = max(widths[0], text_width(row_label))
                for c in range(len(table.column_labels)):
                    if as_share:
                        share = table.counts[r][c] / table.respondents[r] if table.respondents[r] else 0
                        sheet.write_number(line, c + 1, share, percent)  # exact: Excel rounds on screen
                    else:
                        sheet.write_number(line, c + 1, table.counts[r][c])
                sheet.write_number(line, len(table.column_labels) + 1, table.respondents[r])
            if not as_share:
                line += 1
                write_text(sheet, line, 0, "合计", bold)
                for c, total in enumerate(table.column_totals()):
                    sheet.write_number(line, c + 1, total, bold)
                sheet.write_number(line, len(table.column_labels) + 1, table.total, bold)
            line += 2
        for column, width in enumerate(widths):
            sheet.set_column(column, column, column_width(width))
        sheet.freeze_panes(0, 1)
    return output.getvalue()
