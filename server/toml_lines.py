"""Where a problem sits in a form's TOML text: the line of a field's table or of a key.

The workshop's editor marks the line of each problem. Messages name a field as
`字段 'name'` or `第 N 个字段` (server/forms.py) and the key they are about; this module
finds those in the text by reading its lines, not by parsing TOML again, so it works
for any text the parser accepted.
"""

from __future__ import annotations

import re

FIELD_HEADER = re.compile(r"^\s*\[\[\s*fields\s*\]\]\s*(#.*)?$")
TABLE_HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\"' -]+?)\s*\]\]?\s*(#.*)?$")
NAME_LINE = re.compile(r"""^\s*["']?name["']?\s*=\s*["']([^"']*)["']""")
NAMED_FIELD = re.compile(r"^字段 '([^']+)'\s*[:：]\s*")
NUMBERED_FIELD = re.compile(r"^第 (\d+) 个字段\s*[:：]?\s*")
WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class FieldBlock:
    """The lines of one `[[fields]]` table: its header's line and its `name`, if written."""

    def __init__(self, header: int) -> None:
        self.header = header  # 1-based line number
        self.end = header
        self.name: str | None = None


class TextMap:
    """The top-level lines and each field's lines of a form's text."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.blocks: list[FieldBlock] = []
        self.top_end = len(self.lines)  # top-level keys end at the first table header
        current: FieldBlock | None = None
        in_string: str | None = None
        for number, line in enumerate(self.lines, start=1):
            if in_string:
                if line.count(in_string) % 2 == 1:
                    in_string = None
                if current:
                    current.end = number
                continue
            for quotes in ('"""', "'''"):
                if line.count(quotes) % 2 == 1:
                    in_string = quotes
            if FIELD_HEADER.match(line):
                current = FieldBlock(number)
                self.blocks.append(current)
                self.top_end = min(self.top_end, number - 1)
                continue
            header = TABLE_HEADER.match(line)
            if header and not in_string:
                self.top_end = min(self.top_end, number - 1)
                if not header.group(1).startswith("fields."):
                    current = None
                    continue
            if current is not None:
                current.end = number
                if current.name is None and (match := NAME_LINE.match(line)):
                    current.name = match.group(1)

    def key_line(self, key: str, first: int, last: int) -> int | None:
        pattern = re.compile(rf"""^\s*["']?{re.escape(key)}["']?\s*=""")
        for number in range(first, last + 1):
            if pattern.match(self.lines[number - 1]):
                return number
        return None

    def block(self, name: str | None, index: int | None) -> FieldBlock | None:
        if name is not None:
            found = next((b for b in self.blocks if b.name == name), None)
            if found is not None:
                return found
        if index is not None and 1 <= index <= len(self.blocks):
            return self.blocks[index - 1]
        return None


def locate(text_map: TextMap, message: str) -> tuple[int | None, str | None]:
    """The line a problem message is about, and the field's name when it names one."""
    name: str | None = None
    index: int | None = None
    rest = message
    if match := NAMED_FIELD.match(message):
        name, rest = match.group(1), message[match.end() :]
    elif match := NUMBERED_FIELD.match(message):
        index, rest = int(match.group(1)), message[match.end() :]
    if name is None and index is None:
        return _first_key_line(text_map, rest, 1, text_map.top_end), None
    block = text_map.block(name, index)
    if block is None:
        return None, name
    line = _first_key_line(text_map, rest, block.header, block.end)
    if line is None:
        line = text_map.key_line("name", block.header, block.end) or block.header
    return line, name or block.name


def _first_key_line(text_map: TextMap, message: str, first: int, last: int) -> int | None:
    """The line of the first word of the message that is a key written between those lines."""
    for word in WORD.findall(message):
        if (line := text_map.key_line(word, first, last)) is not None:
            return line
    return None
