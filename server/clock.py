"""Campaign time: China Standard Time (UTC+08:00, no daylight saving)."""

import datetime as dt
import re
import unicodedata

CHINA = dt.timezone(dt.timedelta(hours=8), "CST")


def now() -> dt.datetime:
    """The current moment in China Standard Time, to whole seconds."""
    return dt.datetime.now(CHINA).replace(microsecond=0)


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
