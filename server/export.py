"""CSV export (SPEC §4): a generator of bytes, streamed from a database cursor.

UTF-8 with BOM, CRLF, RFC 4180 quoting. Columns follow the current definition; fields
that were removed but have stored answers come last, so no data is ever hidden.
`export_table` is that table of cells; the XLSX export (server/xlsx.py) writes the same one.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal

import msgspec
from sqlite_utils import Database

from server import storage
from server.forms import OTHER_LABEL, Field, Form
from server.quiz import scorer
from server.results import Filters, where
from server.scope import EVERYTHING, Scope

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
# `--event-details`: the event's own facts after its code, named apart from any question's name.
EVENT_COLUMNS = (
    ("event_title", "活动名称"),
    ("event_county", "活动市县"),
    ("event_township", "活动乡镇"),
    ("event_venue_type", "场所类型"),
)
CONSENT_CELL = {"labels": "已同意", "names": "yes"}
SCORE_COLUMN = {"labels": "得分", "names": "score"}
# `--multi columns`: `<name>_other` is then the 其他 option's 0/1, so its text is `<name>_other_text`
OTHER_TEXT_SUFFIX = "_text"
ALL = Filters()
Multi = Literal["joined", "columns"]


# How a stored answer becomes cells: (its column, the end of its columns when it fills several,
# the cells already made for values that recur (or None), the function that makes its cell(s)
# from an answer that is not None).
Slot = tuple[int, int | None, dict[Any, Any] | None, Callable[[Any], Any]]
# Answers as stored; lists come as tuples, so a multi answer can look up its remembered cell.
ANSWERS = msgspec.json.Decoder(dict[str, str | int | float | bool | tuple[Any, ...] | dict[str, Any] | None])


class Layout(msgspec.Struct, frozen=True):
    """How an export lays out its columns; which rows it holds is the `Filters`' business."""

    header: Header = "labels"
    multi: Multi = "joined"  # "columns": one 0/1 column per option of each multi question
    event_details: bool = False  # the event's title, 市县, 乡镇 and venue type after its code


AS_IN_SPEC = Layout()  # SPEC §4: labels, multi answers joined in one cell, the event's code alone


class Column(msgspec.Struct, frozen=True):
    name: str  # key in the stored answers
    label: str
    field: Field | None  # None for an `_other` text column


class Table(msgspec.Struct):
    """What every export writes: the header row and the rows, streamed."""

    header: list[str]
    rows: Iterator[list[Any]]
    kinds: list[str]  # per column: "text", "number", "datetime" or "date" (XLSX formats by it)


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
    db: Database,
    form: Form,
    filters: Filters = ALL,
    *,
    scope: Scope = EVERYTHING,
    header: Header = "labels",
    multi: Multi = "joined",
    event_details: bool = False,
) -> Iterator[bytes]:
    """Yield the CSV of a form's responses that the filters choose, in chunks of bytes.

    The cells come as CSV fields already (quoted where RFC 4180 asks, as `csv.writer` does),
    so a line is one `join`: the million-row loop does no per-cell work it can avoid.
    """
    table = export_table(db, form, filters, Layout(header, multi, event_details), scope=scope, typed=False)
    yield (BOM + ",".join(map(csv_field, table.header)) + "\r\n").encode("utf-8")
    rows = table.rows
    while chunk := list(itertools.islice(rows, ROWS_PER_CHUNK)):
        yield ("\r\n".join(map(",".join, chunk)) + "\r\n").encode("utf-8")


def export_table(
    db: Database,
    form: Form,
    filters: Filters = ALL,
    layout: Layout = AS_IN_SPEC,
    *,
    scope: Scope = EVERYTHING,
    typed: bool = True,
) -> Table:
    """The header row and the rows (streamed) of a form's responses: the one table every export shows.

    `typed` (XLSX and other formats whose cells carry a type): texts as they are, numbers int or
    float, `submitted_at` a datetime (China time, without its zone), `date` answers dates, an
    empty cell None. Else every cell is a CSV field: a text a spreadsheet would run as a
    formula gets a `'`, numbers are their plain text, quotes are added where RFC 4180 needs
    them, and an empty cell is "".
    """
    history = storage.stored_definitions(db, form.id)
    extra = storage.fields_in_answers(db, form.id, except_version=form.version)
    answer_columns = columns(form, history, extra)
    option_labels = _option_labels([*history, form])
    header = layout.header
    guard = _as_is if typed else guard_formula
    fixed = [*FIXED_COLUMNS, *(EVENT_COLUMNS if layout.event_details else ())]
    header_row = [name if header == "names" else label for name, label in fixed]
    kinds = ["number", "datetime" if typed else "text", *["text"] * (len(fixed) - 2)]
    cells: dict[str, Slot] = {}
    split: set[str] = set()  # multi questions given one 0/1 column per option
    for column in answer_columns:
        field = column.field
        if layout.multi == "columns" and field is not None and field.type == "multi":
            values = _option_values(field, option_labels)
            labels = option_labels.get(field.name, {})
            start = len(header_row)
            cells[column.name] = (start, start + len(values), None, _flags_converter(values, typed))
            split.add(column.name)
            for value in values:
                if header == "names":
                    header_row.append(f"{column.name}_{value}")
                else:
                    header_row.append(guard(f"{column.label}：{labels.get(value, value)}"))
                kinds.append("number")
            continue
        known, convert = _converter(column, header, option_labels, typed)
        cells[column.name] = (len(header_row), None, known, convert)
        name = column.name
        if field is None and name.endswith("_other") and name[:-6] in split:  # the 其他 text of a split question
            name += OTHER_TEXT_SUFFIX
        header_row.append(name if header == "names" else guard(column.label))
        kinds.append(_kind(column, typed))
    score = scorer(form)
    if score is not None:  # a quiz ends with its score
        header_row.append(SCORE_COLUMN[header])
        kinds.append("number")
    responses = _responses(db, form.id, filters, scope, layout.event_details, typed)
    blank = [None if typed else ""] * (len(header_row) - (score is not None))
    fix = _typed_fixed if typed else _csv_fixed if layout.event_details else None
    rows = _rows(responses, len(fixed), blank, cells, fix, _scored(score, typed) if score else None)
    return Table(header_row, rows, kinds)


def _responses(
    db: Database, form_id: str, filters: Filters, scope: Scope, event_details: bool, typed: bool
) -> Iterator[tuple[Any, ...]]:
    """(id, submitted_at, event[, title, county, township, venue type], answers JSON) of the
    responses the filters choose, oldest first, streamed from the cursor. For CSV, SQLite
    makes the id text and a missing event empty."""
    clause, params = where(form_id, filters, scope)
    fixed = f"{'r.id' if typed else 'CAST(r.id AS TEXT)'}, r.submitted_at, coalesce(r.event, '')"
    if event_details:
        details = ", ".join(f"coalesce(e.{c}, '')" for c in ("title", "county", "township", "venue_type"))
        sql = f"""SELECT {fixed}, {details}, r.answers FROM responses r LEFT JOIN events e ON e.code = r.event
                  WHERE {clause} ORDER BY r.id"""
    else:
        sql = f"SELECT {fixed}, r.answers FROM responses r WHERE {clause} ORDER BY r.id"
    return iter(db.execute(sql, params))


def _typed_fixed(line: list[Any]) -> None:
    line[1] = _moment(line[1])


def _csv_fixed(line: list[Any]) -> None:
    """An event's title and place are typed by staff: guarded and quoted like any text."""
    line[3:7] = [csv_field(guard_formula(text)) for text in line[3:7]]


def _scored(score: Callable[[dict[str, Any]], int], typed: bool) -> Callable[[dict[str, Any]], Any]:
    def cell(answers: dict[str, Any]) -> Any:
        points = score({k: list(v) if isinstance(v, tuple) else v for k, v in answers.items()})
        return points if typed else str(points)

    return cell


def _rows(
    responses: Iterator[tuple[Any, ...]],
    fixed: int,
    blank: list[Any],
    cells: dict[str, Slot],
    fix: Callable[[list[Any]], None] | None,
    score: Callable[[dict[str, Any]], Any] | None,
) -> Iterator[list[Any]]:
    """One list of cells per response.

    The loop runs a million times on big exports (profiled: docs/benchmarks.md), so each
    column's converter is chosen once; a row walks its answers (fewer than the form's
    columns), not the columns; and an answer that recurs (an option, a number) is one dict
    lookup, with no call.
    """
    decode = ANSWERS.decode
    for row in responses:
        line = blank.copy()
        line[:fixed] = row[:fixed]
        if fix is not None:
            fix(line)
        answers = decode(row[fixed])
        try:
            for name, value in answers.items():
                index, end, known, convert = cells[name]
                if end is not None:  # one answer, several cells (`--multi columns`)
                    if value is not None:
                        line[index:end] = convert(value)
                    continue
                if known is not None:
                    try:
                        line[index] = known[value]
                        continue
                    except KeyError:
                        pass
                if value is not None:
                    line[index] = convert(value)
        except (KeyError, TypeError):  # a key with no column, or an answer no dict key can be (an object)
            _convert_each(line, answers, cells)
        if score is not None:
            line.append(score(answers))
        yield line


def _convert_each(line: list[Any], answers: dict[str, Any], cells: dict[str, Slot]) -> None:
    """The row's cells the slow way: every answer through its converter, unknown keys left out."""
    for name, value in answers.items():
        if value is not None and name in cells:
            index, end, _, convert = cells[name]
            if end is None:
                line[index] = convert(value)
            else:
                line[index:end] = convert(value)


def _option_labels(definitions: list[Form]) -> dict[str, dict[str, str]]:
    """field name -> option value -> label, later definitions overriding earlier ones."""
    labels: dict[str, dict[str, str]] = {}
    for definition in definitions:
        for field in definition.answer_fields:
            labels.setdefault(field.name, {}).update({o.value: o.label for o in field.choices})
    return labels


def _converter(
    column: Column, header: Header, option_labels: dict[str, dict[str, str]], typed: bool
) -> tuple[dict[Any, Any] | None, Callable[[Any], Any]]:
    """How a column's stored answers (never None) become cells: the cells remembered for values
    that recur (or None), and the function that makes one."""
    field = column.field
    kind = field.type if field else "text"
    if kind in ("integer", "rating", "grid"):
        return (None, int) if typed else _remembering(_plain_integer, _is_number)
    if kind == "number":
        return (None, float) if typed else _remembering(_plain_number, _is_number)
    if kind == "consent":
        ticked = CONSENT_CELL[header]
        return None, lambda value: ticked if value else ("" if not typed else None)
    if kind in ("choice", "multi") and field is not None:
        labels = option_labels.get(field.name, {}) if header == "labels" else None
        return _choice_converter(field, labels, _as_is if typed else _csv_text)
    if kind == "date" and typed:
        return None, _day
    if kind in ("photo", "video"):  # the stored file names, `; ` between them (hex names never look like a formula)
        return None, _joined if typed else _csv_joined
    return None, _raw_text if typed else _text


def _remembering(
    convert: Callable[[Any], str], keep: Callable[[Any], bool]
) -> tuple[dict[Any, str], Callable[[Any], str]]:
    """A converter that remembers its cells for the values `keep` says are safe to remember."""
    known: dict[Any, str] = {}

    def cell(value: Any) -> str:
        made = convert(value)
        if keep(value) and len(known) < MAX_REMEMBERED_CHOICES:
            known[value] = made
        return made

    return known, cell


def _is_number(value: Any) -> bool:
    # True == 1 == 1.0 share a dict key; their cells are the same too ("1"), as numbers.
    return type(value) in (int, float)


def _plain_integer(value: Any) -> str:
    return str(int(value))


def _kind(column: Column, typed: bool) -> str:
    kind = column.field.type if column.field else "text"
    if kind in ("integer", "rating", "grid", "number"):
        return "number"
    return "date" if kind == "date" and typed else "text"


def _option_values(field: Field, option_labels: dict[str, dict[str, str]]) -> list[str]:
    """A multi question's options for `--multi columns`: as defined now, then any that only
    older versions of the form had (their answers are stored too)."""
    values = [o.value for o in field.choices]
    return values + [v for v in option_labels.get(field.name, {}) if v not in values]


def _flags_converter(values: list[str], typed: bool) -> Callable[[Any], list[Any]]:
    """A multi answer as one 0/1 per option (text for CSV); remembered, as few combinations recur."""
    position = {value: i for i, value in enumerate(values)}
    no, yes = (0, 1) if typed else ("0", "1")
    none = [no] * len(values)
    known: dict[tuple[Any, ...], list[Any]] = {}

    def convert(value: Any) -> list[Any]:
        chosen = tuple(value) if isinstance(value, list | tuple) else (value,)
        try:
            return known[chosen]
        except (KeyError, TypeError):  # TypeError: a stored value that cannot be a key
            pass
        flags = none.copy()
        for item in chosen:
            if isinstance(item, str) and (i := position.get(item)) is not None:
                flags[i] = yes
        if len(known) < MAX_REMEMBERED_CHOICES and all(isinstance(v, str) for v in chosen):
            known[chosen] = flags
        return flags

    return convert


def _moment(text: str) -> dt.datetime | str:
    """`submitted_at` for a spreadsheet: the China time it shows, as a datetime without zone."""
    try:
        return dt.datetime.fromisoformat(text).replace(tzinfo=None)
    except ValueError:
        return text


def _day(value: Any) -> dt.date | str:
    """A `date` answer as a date (a stored text that is not one stays text)."""
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        return _raw_text(value)


def _joined(value: Any) -> str:
    return "; ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def _csv_joined(value: Any) -> str:
    return csv_field(_joined(value))


def _choice_converter(
    field: Field, labels: dict[str, str] | None, finish: Callable[[str], str]
) -> tuple[dict[Any, str], Callable[[Any], str]]:
    """Options in definition order, as labels or values; remembered, as few combinations recur."""
    order = {o.value: i for i, o in enumerate(field.choices)}
    known: dict[Any, str] = {}

    def convert(value: Any) -> str:
        key = tuple(value) if isinstance(value, list | tuple) else value
        try:
            return known[key]
        except (KeyError, TypeError):  # TypeError: a stored value that cannot be a key
            pass
        values = value if isinstance(value, list | tuple) else [value]
        chosen = sorted(values, key=lambda v: order.get(v, len(order)))
        if labels is not None:
            chosen = [labels.get(v, v) for v in chosen]
        cell = finish("; ".join(str(v) for v in chosen))
        # Only strings are remembered: 1 == True would otherwise share a cell with "True".
        if len(known) < MAX_REMEMBERED_CHOICES and all(isinstance(v, str) for v in values):
            known[key] = cell
        return cell

    return known, convert


def _text(value: Any) -> str:
    """Any other answer as a CSV field: as text, guarded, quoted when needed."""
    return _csv_text(value if type(value) is str else _raw_text(value))


def _csv_text(text: str) -> str:
    """`csv_field(guard_formula(text))` in one call: it runs for every text cell of an export."""
    if text[:1] in _SUSPECT_FIRST and _FORMULA.match(text):
        text = "'" + text
    if '"' in text:
        return '"' + text.replace('"', '""') + '"'
    if "," in text or "\n" in text or "\r" in text:
        return '"' + text + '"'
    return text


def _raw_text(value: Any) -> str:
    if isinstance(value, list | tuple):  # a removed field we know nothing about
        return "; ".join(str(v) for v in value)
    return str(value)


def _plain_number(value: Any) -> str:
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def _as_is(text: str) -> str:
    return text


def csv_field(text: str) -> str:
    """A text as an RFC 4180 field, quoted exactly when `csv.writer` (QUOTE_MINIMAL, CRLF) would."""
    if '"' in text:
        return '"' + text.replace('"', '""') + '"'
    if "," in text or "\n" in text or "\r" in text:
        return '"' + text + '"'
    return text


def guard_formula(text: str) -> str:
    """Keep spreadsheets from running a CSV cell as a formula: a `'` before any that could be one."""
    return "'" + text if text[:1] in _SUSPECT_FIRST and _FORMULA.match(text) else text


def file_stem(form_id: str, filters: Filters) -> str:
    """An export's file name without suffix, saying what it holds: `consumer-survey_白沙_2026-09`."""
    return "_".join(_name_parts(form_id, filters))


def ascii_file_stem(form_id: str, filters: Filters) -> str:
    """The same name for clients that only take ASCII file names: the non-ASCII parts left out."""
    return "_".join(part for part in _name_parts(form_id, filters) if part.isascii())


def _name_parts(form_id: str, filters: Filters) -> list[str]:
    county = filters.county
    for suffix in ("黎族苗族自治县", "黎族自治县", "市", "县"):
        county = county.removesuffix(suffix)
    parts = [form_id, filters.event, county, filters.venue_type, _days(filters.date_from, filters.date_to)]
    return [part for part in parts if part] + (["含疑似垃圾"] if filters.include_spam else [])


def _days(first: str, last: str) -> str:
    """`2026-09` for a whole month, `2026-09-05` for one day, else `2026-09-01~2026-09-15`."""
    if first and last:
        if first == last:
            return first
        start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
        if start.day == 1 and first[:7] == last[:7] and (end + dt.timedelta(days=1)).day == 1:
            return first[:7]
    return f"{first}~{last}" if first or last else ""
