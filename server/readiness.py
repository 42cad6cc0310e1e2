"""Warnings about open forms that nobody could submit today.

A form file can be correct and still be useless: its activity dates belong to a year
that has passed, or it closed while the office still has events pointing at it. Such a
form passes `check` as far as its rules go, so these are warnings, in Chinese, for
`quality-forms check` and the office dashboard alike (SPEC §5.2).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from sqlite_utils import Database

from server.campaign import CAMPAIGN_FILE, Campaign, read_campaign
from server.clock import now
from server.events import Event, list_events
from server.forms import Form, check_forms
from server.storage import connect


def form_warnings(
    forms: Iterable[Form], campaign: Campaign | None, db: Database | None = None, at: dt.datetime | None = None
) -> list[str]:
    """One Chinese line per reason a form cannot be submitted today (default now).

    Without a database the events are not looked at.
    """
    at = at or now()
    today = at.date().isoformat()
    lines = []
    if campaign is not None and campaign.year != at.year:
        lines.append(
            f"{CAMPAIGN_FILE} 是 {campaign.year} 年的活动，今年是 {at.year} 年："
            "请按今年的“质量月”通知更新 year、主题、口号和活动日期"
        )
    for form in forms:
        state = form.state(at)
        if state == "open":
            for field in form.answer_fields:
                if field.type == "date" and field.required and isinstance(field.max, str) and field.max < today:
                    lines.append(
                        f"问卷 {form.id}（{form.title}）正在开放，但必填的日期题“{field.label}”"
                        f"最晚只能填 {field.max}，今天（{today}）参加活动的人无法提交"
                    )
        elif state == "closed" and db is not None:
            waiting = [row.event for row in list_events(db, form_id=form.id) if _still_taking_answers(row.event, at)]
            if waiting:
                closes = form.closes.strftime("%Y-%m-%d %H:%M") if form.closes else ""
                lines.append(
                    f"问卷 {form.id}（{form.title}）已于 {closes} 截止，但还有 {len(waiting)} 个活动在用它"
                    f"（如 {waiting[0].code}“{waiting[0].title}”）：扫这些活动二维码的群众无法提交"
                )
    return lines


def _still_taking_answers(event: Event, at: dt.datetime) -> bool:
    """Undated, or not yet past its day and grace days: people may still scan its poster."""
    last_day = event.last_day()
    return last_day is None or at.date() <= last_day


def folder_warnings(forms_dir: Path, db_path: Path, at: dt.datetime | None = None) -> list[str]:
    """`form_warnings` for a forms folder and a database file as the command line has them;
    a database that does not exist yet (or has no events table) has no events to warn about."""
    forms, _ = check_forms(forms_dir)
    campaign, _ = read_campaign(forms_dir)
    if not db_path.is_file():
        return form_warnings(forms.values(), campaign, None, at)
    db = connect(db_path)
    try:
        return form_warnings(forms.values(), campaign, db, at)
    except sqlite3.OperationalError:  # a database from before events existed
        return form_warnings(forms.values(), campaign, None, at)
    finally:
        db.conn.close()
