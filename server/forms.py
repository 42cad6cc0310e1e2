"""Form definitions: read `forms/*.toml`, check every rule, and keep them fresh.

A file becomes a `Form` (msgspec Structs) or a list of errors that name the file and
the field. Error texts are Chinese because form authors are office staff; the guide
that explains them is docs/form-guide.zh.md.
"""

from __future__ import annotations

import datetime as dt
import difflib
import fcntl
import functools
import hashlib
import logging
import mmap
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from server import expressions, regions
from server.campaign import CAMPAIGN_FILE, Campaign, CampaignError, load_campaign, read_campaign
from server.clock import CHINA, now
from server.errors import InputError
from server.expressions import Compare, Condition, Contains, ExpressionError
from server.toml_lines import TextMap, locate
from server.tomlfile import TomlFileError, parse_toml, read_toml

log = logging.getLogger(__name__)

FORM_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
KINDS = ("five-into", "township-event", "consumer-survey", "general", "event-report")
KIND_LABELS = {
    "five-into": "五进宣传",
    "township-event": "质量文化乡镇行",
    "consumer-survey": "消费者调查",
    "general": "通用",
    "event-report": "活动开展情况",
}
OTHER = "other"  # the option value `other = true` adds
OTHER_LABEL = "其他"

COMMON_KEYS = {"name", "type", "label", "hint", "required", "show_if", "personal", "from_event"}
TYPE_KEYS: dict[str, set[str]] = {
    "text": {"max_length", "min_length"},
    "textarea": {"max_length"},
    "integer": {"min", "max"},
    "number": {"min", "max"},
    "phone": set(),
    "email": set(),
    "date": {"min", "max"},
    "choice": {"options", "other", "answer", "explain"},
    "multi": {"options", "min_choices", "max_choices", "other", "answer", "explain"},
    "rating": {"scale", "low_label", "high_label", "labels"},
    "consent": set(),
    "note": set(),
    "section": {"title"},
    "hidden": {"max_length"},
    "grid": {"rows", "scale", "low_label", "high_label"},
    "region": {"levels"},
    "photo": {"max_photos"},
    "video": {"max_videos", "max_mb"},
}
DISPLAY_ONLY = {"note", "section"}
# A date's `min`/`max` may name a day of the campaign file instead of a fixed day (SPEC §5.2).
CAMPAIGN_DAYS = {"campaign.starts": "starts", "campaign.ends": "ends"}
FORM_KEYS = {
    "title", "kind", "description", "opens", "closes", "thanks", "privacy", "quiz", "report_satisfaction", "fields"
}  # fmt: skip
DEFAULT_MAX_LENGTH = {"text": 200, "textarea": 2000, "hidden": 100}
# What an event knows about itself (SPEC §5.5 `from_event`), and the types that may take it.
EVENT_ATTRIBUTES = {
    "county": "市县",
    "township": "乡镇",
    "venue_type": "场所类型",
    "venue": "场所",
    "date": "日期",
    "organizer": "主办单位",
}
FROM_EVENT_TYPES = ("text", "choice", "date", "region")
FILE_TYPES = ("photo", "video")  # questions answered with uploaded files
VIDEO_KINDS = ("event-report",)  # staff film events; residents' forms take no videos
MAX_VIDEO_MB = 200


class Option(msgspec.Struct, frozen=True):
    value: str
    label: str


class GridRow(msgspec.Struct, frozen=True):
    """One item of a `grid`, answered on the grid's scale and stored as `<name>_<key>`."""

    key: str
    label: str


GRID_KEY = re.compile(r"^[a-z0-9_]{1,20}$")


class Field(msgspec.Struct, frozen=True, omit_defaults=True, dict=True):
    """One question (or a note or section heading) of a form.

    What is worked out from the definition for every submission is kept once worked out
    (`functools.cached_property`, which `dict=True` makes room for; never encoded)."""

    name: str
    type: str
    label: str = ""
    hint: str = ""
    required: bool = False
    show_if: str | None = None
    condition: Condition | None = None  # show_if, parsed
    personal: bool = False
    max_length: int | None = None
    min_length: int | None = None
    min: int | float | str | None = None
    max: int | float | str | None = None
    options: tuple[Option, ...] = ()
    other: bool = False
    min_choices: int | None = None
    max_choices: int | None = None
    scale: int = 5
    low_label: str = ""
    high_label: str = ""
    labels: tuple[str, ...] = ()  # a rating's words, one per point (1…scale)
    rows: tuple[GridRow, ...] = ()  # a grid's items
    answer: str | tuple[str, ...] | None = None  # a quiz question's right option value(s)
    explain: str = ""  # why, shown with the correction after a quiz
    levels: int = 2  # a region: 1 = 市县 only, 2 = 市县 and 乡镇
    max_photos: int = 3  # a photo question: how many pictures one response may carry
    max_videos: int = 1  # a video question: how many clips one response may carry
    max_mb: int = 50  # a video question: the largest clip, in MB (2**20 bytes)
    title: str = ""
    from_event: str | None = None  # an event attribute: on an event's page the answer is the event's

    @property
    def has_answer(self) -> bool:
        return self.type not in DISPLAY_ONLY

    @functools.cached_property
    def choices(self) -> tuple[Option, ...]:
        """The options as shown, `其他` included when `other = true`."""
        return self.options + ((Option(OTHER, OTHER_LABEL),) if self.other else ())

    @functools.cached_property
    def choice_values(self) -> tuple[str, ...]:
        return tuple(o.value for o in self.choices)

    @functools.cached_property
    def other_name(self) -> str:
        return f"{self.name}_other"

    @functools.cached_property
    def answer_names(self) -> tuple[str, ...]:
        """The keys this question's answers are stored under: a grid's rows each have one."""
        if self.type == "grid":
            return tuple(f"{self.name}_{row.key}" for row in self.rows)
        if not self.has_answer:
            return ()
        return (self.name, self.other_name) if self.other else (self.name,)

    def option_label(self, value: str) -> str:
        for option in self.choices:
            if option.value == value:
                return option.label
        return value

    def rating_label(self, point: int) -> str:
        """The words for a rating point when the form gives them, else the number."""
        return self.labels[point - 1] if 1 <= point <= len(self.labels) else str(point)

    def answer_from_event(self, value: str) -> str | None:
        """The answer an event's attribute gives this question, or None (then it is asked).

        A choice takes the option whose value or label is the event's (学校 → `school`).
        """
        value = value.strip()
        if not value:
            return None
        if self.type == "choice":
            return next((o.value for o in self.options if value in (o.value, o.label)), None)
        return value


class Form(msgspec.Struct, frozen=True, dict=True):
    """A form as its file defines it; `version` is a hash of the definition (kept answers to
    questions about it are `functools.cached_property`, as in `Field`)."""

    id: str
    title: str
    kind: str
    fields: tuple[Field, ...]
    description: str = ""
    opens: dt.datetime | None = None
    closes: dt.datetime | None = None
    thanks: str = ""
    privacy: str = ""
    quiz: bool = False  # choice/multi questions with an `answer` are scored after submitting
    report_satisfaction: str = ""  # the rating the statistics report averages; none when empty
    version: str = ""

    @functools.cached_property
    def answer_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.has_answer)

    @functools.cached_property
    def personal_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.personal)

    @property
    def quiz_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.answer is not None) if self.quiz else ()

    @property
    def is_public(self) -> bool:
        """Whether residents may see it: an event report is filled in the office only."""
        return self.kind != "event-report"

    @property
    def has_photos(self) -> bool:
        """Whether the page posts files (multipart) and loads the photo script (which also
        shows the one-at-a-time pickers and queues the files of a video question offline)."""
        return any(f.type in FILE_TYPES for f in self.fields)

    @property
    def has_personal(self) -> bool:
        return any(f.personal for f in self.fields)

    @property
    def asks_privacy_consent(self) -> bool:
        """Whether the product adds its own consent box (`_consent`) for personal answers:
        only when the form has personal questions and no required `consent` of its own, so
        nobody ticks two boxes for one thing."""
        return self.has_personal and not any(f.type == "consent" and f.required for f in self.fields)

    @property
    def first_personal(self) -> str:
        """The name of the first personal question: the privacy notice stands beside it."""
        return next((f.name for f in self.fields if f.personal), "")

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)

    def state(self, at: dt.datetime | None = None) -> str:
        """`open`, `upcoming` or `closed` at the given moment (default now)."""
        at = at or now()
        if self.opens and at < self.opens:
            return "upcoming"
        if self.closes and at >= self.closes:
            return "closed"
        return "open"

    def describe_condition(self, field: Field) -> str:
        if field.condition is None:
            return ""

        def label_of(name: str, value: Any) -> str:
            source = self.field(name)
            if source is None:
                return name
            return source.label if value is None else source.option_label(str(value))

        return expressions.describe(field.condition, label_of)


class FormError(InputError):
    """A definition broke the rules; `messages` holds one line per problem."""


def load_form(path: Path, campaign: Campaign | None = None) -> Form:
    """Read and check one form file; raise FormError naming the file and field.

    `campaign` is the folder's campaign when the caller has read it already; otherwise
    the folder's `campaign.toml` is read if the form refers to it.
    """
    try:
        raw = read_toml(path)
    except TomlFileError as exc:
        raise FormError([str(exc)]) from None

    @functools.cache
    def campaign_of_folder() -> Campaign | None:
        return campaign or read_campaign(path.parent)[0]

    problems: list[str] = []
    try:
        form = _build_form(path.stem, raw, problems, campaign_of_folder)
    except RecursionError:  # a value nested deeper than any form needs; never a traceback
        raise FormError([f"{path}: 设置项嵌套太深"]) from None
    if problems or form is None:
        raise FormError([f"{path}: {p}" for p in problems])
    return form


class Problem(msgspec.Struct, frozen=True):
    """One thing wrong with a form's text, and where: the workshop's editor marks the line."""

    message: str
    line: int | None = None  # 1-based; None when it is about the whole form (a missing key)
    field: str | None = None  # the question's name, when the problem is one question's


def check_text(form_id: str, text: str, campaign: Campaign | None) -> tuple[Form | None, list[Problem]]:
    """Check a form's TOML text as `load_form` checks a file: the form, or its problems with
    their lines. `campaign` is the forms folder's (a date may say "campaign.starts")."""
    try:
        raw = parse_toml(text)
    except TomlFileError as exc:
        return None, [Problem(exc.message, exc.line)]
    messages: list[str] = []
    try:
        form = _build_form(form_id, raw, messages, lambda: campaign)
    except RecursionError:
        return None, [Problem("设置项嵌套太深")]
    if form is not None and not messages:
        return form, []
    text_map = TextMap(text)
    return None, [Problem(message, *locate(text_map, message)) for message in messages]


def parse_form(form_id: str, text: str, campaign: Campaign | None = None) -> Form:
    """A form from TOML text that is not (yet) a file, e.g. an XLSForm import: checked as
    `load_form` checks a file; FormError's messages then name no file."""
    form, problems = check_text(form_id, text, campaign)
    if form is None:
        raise FormError([problem.message for problem in problems])
    return form


def _build_form(
    form_id: str, raw: dict[str, Any], problems: list[str], campaign: Callable[[], Campaign | None]
) -> Form | None:
    if not FORM_ID.match(form_id):
        problems.append("文件名必须由小写字母、数字和连字符组成（如 school-survey.toml）")
    for key in sorted(raw.keys() - FORM_KEYS):
        problems.append(f"未知的设置项 {key!r}{did_you_mean(key, FORM_KEYS)}")
    for key in ("title", "kind"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            problems.append(f"缺少 {key}（必填文字）")
    for key in ("description", "thanks", "privacy"):
        if key in raw and not isinstance(raw[key], str):
            problems.append(f"{key} 必须是文字")
    if isinstance(raw.get("kind"), str) and raw["kind"] not in KINDS:
        guess = did_you_mean(raw["kind"], KINDS)
        problems.append(f"kind 必须是 {' / '.join(KINDS)} 之一，而不是 {raw['kind']!r}{guess}")
    window = {key: _moment(raw, key, problems) for key in ("opens", "closes")}
    if window["opens"] and window["closes"] and window["opens"] >= window["closes"]:
        problems.append("closes 必须晚于 opens")
    if "quiz" in raw and not isinstance(raw["quiz"], bool):
        problems.append("quiz 必须是 true 或 false")

    raw_fields = raw.get("fields")
    if not isinstance(raw_fields, list) or not raw_fields:
        problems.append("至少要有一个 [[fields]]")
        raw_fields = []
    fields: list[Field] = []
    for index, raw_field in enumerate(raw_fields, start=1):
        field = _build_field(index, raw_field, fields, problems, campaign)
        if field is not None:
            fields.append(field)
    _check_answer_names(fields, problems)
    if raw.get("kind") not in VIDEO_KINDS:
        for field in fields:
            if field.type == "video":
                problems.append(f'字段 {field.name!r}: video 只能用在 kind = "event-report"（活动开展情况）的表里')
    wants_privacy = any(isinstance(f, dict) and f.get("personal") is True for f in raw_fields)
    if wants_privacy and not str(raw.get("privacy", "")).strip():
        problems.append("有 personal = true 的字段时，必须写 privacy（个人信息说明）")
    if fields and len(fields) == len(raw_fields) and not any(f.has_answer for f in fields):
        problems.append("表单里没有需要回答的问题")
    scored = [f.name for f in fields if f.answer is not None]
    if raw.get("quiz") is True and fields and len(fields) == len(raw_fields) and not scored:
        problems.append("quiz = true 的问卷至少要有一道题写 answer（正确答案）")
    if scored and raw.get("quiz") is not True:
        problems.append(f"字段 {scored[0]!r}: 写了 answer，问卷还要写 quiz = true 才会计分")
    _check_report_satisfaction(raw, fields, problems)
    if problems:
        return None
    form = Form(
        id=form_id,
        title=raw["title"].strip(),
        kind=raw["kind"],
        fields=tuple(fields),
        description=raw.get("description", "").strip(),
        opens=window["opens"],
        closes=window["closes"],
        thanks=raw.get("thanks", "").strip(),
        privacy=raw.get("privacy", "").strip(),
        quiz=raw.get("quiz", False),
        report_satisfaction=raw.get("report_satisfaction", ""),
    )
    return msgspec.structs.replace(form, version=definition_hash(form))


def _check_report_satisfaction(raw: dict[str, Any], fields: list[Field], problems: list[str]) -> None:
    """`report_satisfaction` names the form's rating that the statistics report averages."""
    if "report_satisfaction" not in raw:
        return
    name = raw["report_satisfaction"]
    if not isinstance(name, str) or not name:
        problems.append('report_satisfaction 必须是一道打分题的 name，如 report_satisfaction = "satisfaction"')
        return
    field = next((f for f in fields if f.name == name), None)
    if field is None:
        problems.append(f"report_satisfaction = {name!r}: 问卷里没有字段 {name!r}")
    elif field.type != "rating":
        problems.append(f"report_satisfaction = {name!r}: 字段 {name!r} 是 {field.type}，必须是 rating（打分）题")


def _check_answer_names(fields: list[Field], problems: list[str]) -> None:
    """Every stored answer key is one question's: a grid row `a_b` or an `x_other` must not be
    another question's name."""
    owner: dict[str, str] = {}
    for field in fields:
        for name in (field.name, *field.answer_names):
            if owner.setdefault(name, field.name) != field.name:
                other = owner[name]
                problems.append(f"字段 {field.name!r}: 答案名 {name!r} 与字段 {other!r} 重复，请换一个 name 或 key")


def definition_hash(form: Form) -> str:
    """A short, stable hash of what the definition says (not of its whitespace)."""
    body = msgspec.json.encode(msgspec.structs.replace(form, version=""), order="sorted")
    return hashlib.sha256(body).hexdigest()[:12]


def _moment(raw: dict[str, Any], key: str, problems: list[str]) -> dt.datetime | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=CHINA)
    if isinstance(value, dt.date):  # a bare date: opens at its start, closes at its end
        start = dt.datetime.combine(value, dt.time(), CHINA)
        return start if key == "opens" else start + dt.timedelta(days=1)
    problems.append(f"{key} 必须是 TOML 日期时间，如 {key} = 2022-09-01T08:00:00")
    return None


def _build_field(
    index: int, raw: Any, earlier: list[Field], problems: list[str], campaign: Callable[[], Campaign | None]
) -> Field | None:
    if not isinstance(raw, dict):
        problems.append(f"第 {index} 个字段必须是 [[fields]] 表")
        return None
    name = raw.get("name")
    where = f"字段 {name!r}" if isinstance(name, str) else f"第 {index} 个字段"
    before = len(problems)

    def problem(text: str) -> None:
        problems.append(f"{where}: {text}")

    if not isinstance(name, str) or not FIELD_NAME.match(name):
        problem("name 必须以小写字母开头，只含小写字母、数字和下划线，最长 40 个字符")
    elif any(f.name == name for f in earlier):
        problem("name 重复了")
    ftype = raw.get("type")
    if ftype not in TYPE_KEYS:
        guess = did_you_mean(ftype, TYPE_KEYS) if isinstance(ftype, str) else ""
        problem(f"未知的类型 type = {ftype!r}{guess or '（可用：' + '、'.join(TYPE_KEYS) + '）'}")
        return None
    for key in sorted(raw.keys() - COMMON_KEYS - TYPE_KEYS[ftype]):
        problem(f"{ftype} 类型没有 {key!r} 这个设置项{_key_hint(key, ftype)}")
    if ftype != "section" and not (isinstance(raw.get("label"), str) and raw["label"].strip()):
        problem("缺少 label（题目文字）")
    if ftype == "section" and not (raw.get("title") or raw.get("label")):
        problem("section 需要 title")

    values = {key: value for key, value in raw.items() if key in COMMON_KEYS | TYPE_KEYS[ftype]}
    if ftype in ("choice", "multi"):
        values["options"] = _options(raw.get("options"), raw.get("other", False), problem)
    if ftype == "grid":
        values["rows"] = _grid_rows(raw.get("rows"), problem)
    if ftype == "date":
        for key in ("min", "max"):
            if isinstance(values.get(key), dt.date):
                values[key] = values[key].isoformat()
            elif isinstance(values.get(key), str) and values[key] in CAMPAIGN_DAYS:
                values[key] = _campaign_day(values[key], campaign(), problem)
    try:
        field = msgspec.convert(values, Field)
    except msgspec.ValidationError as exc:
        problem(_plain_validation_error(exc))
        return None
    if len(problems) > before:
        return None
    _check_type_rules(field, problem)
    if field.personal and not field.has_answer:
        problem(f"{ftype} 不收集回答，不能设 personal")
    if field.show_if is not None:
        try:
            condition = expressions.parse(field.show_if)
            checked = _check_condition(condition, earlier)
            # Labels the author wrote (有) are stored as option values (yes): the definition
            # then reads the same as one written with values.
            show_if = field.show_if if checked == condition else expressions.to_text(checked)
            field = msgspec.structs.replace(field, condition=checked, show_if=show_if)
        except ExpressionError as exc:
            text = field.show_if or ""
            shown = text if len(text) <= 60 else text[:59] + "…"
            problem(f"show_if {shown!r}：{exc}")
    if ftype in DEFAULT_MAX_LENGTH and field.max_length is None:
        field = msgspec.structs.replace(field, max_length=DEFAULT_MAX_LENGTH[ftype])
    if ftype == "section" and not field.title:
        field = msgspec.structs.replace(field, title=field.label)
    return field if len(problems) == before else None


def _options(raw: Any, other: Any, problem) -> list[dict[str, str]]:
    if not isinstance(raw, list) or not raw:
        problem("options 必须是非空列表")
        return []
    options = []
    for item in raw:
        if isinstance(item, str):
            item = {"value": item, "label": item}
        if not (
            isinstance(item, dict)
            and set(item) == {"value", "label"}
            and all(isinstance(v, str) and v.strip() for v in item.values())
        ):
            problem(f'选项 {item!r} 必须是文字，或 {{ value = "…", label = "…" }}')
            continue
        options.append({"value": item["value"].strip(), "label": item["label"].strip()})
    values = [o["value"] for o in options]
    for value in sorted({v for v in values if values.count(v) > 1}):
        problem(f"选项 {value!r} 重复了")
    if other is True and OTHER in values:
        problem(f"已设 other = true，选项的 value 不能再用 {OTHER!r}")
    return options


def _campaign_day(name: str, campaign: Campaign | None, problem: Callable[[str], None]) -> str | None:
    """The day `campaign.starts` or `campaign.ends` stands for, as `2026-09-01`."""
    if campaign is None:
        problem(f"用了 {name!r}，但同一文件夹里没有可用的 {CAMPAIGN_FILE}（没有这个文件，或它有错误）")
        return None
    day = getattr(campaign, CAMPAIGN_DAYS[name])
    if day is None:
        problem(f"用了 {name!r}，但 {CAMPAIGN_FILE} 没有设 {CAMPAIGN_DAYS[name]}")
        return None
    return day.isoformat()


def _grid_rows(raw: Any, problem) -> list[dict[str, str]]:
    """`rows = ["安全", { key = "price", label = "价格" }]`: plain items are keyed 1, 2, …"""
    if not isinstance(raw, list) or not raw:
        problem("grid 需要 rows（非空列表）")
        return []
    rows = []
    for number, item in enumerate(raw, start=1):
        if isinstance(item, str):
            item = {"key": str(number), "label": item}
        if not (
            isinstance(item, dict)
            and set(item) == {"key", "label"}
            and all(isinstance(v, str) and v.strip() for v in item.values())
        ):
            problem(f'rows 的第 {number} 项必须是文字，或 {{ key = "…", label = "…" }}')
            continue
        key = item["key"].strip()
        if not GRID_KEY.match(key):
            problem(f"rows 的 key {key!r} 只能用小写字母、数字和下划线，最长 20 个字符")
        rows.append({"key": key, "label": item["label"].strip()})
    keys = [r["key"] for r in rows]
    for key in sorted({k for k in keys if keys.count(k) > 1}):
        problem(f"rows 的 key {key!r} 重复了")
    return rows


def _plain_validation_error(exc: msgspec.ValidationError) -> str:
    text = str(exc)
    match = re.match(r"Expected `(\w+)[^`]*`, got `\w+` - at `\$\.(\w+)", text)
    if match:
        wanted = {"int": "整数", "str": "文字", "bool": " true 或 false（不加引号）", "float": "数字"}
        wanted |= {"array": "列表（用方括号 [ ] 括起来）", "object": "表（用花括号 { } 括起来）"}
        expected, key = match.groups()
        return f"{key} 应为{wanted.get(expected, expected)}"
    return f"设置项类型不对：{text}"


def _check_type_rules(field: Field, problem) -> None:
    kind = field.type
    if kind in ("text", "textarea"):
        shortest, longest = field.min_length or 0, field.max_length or DEFAULT_MAX_LENGTH[kind]
        if shortest < 0 or longest < 1 or shortest > longest:
            problem("min_length / max_length 不合理")
    elif kind in ("integer", "number"):
        for key in ("min", "max"):
            value = getattr(field, key)
            if value is not None and (isinstance(value, str) or (kind == "integer" and isinstance(value, float))):
                problem(f"{key} 应为{'整数' if kind == 'integer' else '数字'}")
        if isinstance(field.min, int | float) and isinstance(field.max, int | float) and field.min > field.max:
            problem("min 不能大于 max")
    elif kind == "date":
        for key in ("min", "max"):
            value = getattr(field, key)
            if value is not None and not (isinstance(value, str) and _is_date(value)):
                problem(f'{key} 应为日期，如 2022-09-01，或 "campaign.starts" / "campaign.ends"')
        if isinstance(field.min, str) and isinstance(field.max, str) and field.min > field.max:
            problem("min 不能晚于 max")
    elif kind == "multi":
        count = len(field.choices)
        low, high = field.min_choices, field.max_choices
        if (low is not None and not 0 <= low <= count) or (high is not None and not 1 <= high <= count):
            problem(f"min_choices / max_choices 应在 0 到 {count} 之间")
        elif low is not None and high is not None and low > high:
            problem("min_choices 不能大于 max_choices")
    elif kind == "region":
        if field.levels not in (1, 2):
            problem("levels 只能是 1（只选市县）或 2（市县和乡镇）")
        try:
            regions.load()
        except regions.RegionDataMissing:
            problem("海南行政区划数据没有安装，请先运行 make setup")
    elif kind == "grid" and not 2 <= field.scale <= 10:
        problem("scale 应在 2 到 10 之间")
    elif kind == "rating":
        if not 2 <= field.scale <= 10:
            problem("scale 应在 2 到 10 之间")
        elif field.labels and (len(field.labels) != field.scale or not all(label.strip() for label in field.labels)):
            problem(f"labels 要有 {field.scale} 个不为空的文字，从 1 分到 {field.scale} 分依次写")
    elif kind == "photo" and not 1 <= field.max_photos <= 9:
        problem("max_photos 应在 1 到 9 之间")
    elif kind == "video":
        if not 1 <= field.max_videos <= 3:
            problem("max_videos 应在 1 到 3 之间")
        if not 1 <= field.max_mb <= MAX_VIDEO_MB:
            problem(f"max_mb 应在 1 到 {MAX_VIDEO_MB} 之间")
    elif kind == "hidden":
        if field.required or field.personal or field.show_if is not None:
            problem("hidden 由网址带入，不能设 required、personal 或 show_if")
        if field.max_length is not None and not 1 <= field.max_length <= 200:
            problem("max_length 应在 1 到 200 之间")
    if kind in ("choice", "multi"):
        _check_answer(field, problem)
    if field.from_event is not None:
        if field.from_event not in EVENT_ATTRIBUTES:
            problem(f"from_event 必须是 {' / '.join(EVENT_ATTRIBUTES)} 之一，而不是 {field.from_event!r}")
        elif kind not in FROM_EVENT_TYPES:
            problem(f"from_event 只能用于 {'、'.join(FROM_EVENT_TYPES)} 类型，{kind} 不行")
        elif kind == "region" and field.from_event not in ("county", "township"):
            problem('region 题的 from_event 只能是 "county" 或 "township"（活动的市县和乡镇）')
        elif field.personal:
            problem("from_event 的题目不是个人信息，不能设 personal")


def _check_answer(field: Field, problem) -> None:
    """A quiz answer names options by value: one for a choice, a list for a multi."""
    if field.answer is None:
        if field.explain:
            problem("写了 explain（解释），还要写 answer（正确答案）")
        return
    values = [o.value for o in field.options]
    given = [field.answer] if isinstance(field.answer, str) else list(field.answer)
    if field.type == "choice" and not isinstance(field.answer, str):
        problem('单选题的 answer 是一个选项，如 answer = "12315"')
    elif field.type == "multi" and isinstance(field.answer, str):
        problem('多选题的 answer 是选项的列表，如 answer = ["看3C标志", "看适用年龄"]')
    elif not given:
        problem("answer 不能为空")
    for value in given:
        if value not in values:
            problem(f"answer {value!r} 不是选项的 value（可用：{'、'.join(values)}）")


def _is_date(text: str) -> bool:
    try:
        return bool(DATE.match(text)) and dt.date.fromisoformat(text) is not None
    except ValueError:
        return False


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """`，是不是 'satisfaction'？` for the known word nearest a typo; empty when none is near."""
    known = list(known)
    bare = word.strip("“”‘’「」 \u3000")  # a label typed with its quotes: “有”
    near = [bare] if bare in known else difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return f"，是不是 {near[0]!r}？" if near else ""


def _key_hint(key: str, ftype: str) -> str:
    """Why a field key is refused: a typo of one this type has, or a key of other types."""
    guess = did_you_mean(key, COMMON_KEYS | TYPE_KEYS[ftype])
    if guess:
        return guess
    owners = [kind for kind, keys in TYPE_KEYS.items() if key in keys]
    return f"（{'、'.join(owners)} 才有）" if owners else ""


def _check_condition(condition: Condition, earlier: list[Field]) -> Condition:
    """Every comparison must name an earlier question and fit its type. Returns the condition
    with option labels (有) replaced by their values (yes)."""
    by_name = {f.name: f for f in earlier}
    condition = expressions.replace_values(condition, lambda name, value: _option_value(by_name.get(name), value))
    for part in expressions.walk(condition):
        source = by_name.get(part.field)
        if source is None:
            guess = did_you_mean(part.field, by_name)
            if guess:
                raise ExpressionError(f"没有名为 {part.field!r} 的字段{guess}")
            raise ExpressionError(f"前面没有名为 {part.field!r} 的字段（show_if 只能用本题前面的字段）")
        kind = source.type
        if not source.has_answer or kind in ("consent", "grid", "photo", "video"):
            raise ExpressionError(f"{part.field!r} 是 {kind}，不能用于条件")
        if isinstance(part, Contains):
            if kind != "multi":
                instead = f'，请写 {part.field} == "{part.value}"' if kind == "choice" else ""
                raise ExpressionError(f"in 只能用于多选题（multi），{part.field!r} 是 {kind}{instead}")
            _check_option(source, part.value)
            continue
        assert isinstance(part, Compare)
        numeric = kind in ("integer", "number", "rating")
        if kind == "multi":
            raise ExpressionError(f'多选题 {part.field!r} 请用 "选项" in {part.field}')
        if numeric != (not isinstance(part.value, str)):
            wanted = "数字" if numeric else "带引号的文字"
            raise ExpressionError(f"{part.field!r} 是 {kind}，比较的值应为{wanted}")
        if part.op in ("<", "<=", ">", ">=") and not (numeric or kind == "date"):
            raise ExpressionError(f"{part.op} 只能用于数字、评分和日期")
        if kind == "date" and not _is_date(str(part.value)):
            raise ExpressionError(f'日期应写成 "2022-09-01" 的样子，而不是 {part.value!r}')
        if kind == "choice":
            _check_option(source, str(part.value))
    return condition


def _option_value(field: Field | None, value: expressions.Literal) -> expressions.Literal:
    """The value of the option a condition names by its label; anything else as it is."""
    if field is None or field.type not in ("choice", "multi") or not isinstance(value, str):
        return value
    if any(o.value == value for o in field.choices):
        return value
    matches = [o.value for o in field.choices if o.label == value]
    return matches[0] if len(matches) == 1 else value


def _check_option(field: Field, value: str) -> None:
    values = [o.value for o in field.choices]
    if value not in values:
        shown = "、".join(o.value if o.value == o.label else f"{o.value}（{o.label}）" for o in field.choices)
        guess = did_you_mean(value, [o.label for o in field.choices] + values)
        raise ExpressionError(f"{value!r} 不是 {field.name!r} 的选项{guess}（可用：{shown}）")


def form_files(directory: Path) -> Iterator[Path]:
    """The form files of a folder, sorted: `*.toml` except the campaign file and names starting with `_`."""
    if directory.is_dir():
        yield from sorted(p for p in directory.glob("*.toml") if not p.name.startswith("_") and p.name != CAMPAIGN_FILE)


def check_forms(directory: Path) -> tuple[dict[str, Form], list[str]]:
    """Load every form of the folder (and its campaign file); broken files become error
    lines, never exceptions."""
    campaign, errors = read_campaign(directory)
    forms: dict[str, Form] = {}
    for path in form_files(directory):
        try:
            forms[path.stem] = load_form(path, campaign)
        except FormError as exc:
            errors.extend(exc.messages)
        except OSError as exc:
            errors.append(f"{path}: 无法读取：{exc.strerror}")
    return forms, errors


PUBLISHED_FILE = ".published"  # in the forms folder: the publish counter every server process maps


class PublishCounter:
    """A number in a small file that every server process maps into memory: publishing adds
    one, and a process that sees it move looks at the forms folder again. Reading it is a
    memory read, not a system call. Without a folder the server may write, there is no
    counter (0), and other processes see a publish at their next look, within seconds."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._map: mmap.mmap | None = None
        self._number: memoryview | None = None  # the map as one unsigned 64-bit number: a read is an index
        self.attach(create=True)

    def attach(self, create: bool = False) -> None:
        if self._map is not None:
            return
        try:
            fd = os.open(self.path, os.O_RDWR | (os.O_CREAT if create else 0), 0o644)
        except OSError:
            return  # a folder the server may not write (or, not creating, no counter yet)
        try:
            if os.fstat(fd).st_size < 8:
                os.ftruncate(fd, 8)  # zeros; a file of 8 bytes keeps its number
            self._map = mmap.mmap(fd, 8)
            self._number = memoryview(self._map).cast("Q")
        except OSError as exc:
            log.warning("no publish counter in %s (%s): other processes see a publish within seconds", self.path, exc)
        finally:
            os.close(fd)

    def value(self) -> int:
        return self._number[0] if self._number is not None else 0

    def bump(self) -> None:
        self.attach(create=True)
        if self._number is None:
            return
        with self.path.open("rb") as lock:  # two processes publishing at once must not lose a count
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._number[0] = (self._number[0] + 1) % 2**64


class FormCatalog:
    """The forms the server offers, re-read when their files change.

    Authors edit files while the server runs, so the folder is looked at again at
    most every `rescan_seconds`; only files whose size, time or inode changed are re-read.
    A broken file is logged and left out; the other forms keep serving. When the
    campaign file changes, every form is re-read: its dates may come from the campaign.

    A form published from the workshop must be served by every server process at once: the
    publishing process calls `published`, which moves the publish counter all processes read
    from shared memory before answering (a memory read: no cost worth the name), and a
    process asked for an id it does not know also looks
    at the folder again right away when files came or went since its last look (a listing of
    the folder), else at most every `unknown_rescan_seconds`, so a flood of made-up ids costs
    little. A known form costs nothing more than before.
    """

    def __init__(self, directory: Path, rescan_seconds: float = 2.0, unknown_rescan_seconds: float = 0.2) -> None:
        self.directory = directory
        self.rescan_seconds = rescan_seconds
        self.unknown_rescan_seconds = unknown_rescan_seconds
        self._lock = threading.Lock()
        self._stamps: dict[Path, tuple[int, int, int]] = {}
        self._results: dict[Path, Form | list[str]] = {}
        self._forms: dict[str, Form] = {}
        self._campaign: Campaign | None = None
        self._campaign_errors: list[str] = []
        self._next_scan = 0.0
        self._next_unknown_scan = 0.0
        self._folder_seen: frozenset[str] = frozenset()
        self._counter = PublishCounter(directory / PUBLISHED_FILE)
        self._counter_seen = -1
        self._scan()

    def get(self, form_id: str) -> Form | None:
        self._maybe_rescan()
        form = self._forms.get(form_id)
        if form is None and FORM_ID.match(form_id) and self._worth_a_look():
            self.reload()
            form = self._forms.get(form_id)
        return form

    def _worth_a_look(self) -> bool:
        """For an unknown id: whether files came or went in the folder since the last look
        (its names, listed: a publish renames a new file into it; the folder's time would
        miss two changes in one clock tick), or the last look is a while ago."""
        if self._folder_stamp() != self._folder_seen:
            return True
        if time.monotonic() >= self._next_unknown_scan:
            self._next_unknown_scan = time.monotonic() + self.unknown_rescan_seconds
            return True
        return False

    def _folder_stamp(self) -> frozenset[str]:
        try:
            return frozenset(os.listdir(self.directory))
        except OSError:
            return frozenset()

    def all(self) -> list[Form]:
        self._maybe_rescan()
        return list(self._forms.values())

    def reload(self) -> None:
        """Look at the folder now (for an unknown id, or after this process wrote a form file)."""
        with self._lock:
            self._scan()

    def published(self) -> None:
        """A form file was written: this process reloads, and every other one before it answers next."""
        self._counter.bump()
        self.reload()

    def broken(self) -> dict[str, list[str]]:
        """Form files that fail the check, by form id, with their error lines."""
        self._maybe_rescan()
        return {p.stem: r for p, r in sorted(self._results.items()) if isinstance(r, list)}

    @property
    def campaign(self) -> Campaign | None:
        """This year's campaign; None without a campaign file or with a broken one."""
        self._maybe_rescan()
        return self._campaign

    @property
    def errors(self) -> list[str]:
        forms = [line for result in self._results.values() if isinstance(result, list) for line in result]
        return self._campaign_errors + forms

    def _maybe_rescan(self) -> None:
        due = time.monotonic() >= self._next_scan or self._counter.value() != self._counter_seen
        if due and self._lock.acquire(blocking=False):
            try:
                self._scan()
            finally:
                self._lock.release()

    def _scan(self) -> None:
        self._next_scan = time.monotonic() + self.rescan_seconds
        self._counter.attach()
        self._counter_seen = self._counter.value()
        self._folder_seen = self._folder_stamp()  # before the files: a file added meanwhile shows next time
        stamps: dict[Path, tuple[int, int, int]] = {}
        campaign_path = self.directory / CAMPAIGN_FILE
        for path in [*form_files(self.directory), campaign_path]:
            try:
                stat = path.stat()
            except OSError:
                continue
            # The inode too: a file published by renaming a new one over it may keep size and time.
            stamps[path] = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if stamps == self._stamps:
            return
        results = {p: r for p, r in self._results.items() if stamps.get(p) == self._stamps.get(p)}
        if stamps.get(campaign_path) != self._stamps.get(campaign_path) or not self._stamps:
            self._campaign, self._campaign_errors = self._read_campaign(campaign_path, campaign_path in stamps)
            results = {}
        for path in stamps.keys() - results.keys() - {campaign_path}:
            try:
                form = load_form(path, self._campaign)
                results[path] = form
                log.info("form %s loaded (version %s)", path.stem, form.version)
            except (FormError, OSError) as exc:
                messages = exc.messages if isinstance(exc, FormError) else [f"{path}: {exc}"]
                results[path] = messages
                for message in messages:
                    log.error("form skipped: %s", message)
        self._stamps, self._results = stamps, results
        self._forms = {p.stem: r for p, r in sorted(results.items()) if isinstance(r, Form)}

    @staticmethod
    def _read_campaign(path: Path, exists: bool) -> tuple[Campaign | None, list[str]]:
        if not exists:
            return None, []
        try:
            campaign = load_campaign(path)
            log.info("campaign %s loaded", campaign.year)
            return campaign, []
        except CampaignError as exc:
            for message in exc.messages:
                log.error("campaign skipped: %s", message)
            return None, exc.messages
