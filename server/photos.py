"""Photos answered to `photo` questions: proven to be pictures, stripped of metadata, stored by content.

Pillow decodes every upload (that is what proves it is a picture), turns it upright by its
EXIF orientation, and encodes it again as a JPEG with no metadata at all: no GPS position,
no camera, no time. The file is named by the SHA-256 of the stored bytes and kept beside
the database in `photos/ab/<sha256>.jpg`, never in it; a response stores the names. The
same picture sent twice is one file, so a resent submission stores nothing new.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import tempfile
import threading
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import IO

import msgspec
from PIL import Image, ImageOps

MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # one picture as sent without script (a camera's original)
MAX_UPLOAD_TEXT = "10 MB"
MAX_PIXELS = 50_000_000  # more than any phone camera; beyond it a file is a decompression bomb
STORED_SIDE = 2560  # the longest side kept: enough to read a label on a product
THUMB_SIDE = 320
QUALITY = 85
FORMATS = {"JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP"}  # MPO: the JPEG some phone cameras write
NAME = re.compile(r"^[0-9a-f]{64}\.jpg$")
FOLDER_NAME = "photos"
DECODING = threading.BoundedSemaphore(2)  # pictures decoded at once: one may take ~100 MB while decoded
# Pillow's own bomb check, at our ceiling: past twice MAX_PIXELS it refuses to open a file at
# all, and its warning (between once and twice) is ours to give, in Chinese (`clean_photo`).
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


class PhotoError(ValueError):
    """An upload that is not a picture we can keep; the message is for the resident (Chinese)."""


class Photo(msgspec.Struct, frozen=True):
    name: str  # sha256 of `jpeg`, + ".jpg"
    jpeg: bytes


def folder_for(database: Path) -> Path:
    """Where a database's photos live: beside it, so a backup of the folder takes both."""
    return database.parent / FOLDER_NAME


def clean_photo(upload: IO[bytes]) -> Photo:
    """Decode an upload and encode it again as an upright JPEG without metadata (blocking: call
    it in a thread)."""
    with DECODING:
        return _clean_photo(upload)


def _clean_photo(upload: IO[bytes]) -> Photo:
    try:
        with Image.open(upload) as image:
            if image.format not in FORMATS:
                raise PhotoError("不支持这种图片格式，请选择 JPG 或 PNG 照片")
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise PhotoError("图片太大了（像素太多），请换一张照片")
            image.draft("RGB", (STORED_SIDE, STORED_SIDE))  # a JPEG decodes at a smaller scale: less memory
            upright = ImageOps.exif_transpose(image).convert("RGB")
    except PhotoError:
        raise
    except Image.DecompressionBombError:
        raise PhotoError("图片太大了（像素太多），请换一张照片") from None
    except Exception:  # Pillow's decoders fail in many ways (OSError, SyntaxError, ValueError…)
        raise PhotoError("这不是一张能打开的照片，请重新选择") from None
    upright.thumbnail((STORED_SIDE, STORED_SIDE))
    out = io.BytesIO()
    upright.save(out, "JPEG", quality=QUALITY, optimize=True)  # no exif=, no icc_profile=: nothing but pixels
    jpeg = out.getvalue()
    return Photo(hashlib.sha256(jpeg).hexdigest() + ".jpg", jpeg)


def path_of(folder: Path, name: str) -> Path:
    if not NAME.match(name):
        raise ValueError(f"not a photo name: {name!r}")
    return folder / name[:2] / name


def thumb_path_of(folder: Path, name: str) -> Path:
    return folder / "thumbs" / name[:2] / name


def save(folder: Path, photo: Photo) -> bool:
    """Write a photo atomically (readable by the server's user only); False when it was there."""
    path = path_of(folder, photo.name)
    if path.exists():
        return False
    _write_atomically(path, photo.jpeg)
    return True


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def thumbnail(folder: Path, name: str) -> Path:
    """The small copy shown on office pages, made the first time it is asked for."""
    path = thumb_path_of(folder, name)
    if not path.exists():
        with Image.open(path_of(folder, name)) as image:
            image.thumbnail((THUMB_SIDE, THUMB_SIDE))
            out = io.BytesIO()
            image.save(out, "JPEG", quality=80)
        _write_atomically(path, out.getvalue())
    return path


def remove(folder: Path, names: Iterable[str]) -> int:
    """Delete photos and their thumbnails; the number of photo files removed."""
    removed = 0
    for name in names:
        if not NAME.match(name):
            continue
        with contextlib.suppress(FileNotFoundError):
            path_of(folder, name).unlink()
            removed += 1
        with contextlib.suppress(FileNotFoundError):
            thumb_path_of(folder, name).unlink()
    return removed


def names_in(value: object) -> list[str]:
    """The photo names in a stored answer (a list of names), in order; none for other answers."""
    items = value if isinstance(value, list) else [value]
    return [item for item in items if isinstance(item, str) and NAME.match(item)]
