"""Reading a form post: plain form data (`decode_form_data`), and one that carries photos:
multipart, streamed, with bounded memory.

The body is parsed as it arrives. Text parts are kept (at most `max_text` bytes in all);
each file part goes to a temporary file that stays in memory up to `SPOOL_BYTES`, and a
file past `photos.MAX_UPLOAD_BYTES` is counted, not kept: the page can then say which
photo was too large and still show what was typed. Files are accepted only under the
names of photo and video questions. A video goes straight to a temporary file on disk in
the videos folder, hashed as it is written (see `server/videos.py`), and past its question's
limit it is counted, not kept: a clip of any size costs a few chunks of memory.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import AsyncIterator, Collection, Mapping
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote

import msgspec
from multipart import MultipartError, MultipartSegment, PushMultipartParser

from server import photos, videos

SPOOL_BYTES = 1024 * 1024


class BadUpload(ValueError):
    """A body no browser would send: broken multipart, files where none belong, bad UTF-8."""


class TooMuchText(ValueError):
    """More text than a form post may carry."""


def decode_form_data(body: bytes, max_fields: int) -> dict[str, list[str]]:
    """`application/x-www-form-urlencoded` as each name with the values sent for it, in order.

    What `parse_qsl(…, keep_blank_values=True, errors="strict", max_num_fields=…)` returns,
    grouped, in a third of its time: a value without `%` or `+` (most of a survey's) is taken
    as it is, and one made only of `%XY` escapes (Chinese typed on a phone) is unescaped in
    one call. Bytes that are not UTF-8, before or after unescaping, are a `ValueError`, as
    are more than `max_fields` fields.
    """
    text = body.decode("utf-8")
    if text and text.count("&") >= max_fields:
        raise ValueError("too many fields")
    data: dict[str, list[str]] = {}
    for pair in text.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        if "+" in name or "%" in name:
            name = _unescape(name)
        if "+" in value or "%" in value:
            value = _unescape(value)
        if (values := data.get(name)) is None:
            data[name] = [value]
        else:
            values.append(value)
    return data


def _unescape(text: str) -> str:
    """`unquote` after `+` → space, strictly UTF-8; text made only of `%XY` escapes in one C call."""
    count = len(text) // 3
    if len(text) == 3 * count and text[::3] == "%" * count:
        digits = text.replace("%", "")
        if len(digits) == 2 * count and digits.isascii() and digits.isalnum():
            try:
                raw = bytes.fromhex(digits)
            except ValueError:  # not hex: unquote leaves such escapes as they are
                pass
            else:
                return raw.decode("utf-8")
    return unquote(text.replace("+", " "), errors="strict")


class Upload(msgspec.Struct):
    field: str
    file: IO[bytes]
    size: int = 0
    limit: int = photos.MAX_UPLOAD_BYTES
    digest: Any = None  # a video's running SHA-256 (photos are hashed once cleaned)

    @property
    def too_big(self) -> bool:
        return self.size > self.limit

    def write(self, chunk: bytes) -> None:
        """Keep a chunk, unless the upload has passed its limit (then its bytes are dropped)."""
        self.size += len(chunk)
        if self.too_big:
            if self.digest is not None:
                self.digest = None
                self.file.truncate(0)  # a clip past its limit leaves nothing on disk
            return
        self.file.write(chunk)
        if self.digest is not None:
            self.digest.update(chunk)


class Posted(msgspec.Struct):
    data: dict[str, list[str]]
    uploads: dict[str, list[Upload]]

    def close(self) -> None:
        for uploads in self.uploads.values():
            for upload in uploads:
                upload.file.close()


def _new_upload(
    name: str, photo_fields: Collection[str], video_fields: Mapping[str, int], video_folder: Path | None
) -> Upload:
    if name in video_fields and video_folder is not None:
        return Upload(name, videos.temporary_file(video_folder), limit=video_fields[name], digest=videos.new_hash())
    if name not in photo_fields:
        raise BadUpload(f"a file under {name!r}")
    return Upload(name, tempfile.SpooledTemporaryFile(SPOOL_BYTES))


async def read_multipart(
    chunks: AsyncIterator[bytes],
    boundary: str,
    photo_fields: Collection[str],
    *,
    max_text: int,
    max_parts: int,
    max_body: float = math.inf,
    video_fields: Mapping[str, int] | None = None,
    video_folder: Path | None = None,
) -> Posted:
    """Parse a multipart body; the caller closes the result (its temporary files). More than
    `max_text` bytes of text, or `max_body` bytes in all, is `TooMuchText`. `video_fields`
    maps each video question to its limit in bytes; their files go to `video_folder`."""
    video_fields = video_fields or {}
    posted = Posted({}, {})
    text_bytes = body_bytes = 0
    upload: Upload | None = None  # the file part being received
    try:
        with PushMultipartParser(boundary, max_segment_count=max_parts) as parser:
            segment: MultipartSegment | None = None
            text = bytearray()
            async for chunk in chunks:
                body_bytes += len(chunk)
                if body_bytes > max_body:
                    raise TooMuchText()
                for event in parser.parse(chunk):
                    if isinstance(event, MultipartSegment):
                        segment, text = event, bytearray()
                        if event.filename is not None:  # a file input, chosen or left empty
                            upload = _new_upload(event.name, photo_fields, video_fields, video_folder)
                    elif event and upload is not None:
                        upload.write(event)
                    elif event:
                        text_bytes += len(event)
                        if text_bytes > max_text:
                            raise TooMuchText()
                        text += event
                    elif upload is not None:  # the end of a file part
                        if upload.size:
                            upload.file.seek(0)
                            posted.uploads.setdefault(upload.field, []).append(upload)
                        else:
                            upload.file.close()
                        upload = None
                    elif segment is not None:  # the end of a text part
                        posted.data.setdefault(segment.name or "", []).append(text.decode("utf-8"))
                if parser.closed:
                    break
    except BaseException as exc:
        if upload is not None:
            upload.file.close()
        posted.close()
        if isinstance(exc, MultipartError):
            raise BadUpload("malformed multipart body") from None
        if isinstance(exc, UnicodeDecodeError):
            raise BadUpload("a text part is not UTF-8") from None
        raise
    return posted
