"""XLSX exports: the responses of a form as a workbook, and what every workbook we write shares.

The workbook has the same columns and cells as the CSV export (SPEC §4): both come from
one table, `export.export_table`. Its cells carry their type, so numbers are number cells
and every text goes through `write_string`: a text that begins with `=` is shown as typed
and never run as a formula. That is why XLSX text needs no `'` prefix, unlike the CSV,
whose cells a spreadsheet guesses the type of.

`submitted_at` and `date` answers are Excel dates (numbers with a date format), so staff can
group and filter by day; the time is China time, as in the CSV, without its `+08:00`.

xlsxwriter's `constant_memory` mode writes each row to a temporary file as it comes, so
memory stays flat however many responses there are; widths are tracked per column while
rows go by and set at the end.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import xlsxwriter
from sqlite_utils import Database

from server.export import ALL, Header, Layout, Multi, export_table
from server.forms import Form
from server.results import Filters
from server.scope import EVERYTHING, Scope

MIN_WIDTH = 6
MAX_WIDTH = 60  # a long answer is cut off at the next cell rather than widen its column off screen
SHEET_NAME_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")
SHEET_NAME_LENGTH = 31  # Excel's limit
DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
DATE_FORMAT = "yyyy-mm-dd"
DATE_WIDTHS = {"datetime": len("2022-09-15 10:00:00"), "date": len("2022-09-15")}


def export_xlsx(
    db: Database,
    form: Form,
    path: Path | str,
    filters: Filters = ALL,
    *,
    scope: Scope = EVERYTHING,
    header: Header = "labels",
    multi: Multi = "joined",
    event_details: bool = False,
) -> None:
    """Write a form's responses that the filters choose as a one-sheet workbook at path: the CSV's
    table, typed cells (dates and times as Excel dates), a bold frozen header row and columns as
    wide as their contents."""
    table = export_table(db, form, filters, Layout(header, multi, event_details), scope=scope, typed=True)
    widest = [text_width(title) for title in table.header]
    with xlsxwriter.Workbook(str(path), {"constant_memory": True}) as workbook:
        sheet = workbook.add_worksheet(sheet_name(form.title))
        bold = workbook.add_format({"bold": True})
        # Excel shows a date by its number format: these are the ones WPS and LibreOffice read too.
        when = workbook.add_format({"num_format": DATETIME_FORMAT})
        day = workbook.add_format({"num_format": DATE_FORMAT})
        for column, title in enumerate(table.header):
            write_text(sheet, 0, column, title, bold)
        sheet.freeze_panes(1, 0)
        for column, kind in enumerate(table.kinds):
            if kind in DATE_WIDTHS:
                widest[column] = max(widest[column], DATE_WIDTHS[kind])
        for number, row in enumerate(table.rows, start=1):
            for column, cell in enumerate(row):
                if cell is None or cell == "":  # an empty cell is simply not written
                    continue
                if isinstance(cell, str):
                    sheet.write_string(number, column, cell)
                    widest[column] = _wider(widest[column], cell)
                elif isinstance(cell, dt.date):  # a datetime is a date too
                    sheet.write_datetime(number, column, cell, when if isinstance(cell, dt.datetime) else day)
                else:
                    sheet.write_number(number, column, cell)
                    widest[column] = max(widest[column], len(str(cell)))
        for column, width in enumerate(widest):
            sheet.set_column(column, column, column_width(width))


def sheet_name(title: str) -> str:
    """A form title as Excel accepts a sheet name: no []:*?/\\, not quoted, 31 characters."""
    name = SHEET_NAME_FORBIDDEN.sub(" ", title).strip(" '")[:SHEET_NAME_LENGTH].strip(" '")
    return name or "答卷"


def _wider(width: int, text: str) -> int:
    """The width of a column that now holds text, measuring only what could widen it."""
    if len(text) * 2 <= width or width >= MAX_WIDTH:
        return width
    return max(width, text_width(text[:MAX_WIDTH]))


def text_width(text: str) -> int:
    """The width of a text in Excel's units (and a terminal's): a Chinese character or emoji takes two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def column_width(widest: int) -> int:
    """A column width that fits the widest cell, with a margin, within sensible bounds."""
    return max(MIN_WIDTH, min(MAX_WIDTH, widest + 2))


def write_text(sheet: Any, row: int, column: int, text: str, style: Any = None) -> None:
    """A text cell, never a formula; an empty text is an empty cell, as in the CSV."""
    if text:
        sheet.write_string(row, column, text, style)
    else:
        sheet.write_blank(row, column, None, style)


def write_whole(path: Path, write: Callable[[Path], None]) -> Path:
    """Write a file whole or not at all: into `<name>.partial`, renamed when complete.

    Spreadsheet libraries write to a path rather than yield bytes, so this is how a
    reader (or a download) never sees half a workbook.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        write(partial)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path
