"""Results for the office: filters, counts per option, averages, recent answers, masking.

Counting happens in SQLite (`json_each` over the stored answers, one pass per kind of
question), so a results page stays quick with 100,000 responses: Python only sees the
grouped counts. Filters arrive from a query string people can edit, so each value is
checked and a bad one is a Chinese message, never a 5xx.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

import msgspec
from sqlite_utils import Database

from server.campaign import county_named, venue_type_named
from server.clock import now, parse_day
from server.events import normalize_code
from server.forms import Field, Form
from server.quiz import right_values
from server.scope import EVERYTHING, Scope
from server.storage import stored_definitions

RECENT_TEXTS = 5
RANKED_TOWNS = 10
TEXT_TYPES = ("text", "textarea")
NUMBER_TYPES = ("integer", "number", "rating")


SPAM_INCLUDED = "include"


class Filters(msgspec.Struct, frozen=True):
    """Which responses a page, an export or a report is about: the one filter model.

    The results and responses pages, every export (web, command line, the export process)
    and the report's dates take these, from `parse_filters`, and `where` makes them SQL.
    """

    event: str = ""
    county: str = ""
    venue_type: str = ""
    date_from: str = ""  # YYYY-MM-DD, inclusive
    date_to: str = ""  # YYYY-MM-DD, inclusive
    spam: str = ""  # "include": suspected spam too (left out otherwise)

    @property
    def include_spam(self) -> bool:
        return self.spam == SPAM_INCLUDED

    def query(self, **changes: str) -> str:
        """The filters as a query string (for links that keep them)."""
        values = msgspec.structs.asdict(msgspec.structs.replace(self, **changes))
        return urlencode({k: v for k, v in values.items() if v})


# The days a filter takes: any campaign's, and each one has a next day to compare with
# (`9999-12-31` has none: date + 1 day overflows).
FIRST_DAY, LAST_DAY = "2000-01-01", "2099-12-31"


def day_out_of_range(label: str, day: str) -> str:
    return f"{label} {day} 超出范围，应在 {FIRST_DAY} 到 {LAST_DAY} 之间"


def parse_filters(query: Mapping[str, str]) -> tuple[Filters, list[str]]:
    """Filters from a query string, and a Chinese message for each value that is not valid.

    Keys as on the results page: `event`, `county` (`白沙` or `白沙黎族自治县`), `venue_type`,
    `date_from` and `date_to` (days as people write them: `2022/9/1`), `spam=include`.
    """
    problems = []
    event = ""
    if raw := query.get("event", "").strip():
        event = normalize_code(raw) or ""
        if not event:
            problems.append(f"活动编号 {raw!r} 不对")
    county = ""
    if raw := query.get("county", "").strip():
        county = county_named(raw) or ""
        if not county:
            problems.append(f"市县 {raw!r} 不是海南省的市县")
    venue_type = ""
    if raw := query.get("venue_type", "").strip():
        venue_type = venue_type_named(raw) or ""
        if not venue_type:
            problems.append(f"场所类型 {raw!r} 不对")
    days: dict[str, str] = {}
    for key, label in (("date_from", "开始日期"), ("date_to", "结束日期")):
        raw = query.get(key, "").strip()
        day = parse_day(raw) if raw else ""
        if day is None:
            problems.append(f"{label} {raw!r} 不对，应写成 2022-09-15")
            day = ""
        elif day and not FIRST_DAY <= day <= LAST_DAY:
            problems.append(day_out_of_range(label, day))
            day = ""
        days[key] = day
    if days["date_from"] and days["date_to"] and days["date_from"] > days["date_to"]:
        problems.append("开始日期晚于结束日期")
    spam = query.get("spam", "").strip()
    if spam not in ("", SPAM_INCLUDED):
        problems.append(f"疑似垃圾答卷的选项 {spam!r} 不对，只能是 {SPAM_INCLUDED}")
        spam = ""
    return Filters(event, county, venue_type, days["date_from"], days["date_to"], spam), problems


def where(form_id: str, filters: Filters, scope: Scope = EVERYTHING) -> tuple[str, list[Any]]:
    """The WHERE clause over `responses r` for a form, the filters and an office account's
    scope (`server.scope`: staff see their own events, a county its 市县's).

    Suspected spam (the honeypot was filled) is left out unless the filters include it: this
    is the one place that decides it for pages and exports.
    """
    clauses, params = ["r.form_id = ?"], [form_id]
    if not filters.include_spam:
        clauses.append("r.suspected_spam = 0")
    if filters.event:
        clauses.append("r.event = ?")
        params.append(filters.event)
    given = {"county": filters.county, "venue_type": filters.venue_type}
    wanted = {column: value for column, value in given.items() if value}
    if wanted:  # through the events
        conditions = " AND ".join(f"{column} = ?" for column in wanted)
        clauses.append(f"r.event IN (SELECT code FROM events WHERE {conditions})")
        params += wanted.values()
    if not scope.everything:
        condition, scoped = scope.responses_sql("r.event")
        clauses.append(condition)
        params += scoped
    if filters.date_from:
        clauses.append("r.submitted_at >= ?")
        params.append(filters.date_from)
    if filters.date_to:
        clauses.append("r.submitted_at < ?")
        params.append((dt.date.fromisoformat(filters.date_to) + dt.timedelta(days=1)).isoformat())
    return " AND ".join(clauses), params


class OptionCount(msgspec.Struct, frozen=True):
    label: str
    count: int
    percent: float


class RowResult(msgspec.Struct, frozen=True):
    """One row of a grid: its answers on the grid's scale."""

    label: str
    answered: int
    average: float | None
    options: list[OptionCount]


class FieldResult(msgspec.Struct, frozen=True):
    field: Field
    answered: int
    options: list[OptionCount] = []
    average: float | None = None
    texts: list[tuple[str, str]] = []  # (submitted_at, text), newest first
    rows: list[RowResult] = []  # a grid's rows
    correct: int | None = None  # a quiz question: how many answered it right
    photos: int | None = None  # a photo question: how many pictures its answers hold


class Summary(msgspec.Struct, frozen=True):
    total: int
    today: int
    fields: list[FieldResult]


def summarize(db: Database, form: Form, filters: Filters, scope: Scope = EVERYTHING) -> Summary:
    """Counts for every question in one pass over the answers (one `json_each` scan).

    Questions whose answers are counted by value (choices, numbers, ratings) are grouped by
    their stored JSON value; a multi answer groups as its whole list, which is split here,
    so the few distinct combinations cross into Python rather than every response.
    """
    clause, params = where(form.id, filters, scope)
    total, today = db.execute(
        f"SELECT count(*), total(r.submitted_at >= ?) FROM responses r WHERE {clause}",
        [now().date().isoformat(), *params],
    ).fetchone()
    fields = [f for f in form.answer_fields if f.type != "consent"]
    personal = personal_fields_of(db, form.id, form)
    by_value = [f.name for f in fields if f.type in ("choice", "multi", "hidden", "region", *NUMBER_TYPES)]
    by_value += [name for f in fields if f.type == "grid" for name in f.answer_names]
    counts: dict[str, dict[Any, int]] = {name: {} for f in fields for name in (f.name, *f.answer_names)}
    answered: dict[str, int] = {}
    for name, value, kind, count in db.execute(
        f"""SELECT j.key, CASE WHEN j.key IN ({", ".join("?" * len(by_value)) or "NULL"}) THEN j.value END AS value,
                   j.type, count(*)
            FROM responses r, json_each(r.answers) j WHERE {clause} GROUP BY j.key, value""",
        [*by_value, *params],
    ):
        answered[name] = answered.get(name, 0) + count
        if name in counts and value is not None:
            for item in msgspec.json.decode(value) if kind == "array" else [value]:
                counts[name][item] = counts[name].get(item, 0) + count
    results = [
        _grid_result(f, counts, answered) if f.type == "grid"
        else _field_result(db, f, counts[f.name], answered.get(f.name, 0), clause, params, f.name in personal)
        for f in fields
    ]  # fmt: skip
    if form.quiz_fields:
        right = _right_answers(db, form, clause, params)
        results = [
            msgspec.structs.replace(r, correct=right[r.field.name]) if r.field.name in right else r for r in results
        ]
    return Summary(total, int(today), results)


def _right_answers(db: Database, form: Form, clause: str, params: list[Any]) -> dict[str, int]:
    """How many answered each quiz question right, in one pass: a stored answer is the right
    one exactly when it equals the right value (a multi: the right list, in definition order)."""
    fields = form.quiz_fields
    arguments: list[Any] = []
    for field in fields:
        right = right_values(field)
        arguments += [f"$.{field.name}", right[0] if field.type == "choice" else msgspec.json.encode(right).decode()]
    sums = ", ".join("total(json_extract(r.answers, ?) = ?)" for _ in fields)
    row = db.execute(f"SELECT {sums} FROM responses r WHERE {clause}", arguments + params).fetchone()
    return {f.name: int(n) for f, n in zip(fields, row, strict=True)}


def _field_result(
    db: Database, field: Field, counts: dict[Any, int], answered: int, clause: str, params: list[Any], personal: bool
) -> FieldResult:
    if field.type in ("choice", "multi"):
        labels = {o.value: o.label for o in field.choices}
        ordered = [*labels, *sorted(str(v) for v in counts.keys() - labels.keys())]  # removed options last
        options = [
            OptionCount(labels.get(v, v), counts.get(v, 0), _percent(counts.get(v, 0), answered)) for v in ordered
        ]
        return FieldResult(field, answered, options=options)
    if field.type in NUMBER_TYPES:
        total = sum(counts.values())
        average = sum(float(v) * c for v, c in counts.items()) / total if total else None
        options = _points(counts, field.scale, field.labels) if field.type == "rating" else []
        return FieldResult(field, answered, options=options, average=average)
    if field.type == "region":  # by 市县, and the 乡镇 most answered
        counties: dict[str, int] = {}
        for place, count in counts.items():
            county = str(place).split("/")[0]
            counties[county] = counties.get(county, 0) + count
        towns = _ranked(counts, answered)[:RANKED_TOWNS] if field.levels == 2 else []
        by_town = [RowResult(f"乡镇（前 {RANKED_TOWNS} 名）", answered, None, towns)] if towns else []
        return FieldResult(field, answered, options=_ranked(counties, answered), rows=by_town)
    if field.type == "photo":  # responses with photos (`answered`) and the photos in them
        row = db.execute(
            f"SELECT total(json_array_length(r.answers, ?)) FROM responses r WHERE {clause}",
            [f"$.{field.name}", *params],
        ).fetchone()
        return FieldResult(field, answered, photos=int(row[0]))
    if field.type == "hidden":  # where responses came from (`?src=poster`): the most frequent first
        return FieldResult(field, answered, options=_ranked(counts, answered))
    if field.type in TEXT_TYPES and not personal:  # personal in any version: never shown
        rows = db.execute(
            f"""SELECT r.submitted_at, json_extract(r.answers, ?) AS text FROM responses r
                WHERE {clause} AND text IS NOT NULL ORDER BY r.id DESC LIMIT {RECENT_TEXTS}""",
            [f"$.{field.name}", *params],
        ).fetchall()
        return FieldResult(field, answered, texts=[(at, str(text)) for at, text in rows])
    return FieldResult(field, answered)


def _grid_result(field: Field, counts: dict[str, dict[Any, int]], answered: dict[str, int]) -> FieldResult:
    """Per row: the average and how many chose each point, highest point first."""
    rows = []
    for name, row in zip(field.answer_names, field.rows, strict=True):
        points = counts[name]
        total = sum(points.values())
        average = sum(float(v) * c for v, c in points.items()) / total if total else None
        rows.append(RowResult(row.label, answered.get(name, 0), average, _points(points, field.scale)))
    return FieldResult(field, max((r.answered for r in rows), default=0), rows=rows)


def _ranked(counts: dict[Any, int], answered: int) -> list[OptionCount]:
    """Values as they were answered, the most frequent first."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))
    return [OptionCount(str(value), count, _percent(count, answered)) for value, count in ranked]


def _points(counts: dict[Any, int], scale: int, words: tuple[str, ...] = ()) -> list[OptionCount]:
    """How many chose each point of a scale, highest first (`5 分 很满意` when it has words)."""
    total = sum(counts.values())
    named = [f"{n} 分 {words[n - 1]}" if words else f"{n} 分" for n in range(1, scale + 1)]
    return [OptionCount(named[n - 1], counts.get(n, 0), _percent(counts.get(n, 0), total)) for n in range(scale, 0, -1)]


def _percent(count: int, of: int) -> float:
    return round(100 * count / of, 1) if of else 0.0


def personal_fields(definitions: Iterable[Form]) -> dict[str, Field]:
    """Answer key -> the field to mask it by, for every key personal in any of the definitions.

    A question stays personal once any stored version said so, even after it is removed
    from the file or loses `personal`. The 其他 text (`<name>_other`) of a personal question
    is personal too. A later definition's field wins, so its type picks the mask.
    """
    personal: dict[str, Field] = {}
    for definition in definitions:
        for field in definition.fields:
            if field.personal:
                personal[field.name] = field
                if field.type in ("choice", "multi"):  # whether or not this version has `other`
                    personal[field.other_name] = Field(field.other_name, "text", personal=True)
    return personal


def personal_fields_of(db: Database, form_id: str, current: Form | None = None) -> dict[str, Field]:
    """`personal_fields` over every stored version of a form and its current file (once per page)."""
    return personal_fields([*stored_definitions(db, form_id), *([current] if current else [])])


def mask(field: Field | None, value: Any) -> str:
    """What an office screen shows of an answer: personal ones masked (`138****5678`, `张**`)."""
    if value is None or value == "":
        return ""
    text = "; ".join(map(str, value)) if isinstance(value, list) else str(value)
    if field is None or not field.personal:
        return text
    if field.type == "phone" and len(text) == 11:
        return f"{text[:3]}****{text[-4:]}"
    if field.type == "email" and "@" in text:
        local, _, domain = text.partition("@")
        return f"{local[:1]}***@{domain}"
    return text[:1] + "*" * min(max(len(text) - 1, 2), 6)
