"""A TOML file that office staff wrote (a form, the campaign file): read, or one Chinese line
that names the file and says what is wrong."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any


class TomlFileError(ValueError):
    """The file is not UTF-8, not TOML, or nested past what the parser can follow.

    `line` is the line the parser stopped at, when it says (the workshop marks it)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def read_toml(path: Path) -> dict[str, Any]:
    """The file's table; OSError (missing, unreadable) is the caller's to report."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise TomlFileError(f"{path}: 文件不是 UTF-8 编码") from None
    return parse_toml(text, str(path))


def parse_toml(text: str, source: str) -> dict[str, Any]:
    """The table of a TOML text; `source` names it in the error (a file, a draft)."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TomlFileError(f"{source}: TOML 格式错误：{exc}", _error_line(exc, text)) from None
    except RecursionError:  # tomllib recurses once per level of nested arrays or tables
        raise TomlFileError(f"{source}: 数组或表嵌套太深") from None


def _error_line(exc: tomllib.TOMLDecodeError, text: str) -> int | None:
    """Where tomllib stopped: its message ends "(at line N, column M)" or "(at end of document)"."""
    if match := re.search(r"\(at line (\d+), column \d+\)", str(exc)):
        return int(match.group(1))
    if "(at end of document)" in str(exc):
        return text.count("\n") + (0 if text.endswith("\n") else 1)
    return None
