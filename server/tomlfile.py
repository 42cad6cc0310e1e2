"""A TOML file that office staff wrote (a form, the campaign file): read, or one Chinese line
that names the file, the line and what to change.

tomllib's messages are English and name a column; office staff type on Chinese keyboards,
so the commonest mistake is a Chinese quote or comma where TOML wants an English one. That
is looked for first on the line the parser stopped at, then the parser's message is put
into Chinese.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import re
import tomllib
from pathlib import Path
from typing import Any


class TomlFileError(ValueError):
    """The file is not UTF-8, not TOML, or nested past what the parser can follow.

    `message` is the Chinese text without the file's name; `line` the line it is about
    (1-based), or None when the problem has no one line.
    """

    def __init__(self, message: str, line: int | None = None, path: Path | None = None) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.message = message
        self.line = line


# Full-width punctuation from a Chinese keyboard: what it is called and what to type instead.
# In TOML text these are fine inside English quotes ("“放心消费”" is a label); outside them
# they are the mistake.
PUNCTUATION: dict[str, tuple[str, str]] = {
    "“": ("中文引号 “ ”", '英文引号 "'),
    "”": ("中文引号 “ ”", '英文引号 "'),
    "＂": ("中文引号 “ ”", '英文引号 "'),
    "‘": ("中文引号 ‘ ’", "英文引号 '"),
    "’": ("中文引号 ‘ ’", "英文引号 '"),
    "＇": ("中文引号 ‘ ’", "英文引号 '"),
    "，": ("中文逗号「，」", "英文逗号「,」"),
    "：": ("中文冒号「：」", "英文等号「=」"),
    "＝": ("中文等号「＝」", "英文等号「=」"),
    "（": ("中文括号「（ ）」", "英文括号「( )」"),
    "）": ("中文括号「（ ）」", "英文括号「( )」"),
    "［": ("中文方括号「［ ］」", "英文方括号「[ ]」"),
    "］": ("中文方括号「［ ］」", "英文方括号「[ ]」"),
    "【": ("中文方括号「【 】」", "英文方括号「[ ]」"),
    "】": ("中文方括号「【 】」", "英文方括号「[ ]」"),
    "｛": ("中文花括号「｛ ｝」", "英文花括号「{ }」"),
    "｝": ("中文花括号「｛ ｝」", "英文花括号「{ }」"),
    "\u3000": ("全角空格", "普通空格（先切换到英文输入法）"),
}

# Every message tomllib (Python 3.11–3.13) raises, in Chinese. `{0}` is what the English
# message quotes (a key, a character). tests/test_friendly_errors.py checks that this table
# covers every message in the installed tomllib.
MESSAGES: tuple[tuple[str, str], ...] = (
    (r"Invalid value", '值写错了：文字要用英文引号括起来，如 title = "质量月"；数字、true/false、日期不加引号'),
    (r"Invalid statement", "这一行看不懂：每行应是「名称 = 值」，或 [[fields]] 这样的表头"),
    (
        r"Expected newline or end of document after a statement",
        "值的后面多了内容：一行只写一个设置项，文字要整个放在引号里",
    ),
    (r"Expected '=' after a key in a key/value pair", "名称后面缺少英文等号「=」（名称只能用英文字母、数字、_ 和 -）"),
    (
        r"Invalid initial character for a key part",
        "名称写错了：只能用英文字母、数字、_ 和 -（花括号 { } 里的内容不能换行）",
    ),
    (r"Expected '(.+)'", "缺少 {0}"),
    (r"Found invalid character (.+)", "有不允许的字符 {0}"),
    (r"Cannot declare (.+) twice", "表 {0} 写了两次"),
    (r"Cannot overwrite a value", "同一个设置项写了两次"),
    (r"Expected '\]' at the end of a table declaration", "表头后面缺少「]」"),
    (r"Expected '\]\]' at the end of an array declaration", "表头后面缺少「]]」，如 [[fields]]"),
    (r"Cannot mutate immutable namespace (.+)", "{0} 已经写完，不能在别处再给它加设置项"),
    (r"Cannot redefine namespace (.+)", "{0} 已经写过，不能再定义一次"),
    (r"Cannot append to a non-array (.+)", "{0} 不是 [[ ]] 表的列表，不能再加一项"),
    (r"Unclosed array", "方括号 [ ] 没有配对：列表少了「]」，或两项之间少了英文逗号「,」"),
    (r"Duplicate inline table key (.+)", "花括号里的 {0} 写了两次"),
    (r"Unclosed inline table", "花括号 { } 没有配对：少了「}」，或两项之间少了英文逗号「,」（花括号里不能换行）"),
    (r"Unescaped '\\' in a string", r"文字里的「\」要写成「\\」"),
    (r"Invalid hex value", r"\u 后面应是十六进制数字"),
    (r"Escaped character is not a Unicode scalar value", r"\u 写的字符不存在"),
    (r"Unterminated string", '引号没有配对：文字少了结尾的英文引号「"」'),
    (r"Illegal character '\\n'", '引号没有配对：文字少了结尾的英文引号「"」（要换行的文字请用三个引号 """ 括起来）'),
    (r"Illegal character (.+)", "文字里不能有控制字符 {0}"),
    (r"Invalid date or datetime", "日期或时间写错了，应如 2022-09-01 或 2022-09-01T08:00:00"),
    (r"Invalid number", "数字写错了"),
)
_WHERE = re.compile(r"^(?P<text>.*) \(at (?:line (?P<line>\d+), column \d+|end of document)\)$", re.DOTALL)


def parse_toml(text: str) -> dict[str, Any]:
    """The table of TOML text; TomlFileError with a Chinese message and the line."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _explain(text, str(exc)) from None
    except RecursionError:  # tomllib recurses once per level of nested arrays or tables
        raise TomlFileError("数组或表嵌套太深") from None


def read_toml(path: Path) -> dict[str, Any]:
    """The file's table; OSError (missing, unreadable) is the caller's to report."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise TomlFileError("文件不是 UTF-8 编码（在记事本里另存为时选 UTF-8）", path=path) from None
    try:
        return parse_toml(text)
    except TomlFileError as exc:
        raise TomlFileError(exc.message, exc.line, path) from None


def _explain(text: str, english: str) -> TomlFileError:
    match = _WHERE.match(english)
    reason = match["text"] if match else english
    line = int(match["line"]) if match and match["line"] else None
    lines = text.splitlines()
    if line is None and reason == "Unterminated string":
        line = _unclosed_line(text)
    elif line is None and reason == "Cannot overwrite a value":  # the document's last statement
        line = max(
            (n for n, s in enumerate(lines, start=1) if s.strip() and not s.strip().startswith("#")), default=None
        )
    if line is not None and line <= len(lines):
        stray = stray_punctuation(lines[line - 1])
        if stray:
            return TomlFileError(f"第 {line} 行{stray}", line)
    chinese = translate(reason)
    if line is None and reason == "Invalid value":
        chinese = "文件在一个值写完之前就结束了：是否少了「]」「}」或结尾的引号？"
    if line is None:
        return TomlFileError(f"文件末尾：{chinese}")
    shown = lines[line - 1].strip() if line <= len(lines) else ""
    shown = shown if len(shown) <= 40 else shown[:39] + "…"
    return TomlFileError(f"第 {line} 行「{shown}」：{chinese}" if shown else f"第 {line} 行：{chinese}", line)


def translate(reason: str) -> str:
    """tomllib's English reason (without its position) in Chinese."""
    for pattern, chinese in MESSAGES:
        match = re.fullmatch(pattern, reason)
        if match:
            for number, quoted in enumerate(match.groups()):
                chinese = chinese.replace(f"{{{number}}}", _key_text(quoted))
            return chinese
    return f"TOML 格式错误（{reason}）"


def _key_text(quoted: str) -> str:
    """tomllib names a table by its key tuple, `('fields', 'x')`: shown as `fields.x`."""
    if quoted.startswith("(") and quoted.endswith(")"):
        try:
            return ".".join(str(part) for part in ast.literal_eval(quoted))
        except (ValueError, SyntaxError, TypeError):
            return quoted
    return quoted


def stray_punctuation(line: str) -> str:
    """`用了中文引号 “ ”，请改成英文引号 "` for the Chinese punctuation of one line that
    stands outside English quotes (inside them it is text); empty when there is none.

    A string left open whose text holds a Chinese closing quote (`"质量月”`) counts too.
    """
    outside, _, inside = _read_strings(line)
    found = [c for c in outside if c in PUNCTUATION] + [c for c in inside if c in "”’＂＇"]
    kinds = dict.fromkeys(PUNCTUATION[c] for c in found)
    return "；".join(f"用了{name}，请改成{fix}" for name, fix in kinds)


def _unclosed_line(text: str) -> int | None:
    """The last line that opens a one-line string and does not close it (tomllib says only
    "end of document" for it)."""
    last = opened = None
    multiline = ""
    for number, line in enumerate(text.splitlines(), start=1):
        for triple in ('"""', "'''"):
            if line.count(triple) % 2 and multiline in ("", triple):
                multiline = "" if multiline else triple
                opened = number
        if multiline or '"""' in line or "'''" in line:
            continue
        if _read_strings(line)[1]:
            last = number
    return opened if multiline else last


def _read_strings(line: str) -> tuple[list[str], str, list[str]]:
    """One line as TOML reads its one-line strings: the characters outside them (up to a
    comment), the quote a string is still open with ("" when none), and that string's text."""
    outside: list[str] = []
    inside: list[str] = []
    quote = ""
    chars = iter(line)
    for char in chars:
        if quote:
            if char == "\\" and quote == '"':
                next(chars, "")
            elif char == quote:
                quote, inside = "", []
            else:
                inside.append(char)
        elif char in "\"'":
            quote = char
        elif char == "#":
            break
        else:
            outside.append(char)
    return outside, quote, inside


# Writing: forms made by the program (an XLSForm import) as TOML a person can go on editing.


def toml_value(value: Any) -> str:
    """One value as TOML: strings quoted (escaped as JSON escapes them, which TOML reads the
    same), dates bare, lists and tables inline."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, str):
        if '"' in value and "'" not in value and value.isprintable():
            return f"'{value}'"  # show_if = 'venue == "学校"' reads better than escaped quotes
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")  # TOML refuses a raw DEL
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {type(value).__name__}")


def to_toml(table: dict[str, Any]) -> str:
    """A form's table as a TOML document: plain keys first, then each `[[fields]]` with its
    keys one a line; long texts as multi-line strings, long lists one item a line."""
    lines: list[str] = []
    for key, value in table.items():
        if not (isinstance(value, list) and value and all(isinstance(item, dict) for item in value)):
            lines.append(_key_line(key, value))
    for key, value in table.items():
        if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            for item in value:
                lines += ["", f"[[{_key(key)}]]"]
                lines += [_key_line(k, v) for k, v in item.items()]
    return "\n".join(lines) + "\n"


def _key_line(key: str, value: Any) -> str:
    if isinstance(value, str) and "\n" in value and _fits_multiline(value):
        return f'{_key(key)} = """\n{value}"""'
    text = toml_value(value)
    if isinstance(value, list) and len(text) > 80:
        return f"{_key(key)} = [\n" + "".join(f"  {toml_value(item)},\n" for item in value) + "]"
    return f"{_key(key)} = {text}"


def _fits_multiline(text: str) -> bool:
    """Whether the text can stand between triple quotes unchanged."""
    plain = all(c.isprintable() or c == "\n" for c in text)
    return plain and '"""' not in text and "\\" not in text and not text.endswith('"')


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)
