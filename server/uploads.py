"""Reading a form post that carries photos: multipart, streamed, with bounded memory.

The body is parsed as it arrives. Text parts are kept (at most `max_text` bytes in all);
each file part goes to a temporary file that stays in memory up to `SPOOL_BYTES`, and a
file past `photos.MAX_UPLOAD_BYTES` is counted, not kept: the page can then say which
photo was too large and still show what was typed. Files are accepted only under the
names of photo questions.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import AsyncIterator, Collection
from typing import IO

import msgspec
from multipart import MultipartError, MultipartSegment, PushMultipartParser

from server import photos

SPOOL_BYTES = 1024 * 1024


class BadUpload(ValueError):
    """A body no browser would send: broken multipart, files where none belong, bad UTF-8."""


class TooMuchText(ValueError):
    """More text than a form post may carry."""


class Upload(msgspec.Struct):
    field: str
    file: IO[bytes]
    size: int = 0

    @property
    def too_big(self) -> bool:
        return self.size > photos.MAX_UPLOAD_BYTES


class Posted(msgspec.Struct):
    data: dict[str, list[str]]
    uploads: dict[str, list[Upload]]

    def close(self) -> None:
        for uploads in self.uploads.values():
            for upload in uploads:
                upload.file.close()


async def read_multipart(
    chunks: AsyncIterator[bytes],
    boundary: str,
    photo_fields: Collection[str],
    *,
    max_text: int,
    max_parts: int,
    max_body: float = math.inf,
) -> Posted:
    """Parse a multipart body; the caller closes the result (its temporary files). More than
    `max_text` bytes of text, or `max_body` bytes in all, is `TooMuchText`."""
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
                            if event.name not in photo_fields:
                                raise BadUpload(f"a file under {event.name!r}")
                            upload = Upload(event.name, tempfile.SpooledTemporaryFile(SPOOL_BYTES))  # noqa: SIM115 (closed by Posted.close)
                    elif event and upload is not None:
                        upload.size += len(event)
                        if not upload.too_big:
                            upload.file.write(event)
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
