"""Turn what a phone posted into clean answers, or Chinese errors per question.

Pure functions: no HTTP, no database. Input is what a form post carries — each name
with the list of values sent for it — and output is the stored shape: strings, ints,
floats, lists of option values, `True` for a ticked consent. Unanswered questions are
left out of the answers.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

import msgspec

from server import expressions, photos, regions, videos
from server.clock import parse_day
from server.forms import OTHER, Field, Form

PRIVACY_CONSENT = "_consent"  # the product's own consent box for forms with personal fields
OTHER_MAX_LENGTH = 200
LARGEST_NUMBER = 10**15  # beyond what any survey asks, and exact in a float
# More digits than LARGEST_NUMBER has can only be too large; checking the length first also
# keeps int() away from its 4,300-digit limit (a ValueError, not an answer).
LONGEST_INTEGER = len(str(LARGEST_NUMBER))


class Outcome(msgspec.Struct):
    answers: dict[str, Any]
    errors: dict[str, str]

    @property
    def ok(self) -> bool:
        return not self.errors


class Malformed(ValueError):
    """A request no person could have typed (e.g. two values for a single answer)."""


def validate(form: Form, data: Mapping[str, list[str]], fixed: Mapping[str, Any] | None = None) -> Outcome:
    """Validate a whole submission against its form, questions in order.

    `fixed` holds answers the page did not ask for (an event's own township, date…, see
    `answers_from_event`): they are taken as they are, whatever was posted for them.
    """
    answers: dict[str, Any] = {}
    errors: dict[str, str] = {}
    fixed = fixed or {}
    for field in form.answer_fields:
        if field.condition is not None and not expressions.evaluate(field.condition, answers):
            continue  # hidden: not required, and whatever was sent for it is discarded
        if field.name in fixed:
            answers[field.name] = fixed[field.name]
            continue
        value, error = clean_field(field, data)
        if error:
            errors[field.name] = error
        elif field.type == "grid":
            answers.update(value or {})  # one answer per row, `<name>_<key>`
        elif value is not None:
            answers[field.name] = value
            if field.other and OTHER in _as_list(value):
                answers[field.other_name] = _single(data, field.other_name).strip()
    gave_personal = any(name in answers for name in form.personal_names)
    if gave_personal and form.asks_privacy_consent and not _single(data, PRIVACY_CONSENT):
        errors[PRIVACY_CONSENT] = "填写了个人信息，请先阅读并勾选同意个人信息说明"
    return Outcome(answers, errors)


def answers_from_event(form: Form, attributes: Mapping[str, str]) -> dict[str, Any]:
    """The answers an event gives the questions bound to it with `from_event`.

    A question whose event attribute is empty (or, for a choice, not one of its options)
    gets nothing here, so the page asks it as usual.
    """
    answers = {}
    for field in form.answer_fields:
        if field.type == "region" and field.from_event is not None:  # the event's place: 市县, or 市县/乡镇
            parts = [attributes.get("county", ""), attributes.get("township", "")][: field.levels]
            value = regions.normalize("/".join(parts), field.levels) if all(parts) else None
        elif field.from_event is not None:
            value = field.answer_from_event(attributes.get(field.from_event, ""))
        else:
            continue
        if value is not None:
            answers[field.name] = value
    return answers


def visible_fields(form: Form, answers: Mapping[str, Any]) -> set[str]:
    """Names of the questions shown for these answers (for re-rendering a page)."""
    return {f.name for f in form.fields if f.condition is None or expressions.evaluate(f.condition, answers)}


def clean_field(field: Field, data: Mapping[str, list[str]]) -> tuple[Any, str | None]:
    """One question: (clean value or None, Chinese error or None)."""
    if field.type == "multi":
        return _clean_multi(field, data)
    if field.type == "grid":
        return _clean_grid(field, data)
    if field.type == "photo":
        return _clean_photo(field, data)
    if field.type == "video":
        return _clean_video(field, data)
    text = _single(data, field.name)
    if field.type == "choice":
        return _clean_choice(field, text, _single(data, field.other_name).strip())
    if field.type == "textarea":
        text = text.replace("\r\n", "\n").strip()
    elif field.type != "consent":
        text = text.strip()
    if not text:
        return None, (_REQUIRED.get(field.type, "此项为必填") if field.required else None)
    return _CLEANERS[field.type](field, text)


_REQUIRED = {
    "choice": "请选择一项",
    "rating": "请选择一个分数",
    "consent": "请阅读并勾选同意",
}


def _single(data: Mapping[str, list[str]], name: str) -> str:
    values = data.get(name) or [""]
    if len(values) > 1:
        raise Malformed(f"several values for {name!r}")
    return values[0]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _control_characters(text: str, allowed: str = "") -> bool:
    return any(unicodedata.category(c) == "Cc" and c not in allowed for c in text)


def _clean_text(field: Field, text: str) -> tuple[Any, str | None]:
    if _control_characters(text, allowed="\n\t" if field.type == "textarea" else ""):
        return None, "包含无法识别的控制字符，请删去后再提交"
    if field.max_length is not None and len(text) > field.max_length:
        return None, f"最多填写 {field.max_length} 个字（现在是 {len(text)} 个）"
    if field.min_length is not None and len(text) < field.min_length:
        return None, f"至少填写 {field.min_length} 个字（现在是 {len(text)} 个）"
    return text, None


_INTEGER = re.compile(r"^[+-]?\d+$")
_DECIMAL = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$")


def _halfwidth(text: str) -> str:
    """Full-width digits and signs from Chinese keyboards (１２３，＠) made plain."""
    return unicodedata.normalize("NFKC", text).replace(" ", "")


def _clean_number(field: Field, text: str) -> tuple[Any, str | None]:
    text = _halfwidth(text).replace(",", "")
    if field.type == "integer":
        if not _INTEGER.match(text):
            return None, "请填写整数，如 25"
        if len(text.lstrip("+-").lstrip("0")) > LONGEST_INTEGER:
            return None, "数字太大了，请检查"
        value: int | float = int(text)
    else:
        if not _DECIMAL.match(text):
            return None, "请填写数字，如 3.5"
        value = float(text)
    if not math.isfinite(value) or abs(value) > LARGEST_NUMBER:
        return None, "数字太大了，请检查"
    low, high = field.min, field.max
    if low is not None and high is not None and not low <= value <= high:  # type: ignore[operator]
        return None, f"请填写 {_plain(low)} 到 {_plain(high)} 之间的数"
    if low is not None and value < low:  # type: ignore[operator]
        return None, f"不能小于 {_plain(low)}"
    if high is not None and value > high:  # type: ignore[operator]
        return None, f"不能大于 {_plain(high)}"
    return value, None


def _plain(number: Any) -> str:
    return f"{number:g}" if isinstance(number, float) else str(number)


_PHONE = re.compile(r"^1[3-9]\d{9}$")


def _clean_phone(field: Field, text: str) -> tuple[Any, str | None]:
    digits = _halfwidth(text).replace("-", "")
    if digits.startswith("+86"):
        digits = digits[3:]
    if not _PHONE.match(digits):
        return None, "请填写 11 位手机号码，如 13812345678"
    return digits, None


_EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+$")


def _clean_email(field: Field, text: str) -> tuple[Any, str | None]:
    address = _halfwidth(text)
    if len(address) > 254 or not _EMAIL.match(address):
        return None, "请填写正确的电子邮箱，如 name@example.com"
    return address, None


def _clean_date(field: Field, text: str) -> tuple[Any, str | None]:
    day = parse_day(_halfwidth(text))
    if day is None:
        return None, "请填写正确的日期，如 2022-09-15"
    if isinstance(field.min, str) and day < field.min:
        return None, f"日期不能早于 {field.min}"
    if isinstance(field.max, str) and day > field.max:
        return None, f"日期不能晚于 {field.max}"
    return day, None


def _clean_rating(field: Field, text: str) -> tuple[Any, str | None]:
    # A scale is at most 10: anything longer than two digits is out of it (and int() of
    # thousands of digits would raise rather than answer).
    if not text.isascii() or not text.isdigit() or len(text) > 2 or not 1 <= int(text) <= field.scale:
        return None, f"请选择 1 到 {field.scale} 之间的分数"
    return int(text), None


def _clean_consent(field: Field, text: str) -> tuple[Any, str | None]:
    return True, None


def _clean_region(field: Field, text: str) -> tuple[Any, str | None]:
    place = regions.normalize(_halfwidth(text), field.levels)
    if place is None:
        return None, "请从列表中选择海南省的市县" + ("和乡镇" if field.levels == 2 else "")
    return place, None


def _clean_hidden(field: Field, text: str) -> tuple[Any, str | None]:
    """A value the page address carried (`?src=poster`). Nobody typed it and nobody could
    correct it, so a value that does not fit is left out rather than refused."""
    if len(text) > (field.max_length or 100) or _control_characters(text):
        return None, None
    return text, None


def _clean_choice(field: Field, text: str, other_text: str) -> tuple[Any, str | None]:
    text = text.strip()
    if field.other and other_text:
        if text and text != OTHER:
            return None, f"您选了“{field.option_label(text)}”，又填写了“其他”内容，请只保留一项"
        text = OTHER  # typed into 其他 without ticking it: they meant 其他
    if not text:
        return None, (_REQUIRED["choice"] if field.required else None)
    if text not in field.choice_values:
        return None, "请从给出的选项中选择"
    if text == OTHER and field.other:
        return _check_other_text(text, other_text)
    return text, None


def _check_other_text(value: Any, other_text: str) -> tuple[Any, str | None]:
    if not other_text:
        return None, "选了“其他”，请填写具体内容"
    if len(other_text) > OTHER_MAX_LENGTH or _control_characters(other_text):
        return None, f"“其他”内容最多 {OTHER_MAX_LENGTH} 个字"
    return value, None


def _clean_grid(field: Field, data: Mapping[str, list[str]]) -> tuple[Any, str | None]:
    """Each row on the shared scale: `{<name>_<key>: point}` for the rows answered."""
    points: dict[str, int] = {}
    missing = []
    for name, row in zip(field.answer_names, field.rows, strict=True):
        text = _single(data, name).strip()
        if not text:
            missing.append(row.label)
        elif not (text.isascii() and text.isdigit() and len(text) <= 2 and 1 <= int(text) <= field.scale):
            return None, f"“{row.label}”请选择 1 到 {field.scale} 之间的分数"
        else:
            points[name] = int(text)
    if field.required and missing:
        return None, f"请每一行都选一个分数（还没选：{'、'.join(missing)}）"
    return points or None, None


def _clean_video(field: Field, data: Mapping[str, list[str]]) -> tuple[Any, str | None]:
    """The names of the clips stored for this question (set by the route from its uploads)."""
    names = list(dict.fromkeys(data.get(field.name, [])))
    if not all(videos.NAME.match(name) for name in names):
        return None, "视频无法识别，请重新选择"
    if len(names) > field.max_videos:
        return None, f"最多上传 {field.max_videos} 段视频（现在是 {len(names)} 段）"
    if not names:
        return None, ("请上传视频" if field.required else None)
    return names, None


def _clean_photo(field: Field, data: Mapping[str, list[str]]) -> tuple[Any, str | None]:
    """The names of the photos stored for this question (public.py turns uploads into names
    before validating; names are never taken from what the phone sent)."""
    names = list(dict.fromkeys(data.get(field.name, [])))  # the same picture twice is one
    if not all(photos.NAME.match(name) for name in names):
        return None, "照片无法识别，请重新选择"
    if len(names) > field.max_photos:
        return None, f"最多上传 {field.max_photos} 张照片（现在是 {len(names)} 张）"
    if not names:
        return None, ("请上传照片" if field.required else None)
    return names, None


def _clean_multi(field: Field, data: Mapping[str, list[str]]) -> tuple[Any, str | None]:
    chosen = {v.strip() for v in data.get(field.name, []) if v.strip()}
    other_text = _single(data, field.other_name).strip() if field.other else ""
    if other_text:
        chosen.add(OTHER)  # typed into 其他 without ticking it: they meant 其他
    allowed = field.choice_values
    if chosen.difference(allowed):
        return None, "请从给出的选项中选择"
    if not chosen:
        return None, ("请至少选择一项" if field.required else None)
    values = [v for v in allowed if v in chosen]  # definition order, duplicates gone
    if field.min_choices is not None and len(values) < field.min_choices:
        return None, f"请至少选择 {field.min_choices} 项"
    if field.max_choices is not None and len(values) > field.max_choices:
        return None, f"最多选择 {field.max_choices} 项（现在选了 {len(values)} 项）"
    if OTHER in values and field.other:
        return _check_other_text(values, other_text)
    return values, None


_CLEANERS = {
    "text": _clean_text,
    "textarea": _clean_text,
    "integer": _clean_number,
    "number": _clean_number,
    "phone": _clean_phone,
    "email": _clean_email,
    "date": _clean_date,
    "rating": _clean_rating,
    "consent": _clean_consent,
    "hidden": _clean_hidden,
    "region": _clean_region,
}
