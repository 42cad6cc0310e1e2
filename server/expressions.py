"""The `show_if` language: parse, check against a form, evaluate, describe.

Grammar (no Python `eval` anywhere):

    expr       := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | "(" expr ")" | comparison
    comparison := NAME ("==" | "!=" | "<" | "<=" | ">" | ">=") LITERAL
                | LITERAL ["not"] "in" NAME
    LITERAL    := "string" | 'string' | number

A comparison with a question that has no answer is false (so is `"x" in f`), which
keeps a follow-up question hidden until the question it depends on is answered.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

Literal = str | int | float


class Compare(msgspec.Struct, frozen=True, tag="cmp"):
    field: str
    op: str
    value: Literal


class Contains(msgspec.Struct, frozen=True, tag="in"):
    field: str
    value: str


class Not(msgspec.Struct, frozen=True, tag="not"):
    item: Condition


class And(msgspec.Struct, frozen=True, tag="and"):
    items: tuple[Condition, ...]


class Or(msgspec.Struct, frozen=True, tag="or"):
    items: tuple[Condition, ...]


Condition = Compare | Contains | Not | And | Or


class ExpressionError(ValueError):
    """A `show_if` that cannot be parsed or does not fit the form; the text is Chinese."""


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>-?\d+(?:\.\d+)?(?![\w.]))
      | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<op>==|!=|<=|>=|<|>)
      | (?P<paren>[()])
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "in"}
# Brackets and `not`s nest at most this deep: plenty for a form, and far below the depth
# at which parsing (and every walk over the tree) would exhaust Python's stack.
MAX_DEPTH = 20


# What office staff type instead of the language's signs, and what to type. Chinese
# punctuation inside English quotes is text ("“学校”") and never reaches this table.
_MISTYPED = {
    "“": '用了中文引号 “ ”，请改成英文引号 "',
    "”": '用了中文引号 “ ”，请改成英文引号 "',
    "＂": '用了中文引号 “ ”，请改成英文引号 "',
    "‘": "用了中文引号 ‘ ’，请改成英文引号 '",
    "’": "用了中文引号 ‘ ’，请改成英文引号 '",
    "＇": "用了中文引号 ‘ ’，请改成英文引号 '",
    "＝": "用了中文等号「＝」，比较相等请写两个英文等号「==」",
    "（": "用了中文括号「（ ）」，请改成英文括号「( )」",
    "）": "用了中文括号「（ ）」，请改成英文括号「( )」",
    "，": "用了中文逗号「，」：几个条件之间请用 and 或 or 连接",
    "：": "用了中文冒号「：」，条件里不需要冒号",
    "！": "用了中文感叹号「！」，不等于请写「!=」",
    "＜": "用了中文小于号「＜」，请改成「<」",
    "＞": "用了中文大于号「＞」，请改成「>」",
    "\u3000": "用了全角空格，请改成普通空格（先切换到英文输入法）",
    "=": "比较相等要写两个等号「==」",
    "&": "「并且」请写 and",
    "|": "「或者」请写 or",
    "!": "「不是」请写 not，不等于请写「!=」",
}


def _tokenize(source: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    source = source.rstrip()
    while pos < len(source):
        match = _TOKEN.match(source, pos)
        if not match or match.end() == pos:
            start = len(source) - len(source[pos:].lstrip())
            if source[start] in _MISTYPED:
                raise ExpressionError(_MISTYPED[source[start]])
            if source[start] in "\"'":
                raise ExpressionError(f"引号没有配对：{source[start:]!r} 少了结尾的英文引号")
            word = re.match(r"[^\s()=!<>\"',]+", source[start:])
            if word and not word.group().isascii():  # 有, 学校: a value typed without quotes
                raise ExpressionError(f'文字要用英文双引号括起来：{word.group()} 应写成 "{word.group()}"')
            raise ExpressionError(f"无法识别第 {pos + 1} 个字符起的内容：{source[pos : pos + 10]!r}")
        kind = match.lastgroup or ""
        text = match.group(kind)
        if kind == "name" and text in _KEYWORDS:
            kind = text
        tokens.append((kind, text))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, source: str) -> None:
        self.tokens = _tokenize(source)
        self.pos = 0
        self.depth = 0

    def peek(self) -> str:
        return self.tokens[self.pos][0] if self.pos < len(self.tokens) else "end"

    def take(self, *kinds: str) -> str:
        kind = self.peek()
        if kind not in kinds:
            found = self.tokens[self.pos][1] if kind != "end" else "表达式结尾"
            raise ExpressionError(f"此处应为{_describe_kinds(kinds)}，实际是 {found!r}")
        self.pos += 1
        return self.tokens[self.pos - 1][1]

    def parse(self) -> Condition:
        if not self.tokens:
            raise ExpressionError("表达式为空")
        expr = self.expr()
        if self.peek() != "end":
            raise ExpressionError(f"多余的内容：{self.tokens[self.pos][1]!r}")
        return expr

    def expr(self) -> Condition:
        items = [self.and_expr()]
        while self.peek() == "or":
            self.take("or")
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self) -> Condition:
        items = [self.not_expr()]
        while self.peek() == "and":
            self.take("and")
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else And(tuple(items))

    def not_expr(self) -> Condition:
        if self.peek() == "not":
            self.take("not")
            return Not(self.nested(self.not_expr))
        if self.peek() == "paren" and self.tokens[self.pos][1] == "(":
            self.take("paren")
            inner = self.nested(self.expr)
            if self.take("paren") != ")":
                raise ExpressionError("括号不配对")
            return inner
        return self.comparison()

    def nested(self, part: Callable[[], Condition]) -> Condition:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(f"括号或 not 嵌套太深（最多 {MAX_DEPTH} 层）")
        try:
            return part()
        finally:
            self.depth -= 1

    def comparison(self) -> Condition:
        if self.peek() == "name":
            name = self.take("name")
            op = self.take("op")
            return Compare(name, op, self.literal())
        value = self.literal()
        negated = self.peek() == "not"
        if negated:
            self.take("not")
        self.take("in")
        contains = Contains(self.take("name"), value if isinstance(value, str) else str(value))
        return Not(contains) if negated else contains

    def literal(self) -> Literal:
        kind = self.peek()
        if kind == "name":  # `venue == school`: a value typed without quotes
            word = self.tokens[self.pos][1]
            raise ExpressionError(f'文字要用英文双引号括起来：{word} 应写成 "{word}"')
        text = self.take("number", "string")
        if kind == "number":
            return float(text) if "." in text else int(text)
        return re.sub(r"\\(.)", r"\1", text[1:-1])


def _describe_kinds(kinds: tuple[str, ...]) -> str:
    names = {
        "name": "字段名",
        "op": "比较符号（== != < <= > >=）",
        "number": "数字",
        "string": "带引号的文字",
        "in": "in",
        "paren": "括号",
    }
    return "或".join(names.get(kind, kind) for kind in kinds)


def parse(source: str) -> Condition:
    """Parse a `show_if` expression into a condition tree."""
    return _Parser(source).parse()


def walk(condition: Condition):
    """Yield every comparison (Compare or Contains) in the tree."""
    if isinstance(condition, Compare | Contains):
        yield condition
    elif isinstance(condition, Not):
        yield from walk(condition.item)
    else:
        for item in condition.items:
            yield from walk(item)


def evaluate(condition: Condition, answers: Mapping[str, Any]) -> bool:
    """True when the condition holds for these cleaned answers (missing = unanswered)."""
    if isinstance(condition, Compare):
        value = answers.get(condition.field)
        if value is None or isinstance(value, list):
            return False
        return _COMPARE[condition.op](value, condition.value)
    if isinstance(condition, Contains):
        value = answers.get(condition.field)
        return isinstance(value, list) and condition.value in value
    if isinstance(condition, Not):
        return not evaluate(condition.item, answers)
    if isinstance(condition, And):
        return all(evaluate(item, answers) for item in condition.items)
    return any(evaluate(item, answers) for item in condition.items)


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}

_OP_TEXT = {"==": "为", "!=": "不为", "<": "<", "<=": "≤", ">": ">", ">=": "≥"}


def describe(condition: Condition, label_of: Callable[[str, Literal | None], str]) -> str:
    """A Chinese reading of the condition, for readers whose browser runs no script.

    `label_of(field, None)` gives a question's label, `label_of(field, value)` an
    option's label.
    """
    if isinstance(condition, Compare):
        question = label_of(condition.field, None)
        if isinstance(condition.value, str):
            return f"「{question}」{_OP_TEXT[condition.op]}“{label_of(condition.field, condition.value)}”"
        return f"「{question}」{_OP_TEXT[condition.op]} {condition.value}"
    if isinstance(condition, Contains):
        return f"「{label_of(condition.field, None)}」选了“{label_of(condition.field, condition.value)}”"
    if isinstance(condition, Not):
        return f"并非（{describe(condition.item, label_of)}）"
    joiner = " 且 " if isinstance(condition, And) else " 或 "
    parts = []
    for item in condition.items:
        text = describe(item, label_of)
        parts.append(f"（{text}）" if isinstance(item, And | Or) else text)
    return joiner.join(parts)


def to_text(condition: Condition, nested: bool = False) -> str:
    """The condition written as `show_if` text again (what `parse` reads back to the same tree)."""
    if isinstance(condition, Compare):
        return f"{condition.field} {condition.op} {_literal_text(condition.value)}"
    if isinstance(condition, Contains):
        return f"{_literal_text(condition.value)} in {condition.field}"
    if isinstance(condition, Not):
        inner = condition.item
        return "not " + (f"({to_text(inner)})" if isinstance(inner, And | Or) else to_text(inner, nested=True))
    joiner = " and " if isinstance(condition, And) else " or "
    text = joiner.join(to_text(item, nested=True) for item in condition.items)
    return f"({text})" if nested else text


def _literal_text(value: Literal) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, float) and "e" in repr(value):
        return format(value, "f")
    return repr(value)


def replace_values(condition: Condition, value_of: Callable[[str, Literal], Literal]) -> Condition:
    """The same tree with each compared value replaced by `value_of(field, value)` (an
    option's label by its value, say)."""
    if isinstance(condition, Compare):
        return Compare(condition.field, condition.op, value_of(condition.field, condition.value))
    if isinstance(condition, Contains):
        return Contains(condition.field, str(value_of(condition.field, condition.value)))
    if isinstance(condition, Not):
        return Not(replace_values(condition.item, value_of))
    items = tuple(replace_values(item, value_of) for item in condition.items)
    return And(items) if isinstance(condition, And) else Or(items)


_json_encoder = msgspec.json.Encoder()


def to_json(condition: Condition) -> str:
    """The tree as JSON, evaluated in the browser by static/form.js (no second parser)."""
    return _json_encoder.encode(condition).decode()
