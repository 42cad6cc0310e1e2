"""XLSForm, the Excel form format of KoboToolbox and ODK: a workbook becomes a form.

The `survey`, `choices` and `settings` sheets become a checked TOML form for the types this
product has. Every row it cannot carry over (a calculation, a location, a repeat, a
condition or constraint with no equivalent…) is listed with its row number and why:
nothing is dropped silently. The extra columns `qf_field` and `qf_form` (written by
`server.xlsform_export`) carry what XLSForm has no column for, so a form exported from
here comes back the same.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import msgspec

from server import expressions
from server.campaign import Campaign
from server.errors import InputError
from server.forms import FORM_ID, OTHER, Form, FormError, parse_form
from server.tomlfile import TomlFileError, parse_toml, to_toml
from server.xpath import Unmappable, constraint_keys, relevant_condition

CHOICE_VALUE = "qf_value"  # choices column: the option's value when it cannot be a choice name (it has spaces)
EXTRA = "qf_field"  # survey column: the product's keys XLSForm has no column for (inline TOML)
FORM_EXTRA = "qf_form"  # settings column: the form's own keys (kind, opens, privacy…)
TRUE = {"yes", "true", "true()", "1", "y"}

# XLSForm types with no counterpart here, and why (what the office reads in the list).
UNSUPPORTED = {
    "calculate": "计算题（calculate）不支持：本系统不在表单里计算",
    "geopoint": "位置题（geopoint）不支持：本系统不收集位置",
    "geotrace": "位置题（geotrace）不支持：本系统不收集位置",
    "geoshape": "位置题（geoshape）不支持：本系统不收集位置",
    "audio": "录音题（audio）不支持：只支持照片（image）",
    "background-audio": "录音（background-audio）不支持",
    "file": "文件上传（file）不支持：只支持照片（image）",
    "barcode": "扫码题（barcode）不支持",
    "time": "时间题（time）不支持：只支持日期（date）",
    "datetime": "日期时间题（datetime）不支持：只支持日期（date）",
    "rank": "排序题（rank）不支持",
    "trigger": "trigger 不支持",
    "select_one_from_file": "从外部文件读选项（select_one_from_file）不支持",
    "select_multiple_from_file": "从外部文件读选项（select_multiple_from_file）不支持",
    "select_one_external": "外部选项（select_one_external）不支持",
    "select_multiple_external": "外部选项（select_multiple_external）不支持",
    "xml-external": "外部数据（xml-external）不支持",
    "csv-external": "外部数据（csv-external）不支持",
}
METADATA = {"start", "end", "today", "deviceid", "subscriberid", "simserial", "phonenumber", "username"}
METADATA |= {"email", "audit", "start-geopoint"}


SHEETS = ("survey", "choices", "settings")
MAX_ROWS = 5000
MAX_COLUMNS = 200


class Dropped(msgspec.Struct, frozen=True):
    """One row of the workbook not carried over, or carried over without something."""

    sheet: str
    row: int
    name: str
    why: str

    @property
    def text(self) -> str:
        """`survey 第 12 行（total）：计算题（calculate）不支持…`"""
        return f"{self.sheet} 第 {self.row} 行" + (f"（{self.name}）" if self.name else "") + f"：{self.why}"


class Imported(msgspec.Struct, frozen=True):
    form_id: str
    title: str
    toml: str
    dropped: list[Dropped]


class XLSFormError(InputError):
    """The workbook cannot become a form at all; `messages` are Chinese."""


# Reading the workbook ---------------------------------------------------------------------


class Row(msgspec.Struct):
    number: int
    cells: dict[str, str]

    def get(self, column: str) -> str:
        return self.cells.get(column, "")


def _sheets(data: bytes) -> dict[str, list[Row]]:
    """Each sheet's rows as {lower-case header: text}; blank rows left out."""
    import openpyxl  # type: ignore[import-untyped]  # imported when a workbook comes in: it is slow to load

    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # zipfile, XML and openpyxl's own errors all mean "not an .xlsx"
        raise XLSFormError(["文件不是 Excel 工作簿（.xlsx）：请在 Excel 或 WPS 里另存为 .xlsx 再导入"]) from None
    sheets: dict[str, list[Row]] = {}
    try:
        for sheet in workbook.worksheets:
            name = sheet.title.strip().lower()
            if name in SHEETS:
                sheets[name] = _rows(sheet, name)
    except XLSFormError:
        raise
    except Exception:  # a damaged sheet inside a readable zip
        raise XLSFormError(["Excel 文件已损坏，读不出来：请在 Excel 或 WPS 里打开后重新保存"]) from None
    finally:
        workbook.close()
    return sheets


def _rows(sheet: Any, name: str) -> list[Row]:
    # A sheet's stated size is the file's word, not a promise: rows and columns are capped, so a
    # small file claiming a million rows is refused instead of read.
    rows = sheet.iter_rows(values_only=True, max_col=MAX_COLUMNS)
    header = [_text(cell).lower() for cell in next(rows, ())]
    table = []
    for number, values in enumerate(rows, start=2):
        if number > MAX_ROWS:
            raise XLSFormError([f"{name} 工作表超过 {MAX_ROWS} 行：一份问卷用不了这么多行"])
        cells = {h: _text(v) for h, v in zip(header, values, strict=False) if h and _text(v)}
        if cells:
            table.append(Row(number, cells))
    return table


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "isoformat"):
        return value.isoformat()[:10]
    return str(value).strip()


def _language_column(rows: list[Row], base: str, language: str) -> str:
    """The column holding Chinese text for `label` or `hint`: `label::Chinese (zh)`,
    `label::中文`, else the settings' default language, else plain `label`, else any."""
    columns = list(dict.fromkeys(c for row in rows for c in row.cells if c == base or c.startswith(base + "::")))

    def speaks_chinese(column: str) -> bool:
        tag = column.partition("::")[2]
        return "chinese" in tag or "中文" in tag or "(zh" in tag or tag in ("zh", "zh-cn", "zh_cn", "汉语")

    for wanted in (speaks_chinese, lambda c: c == f"{base}::{language}", lambda c: c == base):
        found = [c for c in columns if wanted(c)]
        if found:
            return found[0]
    return columns[0] if columns else base


def read_xlsform(
    data: bytes, file_name: str = "", form_id: str | None = None, campaign: Campaign | None = None
) -> Imported:
    """The form an XLSForm workbook describes, as checked TOML, and what was left behind."""
    sheets = _sheets(data)
    if "survey" not in sheets:
        raise XLSFormError(["工作簿里没有 survey 工作表：XLSForm 的题目写在名为 survey 的工作表里"])
    settings = (sheets.get("settings") or [Row(0, {})])[0]
    language = settings.get("default_language").lower()
    reader = _SurveyReader(sheets["survey"], sheets.get("choices", []), language)
    table = reader.form_table(settings)
    chosen = form_id or settings.get("form_id") or Path(file_name).stem
    identifier = re.sub(r"[^a-z0-9-]+", "-", chosen.lower()).strip("-")[:64]
    if not FORM_ID.match(identifier):
        raise XLSFormError([f"无法从 {chosen!r} 得到表单编号：请另指定一个（小写字母、数字和连字符）"])
    form, text = reader.checked(identifier, table, campaign)
    dropped = sorted(reader.dropped, key=lambda d: (d.sheet != "survey", d.row))
    return Imported(identifier, form.title, _header(file_name, dropped) + text, dropped)


def _header(file_name: str, dropped: list[Dropped]) -> str:
    """Comment lines that say where the form came from and what did not come with it."""
    lines = [f"# 从 XLSForm {file_name or '工作簿'} 导入。"]
    if dropped:
        lines.append("# 没有导入（或没有原样导入）的行：")
        lines += [f"#   {d.text}" for d in dropped]
    return "\n".join(" ".join(line.split()) for line in lines) + "\n\n"


class _SurveyReader:
    """One pass over the survey sheet: rows become field tables, losses become `Dropped`."""

    def __init__(self, survey: list[Row], choices: list[Row], language: str) -> None:
        self.survey = survey
        self.dropped: list[Dropped] = []
        self.label = _language_column(survey, "label", language)
        self.hint = _language_column(survey, "hint", language)
        self.lists = self._choice_lists(choices, _language_column(choices, "label", language))
        self.fields: list[dict[str, Any]] = []
        self.rows: dict[str, Row] = {}  # field name -> the row it came from
        self.names: dict[str, str] = {}  # XLSForm name -> field name
        self.kinds: dict[str, str] = {}  # XLSForm name -> field type, for conditions

    def drop(self, row: Row, why: str, sheet: str = "survey") -> None:
        self.dropped.append(Dropped(sheet, row.number, row.get("name") or row.get("type"), why))

    def _choice_lists(self, rows: list[Row], label: str) -> dict[str, list[dict[str, str]]]:
        lists: dict[str, list[dict[str, str]]] = {}
        for row in rows:
            list_name, value = row.get("list_name") or row.get("list name"), row.get("name")
            if not list_name or not value:
                self.dropped.append(Dropped("choices", row.number, value or list_name, "缺少 list_name 或 name"))
                continue
            label_text = row.get(label) or value
            lists.setdefault(list_name, []).append({"value": row.get(CHOICE_VALUE) or value, "label": label_text})
        return lists

    def form_table(self, settings: Row) -> dict[str, Any]:
        groups: list[tuple[str, str | None, dict[str, Any] | None]] = []  # (kind, condition, grid)
        for row in self.survey:
            kind = " ".join(row.get("type").split()).lower()
            kind = re.sub(r"^(begin|end)[ _](group|repeat)$", r"\1 \2", kind)
            kind = re.sub(r"^select (one|multiple)\b", r"select_\1", kind)
            if kind in ("begin group", "begin repeat"):
                groups.append(self._begin(row, kind, self._conditions(groups)))
            elif kind in ("end group", "end repeat"):
                if not groups or groups[-1][0] != kind.split()[1]:
                    self.drop(row, f"多余的 {kind}（前面没有对应的 begin）")
                    continue
                _, _, grid = groups.pop()
                if grid is not None:
                    self._add(grid, self.rows[grid["name"]])
            elif groups and groups[-1][2] is not None:
                self._grid_row(groups[-1][2], row)
            elif kind:
                self._question(row, kind, self._conditions(groups))
            else:
                self.drop(row, "没有写题型（type），已跳过")
        for kind, _, _ in groups:
            self.dropped.append(Dropped("survey", len(self.survey) + 1, "", f"begin {kind} 没有对应的 end {kind}"))
        table: dict[str, Any] = {"title": settings.get("form_title") or "导入的表单", "kind": "general"}
        table |= self._extra(settings, FORM_EXTRA, "settings")
        table["fields"] = self.fields
        return table

    def _conditions(self, groups: list[tuple[str, str | None, dict[str, Any] | None]]) -> list[str]:
        return [condition for _, condition, _ in groups if condition]

    def _begin(self, row: Row, kind: str, outer: list[str]) -> tuple[str, str | None, dict[str, Any] | None]:
        condition = self._relevant(row, "组内的题目总是显示")
        extra = self._extra(row)
        if kind == "begin repeat":
            self.drop(row, "重复组（repeat）不支持：组内的题目按只填一次导入")
            return "repeat", condition, None
        label = row.get(self.label)
        if extra.get("type") == "grid":
            grid = {"name": self._name(row), "type": "grid", "label": label or row.get("name")}
            grid |= {k: v for k, v in extra.items() if k != "type"} | {"rows": []}
            self.rows[grid["name"]] = row
            if hint := row.get(self.hint):
                grid["hint"] = hint
            self._show_if(grid, [*outer, *([condition] if condition else [])])
            return "group", None, grid
        if label:
            section = {"name": self._name(row), "type": "section", "title": label}
            self._add(section | {k: v for k, v in extra.items() if k != "type"}, row)
        return "group", condition, None

    def _grid_row(self, grid: dict[str, Any], row: Row) -> None:
        name = row.get("name")
        key = name.removeprefix(grid["name"] + "_") if name.startswith(grid["name"] + "_") else name
        if not row.get("type").startswith("select_one"):
            self.drop(row, "表格题（grid）里只能有单选行")
            return
        grid["rows"].append({"key": key.lower(), "label": row.get(self.label) or name})
        if row.get("required").lower() in TRUE:
            grid["required"] = True
        self.kinds[name] = "grid"

    def _question(self, row: Row, kind: str, conditions: list[str]) -> None:
        head, *rest = kind.split()
        extra = self._extra(row)
        if head in UNSUPPORTED:
            self.drop(row, UNSUPPORTED[head])
            return
        if head in METADATA:
            self.drop(row, f"元数据（{head}）：本系统自动记下提交时间，其他元数据不收集")
            return
        field: dict[str, Any] = {"name": self._name(row)}
        simple = {"text": "text", "integer": "integer", "decimal": "number", "date": "date", "note": "note"}
        simple |= {"acknowledge": "consent", "image": "photo", "video": "video", "hidden": "hidden"}
        if head in simple:
            field["type"] = simple[head]
        elif head in ("select_one", "select_multiple"):
            if not self._select(row, head, rest, field):
                return
        elif head == "range":
            field["type"] = "rating"
            if not self._range(row, field):
                return
        else:
            self.drop(row, f"未知的题型 {row.get('type')!r}")
            return
        label = row.get(self.label) or row.get("name")
        field["label"] = label
        if "${" in label:
            self.drop(row, "题目文字里引用别的回答（${…}）不支持：照原样显示")
        if hint := row.get(self.hint):
            field["hint"] = hint
        required = row.get("required").lower()
        if required in TRUE and field["type"] not in ("note", "hidden"):
            field["required"] = True
        elif required and required not in ("no", "false", "false()", "0", "n"):
            self.drop(row, f"条件必填 required = {row.get('required')!r} 无法转换：按选填导入")
        if field["type"] == "text" and "multiline" in row.get("appearance"):
            field["type"] = "textarea"
        if field["type"] == "photo":
            field["max_photos"] = 1
        if constraint := row.get("constraint"):
            self._constraint(row, constraint, field)
        if row.get("choice_filter"):
            self.drop(row, "选项筛选（choice_filter）不支持：显示全部选项")
        if row.get("default") and field["type"] != "hidden":
            self.drop(row, f"默认值 default = {row.get('default')!r} 不支持：题目没有预先填好的答案")
        if extra.get("type") not in (None, field["type"]):
            field = self._retype(field, extra["type"])
        field |= {k: v for k, v in extra.items() if k != "type"}
        relevant = self._relevant(row, "本题总是显示")
        self._show_if(field, [*conditions, *([relevant] if relevant else [])])
        self._add(field, row)

    def _select(self, row: Row, head: str, rest: list[str], field: dict[str, Any]) -> bool:
        field["type"] = "multi" if head == "select_multiple" else "choice"
        if not rest:
            self.drop(row, "选择题没有写选项列表名")
            return False
        options = list(self.lists.get(rest[0], []))
        if not options:
            self.drop(row, f"选项列表 {rest[0]!r} 在 choices 工作表里找不到")
            return False
        if "or_other" in rest[1:]:
            options = [o for o in options if o["value"] != OTHER]
            field["other"] = True
        field["options"] = [o["value"] if o["value"] == o["label"] else o for o in options]
        return True

    def _range(self, row: Row, field: dict[str, Any]) -> bool:
        parameters = dict(re.findall(r"(\w+)\s*=\s*([\d.]+)", row.get("parameters")))
        start, end, step = parameters.get("start", "1"), parameters.get("end", "10"), parameters.get("step", "1")
        if start == "1" and step == "1" and end.isdigit() and 2 <= int(end) <= 10:
            field["scale"] = int(end)
            return True
        self.drop(row, f"滑动条（range {row.get('parameters')}）只能按 1 到 2…10 的评分导入")
        return False

    def _retype(self, field: dict[str, Any], kind: str) -> dict[str, Any]:
        """The product's type where the XLSForm is its nearest construct (a rating exported
        as a select_one of 1…N, a region as text)."""
        options = field.pop("options", [])
        field.pop("other", None)
        field["type"] = kind
        if kind == "rating" and "scale" not in field:
            field["scale"] = len(options)
        return field

    def _name(self, row: Row) -> str:
        """A field name the product accepts, unique in the form; the row's own when it can be."""
        original = row.get("name") or f"row_{row.number}"
        name = re.sub(r"[^a-z0-9_]+", "_", original.lower()).strip("_")[:40]
        if not name or not name[0].isalpha():
            name = ("q_" + name)[:40]
        taken = set(self.rows)
        candidate, number = name, 2
        while candidate in taken:
            candidate, number = f"{name[:36]}_{number}", number + 1
        self.names[original] = candidate
        return candidate

    def _add(self, field: dict[str, Any], row: Row) -> None:
        first = ("name", "type", "title", "label", "hint", "required", "show_if")
        field = {k: field[k] for k in first if k in field} | {k: v for k, v in field.items() if k not in first}
        self.rows[field["name"]] = row
        self.kinds[row.get("name")] = field["type"]
        self.fields.append(field)

    def _extra(self, row: Row, column: str = EXTRA, sheet: str = "survey") -> dict[str, Any]:
        """The keys a `qf_field` (or the settings' `qf_form`) cell writes as a TOML inline table
        `{ … }`; a cell that is not one is listed as not carried over, and ignored."""
        text = row.get(column)
        if not text:
            return {}
        try:
            extra = parse_toml(f"extra = {text}")["extra"]
        except TomlFileError as exc:
            why = f"{column} 写错了，已忽略：{exc.message}"
        else:
            if isinstance(extra, dict):
                return extra
            why = f"{column} 应是花括号 {{ }} 里的设置项，已忽略"
        self.drop(row, why, sheet)
        return {}

    def _relevant(self, row: Row, otherwise: str) -> str | None:
        text = row.get("relevant")
        if not text:
            return None
        try:
            return expressions.to_text(relevant_condition(text, self.names, self.kinds))
        except Unmappable as exc:
            self.drop(row, f"条件 relevant = {text!r} 无法转换（{exc}）：{otherwise}")
            return None

    def _show_if(self, field: dict[str, Any], conditions: list[str]) -> None:
        if len(conditions) == 1:
            field["show_if"] = conditions[0]
        elif conditions:
            field["show_if"] = " and ".join(f"({c})" for c in conditions)

    def _constraint(self, row: Row, text: str, field: dict[str, Any]) -> None:
        keys, left = constraint_keys(text, field["type"])
        field |= keys
        if left:
            self.drop(row, f"约束 constraint = {' and '.join(left)!r} 无法转换，已忽略")

    def checked(self, form_id: str, table: dict[str, Any], campaign: Campaign | None) -> tuple[Form, str]:
        """The table through the product's checker: a field the checker refuses is left out
        (a condition it refuses, only the condition), and listed with the checker's reason."""
        for _ in range(len(self.fields) * 2 + 1):
            text = to_toml(table)
            try:
                return parse_form(form_id, text, campaign), text
            except FormError as exc:
                form_level = [m for m in exc.messages if not m.startswith("字段 '")]
                if form_level or not exc.messages:
                    raise XLSFormError(form_level or exc.messages) from None
                for message in exc.messages:
                    self._refuse(message)
            if not self.fields:
                break
        raise XLSFormError(["没有一道题可以导入"])

    def _refuse(self, message: str) -> None:
        name, _, why = message.removeprefix("字段 '").partition("': ")
        field = next((f for f in self.fields if f["name"] == name), None)
        if field is None:
            return
        if why.startswith("show_if") and "show_if" in field:
            del field["show_if"]
            self.drop(self.rows[name], f"条件无法使用：{why}：本题总是显示")
        else:
            self.fields.remove(field)
            self.drop(self.rows[name], why)
