"""Static files (`/static/...`), read and compressed once (gzip and brotli) and answered from memory.

Each URL carries the file's content hash (`asset_url` in templates), so browsers keep a
file for a year; a file is read when first asked for (the project's own at start-up) and
kept as long as the process, like the hash in its URL.
"""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from litestar import Request, Response, route
from litestar.exceptions import NotFoundException
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from server.compression import brotli_once, brotli_preferred, compressible, gzip_accepted, gzip_once

YEAR = 365 * 24 * 3600
CACHE_FOR_A_YEAR = f"public, max-age={YEAR}"


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    gzipped: bytes | None  # None when the type does not compress or gzip saves nothing
    brotli: bytes | None  # None when there is no gzip, or brotli saves nothing over it
    media_type: str
    digest: str

    @classmethod
    def read(cls, path: Path) -> StaticFile:
        body = path.read_bytes()
        media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"  # Litestar adds text's charset
        gzipped = gzip_once(body) if compressible(media_type.encode()) else None
        if gzipped is not None and len(gzipped) >= len(body):
            gzipped = None
        brotli = brotli_once(body) if gzipped is not None else None
        if brotli is not None and gzipped is not None and len(brotli) >= len(gzipped):
            brotli = None
        return cls(body, gzipped, brotli, media_type, hashlib.sha256(body).hexdigest()[:10])

    def encoded(self, headers: Iterable[tuple[bytes, bytes]]) -> tuple[str, bytes]:
        """The encoding the request takes and the bytes in it: brotli, gzip or none ("")."""
        if self.brotli is not None and brotli_preferred(headers):
            return "br", self.brotli
        if self.gzipped is not None and gzip_accepted(headers):
            return "gzip", self.gzipped
        return "", self.body

    def etag(self, encoding: str) -> str:
        return f'"{self.digest}{"-" + encoding if encoding else ""}"'


def file_response(request: Request, file: StaticFile, cache_control: str, *, revalidated: bool) -> Response[bytes]:
    """The file as the request takes it: brotli, gzip or as it is; when `revalidated` (a file asked for
    again each time), with an ETag and a 304 when the browser has it already. A file whose URL
    carries its hash is kept a year and never revalidated: an ETag would be bytes for nothing
    on every first visit (the page-weight budget counts headers)."""
    encoding, body = file.encoded(request.scope["headers"])
    headers = {"Cache-Control": cache_control}
    if file.gzipped is not None:
        headers["Vary"] = "Accept-Encoding"
    if encoding:
        headers["Content-Encoding"] = encoding
    if revalidated:
        etag = headers["ETag"] = file.etag(encoding)
        if etag in request.headers.get("if-none-match", ""):
            return Response(b"", status_code=304, headers=headers, media_type=file.media_type)
    return Response(b"" if request.method == "HEAD" else body, headers=headers, media_type=file.media_type)


class StaticFiles:
    """The files of some folders, the first folder's first; never anything outside them."""

    def __init__(self, *directories: Path) -> None:
        self.directories = [d.resolve() for d in directories]
        self._files: dict[str, StaticFile] = {}

    def url(self, name: str) -> str:
        """The file's URL with its content hash (for templates)."""
        file = self.get(name)
        return f"/static/{name}?v={file.digest if file else 'missing'}"

    def get(self, name: str) -> StaticFile | None:
        file = self._files.get(name)
        if file is None:
            path = self._find(name)
            if path is None:
                return None
            file = self._files[name] = StaticFile.read(path)
        return file

    def read_own(self, names: Sequence[str] = ()) -> None:
        """Read (and compress) the first folder's files and the named others: at start-up, not at a first visit."""
        for path in sorted(self.directories[0].iterdir()) if self.directories else []:
            if path.is_file():
                self.get(path.name)
        for name in names:
            self.get(name)

    def _find(self, name: str) -> Path | None:
        parts = name.split("/")
        if "\x00" in name or any(part in ("", ".", "..") for part in parts):
            return None
        for directory in self.directories:
            try:
                path = directory.joinpath(*parts).resolve()
                if path.is_relative_to(directory) and path.is_file():
                    return path
            except (OSError, ValueError):  # a name too long, or one the file system refuses
                return None
        return None


def static_route(files: StaticFiles) -> HTTPRouteHandler:
    @route("/static/{name:path}", http_method=["GET", "HEAD"], sync_to_thread=False, include_in_schema=False)
    def static_file(request: Request, name: FromPath[str]) -> Response[Any]:
        file = files.get(name.lstrip("/"))
        if file is None:
            raise NotFoundException()
        return file_response(request, file, CACHE_FOR_A_YEAR, revalidated=False)

    return static_file
