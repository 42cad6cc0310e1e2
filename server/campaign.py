"""The campaign: this year's facts from `forms/campaign.toml`, and Hainan's geography.

Each September the provincial office starts a new Quality Month with a new theme,
slogans and dates. Those are data in `forms/campaign.toml` (SPEC §5.2), read with the
forms and re-read when the file changes; earlier years stay beside it as
`forms/_campaign-2022.toml` and the like. The 市县 and venue types do not change with
the campaign, so they are constants here. Error texts are Chinese: office staff read them.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import msgspec

from server.errors import InputError
from server.tomlfile import TomlFileError, read_toml

CAMPAIGN_FILE = "campaign.toml"
CAMPAIGN_KEYS = ("year", "theme", "slogans", "starts", "ends", "organizers", "contact")


class Campaign(msgspec.Struct, frozen=True):
    """One year's Quality Month: theme, slogans, the days of its activities, co-hosts."""

    year: int
    theme: str = ""
    slogans: tuple[str, ...] = ()
    starts: dt.date | None = None
    ends: dt.date | None = None
    organizers: tuple[str, ...] = ()
    contact: str = ""


class CampaignError(InputError):
    """The campaign file broke the rules; `messages` holds one line per problem, naming the file."""


def load_campaign(path: Path) -> Campaign:
    """Read and check a campaign file; raise CampaignError naming the file and the key."""
    try:
        raw = read_toml(path)
    except TomlFileError as exc:
        raise CampaignError([str(exc)]) from None
    except OSError as exc:
        raise CampaignError([f"{path}: 无法读取：{exc.strerror}"]) from None
    problems = _problems(raw)
    if problems:
        raise CampaignError([f"{path}: {p}" for p in problems])
    campaign = msgspec.convert(raw, Campaign)
    return msgspec.structs.replace(campaign, theme=campaign.theme.strip(), contact=campaign.contact.strip())


def read_campaign(directory: Path) -> tuple[Campaign | None, list[str]]:
    """The campaign of a forms folder, or None when it has no campaign file or a broken one
    (then with its error lines): a broken campaign never stops the forms that do not use it."""
    path = directory / CAMPAIGN_FILE
    if not path.is_file():
        return None, []
    try:
        return load_campaign(path), []
    except CampaignError as exc:
        return None, exc.messages


def _problems(raw: dict[str, Any]) -> list[str]:
    problems = [
        f"未知的设置项 {key!r}（可用：{'、'.join(CAMPAIGN_KEYS)}）" for key in sorted(raw.keys() - set(CAMPAIGN_KEYS))
    ]
    year = raw.get("year")
    if not (isinstance(year, int) and not isinstance(year, bool) and 2000 <= year <= 2100):
        problems.append("year 必须是年份，如 year = 2026")
    for key in ("theme", "contact"):
        if key in raw and not isinstance(raw[key], str):
            problems.append(f"{key} 必须是文字")
    for key in ("slogans", "organizers"):
        items = raw.get(key, [])
        if not (isinstance(items, list) and all(isinstance(i, str) and i.strip() for i in items)):
            problems.append(f'{key} 必须是文字列表，如 {key} = ["……", "……"]')
    for key in ("starts", "ends"):
        if key in raw and (not isinstance(raw[key], dt.date) or isinstance(raw[key], dt.datetime)):
            problems.append(f"{key} 必须是日期，如 {key} = 2026-09-01")
    starts, ends = raw.get("starts"), raw.get("ends")
    if not problems and starts and ends and starts > ends:
        problems.append("starts 不能晚于 ends")
    return problems


# Hainan's 市县: 4 prefecture-level cities, 5 county-level cities, 4 counties and
# 6 autonomous counties.
COUNTIES = (
    "海口市",
    "三亚市",
    "三沙市",
    "儋州市",
    "五指山市",
    "琼海市",
    "文昌市",
    "万宁市",
    "东方市",
    "定安县",
    "屯昌县",
    "澄迈县",
    "临高县",
    "白沙黎族自治县",
    "昌江黎族自治县",
    "乐东黎族自治县",
    "陵水黎族自治县",
    "保亭黎族苗族自治县",
    "琼中黎族苗族自治县",
)

# The five-into venues, and 其他 for markets, stalls and the like.
VENUE_TYPES = ("机关", "企业", "乡镇", "社区", "学校", "其他")
VENUE_TYPE_ALIASES = {
    "government": "机关",
    "enterprise": "企业",
    "company": "企业",
    "township": "乡镇",
    "community": "社区",
    "school": "学校",
    "other": "其他",
}


def county_named(text: str) -> str | None:
    """The full county name for `海口`, `海口市`, `白沙` or `白沙县`; None if not in Hainan."""
    text = text.strip()
    if text in COUNTIES:
        return text
    stem = text.removesuffix("市").removesuffix("县")
    matches = [c for c in COUNTIES if c.startswith(stem)] if len(stem) >= 2 else []
    return matches[0] if len(matches) == 1 else None


def venue_type_named(text: str) -> str | None:
    text = text.strip()
    if text in VENUE_TYPES:
        return text
    return VENUE_TYPE_ALIASES.get(text.lower())


def slogan_for(campaign: Campaign | None, key: str) -> str:
    """A slogan chosen by key, so each poster keeps its own slogan from print to print;
    empty when the campaign has none."""
    slogans = campaign.slogans if campaign else ()
    return slogans[sum(key.encode("utf-8")) % len(slogans)] if slogans else ""
