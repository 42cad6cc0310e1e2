"""The audit log as the office reads it: in Chinese, a page at a time, filtered.

Lines are stored as short English codes (`sign-in`, `from 127.0.0.1`) by whoever acts
(`accounts.log_action`); they are put into Chinese only when shown, so lines written before
a translation existed read as well as new ones. A line this module does not know is shown
as it was stored: nothing is hidden.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import msgspec
from sqlite_utils import Database

from server.clock import parse_day

PAGE_SIZE = 100
ACTION_CODE = re.compile(r"[a-z][a-z-]{0,39}")

ACTIONS = {
    "sign-in": "登录",
    "export": "导出",
    "delete-response": "删除答卷",
    "add-event": "新建活动",
    "edit-event": "修改活动",
    "close-event": "提前结束活动",
    "reopen-event": "重新开放活动",
    "delete-event": "删除活动",
    "purge": "清除个人信息",
    "passwd": "改密码",
    "disable": "停用账号",
    "enable": "启用账号",
    "unlock": "解锁账号",
}
# The event fields an edit may change, as `edit-event` lines name them.
EVENT_FIELDS = {
    "title": "活动名称",
    "venue_type": "场所类型",
    "county": "市县",
    "township": "乡镇",
    "venue": "场所",
    "date": "日期",
    "organizer": "主办单位",
    "expected": "预计人数",
}
EXPORT_KINDS = {"csv": "CSV", "xlsx": "Excel 表格"}


class AuditLine(msgspec.Struct, frozen=True):
    id: int
    at: str
    username: str
    action: str
    detail: str

    @property
    def action_text(self) -> str:
        return ACTIONS.get(self.action, self.action)

    @property
    def detail_text(self) -> str:
        return describe(self.action, self.detail)


class AuditQuery(msgspec.Struct, frozen=True):
    """Which lines to show: by account, action and days (inclusive), older than `before`."""

    username: str = ""
    action: str = ""
    date_from: str = ""
    date_to: str = ""
    before: int | None = None


class AuditError(ValueError):
    """A filter that cannot be read; the message is Chinese."""


def parse_query(params: dict[str, str]) -> AuditQuery:
    """An `AuditQuery` from the page's query string, or AuditError naming what is wrong."""
    days = {}
    for key, label in (("date_from", "开始日期"), ("date_to", "结束日期")):
        text = params.get(key, "").strip()
        day = parse_day(text) if text else ""
        if day is None:
            raise AuditError(f"{label} {text!r} 不对，应写成 2022-09-15")
        days[key] = day
    before = params.get("before", "")
    if before and not (before.isascii() and before.isdigit() and len(before) <= 18):
        raise AuditError("翻页参数不对，请从第一页重新开始")
    action = params.get("action", "").strip()
    if action and not ACTION_CODE.fullmatch(action):
        raise AuditError(f"没有这种操作：{action!r}")
    return AuditQuery(
        username=params.get("username", "").strip(), action=action, before=int(before) if before else None, **days
    )


def audit_page(db: Database, query: AuditQuery, limit: int = PAGE_SIZE) -> tuple[list[AuditLine], int | None]:
    """One page of lines, newest first, and the id to ask `before` for the next page (None at the end).

    Keyset paging: a page costs the same however deep in the log it is."""
    where: list[str] = ["1"]
    params: list[Any] = []
    if query.username:
        where.append("username = ?")
        params.append(query.username)
    if query.action:
        where.append("action = ?")
        params.append(query.action)
    if query.date_from:
        where.append("at >= ?")
        params.append(query.date_from)
    if query.date_to:  # `at` is an ISO time: every moment of that day sorts before the next day
        where.append("at < ?")
        params.append((dt.date.fromisoformat(query.date_to) + dt.timedelta(days=1)).isoformat())
    if query.before is not None:
        where.append("id < ?")
        params.append(query.before)
    sql = f"SELECT id, at, username, action, detail FROM audit_log WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?"
    rows = [AuditLine(*row) for row in db.execute(sql, [*params, limit + 1])]
    return rows[:limit], rows[limit - 1].id if len(rows) > limit else None


def actions(db: Database) -> dict[str, str]:
    """Every action the filter offers, code -> Chinese: the known ones, and any other the log
    holds (written by a newer part of the product), by its code."""
    stored = [row[0] for row in db.execute("SELECT DISTINCT action FROM audit_log ORDER BY action")]
    return ACTIONS | {code: code for code in stored if code not in ACTIONS}


def usernames(db: Database) -> list[str]:
    """Every name that has a line in the log (accounts since removed, `command line`), for the filter."""
    return [row[0] for row in db.execute("SELECT DISTINCT username FROM audit_log ORDER BY username")]


def _export(m: re.Match[str]) -> str:
    what = "全部活动" if m["event"] == "-" else f"活动 {m['event']}"
    spam = "，含疑似垃圾答卷" if m["spam"] else ""
    return f"问卷 {m['form']} 的答卷（{what}{spam}），{EXPORT_KINDS.get(m['kind'], m['kind'])}"


def _purge(m: re.Match[str]) -> str:
    photos = f"，及 {m['photos']} 个照片文件" if m["photos"] else ""
    wal = f"；数据库日志里还留有 {m['wal']} 字节（当时有读者在用），请稍后再清除一次" if m["wal"] else ""
    when = m["before"][:19].replace("T", " ")
    return f"问卷 {m['form']}：删除了 {when} 之前 {m['count']} 份答卷中的个人信息（{m['names']}）{photos}{wal}"


def _edit(m: re.Match[str]) -> str:
    changes = []
    for change in m["changes"].split("; "):
        key, _, values = change.partition(": ")
        old, _, new = values.partition(" -> ")
        changes.append(f"{EVENT_FIELDS.get(key, key)}由“{old}”改为“{new}”")
    return f"活动 {m['code']}：" + "；".join(changes)


Translation = tuple[str, str | Callable[[re.Match[str]], str]]
# Per action: the stored detail's pattern, and its Chinese (a format string or a function).
DETAILS: dict[str, list[Translation]] = {
    "sign-in": [(r"from (?P<address>.+)", "从 {address} 登录")],
    "export": [
        (r"form (?P<form>\S+) (?P<kind>csv|xlsx) event (?P<event>\S+)(?P<spam> with suspected spam)?", _export),
        (r"report (?P<kind>csv|xlsx)", "统计报表，{kind}"),
        (
            r"crosstab form (?P<form>\S+) (?P<rows>\S+) x (?P<columns>\S+)",
            "问卷 {form} 的交叉表（{rows} × {columns}），Excel 表格",
        ),
    ],
    "delete-response": [(r"form (?P<form>\S+) response (?P<id>\d+)", "问卷 {form} 的第 {id} 号答卷")],
    "add-event": [(r"event (?P<code>\S+) form (?P<form>\S+)", "活动 {code}（问卷 {form}）")],
    "edit-event": [(r"event (?P<code>\S+): (?P<changes>.+)", _edit)],
    "close-event": [(r"event (?P<code>\S+)", "活动 {code}，不再收答卷")],
    "reopen-event": [(r"event (?P<code>\S+)", "活动 {code}，重新收答卷")],
    "delete-event": [
        (r"event (?P<code>\S+) form (?P<form>\S+) title (?P<title>.*)", "活动 {code}「{title}」（问卷 {form}）")
    ],
    "purge": [
        (
            r"form (?P<form>\S+): personal answers \((?P<names>[^)]*)\) removed from (?P<count>\d+) response\(s\)"
            r"(?:, with (?P<photos>\d+) photo file\(s\))? before (?P<before>\S+)"
            r"(?:; the WAL still holds (?P<wal>\d+) bytes.*)?",
            _purge,
        )
    ],
    "passwd": [(r"user (?P<user>\S+), (?P<n>\d+) session\(s\) ended", "账号 {user}，退出了 {n} 处登录")],
    "disable": [(r"user (?P<user>\S+), (?P<n>\d+) session\(s\) ended", "账号 {user}，退出了 {n} 处登录")],
    "enable": [(r"user (?P<user>\S+)", "账号 {user}")],
    "unlock": [(r"user (?P<user>\S+), (?P<n>\d+) failed sign-in\(s\) forgotten", "账号 {user}，清除了 {n} 次登录失败")],
}


def describe(action: str, detail: str) -> str:
    """A stored detail in Chinese; as stored when its form is not known."""
    for pattern, chinese in DETAILS.get(action, []):
        m = re.fullmatch(pattern, detail)
        if m:
            if callable(chinese):
                return chinese(m)
            values = {k: EXPORT_KINDS.get(v, v) if k == "kind" else v for k, v in m.groupdict().items()}
            return chinese.format(**values)
    return detail
