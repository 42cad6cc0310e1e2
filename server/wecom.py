"""The daily summary for a 企业微信 (WeCom) group robot: one webhook format of `server.webhooks`.

At the configured hour (China time) each `wecom` webhook gets one message for the day,
`{"msgtype": "markdown", "markdown": {"content": …}}`, made from the counts the database
keeps (`response_counts`) and the day's events: one 市县's, or every 市县's. The robot
takes at most 4096 bytes of content; longer summaries lose their last lines.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from sqlite_utils import Database

from server.clock import chinese_date
from server.storage import transaction

MAX_CONTENT_BYTES = 4096
CUT = "\n……（其余从略）"


def queue_due_summaries(db: Database, moment: dt.datetime) -> int:
    """Put today's summary in the outbox of each wecom webhook whose hour has come; once a day.

    The delivery key `<webhook>-<day>` is unique, so two server processes doing this at the
    same moment store one message.
    """
    day = moment.date().isoformat()
    due = db.execute(
        """SELECT id, form_id, county FROM webhooks w
           WHERE format = 'wecom' AND hour <= ? AND substr(created_at, 1, 10) <= ?
             AND NOT EXISTS (SELECT 1 FROM webhook_messages WHERE delivery = w.id || '-' || ?)""",
        [moment.hour, day, day],
    ).fetchall()
    stamp = moment.isoformat()
    for webhook_id, form_id, county in due:
        body = robot_message(summary(db, day, form_id, county))
        with transaction(db):
            db.execute(
                """INSERT INTO webhook_messages (webhook_id, delivery, body, next_at, give_up_at, created_at)
                   VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (delivery) DO NOTHING""",
                [webhook_id, f"{webhook_id}-{day}", body, stamp, (moment + dt.timedelta(days=3)).isoformat(), stamp],
            )
    return len(due)


def robot_message(content: str) -> str:
    return msgspec.json.encode({"msgtype": "markdown", "markdown": {"content": content}}).decode()


def summary(db: Database, day: str, form_id: str | None = None, county: str = "") -> str:
    """The day's numbers as WeCom markdown, at most MAX_CONTENT_BYTES of UTF-8."""
    scope, params = _scope(form_id, county)
    titles = _form_titles(db)
    per_form = db.execute(
        f"""SELECT form_id, total(n * (day = ?)), total(n) FROM response_counts c
            WHERE suspected_spam = 0 {scope} GROUP BY form_id ORDER BY 3 DESC, form_id""",
        [day, *params],
    ).fetchall()
    today = int(sum(row[1] for row in per_form))
    total = int(sum(row[2] for row in per_form))
    event_scope = " AND county = ?" if county else ""
    event_scope += " AND form_id = ?" if form_id else ""
    event_params = [day, *([county] if county else []), *([form_id] if form_id else [])]
    events = db.execute(
        f"SELECT title, county FROM events WHERE date = ? {event_scope} ORDER BY county, title", event_params
    ).fetchall()
    lines = [
        f"### 质量月每日汇总 · {chinese_date(day)}",
        f"**{county or '全省各市县'}**" + (f" · {titles.get(form_id, form_id)}" if form_id else ""),
        f'今日新增回答 <font color="info">{today}</font> 份，累计 {total} 份',
        f"今日活动 {len(events)} 场",
    ]
    lines += [f"> {title}（{where}）" if not county else f"> {title}" for title, where in events]
    if not form_id and per_form:
        lines.append("**各表单**")
        lines += [f"> {titles.get(f, f)}：今日 {int(t)} 份，累计 {int(n)} 份" for f, t, n in per_form]
    if not county:
        per_county = db.execute(
            f"""SELECT coalesce(e.county, '') AS place, total(c.n * (c.day = ?)), total(c.n)
                FROM response_counts c LEFT JOIN events e ON e.code = c.event
                WHERE c.suspected_spam = 0 {scope.replace("form_id", "c.form_id")}
                GROUP BY place ORDER BY 3 DESC, place""",
            [day, *params],
        ).fetchall()
        if per_county:
            lines.append("**各市县**")
            lines += [f"> {p or '未关联活动'}：今日 {int(t)} 份，累计 {int(n)} 份" for p, t, n in per_county]
    return fit("\n".join(lines))


def _scope(form_id: str | None, county: str) -> tuple[str, list[Any]]:
    clauses, params = [], []
    if form_id:
        clauses.append("form_id = ?")
        params.append(form_id)
    if county:
        clauses.append("event IN (SELECT code FROM events WHERE county = ?)")
        params.append(county)
    return "".join(f" AND {c}" for c in clauses), params


def _form_titles(db: Database) -> dict[str, str]:
    """Form id -> its title, from the newest stored definition."""
    titles: dict[str, str] = {}
    for form_id, title in db.execute(
        "SELECT form_id, json_extract(definition, '$.title') FROM form_versions ORDER BY first_seen, rowid"
    ):
        titles[form_id] = title
    return titles


def fit(content: str) -> str:
    """Whole lines that fit in MAX_CONTENT_BYTES, with a note when some were left out."""
    if len(content.encode()) <= MAX_CONTENT_BYTES:
        return content
    kept: list[str] = []
    size = len(CUT.encode())
    for line in content.split("\n"):
        size += len(line.encode()) + 1
        if size > MAX_CONTENT_BYTES:
            break
        kept.append(line)
    return "\n".join(kept) + CUT


def answer_error(text: bytes) -> str:
    """The robot answers 200 with `{"errcode": 0, …}` when it took the message; else why not."""
    try:
        answer = msgspec.json.decode(text)
    except msgspec.DecodeError:
        return "企业微信回应的不是 JSON"
    if not isinstance(answer, dict) or answer.get("errcode") != 0:
        detail = answer.get("errmsg", "") if isinstance(answer, dict) else ""
        code = answer.get("errcode") if isinstance(answer, dict) else None
        return f"企业微信拒收：errcode {code} {detail}"[:300]
    return ""
