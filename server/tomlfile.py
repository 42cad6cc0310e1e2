"""A TOML file that office staff wrote (a form, the campaign file): read, or one Chinese line
that names the file and says what is wrong."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any


class TomlFileError(ValueError):
    """The file is not UTF-8, not TOML, or nested past what the parser can follow."""


def read_toml(path: Path) -> dict[str, Any]:
    """The file's table; OSError (missing, unreadable) is the caller's to report."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise TomlFileError(f"{path}: 文件不是 UTF-8 编码") from None
    except tomllib.TOMLDecodeError as exc:
        raise TomlFileError(f"{path}: TOML 格式错误：{exc}") from None
    except RecursionError:  # tomllib recurses once per level of nested arrays or tables
        raise TomlFileError(f"{path}: 数组或表嵌套太深") from None
