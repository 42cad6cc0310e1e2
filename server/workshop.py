"""The form workshop: drafts, publishing, history, closing early — forms made in the office.

A draft is a form's TOML text kept in the database (`form_drafts`); it never changes what
residents see. Publishing checks the text, writes `forms/<id>.toml` atomically (a temporary
file in the same folder, fsync, rename) and adds the text to `form_history`, after the file
it replaces when that was never published here. Drafts and history live in the database,
so backups carry them. Every change is in the audit log, in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import difflib
import os
import re
import secrets
import tomllib
from pathlib import Path

import msgspec
from sqlite_utils import Database

from server import accounts
from server.campaign import Campaign
from server.clock import now
from server.forms import FORM_ID, Field, Form, Problem, check_forms, check_text
from server.storage import transaction
from server.toml_lines import TextMap

RESERVED_IDS = {"new", "import"}  # /admin/forms/new and /admin/forms/import are office pages
CLOSES_LINE = re.compile(r"^\s*closes\s*=\s*(.*?)\s*(#.*)?$")
CLOSED_EARLY = "# 提前结束，原来的截止时间："
MAX_TEXT = 200_000  # characters of TOML: the longest bundled form is about 8 000


class WorkshopError(ValueError):
    """A change the workshop refuses, said in one Chinese sentence."""


class Draft(msgspec.Struct, frozen=True):
    form_id: str
    toml: str
    saved_by: str
    saved_at: str


class Version(msgspec.Struct, frozen=True):
    """A published text: `action` is publish, close, reopen, or found (a file from before)."""

    id: int
    form_id: str
    toml: str
    action: str
    by: str
    at: str


ACTION_LABELS = {"publish": "发布", "close": "提前结束", "reopen": "重新开放", "found": "原有文件"}


# Drafts ---------------------------------------------------------------------------------


def get_draft(db: Database, form_id: str) -> Draft | None:
    sql = "SELECT form_id, toml, saved_by, saved_at FROM form_drafts WHERE form_id = ?"
    row = db.execute(sql, [form_id]).fetchone()
    return Draft(*row) if row else None


def list_drafts(db: Database) -> dict[str, Draft]:
    rows = db.execute("SELECT form_id, toml, saved_by, saved_at FROM form_drafts ORDER BY form_id").fetchall()
    return {row[0]: Draft(*row) for row in rows}


def save_draft(db: Database, form_id: str, text: str, username: str, action: str = "save-draft") -> None:
    """Keep the text as the form's draft (replacing the last one); broken text is kept too."""
    if len(text) > MAX_TEXT:
        raise WorkshopError(f"表单内容太长（最多 {MAX_TEXT} 个字符）")
    with transaction(db):
        db.execute(
            """INSERT INTO form_drafts (form_id, toml, saved_by, saved_at) VALUES (?, ?, ?, ?)
               ON CONFLICT (form_id) DO UPDATE SET toml = excluded.toml, saved_by = excluded.saved_by,
                                                  saved_at = excluded.saved_at""",
            [form_id, text, username, now().isoformat(timespec="seconds")],
        )
        accounts.log_action(db, username, action, f"form {form_id}")


def discard_draft(db: Database, form_id: str, username: str) -> None:
    with transaction(db):
        db.execute("DELETE FROM form_drafts WHERE form_id = ?", [form_id])
        accounts.log_action(db, username, "discard-draft", f"form {form_id}")


def new_form_problem(db: Database, forms_dir: Path, form_id: str) -> str:
    """Why a new form may not take this id (a Chinese sentence), or '' when it may."""
    if not FORM_ID.match(form_id):
        return "编号只能用小写英文字母、数字和连字符（-），以字母或数字开头，最长 64 个字符，如 lift-quiz-2026"
    if form_id in RESERVED_IDS or form_id == "campaign":
        return f"编号 {form_id} 是系统保留的，请换一个"
    if live_text(forms_dir, form_id) is not None or get_draft(db, form_id) is not None:
        return f"已经有编号为 {form_id} 的表单（或草稿），请换一个"
    return ""


# Published texts and their history --------------------------------------------------------


def form_path(forms_dir: Path, form_id: str) -> Path:
    return forms_dir / f"{form_id}.toml"


def live_text(forms_dir: Path, form_id: str) -> str | None:
    """The text of forms/<id>.toml, or None when there is no such file (or it is not UTF-8)."""
    if not FORM_ID.match(form_id):
        return None
    try:
        return form_path(forms_dir, form_id).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def history(db: Database, form_id: str) -> list[Version]:
    """Every published text of the form, newest first."""
    rows = db.execute(
        "SELECT id, form_id, toml, action, by, at FROM form_history WHERE form_id = ? ORDER BY id DESC", [form_id]
    ).fetchall()
    return [Version(*row) for row in rows]


def get_version(db: Database, form_id: str, version_id: int) -> Version | None:
    row = db.execute(
        "SELECT id, form_id, toml, action, by, at FROM form_history WHERE form_id = ? AND id = ?", [form_id, version_id]
    ).fetchone()
    return Version(*row) if row else None


def publish(
    db: Database, forms_dir: Path, form_id: str, text: str, campaign: Campaign | None, username: str,
    action: str = "publish",
) -> Form:  # fmt: skip
    """Write the text as the live form, if it checks clean; keep what it replaces in history.

    The draft (if any) is done with once published. The caller reloads its catalog.
    """
    form, problems = check_text(form_id, text, campaign)
    if form is None:
        raise WorkshopError(f"表单有 {len(problems)} 处错误，不能发布：{problems[0].message}")
    previous = live_text(forms_dir, form_id)
    stamp = now().isoformat(timespec="seconds")
    with transaction(db):
        last = db.execute(
            "SELECT toml FROM form_history WHERE form_id = ? ORDER BY id DESC LIMIT 1", [form_id]
        ).fetchone()
        if previous is not None and (last is None or last[0] != previous):
            _add_version(db, form_id, previous, "found", "", stamp)  # edited on disk, never published here
        _add_version(db, form_id, text, action, username, stamp)
        if action == "publish":
            db.execute("DELETE FROM form_drafts WHERE form_id = ?", [form_id])
        accounts.log_action(db, username, f"{action}-form", f"form {form_id} version {form.version}")
        try:  # inside the transaction: a failed write leaves no history of it
            write_atomically(form_path(forms_dir, form_id), text)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise WorkshopError(f"无法写入表单文件 {form_id}.toml（{reason}），请联系管理服务器的同事") from None
    return form


def _add_version(db: Database, form_id: str, text: str, action: str, username: str, stamp: str) -> None:
    db.execute(
        "INSERT INTO form_history (form_id, toml, action, by, at) VALUES (?, ?, ?, ?, ?)",
        [form_id, text, action, username, stamp],
    )


def write_atomically(path: Path, text: str) -> None:
    """Replace the file so that a reader sees the old text or the new one, never a part:
    a temporary file in the same folder (a dot name, so no catalog reads it), fsync, rename,
    then fsync the folder so the rename survives a power cut."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with temporary.open("w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def restore(db: Database, form_id: str, version_id: int, username: str) -> Draft:
    """Make an earlier published text the form's draft (publishing it is a separate step)."""
    version = get_version(db, form_id, version_id)
    if version is None:
        raise WorkshopError("没有这个历史版本")
    save_draft(db, form_id, version.toml, username, action="restore-form")
    draft = get_draft(db, form_id)
    assert draft is not None
    return draft


# Closing early and reopening --------------------------------------------------------------


def close_early(text: str, at: dt.datetime) -> str:
    """The text with `closes` set to the moment given; a `closes` it had is kept in a comment."""
    lines = text.splitlines()
    top_end = TextMap(text).top_end
    stamp = f"closes = {at.isoformat(timespec='seconds')}"
    for index in range(top_end):
        if match := CLOSES_LINE.match(lines[index]):
            lines[index : index + 1] = [CLOSED_EARLY + match.group(1), stamp]
            break
    else:
        keys = [i for i in range(top_end) if lines[i].strip() and not lines[i].lstrip().startswith("#")]
        lines.insert(keys[-1] + 1 if keys else 0, stamp + "  # 提前结束")
    return "\n".join(lines) + "\n"


def reopen(text: str, at: dt.datetime) -> str:
    """The text without its `closes`; the one it had before closing early comes back when it
    is still ahead."""
    lines = text.splitlines()
    top_end = TextMap(text).top_end
    for index in range(top_end):
        if CLOSES_LINE.match(lines[index]):
            replacement: list[str] = []
            start = index
            if index > 0 and lines[index - 1].startswith(CLOSED_EARLY):
                start = index - 1
                earlier = lines[index - 1].removeprefix(CLOSED_EARLY).strip()
                moment = _moment(earlier)
                if moment is not None and moment > at:
                    replacement = [f"closes = {earlier}"]
            lines[start : index + 1] = replacement
            break
    return "\n".join(lines) + "\n"


def _moment(value: str) -> dt.datetime | None:
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return None
    if isinstance(parsed, dt.datetime):
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=now().tzinfo)
    if isinstance(parsed, dt.date):
        return dt.datetime.combine(parsed + dt.timedelta(days=1), dt.time(), now().tzinfo)
    return None


def change_window(
    db: Database, forms_dir: Path, form: Form, campaign: Campaign | None, username: str, action: str
) -> Form:
    """Close a live form now (`close`) or open a closed one again (`reopen`), by publishing
    its text with `closes` changed. A draft being edited is left as it is."""
    text = live_text(forms_dir, form.id)
    if text is None:
        raise WorkshopError("找不到这个表单的文件")
    at = now()
    state = form.state(at)
    if action == "close":
        if state != "open":
            raise WorkshopError("只有正在开放的表单才能提前结束")
        changed = close_early(text, at)
    else:
        if state != "closed":
            raise WorkshopError("只有已结束的表单才能重新开放")
        changed = reopen(text, at)
    problems = check_text(form.id, changed, campaign)[1]
    if problems:
        raise WorkshopError(f"改了截止时间后表单有错误：{problems[0].message}")
    return publish(db, forms_dir, form.id, changed, campaign, username, action=action)


# What publishing does to old answers --------------------------------------------------------


def response_count(db: Database, form_id: str) -> int:
    return db.execute("SELECT count(*) FROM responses WHERE form_id = ?", [form_id]).fetchone()[0]


def impact(db: Database, old: Form, new: Form) -> list[str]:
    """What publishing `new` in place of `old` does to the answers already received, one
    Chinese sentence each (empty when there are none)."""
    total = response_count(db, old.id)
    if total == 0:
        return []
    lines = [f"已收到的 {total} 份答卷都会保留，内容不会被删除或修改。"]
    new_fields = {f.name: f for f in new.answer_fields}
    old_fields = {f.name: f for f in old.answer_fields}
    for field in old.answer_fields:
        changed = new_fields.get(field.name)
        if changed is None:
            answered = _answered(db, old.id, field.name)
            lines.append(
                f"删除题目“{field.label}”（{field.name}）：{answered} 份答卷里的这项回答保留，"
                "导出时放在表格最后几列，结果页不再统计。"
            )
            continue
        if changed.type != field.type:
            lines.append(
                f"题目“{field.label}”的类型由 {field.type} 改为 {changed.type}：旧回答原样保留，"
                "结果页可能统计不到它们。"
            )
        if changed.label != field.label:
            lines.append(f"题目“{field.label}”改名为“{changed.label}”：导出的列标题用新名称。")
        _option_changes(db, old.id, field, changed, lines)
    for field in new.answer_fields:
        if field.name not in old_fields:
            lines.append(f"新增题目“{field.label}”（{field.name}）：以前的答卷这一项是空的。")
    return lines


def _option_changes(db: Database, form_id: str, field: Field, changed: Field, lines: list[str]) -> None:
    if field.type not in ("choice", "multi") or changed.type != field.type:
        return
    labels = {o.value: o.label for o in changed.choices}
    for option in field.choices:
        if option.value not in labels:
            chosen = _chosen(db, form_id, field.name, option.value, field.type == "multi")
            lines.append(
                f"题目“{field.label}”去掉了选项“{option.label}”（{option.value}）：选过它的 {chosen} 份答卷保留原值，"
                f"导出时仍显示“{option.label}”。"
            )
        elif labels[option.value] != option.label:
            lines.append(
                f"题目“{field.label}”的选项“{option.label}”改为“{labels[option.value]}”：旧答卷在导出和结果页里显示新文字。"
            )


def _answered(db: Database, form_id: str, name: str) -> int:
    return db.execute(
        """SELECT count(*) FROM responses
           WHERE form_id = ? AND coalesce(json_extract(answers, '$.' || json_quote(?)), '') NOT IN ('', '[]')""",
        [form_id, name],
    ).fetchone()[0]


def _chosen(db: Database, form_id: str, name: str, value: str, multi: bool) -> int:
    path = "$." + msgspec.json.encode(name).decode()
    if multi:
        sql = """SELECT count(*) FROM responses r WHERE form_id = ?
                 AND EXISTS (SELECT 1 FROM json_each(r.answers, ?) WHERE value = ?)"""
    else:
        sql = "SELECT count(*) FROM responses WHERE form_id = ? AND json_extract(answers, ?) = ?"
    return db.execute(sql, [form_id, path, value]).fetchone()[0]


# Diffs and templates ----------------------------------------------------------------------


class DiffLine(msgspec.Struct, frozen=True):
    kind: str  # "+", "-", " " or "@" (a hunk's heading)
    text: str


def diff(old: str, new: str) -> list[DiffLine]:
    """The lines that differ between two texts, with three lines around each change."""
    result = []
    for line in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=3):
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("@@"):  # "@@ -121,12 +121,3 @@": where the change is, in words
            start = re.match(r"@@ -\d+(?:,\d+)? \+(\d+)", line)
            result.append(DiffLine("@", f"第 {start.group(1) if start else '?'} 行起："))
            continue
        result.append(DiffLine(line[:1] or " ", line[1:]))
    return result


class FormTemplate(msgspec.Struct, frozen=True):
    form_id: str
    title: str
    toml: str


def bundled_templates(folder: Path) -> list[FormTemplate]:
    """The product's own forms as starting points (not the office's event report)."""
    forms, _ = check_forms(folder)
    return [
        FormTemplate(form.id, form.title, form_path(folder, form.id).read_text(encoding="utf-8"))
        for form in forms.values()
        if form.is_public
    ]


def problems_by_line(problems: list[Problem]) -> dict[int, list[str]]:
    lines: dict[int, list[str]] = {}
    for problem in problems:
        if problem.line is not None:
            lines.setdefault(problem.line, []).append(problem.message)
    return lines
