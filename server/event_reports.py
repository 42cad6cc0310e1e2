"""Event reports: what each event did, as staff filed it, and the province's review of it.

An event's report is its one response to the `kind = "event-report"` form (`form_id` = that
form's id, `event` = the event's code). The first save inserts it; later saves replace its
answers in place, send it back to the review queue (its `report_reviews` row goes) and
write an audit line saying what changed. Every save's submission key is kept
(`report_saves`), so a save sent twice from a phone's offline queue is applied once.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import Any

import msgspec
from sqlite_utils import Database

from server import accounts, photos, storage, videos
from server.campaign import COUNTIES
from server.clock import now
from server.forms import Field, Form
from server.scope import EVERYTHING, Scope
from server.storage import transaction

KIND = "event-report"
PENDING, APPROVED, RETURNED = "pending", "approved", "returned"
STATUS_LABELS = {PENDING: "待审核", APPROVED: "已通过", RETURNED: "已退回"}
NO_COUNTY = "（未填市县）"
MAX_COMMENT = 500
SHOWN_CHARS = 20  # of an old or new value in the audit line
_encoder = msgspec.json.Encoder()
_CLIP_NAME = re.compile(r"[0-9a-f]{64}\.(?:mp4|mov|webm)")


class ReportError(ValueError):
    """A review or save that cannot be done; the message is for the office (Chinese)."""


class Report(msgspec.Struct, frozen=True):
    """An event's report as stored, with the province's verdict (`pending` until reviewed)."""

    id: int
    event: str
    answers: dict[str, Any]
    submitted_at: str
    status: str = PENDING
    comment: str = ""
    reviewed_by: str = ""
    reviewed_at: str = ""

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.status]


class Saved(msgspec.Struct, frozen=True):
    response_id: int
    created: bool  # the first save of this event's report
    duplicate: bool  # this submission key was saved before: nothing changed
    changes: tuple[str, ...] = ()
    dropped_files: frozenset[str] = frozenset()  # photos and clips the save no longer holds


def report_form(forms: Iterable[Form]) -> Form | None:
    """The catalog's event-report form: the one named `event-report`, else the first of its kind."""
    candidates = [form for form in forms if form.kind == KIND]
    return next((f for f in candidates if f.id == KIND), candidates[0] if candidates else None)


_REPORT_COLUMNS = """r.id, r.event, r.answers, r.submitted_at,
    coalesce(v.status, 'pending'), coalesce(v.comment, ''), coalesce(v.reviewed_by, ''), coalesce(v.reviewed_at, '')"""


def _report(row: tuple) -> Report:
    return Report(row[0], row[1], msgspec.json.decode(row[2]), *row[3:])


def get_report(db: Database, form_id: str, code: str) -> Report | None:
    row = db.execute(
        f"""SELECT {_REPORT_COLUMNS} FROM responses r LEFT JOIN report_reviews v ON v.event = r.event
            WHERE r.form_id = ? AND r.event = ? ORDER BY r.id LIMIT 1""",
        [form_id, code],
    ).fetchone()
    return _report(row) if row else None


def file_names(form: Form, answers: dict[str, Any]) -> set[str]:
    """The photos and clips an answer set holds."""
    names: set[str] = set()
    for field in form.fields:
        if field.type == "photo":
            names.update(photos.names_in(answers.get(field.name)))
        elif field.type == "video":
            names.update(videos.names_in(answers.get(field.name)))
    return names


def already_saved(db: Database, key: str) -> bool:
    """Whether a save with this submission key was stored (a report's, or any response's)."""
    if db.execute("SELECT 1 FROM report_saves WHERE submission_key = ?", [key]).fetchone():
        return True
    return storage.receipt_for_key(db, key) is not None


def save_report(db: Database, form: Form, code: str, answers: dict[str, Any], key: str, username: str) -> Saved:
    """Store an event's report: insert the first, replace the answers of a later one in place
    (back to the review queue), audit-logged with what changed, all in one transaction."""
    with transaction(db):
        earlier = get_report(db, form.id, code)
        if already_saved(db, key):  # checked again inside the transaction: two sends may race
            return Saved(earlier.id if earlier else 0, created=False, duplicate=True)
        stamp = now().isoformat()
        db.execute(
            "INSERT OR IGNORE INTO form_versions VALUES (?, ?, ?, ?)",
            [form.id, form.version, _encoder.encode(form).decode(), stamp],
        )
        encoded = _encoder.encode(answers).decode()
        db.execute("INSERT INTO report_saves VALUES (?, ?, ?, ?)", [key, code, username, stamp])
        if earlier is None:
            response_id = db.execute(
                """INSERT INTO responses (form_id, form_version, event, submission_key, submitted_at, answers)
                   VALUES (?, ?, ?, ?, ?, ?) RETURNING id""",
                [form.id, form.version, code, key, stamp, encoded],
            ).fetchone()[0]
            accounts.log_action(db, username, "add-report", f"event {code} response {response_id}")
            return Saved(response_id, created=True, duplicate=False)
        changes = tuple(describe_changes(form, earlier.answers, answers))
        db.execute(
            "UPDATE responses SET answers = ?, form_version = ? WHERE id = ?", [encoded, form.version, earlier.id]
        )
        db.execute("DELETE FROM report_reviews WHERE event = ?", [code])
        detail = f"event {code} response {earlier.id}: " + ("；".join(changes) or "没有改动")
        accounts.log_action(db, username, "edit-report", detail)
    dropped = frozenset(file_names(form, earlier.answers) - file_names(form, answers))
    return Saved(earlier.id, created=False, duplicate=False, changes=changes, dropped_files=dropped)


def describe_changes(form: Form, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """`label：old → new` for each answer that changed, values shortened."""
    lines = []
    for field in form.answer_fields:
        before, after = old.get(field.name), new.get(field.name)
        if before != after:
            lines.append(f"{field.label}：{_shown(field, before)} → {_shown(field, after)}")
    return lines


def _shown(field: Field, value: Any) -> str:
    if value is None or value == "" or value == []:
        return "（空）"
    if field.type == "photo":
        return f"{len(photos.names_in(value))} 张照片"
    if field.type == "video":
        return f"{len(videos.names_in(value))} 段视频"
    if field.type in ("choice", "multi"):
        value = "、".join(field.option_label(str(v)) for v in (value if isinstance(value, list) else [value]))
    text = re.sub(r"\s+", " ", str(value)).strip()
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def remove_unused_files(db: Database, names: Iterable[str]) -> int:
    """Delete the files of photos and clips that no stored response names any more."""
    names = set(names)
    removed = storage.remove_unused_photos(db, {n for n in names if photos.NAME.match(n)})
    clips = {n for n in names if videos.NAME.match(n)}
    if clips:
        in_use: set[str] = set()
        for (answers,) in db.execute("SELECT answers FROM responses WHERE answers GLOB '*.mp4*' OR "
                                     "answers GLOB '*.mov*' OR answers GLOB '*.webm*'"):  # fmt: skip
            in_use.update(_CLIP_NAME.findall(answers))
        removed += videos.remove(videos.folder_for(storage.database_path(db)), clips - in_use)
    return removed


# Review -------------------------------------------------------------------------------------


def review_report(db: Database, form_id: str, code: str, status: str, comment: str, username: str) -> Report:
    """The province's verdict: `approved`, or `returned` with a comment saying what to fix."""
    comment = comment.strip()
    if status not in (APPROVED, RETURNED):
        raise ReportError("请选择“通过”或“退回”")
    if status == RETURNED and not comment:
        raise ReportError("退回时请写明需要修改的地方")
    if len(comment) > MAX_COMMENT:
        raise ReportError(f"意见最多 {MAX_COMMENT} 字（现在是 {len(comment)} 字）")
    with transaction(db):
        report = get_report(db, form_id, code)
        if report is None:
            raise ReportError("这场活动还没有填报开展情况，不能审核")
        db.execute(
            "INSERT OR REPLACE INTO report_reviews VALUES (?, ?, ?, ?, ?)",
            [code, status, comment, username, now().isoformat()],
        )
        action = "approve-report" if status == APPROVED else "return-report"
        detail = f"event {code} response {report.id}" + (f"：{comment}" if comment else "")
        accounts.log_action(db, username, action, detail)
    reviewed = get_report(db, form_id, code)
    assert reviewed is not None
    return reviewed


def chosen_photos(db: Database, names: Iterable[str]) -> set[str]:
    """Which of these photos are marked 选入总结."""
    names = list(names)
    if not names:
        return set()
    marks = ", ".join("?" * len(names))
    return {row[0] for row in db.execute(f"SELECT name FROM chosen_photos WHERE name IN ({marks})", names)}


def choose_photo(db: Database, name: str, chosen: bool, username: str, code: str) -> None:
    """Mark a photo for the summary document, or take the mark away (audit-logged)."""
    with transaction(db):
        if chosen:
            db.execute("INSERT OR IGNORE INTO chosen_photos VALUES (?, ?, ?)", [name, username, now().isoformat()])
        else:
            db.execute("DELETE FROM chosen_photos WHERE name = ?", [name])
        accounts.log_action(db, username, "choose-photo" if chosen else "unchoose-photo", f"event {code} photo {name}")


# Lists and progress ---------------------------------------------------------------------------


class ReportRow(msgspec.Struct, frozen=True):
    code: str
    title: str
    county: str
    date: str
    created_by: str
    report: Report


def list_reports(
    db: Database, form_id: str, *, county: str = "", status: str = "", scope: Scope = EVERYTHING
) -> list[ReportRow]:
    """Filed reports of the events in scope, newest first; filtered by 市县 and review status."""
    where, params = ["r.form_id = ?"], [form_id]
    if county:
        where.append("e.county = ?")
        params.append(county)
    if status:
        where.append("coalesce(v.status, 'pending') = ?")
        params.append(status)
    if not scope.everything:
        condition, scoped = scope.events_sql("e")
        where.append(condition)
        params += scoped
    rows = db.execute(
        f"""SELECT e.code, e.title, e.county, e.date, e.created_by, {_REPORT_COLUMNS}
            FROM responses r JOIN events e ON e.code = r.event LEFT JOIN report_reviews v ON v.event = r.event
            WHERE {" AND ".join(where)} ORDER BY r.submitted_at DESC, r.id DESC""",
        params,
    )
    return [ReportRow(row[0], row[1], row[2], row[3], row[4], _report(row[5:])) for row in rows]


class Progress(msgspec.Struct, frozen=True):
    """One 市县's events and their reports, for the dashboard."""

    county: str
    planned: int = 0  # events in the schedule
    held: int = 0  # reports saying the event was held
    reported: int = 0
    approved: int = 0
    returned: int = 0
    missing: int = 0  # the event's day has passed and nothing was filed

    @property
    def named(self) -> bool:
        """A 市县 of the campaign (not the row of events without one, nor the total)."""
        return self.county in COUNTIES


class ProgressTable(msgspec.Struct, frozen=True):
    rows: list[Progress]
    total: Progress


def progress(db: Database, form_id: str | None, today: dt.date, *, scope: Scope = EVERYTHING) -> list[Progress]:
    """Per 市县 (every county of the campaign, zeros included, in the campaign's order; events
    without a 市县 last, when there are any). An account that sees less counts only its events:
    a county its own row, staff and co-hosts the rows that hold their events."""
    where, params = [], [form_id or "", today.isoformat()]
    if not scope.everything:
        condition, scoped = scope.events_sql("e")
        where.append(condition)
        params += scoped
    rows = db.execute(
        f"""SELECT e.county, count(*),
                   total(json_extract(r.answers, '$.held') = 'yes'),
                   total(r.id IS NOT NULL),
                   total(v.status = 'approved'),
                   total(v.status = 'returned'),
                   total(r.id IS NULL AND e.date != '' AND e.date < ?2)
            FROM events e
            LEFT JOIN responses r ON r.id = (SELECT min(id) FROM responses WHERE form_id = ?1 AND event = e.code)
            LEFT JOIN report_reviews v ON v.event = e.code AND r.id IS NOT NULL
            {"WHERE " + " AND ".join(where) if where else ""}
            GROUP BY e.county""",
        params,
    ).fetchall()
    found = {row[0]: Progress(row[0] or NO_COUNTY, *(int(n) for n in row[1:])) for row in rows}
    if scope.county is not None:
        return [found.get(scope.county, Progress(scope.county))]
    if not scope.everything:
        return [found[c] for c in (*COUNTIES, "") if c in found]
    return [found.get(c, Progress(c)) for c in COUNTIES] + ([found[""]] if "" in found else [])


def progress_table(db: Database, forms: Iterable[Form], today: dt.date, *, scope: Scope = EVERYTHING) -> ProgressTable:
    """The dashboard's table: `progress` with its total row."""
    form = report_form(forms)
    rows = progress(db, form.id if form else None, today, scope=scope)
    fields = ("planned", "held", "reported", "approved", "returned", "missing")
    return ProgressTable(rows, Progress("合计", *(sum(getattr(row, name) for row in rows) for name in fields)))


def report_of_event(db: Database, forms: Iterable[Form], code: str) -> Report | None:
    """An event's report, when the catalog has a report form and the event has one."""
    form = report_form(forms)
    return get_report(db, form.id, code) if form else None
