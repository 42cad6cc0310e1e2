"""Writing a form as XLSForm, for KoboToolbox and ODK.

Standard columns say what XLSForm can; what it has no column for (a grid's scale words, a
region's levels, a photo count, `personal`, the form's kind and dates…) goes into the extra
columns `qf_field` and `qf_form`, which those tools ignore and `server.xlsform` reads
back, so a form survives the round trip. The notes say what Kobo/ODK users will see
differently.
"""

from __future__ import annotations

import io
import re
from typing import Any

from server.forms import Field, Form
from server.tomlfile import toml_value
from server.xlsform import CHOICE_VALUE, EXTRA, FORM_EXTRA
from server.xpath import EMAIL_REGEX, PHONE_REGEX, relevant_text

# One language, so the plain `label` and `hint` columns: with `label::Chinese (zh)` pyxform treats
# the form as translated and warns about `or_other`.
SURVEY_COLUMNS = ["type", "name", "label", "hint", "required", "relevant"]
SURVEY_COLUMNS += ["constraint", "appearance", "parameters", EXTRA]
CHOICE_COLUMNS = ["list_name", "name", "label", CHOICE_VALUE]
# Keys each type says in standard columns; the rest of a field's keys go into `qf_field`.
STANDARD = {"name", "type", "label", "hint", "required", "show_if"}
STANDARD_BY_TYPE = {
    "text": {"max_length", "min_length"},
    "textarea": {"max_length"},
    "integer": {"min", "max"},
    "number": {"min", "max"},
    "date": {"min", "max"},
    "choice": {"options", "other"},
    "multi": {"options", "other", "min_choices", "max_choices"},
    "section": {"title"},
}
XLSFORM_TYPE = {
    "text": "text",
    "textarea": "text",
    "integer": "integer",
    "number": "decimal",
    "phone": "text",
    "email": "text",
    "date": "date",
    "consent": "acknowledge",
    "note": "note",
    "hidden": "hidden",
    "photo": "image",
    "video": "video",
    "region": "text",
}
# What Kobo and ODK see of a question this product has and XLSForm lacks.
NEAREST = {
    "region": "region 题 {0!r} 在 Kobo/ODK 里是文字题（没有海南市县乡镇列表）",
    "grid": "grid 题 {0!r} 在 Kobo/ODK 里是一组单选题（每行一题）",
    "rating": "rating 题 {0!r} 在 Kobo/ODK 里是 1…N 的单选题（likert）",
    "photo": "photo 题 {0!r} 在 Kobo/ODK 里是一张照片（image）",
    "video": "video 题 {0!r} 在 Kobo/ODK 里是一段视频（video），没有大小限制",
    "hidden": "hidden 题 {0!r} 在 Kobo/ODK 里没有网址参数，留空",
}


def write_xlsform(form: Form, table: dict[str, Any]) -> tuple[bytes, list[str]]:
    """The form as an XLSForm workbook, and notes on what Kobo/ODK will see differently.

    `table` is the form file as written (`read_toml`): it keeps what the author wrote, such as
    `campaign.starts`, where `form` holds the checked result.
    """
    import xlsxwriter

    survey: list[dict[str, str]] = []
    choices: list[list[str]] = []
    notes: list[str] = []
    in_section = False
    for raw in table.get("fields", []):
        field = form.field(raw["name"])
        assert field is not None  # the table is the form's own file
        if field.type == "section":
            if in_section:
                survey.append({"type": "end group"})
            survey.append(_row(field, raw, "begin group", {"title"} if "title" in raw else {"label"}))
            in_section = True
            continue
        if field.type == "grid":
            survey += _grid_rows(field, raw, choices)
        elif field.type in ("choice", "multi"):
            kind = ("select_one " if field.type == "choice" else "select_multiple ") + field.name
            choices += _choices(field)
            survey.append(_row(field, raw, kind + (" or_other" if field.other else "")))
        elif field.type == "rating":
            choices += [[f"{field.name}_scale", str(p), field.rating_label(p)] for p in range(1, field.scale + 1)]
            survey.append(_row(field, raw, f"select_one {field.name}_scale", set(), appearance="likert"))
        else:
            appearance = {"textarea": "multiline", "phone": "numbers"}.get(field.type, "")
            row = _row(field, raw, XLSFORM_TYPE[field.type], set(), appearance=appearance)
            if field.type == "photo":  # what the page does before sending (static/photos.js)
                row["parameters"] = "max-pixels=1600"
            survey.append(row)
        if field.type in NEAREST:
            notes.append(NEAREST[field.type].format(field.name))
        if field.from_event:
            notes.append(f"{field.name!r} 在活动页面由活动信息填好（from_event）；Kobo/ODK 里照常提问")
    if form.quiz_fields:
        notes.append("测验题的正确答案（answer）只有本系统计分；Kobo/ODK 不计分")
    if in_section:
        survey.append({"type": "end group"})
    form_keys = {k: v for k, v in table.items() if k not in ("title", "fields")}
    settings = {"form_title": form.title, "form_id": form.id, "version": form.version}
    settings[FORM_EXTRA] = toml_value(form_keys)
    output = io.BytesIO()
    with xlsxwriter.Workbook(output, {"in_memory": True, "strings_to_numbers": False}) as workbook:
        _sheet(workbook, "survey", SURVEY_COLUMNS, [[row.get(c, "") for c in SURVEY_COLUMNS] for row in survey])
        _sheet(workbook, "choices", CHOICE_COLUMNS, choices)
        _sheet(workbook, "settings", list(settings), [list(settings.values())])
    return output.getvalue(), notes


def _sheet(workbook: Any, name: str, header: list[str], rows: list[list[str]]) -> None:
    sheet = workbook.add_worksheet(name)
    bold = workbook.add_format({"bold": True})
    sheet.write_row(0, 0, header, bold)
    for number, row in enumerate(rows, start=1):
        for column, value in enumerate(row):
            if value != "":
                sheet.write_string(number, column, value)
    sheet.freeze_panes(1, 0)


def _row(field: Field, raw: dict[str, Any], kind: str, said: set[str] | None = None, appearance: str = "") -> dict:
    """One survey row: the standard columns, and what they cannot say in `qf_field`."""
    said = STANDARD | (said if said is not None else STANDARD_BY_TYPE.get(field.type, set()))
    if field.type == "section" and "title" in raw:
        said -= {"label"}  # the row's label is the title: a label of its own goes in qf_field
    row = {"type": kind, "name": field.name, "label": field.title or field.label}
    row |= {"hint": field.hint, "appearance": appearance}
    if field.required:
        row["required"] = "yes"
    if field.condition is not None:
        row["relevant"] = relevant_text(field.condition)
    constraint = _constraint_text(field, raw)
    if constraint:
        row["constraint"] = constraint
    extra = {k: v for k, v in raw.items() if k not in said or _campaign_day(k, v)}
    if field.type not in STANDARD_BY_TYPE and field.type not in ("note", "consent", "hidden"):
        extra = {"type": field.type} | extra
    if field.type == "photo" and field.max_photos == 1:
        extra.pop("max_photos", None)
    if field.type == "photo" and set(extra) == {"type"}:
        extra = {}
    if set(extra) == {"type"} and field.type in ("phone", "email"):
        extra = {}  # the constraint's pattern says it
    if extra:
        row[EXTRA] = toml_value(extra)
    return row


def _campaign_day(key: str, value: Any) -> bool:
    return key in ("min", "max") and isinstance(value, str) and value.startswith("campaign.")


def _constraint_text(field: Field, raw: dict[str, Any]) -> str:
    parts = []
    if field.type == "phone":
        parts.append(f"regex(., '{PHONE_REGEX}')")
    if field.type == "email":
        parts.append(f"regex(., '{EMAIL_REGEX}')")
    subject = {"text": "string-length(.)", "textarea": "string-length(.)", "multi": "count-selected(.)"}
    bounds = {"text": ("min_length", "max_length"), "textarea": ("min_length", "max_length")}
    bounds |= {"integer": ("min", "max"), "number": ("min", "max"), "date": ("min", "max")}
    bounds |= {"multi": ("min_choices", "max_choices")}
    for key, op in zip(bounds.get(field.type, ()), (">=", "<="), strict=False):
        value = raw.get(key)
        if value is None or _campaign_day(key, value):
            continue
        shown = f"date('{value}')" if field.type == "date" else str(value)
        parts.append(f"{subject.get(field.type, '.')} {op} {shown}")
    return " and ".join(parts)


def _grid_rows(field: Field, raw: dict[str, Any], choices: list[list[str]]) -> list[dict[str, str]]:
    """A grid as Kobo/ODK's nearest: a group of single choices, one per row, on one scale."""
    scale = f"{field.name}_scale"
    choices += [[scale, str(point), str(point)] for point in range(1, field.scale + 1)]
    begin = _row(field, raw, "begin group", {"rows"}, appearance="field-list")
    begin.pop("required", None)  # said on each row: a group is not answered
    rows = [begin]
    for grid_row, name in zip(field.rows, field.answer_names, strict=True):
        row = {"type": f"select_one {scale}", "name": name, "label": grid_row.label}
        row |= {"appearance": "likert", "required": "yes" if field.required else ""}
        rows.append(row)
    return [*rows, {"type": "end group"}]


def _choices(field: Field) -> list[list[str]]:
    """A question's options as choice rows. XLSForm choice names are one word (a multiple
    answer is the names joined by spaces): an option value that is not gets a name of its
    own, and the value goes into `qf_value`."""
    rows = []
    values = {option.value for option in field.options}
    for number, option in enumerate(field.options, start=1):
        if re.fullmatch(r"[^\s'\"]+", option.value):
            rows.append([field.name, option.value, option.label, ""])
            continue
        name = f"option{number}"
        while name in values:
            name += "_"
        rows.append([field.name, name, option.label, option.value])
    return rows
