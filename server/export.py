"""CSV export (SPEC §4): a generator of bytes, streamed from a database cursor.

UTF-8 with BOM, CRLF, RFC 4180 quoting. Columns follow the current definition; fields
that were removed but have stored answers come last, so no data is ever hidden.
`export_table` is that table of cells; the XLSX export (server/xlsx.py) writes the same one.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal

import msgspec
from sqlite_utils import Database

from server import storage
from server.forms import OTHER_LABEL, Field, Form
from server.quiz import scorer

Header = Literal["labels", "names"]
BOM = "\ufeff"
# A spreadsheet runs a cell as a formula when it begins with one of these, once its input
# normalisation (NFKC: full-width ＝＋－＠, small and superscript forms) is done...
FORMULA_SIGNS = "=+-@\u207a\u207c\u208a\u208c\u2a75\u2a76\ufb29\ufe62\ufe63\ufe66\ufe6b\uff0b\uff0d\uff1d\uff20"
# ...and leading whitespace and invisible format characters (Unicode category Cf: BOM, zero-width
# space, direction marks) do not stop it. Ranges of code points; tests/test_export.py checks both
# lists against `unicodedata`.
INVISIBLE_LEADERS = (
    (0x09, 0x0D), (0x1C, 0x20), (0x85, 0x85), (0xA0, 0xA0), (0xAD, 0xAD), (0x600, 0x605), (0x61C, 0x61C),
    (0x6DD, 0x6DD), (0x70F, 0x70F), (0x890, 0x891), (0x8E2, 0x8E2), (0x1680, 0x1680), (0x180E, 0x180E),
    (0x2000, 0x200F), (0x2028, 0x202F), (0x205F, 0x2064), (0x2066, 0x206F), (0x3000, 0x3000), (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB), (0x110BD, 0x110BD), (0x110CD, 0x110CD), (0x13430, 0x13438), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0001, 0xE0001), (0xE0020, 0xE007F),
)  # fmt: skip
FORMULA_CONTROLS = "\t\r\0"  # a cell starting with one of these is guarded whatever follows (OWASP, ASVS 1.2.10)
_LEADERS = "".join(f"\\U{first:08x}-\\U{last:08x}" for first, last in INVISIBLE_LEADERS)
_FORMULA = re.compile(f"[{re.escape(FORMULA_CONTROLS)}]|[{_LEADERS}]*[{re.escape(FORMULA_SIGNS)}]")
# The first characters worth the regex: a set test turns away nearly every cell cheaply.
_SUSPECT_FIRST = frozenset(
    [*FORMULA_SIGNS, *FORMULA_CONTROLS, *(chr(c) for first, last in INVISIBLE_LEADERS for c in range(first, last + 1))]
)
ROWS_PER_CHUNK = 500
MAX_REMEMBERED_CHOICES = 10_000  # distinct option combinations per column; memory stays flat
FIXED_COLUMNS = (("id", "编号"), ("submitted_at", "提交时间"), ("event", "活动"))
CONSENT_CELL = {"labels": "已同意", "names": "yes"}
SCORE_COLUMN = {"labels": "得分", "names": "score"}


class Column(msgspec.Struct, frozen=True):
    name: str  # key in the stored answers
    label: str
    field: Field | None  # None for an `_other` text column


def columns(form: Form, history: Iterable[Form], extra_names: set[str]) -> list[Column]:
    """The answer columns: current fields in order, then removed ones that hold data."""
    result = [column for field in form.answer_fields for column in field_columns(field)]
    present = {c.name for c in result}
    for old_form in reversed(list(history)):  # newest definition first: latest label wins
        for field in old_form.answer_fields:
            for column in field_columns(field):
                if column.name in extra_names and column.name not in present:
                    result.append(column)
                    present.add(column.name)
    result.extend(Column(name, name, None) for name in sorted(extra_names - present))
    return result


def field_columns(field: Field) -> list[Column]:
    """A question's columns: its answer, then its 其他 text; a grid has one per row."""
    if field.type == "grid":
        names = field.answer_names
        return [Column(name, f"{field.label}：{row.label}", field) for name, row in zip(names, field.rows, strict=True)]
    result = [Column(field.name, field.label, field)]
    if field.other:
        result.append(Column(field.other_name, f"{field.label}（{OTHER_LABEL}）", None))
    return result


def export_csv(
    db: Database, form: Form, *, header: Header = "labels", event: str | None = None, include_spam: bool = False
) -> Iterator[bytes]:
    """Yield the CSV of a form's responses in chunks of bytes (suspected spam only when asked)."""
    header_row, rows = export_table(db, form, header=header, event=event, include_spam=include_spam)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write(BOM)
    writer.writerow(header_row)
    while chunk := list(itertools.islice(rows, ROWS_PER_CHUNK)):
        writer.writerows(chunk)
        yield _drain(buffer)
    if buffer.tell():  # no responses: the header alone
        yield _drain(buffer)


def export_table(
    db: Database,
    form: Form,
    *,
    header: Header = "labels",
    event: str | None = None,
    typed: bool = False,
    include_spam: bool = False,
) -> tuple[list[str], Iterator[list[Any]]]:
    """The header row and the rows (streamed) of a form's responses: the one table every export shows.

    Cells are ready for CSV: texts that a spreadsheet would run as a formula get a `'`, numbers
    are their plain text. With `typed`, for formats whose cells carry a type (XLSX), texts are
    left as they are and numbers are int or float. An empty cell is "" either way.
    """
    history = storage.stored_definitions(db, form.id)
    extra = storage.fields_in_answers(db, form.id, except_version=form.version)
    answer_columns = columns(form, history, extra)
    option_labels = _option_labels([*history, form])
    guard = _as_is if typed else guard_formula
    if header == "labels":
        header_row = [label for _, label in FIXED_COLUMNS] + [guard(c.label) for c in answer_columns]
    else:
        header_row = [name for name, _ in FIXED_COLUMNS] + [c.name for c in answer_columns]
    converters = [_converter(c, header, option_labels, typed) for c in answer_columns]
    responses = storage.response_rows(db, form.id, event, include_spam=include_spam)
    score = scorer(form)
    if score is not None:  # a quiz ends with its score
        header_row.append(SCORE_COLUMN[header])
    return header_row, _rows(responses, answer_columns, converters, score)


def _rows(
    responses: Iterator[tuple[int, str, str | None, str]],
    answer_columns: list[Column],
    converters: list[Callable[[Any], Any]],
    score: Callable[[dict[str, Any]], int] | None = None,
) -> Iterator[list[Any]]:
    """One list of cells per response."""
    # One converter per column, chosen once: the loop below runs a million times on big exports.
    # A row holds fewer answers than the form has columns, so it walks the answers, not the columns.
    fixed = len(FIXED_COLUMNS)
    position = {c.name: fixed + i for i, c in enumerate(answer_columns)}
    convert: list[Callable[[Any], Any]] = [str] * fixed + converters
    blank: list[Any] = [""] * len(convert)
    decode = msgspec.json.Decoder(dict[str, Any]).decode
    for response_id, submitted_at, event_code, answers_json in responses:
        line = blank.copy()
        line[0] = response_id
        line[1] = submitted_at
        line[2] = event_code or ""
        answers = decode(answers_json)
        for name, value in answers.items():
            if value is not None and (i := position.get(name)) is not None:
                line[i] = convert[i](value)
        if score is not None:
            line.append(score(answers))
        yield line


def _drain(buffer: io.StringIO) -> bytes:
    chunk = buffer.getvalue().encode("utf-8")
    buffer.seek(0)
    buffer.truncate()
    return chunk


def _option_labels(definitions: list[Form]) -> dict[str, dict[str, str]]:
    """field name -> option value -> label, later definitions overriding earlier ones."""
    labels: dict[str, dict[str, str]] = {}
    for definition in definitions:
        for field in definition.answer_fields:
            labels.setdefault(field.name, {}).update({o.value: o.label for o in field.choices})
    return labels


def _converter(
    column: Column, header: Header, option_labels: dict[str, dict[str, str]], typed: bool
) -> Callable[[Any], Any]:
    """The function that turns a column's stored answer (never None) into its cell."""
    field = column.field
    kind = field.type if field else "text"
    guard = _as_is if typed else guard_formula
    if kind in ("integer", "rating", "grid"):
        return int
    if kind == "number":
        return float if typed else _plain_number
    if kind == "consent":
        ticked = CONSENT_CELL[header]
        return lambda value: ticked if value else ""
    if kind in ("choice", "multi") and field is not None:
        labels = option_labels.get(field.name, {}) if header == "labels" else None
        return _choice_converter(field, labels, guard)
    if kind in ("photo", "video"):  # the stored file names, `; ` between them (hex names never look like a formula)
        return _joined
    return _raw_text if typed else _text


def _joined(value: Any) -> str:
    return "; ".join(map(str, value)) if isinstance(value, list) else str(value)


def _choice_converter(field: Field, labels: dict[str, str] | None, guard: Callable[[str], str]) -> Callable[[Any], str]:
    """Options in definition order, as labels or values; remembered, as few combinations recur."""
    order = {o.value: i for i, o in enumerate(field.choices)}
    known: dict[Any, str] = {}

    def convert(value: Any) -> str:
        key = tuple(value) if isinstance(value, list) else value
        try:
            return known[key]
        except (KeyError, TypeError):  # TypeError: a stored value that cannot be a key
            pass
        values = value if isinstance(value, list) else [value]
        chosen = sorted(values, key=lambda v: order.get(v, len(order)))
        if labels is not None:
            chosen = [labels.get(v, v) for v in chosen]
        cell = guard("; ".join(str(v) for v in chosen))
        # Only strings are remembered: 1 == True would otherwise share a cell with "True".
        if len(known) < MAX_REMEMBERED_CHOICES and all(isinstance(v, str) for v in values):
            known[key] = cell
        return cell

    return convert


def _text(value: Any) -> str:
    if isinstance(value, list):  # a removed field we know nothing about
        value = "; ".join(str(v) for v in value)
    return guard_formula(str(value))


def _raw_text(value: Any) -> str:
    if isinstance(value, list):  # a removed field we know nothing about
        return "; ".join(str(v) for v in value)
    return str(value)


def _plain_number(value: Any) -> str:
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def _as_is(text: str) -> str:
    return text


def guard_formula(text: str) -> str:
    """Keep spreadsheets from running a CSV cell as a formula: a `'` before any that could be one."""
    return "'" + text if text[:1] in _SUSPECT_FIRST and _FORMULA.match(text) else text
