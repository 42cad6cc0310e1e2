"""XLSForm's expressions (a small part of XPath) and this product's: `relevant` ↔ `show_if`,
`constraint` ↔ min/max and lengths. What has no equivalent raises `Unmappable` saying which
part, so the import can list it.
"""

from __future__ import annotations

import re
from typing import Any

from server import expressions
from server.expressions import And, Compare, Condition, Contains, Not, Or

PHONE_REGEX = "^1[3-9][0-9]{9}$"
EMAIL_REGEX = "^[^@ ]+@[^@ ]+[.][^@ ]+$"


class Unmappable(ValueError):
    """An XLSForm expression `show_if` cannot say; the text says which part, in Chinese."""


_XPATH = re.compile(
    r"""\s*(?:
        (?P<ref>\$\{[^}]+\})
      | (?P<string>'[^']*'|"[^"]*")
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<op>!=|<=|>=|=|<|>)
      | (?P<punct>[(),])
      | (?P<word>[A-Za-z_][\w:-]*)
      | (?P<dot>\.)
    )""",
    re.VERBOSE,
)


def _xpath_tokens(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = _XPATH.match(text, pos)
        if not match:
            raise Unmappable(f"看不懂 {text[pos : pos + 12].strip()!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


def relevant_condition(text: str, names: dict[str, str], kinds: dict[str, str]) -> Condition:
    """An XLSForm `relevant` as a show_if condition: `${x} = 'v'`, `!=`, `<`…, `selected(${x},
    'v')`, `and`, `or`, `not(…)`, over questions above it."""
    parser = _XPathParser(_xpath_tokens(text), names, kinds)
    condition = parser.expr()
    if parser.pos != len(parser.tokens):
        raise Unmappable(f"多余的 {parser.tokens[parser.pos][1]!r}")
    return condition


class _XPathParser:
    def __init__(self, tokens: list[tuple[str, str]], names: dict[str, str], kinds: dict[str, str]) -> None:
        self.tokens, self.pos, self.names, self.kinds = tokens, 0, names, kinds

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ("end", "")

    def take(self, text: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token[0] == "end" or (text is not None and token[1] != text):
            raise Unmappable(f"此处应为 {text!r}" if text else "表达式不完整")
        self.pos += 1
        return token

    def expr(self) -> Condition:
        items = [self.and_expr()]
        while self.peek() == ("word", "or"):
            self.take()
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self) -> Condition:
        items = [self.unary()]
        while self.peek() == ("word", "and"):
            self.take()
            items.append(self.unary())
        return items[0] if len(items) == 1 else And(tuple(items))

    def unary(self) -> Condition:
        kind, text = self.peek()
        inner: Condition
        if (kind, text) == ("punct", "("):
            self.take()
            inner = self.expr()
            self.take(")")
            return inner
        if kind == "word" and text in ("not", "selected"):
            self.take()
            self.take("(")
            if text == "not":
                inner = Not(self.expr())
            else:
                field, source = self.ref()
                self.take(",")
                value = str(self.literal(source))
                inner = Contains(field, value) if self.kinds.get(source) == "multi" else Compare(field, "==", value)
            self.take(")")
            return inner
        if kind == "word":
            raise Unmappable(f"函数 {text}() 没有对应的写法")
        return self.comparison()

    def comparison(self) -> Condition:
        flip = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}
        if self.peek()[0] == "ref":
            field, source = self.ref()
            op = self.take()[1]
            value = self.literal(source)
        else:  # `'yes' = ${x}`, `18 <= ${age}`
            kind, text = self.take()
            op = self.take()[1]
            op = flip.get(op, op)
            field, source = self.ref()
            value = self.value(kind, text, source)
        if op not in ("=", "!=", "<", "<=", ">", ">="):
            raise Unmappable(f"{op!r} 不是比较符号")
        if self.kinds.get(source) == "multi":
            raise Unmappable(f"多选题 ${{{source}}} 请用 selected() 判断")
        return Compare(field, "==" if op == "=" else op, value)

    def ref(self) -> tuple[str, str]:
        kind, text = self.take()
        if kind != "ref":
            raise Unmappable(f"此处应为 ${{题目名}}，实际是 {text!r}")
        source = text[2:-1].strip()
        if source not in self.names:
            raise Unmappable(f"引用的题目 {source!r} 不在本题前面，或没有导入")
        return self.names[source], source

    def literal(self, source: str) -> expressions.Literal:
        kind, text = self.take()
        if (kind, text) == ("word", "date"):
            self.take("(")
            kind, text = self.take()
            self.take(")")
        return self.value(kind, text, source)

    def value(self, kind: str, text: str, source: str) -> expressions.Literal:
        if kind not in ("string", "number"):
            raise Unmappable(f"只能和固定的值比较，{text!r} 不是")
        value = text[1:-1] if kind == "string" else text
        if self.kinds.get(source) == "grid":
            raise Unmappable("表格题的行不能用于条件")
        if self.kinds.get(source) in ("integer", "number", "rating"):
            try:
                return int(value) if re.fullmatch(r"-?\d+", value) else float(value)
            except ValueError:
                raise Unmappable(f"{value!r} 不是数字") from None
        return value


_BOUND = re.compile(
    r"""^(?P<subject>\.|string-length\(\s*\.\s*\)|count-selected\(\s*\.\s*\))\s*(?P<op><=|>=|<|>)\s*
        (?:(?P<number>-?\d+(?:\.\d+)?)|(?:date\(\s*)?'(?P<date>\d{4}-\d{2}-\d{2})'\s*\)?)$""",
    re.VERBOSE,
)


def constraint_keys(text: str, kind: str) -> tuple[dict[str, Any], list[str]]:
    """The keys an XLSForm `constraint` gives a question (`. >= 0 and . <= 120` → min, max),
    and the parts that have none."""
    if re.search(r"\bor\b", text):
        return {}, [text.strip()]
    keys: dict[str, Any] = {}
    left: list[str] = []
    for part in re.split(r"\s+and\s+", text.strip()):
        part = part.strip()
        regex = re.fullmatch(r"regex\(\s*\.\s*,\s*'(.*)'\s*\)", part)
        if regex and kind == "text" and regex[1] in (PHONE_REGEX, EMAIL_REGEX):
            keys["type"] = "phone" if regex[1] == PHONE_REGEX else "email"
            continue
        match = _BOUND.match(part)
        key = _bound_key(match, kind) if match else None
        if key is None or match is None:
            left.append(part)
            continue
        number = match["number"]
        value: Any = match["date"] if match["date"] else (float(number) if "." in number else int(number))
        if match["op"] in ("<", ">"):  # strict: only whole numbers have a next one
            if not isinstance(value, int) or kind == "number":
                left.append(part)
                continue
            value += 1 if match["op"] == ">" else -1
        keys[key] = value
    return keys, left


def _bound_key(match: re.Match[str], kind: str) -> str | None:
    lower = match["op"].startswith(">")
    subject = match["subject"].split("(")[0]
    if subject == "." and kind in ("integer", "number") and match["number"] is not None:
        return "min" if lower else "max"
    if subject == "." and kind == "date" and match["date"] is not None:
        return "min" if lower else "max"
    if subject == "string-length" and kind in ("text", "textarea") and match["number"] is not None:
        return "min_length" if lower else "max_length"
    if subject == "count-selected" and kind == "multi" and match["number"] is not None:
        return "min_choices" if lower else "max_choices"
    return None


def relevant_text(condition: Condition, nested: bool = False) -> str:
    """A show_if condition as an XLSForm `relevant` expression."""
    if isinstance(condition, Compare):
        op = "=" if condition.op == "==" else condition.op
        value = condition.value
        if isinstance(value, str):
            shown = f"date('{value}')" if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) else _quoted(value)
        else:
            shown = str(value)
        return f"${{{condition.field}}} {op} {shown}"
    if isinstance(condition, Contains):
        return f"selected(${{{condition.field}}}, {_quoted(condition.value)})"
    if isinstance(condition, Not):
        return f"not({relevant_text(condition.item)})"
    joiner = " and " if isinstance(condition, And) else " or "
    text = joiner.join(relevant_text(item, nested=True) for item in condition.items)
    return f"({text})" if nested else text


def _quoted(value: str) -> str:
    return f"'{value}'" if "'" not in value else f'"{value}"'
