"""XLSX files for the office: what every workbook we write shares.

Every text goes through `write_string`, so a text that begins with `=` is shown as typed
and never run as a formula: XLSX cells carry their type, so unlike the CSV (whose cells a
spreadsheet guesses the type of) they need no `'` prefix.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

MIN_WIDTH = 6
MAX_WIDTH = 60  # long answers wrap in the cell rather than widen the column off screen


def text_width(text: str) -> int:
    """The width of a text in Excel's units: a Chinese character or emoji takes two."""
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
