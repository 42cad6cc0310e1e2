"""Short videos answered to `video` questions of event reports: streamed to disk, checked, kept by content.

A clip is never held in memory: `uploads.read_multipart` writes each chunk to a temporary
file in the videos folder as it arrives, hashing as it goes, and stops keeping bytes once
the question's limit is passed. A kept clip must start like an MP4/MOV (`ftyp` box) or a
WebM (EBML header); it is then linked under its SHA-256 name (`videos/ab/<sha256>.mp4`),
so the same clip sent twice is one file. The temporary file goes when the upload closes:
nothing half-written stays behind, whatever happens.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import IO, Any

FOLDER_NAME = "videos"
NAME = re.compile(r"^[0-9a-f]{64}\.(mp4|mov|webm)$")
MEDIA_TYPES = {"mp4": "video/mp4", "mov": "video/quicktime", "webm": "video/webm"}
MB = 1024 * 1024
HEAD_BYTES = 12


class VideoError(ValueError):
    """An upload that is not a clip we keep; the message is for staff (Chinese)."""


def folder_for(database: Path) -> Path:
    """Where a database's videos live: beside it, as the photos do."""
    return database.parent / FOLDER_NAME


def temporary_file(folder: Path) -> IO[bytes]:
    """A file for one upload in the videos folder (mode 0600), deleted when it is closed:
    on the same file system as the clips, so keeping it is a link, not a copy."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return tempfile.NamedTemporaryFile(dir=folder, prefix=".upload-", suffix=".tmp")


def kind_of(head: bytes) -> str | None:
    """The container a clip's first bytes name: `mp4`, `mov`, `webm`, or None."""
    if head[:4] == b"\x1a\x45\xdf\xa3":  # EBML: WebM (and Matroska, which phones do not record)
        return "webm"
    if head[4:8] == b"ftyp":
        return "mov" if head[8:12] == b"qt  " else "mp4"
    return None


def path_of(folder: Path, name: str) -> Path:
    if not NAME.match(name):
        raise ValueError(f"not a video name: {name!r}")
    return folder / name[:2] / name


def name_for(file: IO[bytes], digest: str) -> str:
    """The stored name of an uploaded clip (`digest` its SHA-256); `VideoError` when its first
    bytes are not a video's."""
    file.seek(0)
    kind = kind_of(file.read(HEAD_BYTES))
    if kind is None:
        raise VideoError("这不是能播放的视频文件，请选择手机拍的 MP4、MOV 或 WebM 视频")
    return f"{digest}.{kind}"


def store(folder: Path, file: IO[bytes], name: str) -> bool:
    """Keep an uploaded clip under its name (blocking: call it in a thread); False when it was there."""
    path = path_of(folder, name)
    if path.exists():
        return False
    file.flush()
    os.fsync(file.fileno())
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.link(file.name, path)  # the temporary name goes when the upload closes
    except FileExistsError:  # the same clip, stored meanwhile by another request
        return False
    return True


def new_hash() -> Any:
    return hashlib.sha256()


def remove(folder: Path, names: set[str]) -> int:
    """Delete stored clips; the number removed."""
    removed = 0
    for name in names:
        if NAME.match(name):
            with contextlib.suppress(FileNotFoundError):
                path_of(folder, name).unlink()
                removed += 1
    return removed


def names_in(value: object) -> list[str]:
    """The clip names in a stored answer, in order; none for other answers."""
    items = value if isinstance(value, list) else [value]
    return [item for item in items if isinstance(item, str) and NAME.match(item)]
