"""Campaign time: China Standard Time (UTC+08:00, no daylight saving).

Everything that asks "what day is it" asks `now()`. Tests and drills may stop the clock
at a chosen moment: `set_now()` in the process, or `QF_NOW=2027-09-15T10:00:00` in the
environment of a command or server (a test and rehearsal aid, not a setting to deploy).
"""

import datetime as dt
import functools
import os
import re
import unicodedata

CHINA = dt.timezone(dt.timedelta(hours=8), "CST")
NOW_VARIABLE = "QF_NOW"

_stopped_at: dt.datetime | None = None


def now() -> dt.datetime:
    """The current moment in China Standard Time, to whole seconds."""
    if _stopped_at is not None:
        return _stopped_at
    fixed = os.environ.get(NOW_VARIABLE)
    if fixed:
        return _moment(fixed)
    return dt.datetime.now(CHINA).replace(microsecond=0)


def set_now(moment: dt.datetime | None) -> None:
    """Stop the clock at `moment` (naive means China time); None lets it run again.

    Modules hold `now` itself (`from server.clock import now`), so the override has to
    live here rather than be patched into them.
    """
    global _stopped_at
    _stopped_at = None if moment is None else _in_china(moment)


@functools.lru_cache(maxsize=8)
def _moment(text: str) -> dt.datetime:
    try:
        return _in_china(dt.datetime.fromisoformat(text.strip()))
    except ValueError:
        raise ValueError(f"{NOW_VARIABLE} must be a date and time such as 2027-09-15T10:00:00, not {text!r}") from None


def _in_china(moment: dt.datetime) -> dt.datetime:
    moment = moment if moment.tzinfo else moment.replace(tzinfo=CHINA)
    return moment.astimezone(CHINA).replace(microsecond=0)


_LOOSE_DATE = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?$")


def parse_day(text: str) -> str | None:
    """A day as people write it (`2022-09-05`, `2022/9/5`, `2022年9月5日`, full-width
    digits) → `2022-09-05`; None when it is not a real day."""
    match = _LOOSE_DATE.match(unicodedata.normalize("NFKC", text).strip())
    try:
        return dt.date(*(int(g) for g in match.groups())).isoformat() if match else None
    except ValueError:
        return None


def chinese_date(day: dt.date | str) -> str:
    """`2022-09-05` → `2022年9月5日`."""
    day = dt.date.fromisoformat(day) if isinstance(day, str) else day
    return f"{day.year}年{day.month}月{day.day}日"
