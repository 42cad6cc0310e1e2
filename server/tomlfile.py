"""A TOML file that office staff wrote (a form, the campaign file): read, or one Chinese line
that names the file and says what is wrong."""

from __future__ import annotations

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


def parse_toml(text: str) -> dict[str, Any]:
    """The table of TOML text; TomlFileError with a Chinese message and the line."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TomlFileError(f"TOML 格式错误：{exc}", _error_line(str(exc), text)) from None
    except RecursionError:  # tomllib recurses once per level of nested arrays or tables
        raise TomlFileError("数组或表嵌套太深") from None


def read_toml(path: Path) -> dict[str, Any]:
    """The file's table; OSError (missing, unreadable) is the caller's to report."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise TomlFileError("文件不是 UTF-8 编码", path=path) from None
    try:
        return parse_toml(text)
    except TomlFileError as exc:
        raise TomlFileError(exc.message, exc.line, path) from None


def _error_line(english: str, text: str) -> int | None:
    """Where tomllib stopped: its message ends "(at line N, column M)" or "(at end of document)"."""
    if match := re.search(r"\(at line (\d+), column \d+\)", english):
        return int(match.group(1))
    if "(at end of document)" in english:
        return text.count("\n") + (0 if text.endswith("\n") else 1)
    return None
