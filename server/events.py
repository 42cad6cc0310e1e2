"""Events: a form used at a place on a day, with a short code for its URL and QR code.

An event is what the office counts by: county, venue type, organizer. Its code is short
enough to type from a poster (7 characters, no look-alikes such as 0/O or 1/I/L) and
random enough not to be guessed (31⁷ ≈ 2.75 × 10¹⁰).

Events are made by `quality-forms event add`, from a schedule spreadsheet by
`quality-forms event import`, and later by staff in the browser. Errors are Chinese:
the people who fill the schedule read them.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import secrets
import sqlite3
from collections.abc import Iterable, Mapping

import msgspec
from sqlite_utils import Database

from server.campaign import COUNTIES, VENUE_TYPES, county_named, venue_type_named
from server.clock import now, parse_day
from server.errors import InputError
from server.forms import Form
from server.scope import EVERYTHING, Scope
from server.storage import transaction

CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 7
CODE_PATTERN = re.compile(rf"^[{CODE_ALPHABET}]{{{CODE_LENGTH}}}$")
# Residents may fill the form at home after the event; after this many days it is closed.
GRACE_DAYS = 7
MAX_TEXT = 100


class Event(msgspec.Struct, frozen=True):
    code: str
    form_id: str
    title: str
    venue_type: str = "其他"
    county: str = ""
    township: str = ""
    venue: str = ""
    date: str = ""  # YYYY-MM-DD, or empty when not fixed
    organizer: str = ""
    expected: int | None = None  # expected attendance
    created_at: str = ""
    created_by: str = ""  # the office account that made it; empty from the command line

    @property
    def place(self) -> str:
        return " ".join(part for part in (self.county, self.township, self.venue) if part)

    @property
    def path(self) -> str:
        return f"/e/{self.code}"

    def last_day(self) -> dt.date | None:
        """The last day responses are taken (the event day plus the grace days)."""
        if not self.date:
            return None
        day = dt.date.fromisoformat(self.date)
        return day + dt.timedelta(days=min(GRACE_DAYS, (dt.date.max - day).days))  # 9999-12-31 has no day after

    def state(self, form: Form, at: dt.datetime | None = None) -> str:
        """The form's state (`open`, `upcoming`, `closed`), or `ended` after the last day."""
        at = at or now()
        state = form.state(at)
        last_day = self.last_day()
        if state == "open" and last_day is not None and at.date() > last_day:
            return "ended"
        return state


class EventError(InputError):
    """What is wrong with an event, one Chinese line per problem."""


def normalize_code(text: str) -> str | None:
    """`7kq3mzp` as typed from a poster → `7KQ3MZP`; None when it cannot be a code."""
    code = text.strip().upper()
    return code if CODE_PATTERN.match(code) else None


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def make_event(forms: Mapping[str, Form], values: Mapping[str, str]) -> Event:
    """An event from what a person typed; raise EventError listing every problem.

    `values` has the keys form, title, venue_type, county, township, venue, date,
    organizer, expected; missing or empty ones take their defaults. The form may be
    named by its id or its exact title.
    """
    text = {key: (values.get(key) or "").strip() for key in IMPORT_HEADERS}
    problems: list[str] = []
    form = forms.get(text["form"]) or next((f for f in forms.values() if f.title == text["form"]), None)
    if not text["form"]:
        problems.append("缺少问卷")
    elif form is None:
        problems.append(f"没有问卷 {text['form']!r}（可用：{'、'.join(sorted(forms)) or '无'}）")
    if not text["title"]:
        problems.append("缺少活动名称")
    for key in ("title", "township", "venue", "organizer"):
        if len(text[key]) > MAX_TEXT:
            problems.append(f"{LABELS[key]}超过 {MAX_TEXT} 个字")
    venue_type = venue_type_named(text["venue_type"]) if text["venue_type"] else "其他"
    if venue_type is None:
        problems.append(f"场所类型 {text['venue_type']!r} 不对，应为 {'/'.join(VENUE_TYPES)} 之一")
    county = county_named(text["county"]) if text["county"] else ""
    if county is None:
        problems.append(f"市县 {text['county']!r} 不是海南省的市县（如 {COUNTIES[0]}、{COUNTIES[13]}）")
    date = parse_day(text["date"]) if text["date"] else ""
    if date is None:
        problems.append(f"日期 {text['date']!r} 不对，应写成 2022-09-15")
    expected = None
    if text["expected"]:
        digits = text["expected"].replace(",", "").replace("人", "")
        if digits.isascii() and digits.isdigit() and len(digits) <= 7 and int(digits) <= 1_000_000:
            expected = int(digits)
        else:
            problems.append(f"预计人数 {text['expected']!r} 应为整数")
    if problems:
        raise EventError(problems)
    assert form is not None and venue_type is not None and county is not None and date is not None
    return Event(
        code="",
        form_id=form.id,
        title=text["title"],
        venue_type=venue_type,
        county=county,
        township=text["township"],
        venue=text["venue"],
        date=date,
        organizer=text["organizer"],
        expected=expected,
    )


def add_events(db: Database, events: Iterable[Event]) -> list[Event]:
    """Store new events in one transaction, each with a fresh code; all or none."""
    stamp = now().isoformat(timespec="seconds")
    stored = []
    with transaction(db):
        for event in events:
            while True:
                event = msgspec.structs.replace(event, code=new_code(), created_at=stamp)
                try:
                    db.execute(
                        f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                        [getattr(event, c) for c in COLUMNS],
                    )
                    break
                except sqlite3.IntegrityError:  # the code was taken: draw again
                    continue
            stored.append(event)
    return stored


COLUMNS = tuple(Event.__struct_fields__)


def get_event(db: Database, code: str) -> Event | None:
    """The event of a code as typed from a poster (any case); None when there is none."""
    normal = normalize_code(code)
    row = db.execute(f"SELECT {', '.join(COLUMNS)} FROM events WHERE code = ?", [normal]).fetchone() if normal else None
    return Event(*row) if row else None


class EventCount(msgspec.Struct, frozen=True):
    event: Event
    responses: int


def list_events(
    db: Database,
    form_id: str | None = None,
    county: str | None = None,
    created_by: str | None = None,
    scope: Scope = EVERYTHING,
) -> list[EventCount]:
    """Events by date (undated last), with their numbers of responses (from the counts the
    database keeps, so a long list does not count every response); only those an office
    account's `scope` holds."""
    condition, params = scope.events_sql("e")
    where = [condition]
    if created_by is not None:
        where.append("e.created_by = ?")
        params.append(created_by)
    if form_id:
        where.append("e.form_id = ?")
        params.append(form_id)
    if county:
        where.append("e.county = ?")
        params.append(county)
    sql = f"""
        SELECT {", ".join("e." + c for c in COLUMNS)},
               (SELECT coalesce(sum(n), 0) FROM response_counts c WHERE c.event = e.code) AS responses
        FROM events e WHERE {" AND ".join(where)}
        ORDER BY e.date = '', e.date, e.county, e.created_at, e.code"""
    return [EventCount(Event(*row[:-1]), row[-1]) for row in db.execute(sql, params)]


# The schedule spreadsheet: Chinese headers as the office writes them (English accepted).
IMPORT_HEADERS = {
    "form": ("问卷", "问卷编号", "form"),
    "title": ("活动名称", "名称", "title"),
    "venue_type": ("场所类型", "类型", "venue_type"),
    "county": ("市县", "市县名称", "county"),
    "township": ("乡镇", "乡镇（街道）", "乡镇街道", "township"),
    "venue": ("场所", "地点", "活动地点", "venue"),
    "date": ("日期", "活动日期", "date"),
    "organizer": ("主办单位", "组织单位", "organizer"),
    "expected": ("预计人数", "人数", "expected"),
}
LABELS = {key: names[0] for key, names in IMPORT_HEADERS.items()}
REQUIRED_HEADERS = ("form", "title")


def decode_schedule(data: bytes) -> str:
    """The text of a CSV saved by Excel or WPS: UTF-8 (with or without BOM) or GBK."""
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise EventError(["文件编码不对：请在 Excel/WPS 里另存为“CSV UTF-8”或“CSV（逗号分隔）”"])


def read_schedule(data: bytes, forms: Mapping[str, Form]) -> list[Event]:
    """Every event of a schedule file, or EventError naming each bad line: all or nothing."""
    reader = csv.reader(io.StringIO(decode_schedule(data), newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise EventError(["文件是空的"]) from None
    except csv.Error as exc:
        raise EventError([f"第 1 行：CSV 格式错误（{exc}）"]) from None
    columns = _columns(header)
    events: list[Event] = []
    problems: list[str] = []
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            line = reader.line_num
            if len(row) > len(header):
                problems.append(f"第 {line} 行：比表头多了 {len(row) - len(header)} 列（是否有没加引号的逗号？）")
                continue
            values = {key: row[index] if index < len(row) else "" for key, index in columns.items()}
            try:
                events.append(make_event(forms, values))
            except EventError as exc:
                problems.extend(f"第 {line} 行：{message}" for message in exc.messages)
    except csv.Error as exc:
        problems.append(f"第 {reader.line_num} 行：CSV 格式错误（{exc}）")
    if problems:
        raise EventError(problems)
    if not events:
        raise EventError(["文件里没有活动"])
    return events


def _columns(header: list[str]) -> dict[str, int]:
    """Which column holds which key; unknown or missing headers are errors."""
    known = {name.lower(): key for key, names in IMPORT_HEADERS.items() for name in names}
    columns: dict[str, int] = {}
    problems = []
    for index, name in enumerate(header):
        key = known.get(name.strip().lower())
        if key is None and name.strip():
            problems.append(f"第 1 行：不认识的列 {name.strip()!r}")
        elif key in columns:
            problems.append(f"第 1 行：列 {name.strip()!r} 重复了")
        elif key:
            columns[key] = index
    missing = [LABELS[key] for key in REQUIRED_HEADERS if key not in columns]
    if missing:
        problems.append(f"第 1 行：缺少列 {'、'.join(missing)}（表头应为：{'、'.join(LABELS.values())}）")
    if problems:
        raise EventError(problems)
    return columns
