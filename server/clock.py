"""Campaign time: China Standard Time (UTC+08:00, no daylight saving)."""

import datetime as dt

CHINA = dt.timezone(dt.timedelta(hours=8), "CST")


def now() -> dt.datetime:
    """The current moment in China Standard Time, to whole seconds."""
    return dt.datetime.now(CHINA).replace(microsecond=0)
