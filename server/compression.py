"""Compression where it pays, and only once where the bytes do not change (issue 15).

- `accepts_gzip`, `prefers_brotli`: what a request's `Accept-Encoding` allows, parsed once
  per distinct header.
- `GzipSend`: gzips an answer on its way out when it is text worth compressing and nothing
  compressed it before; everything else passes untouched, with no work per chunk.
- `Spliced`: a gzip stream of `prefix + middle + suffix` where only the short middle changes
  per answer (a blank form page and its submission key). Prefix and suffix are compressed
  once; per answer the middle goes in as a stored deflate block and the CRC is combined
  from the parts' CRCs, so an answer costs a few microseconds instead of a compression.
- Static files, made once, are also kept in brotli (`brotli_once`), about a sixth smaller
  than gzip at its best: phones ask for it over HTTPS. What is compressed per answer, or
  spliced around a key, stays gzip, which every browser takes.
"""

from __future__ import annotations

import functools
import struct
import zlib
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

import brotli

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]

MIN_SIZE = 500  # below this, gzip's own header and trailer eat most of what it saves
LEVEL = 6  # for answers made per request; what is compressed once takes level 9
COMPRESSIBLE = (b"text/", b"application/json", b"application/javascript", b"image/svg+xml", b"application/xml")
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, no time, unknown OS
VARY = (b"vary", b"Accept-Encoding")


@functools.lru_cache(maxsize=256)
def _qualities(header: bytes) -> tuple[float, float]:
    """The q-values an `Accept-Encoding` value gives gzip and brotli (0 when not taken)."""
    qualities: dict[str, float] = {}
    for item in header.decode("latin-1").lower().split(","):
        coding, _, parameters = item.partition(";")
        quality = 1.0
        name, _, value = parameters.strip().partition("=")
        if name.strip() == "q":
            try:
                quality = float(value)
            except ValueError:
                quality = 0.0
        qualities[coding.strip()] = quality
    anything = qualities.get("*", 0.0)
    return qualities.get("gzip", qualities.get("x-gzip", anything)), qualities.get("br", anything)


def accepts_gzip(header: bytes) -> bool:
    """Whether an `Accept-Encoding` value takes gzip: listed (or `*`) with a q-value above 0."""
    return _qualities(header)[0] > 0


def prefers_brotli(header: bytes) -> bool:
    """Whether an `Accept-Encoding` value takes brotli, at least as gladly as gzip."""
    gzip, brotli = _qualities(header)
    return brotli > 0 and brotli >= gzip


def gzip_accepted(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether the raw ASGI request headers take gzip."""
    return accepts_gzip(_accept_encoding(headers))


def brotli_preferred(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether the raw ASGI request headers take brotli, at least as gladly as gzip."""
    return prefers_brotli(_accept_encoding(headers))


def _accept_encoding(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    return next((value for name, value in headers if name == b"accept-encoding"), b"")


def brotli_once(data: bytes) -> bytes:
    """Bytes compressed once and kept (static files): brotli's best, for text."""
    return brotli.compress(data, quality=11, mode=brotli.MODE_TEXT)


def gzip_once(data: bytes) -> bytes:
    """Bytes compressed once and kept (static files, pages): the best level, no time stamp."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = compressor.compress(data) + compressor.flush()
    return GZIP_HEADER + body + struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)


def compressible(content_type: bytes) -> bool:
    return content_type.lower().startswith(COMPRESSIBLE)


class GzipSend:
    """An ASGI `send` that gzips a compressible answer of MIN_SIZE bytes or more.

    An answer that says its own `Content-Encoding`, is not text, or is a route's with
    `opt={skip_key: True}` (downloads compressed in their own process, or zips) goes through
    as it is. A whole body is compressed in one call; a streamed one chunk by chunk.
    """

    __slots__ = ("compressor", "passing", "scope", "send", "skip_key", "start")

    def __init__(self, send: Send, scope: MutableMapping[str, Any], skip_key: str) -> None:
        self.send = send
        self.scope = scope
        self.skip_key = skip_key
        self.start: Message | None = None
        self.compressor: Any = None
        self.passing = False

    async def __call__(self, message: Message) -> None:
        kind = message["type"]
        if self.passing or kind not in ("http.response.start", "http.response.body"):
            await self.send(message)
        elif kind == "http.response.start":
            if self._worth_compressing(message):
                self.start = message  # held until the first body says how big the answer is
            else:
                self.passing = True
                await self.send(message)
        else:
            await self._body(message)

    def _worth_compressing(self, start: Message) -> bool:
        content_type = b""
        for name, value in start.get("headers") or ():
            lowered = name.lower()
            if lowered == b"content-encoding":
                return False
            if lowered == b"content-type":
                content_type = value
            elif lowered == b"content-length" and int(value) < MIN_SIZE:
                return False
        if not compressible(content_type):
            return False
        handler = self.scope.get("route_handler")
        return not (handler is not None and handler.opt.get(self.skip_key))

    async def _body(self, message: Message) -> None:
        body: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        start, self.start = self.start, None
        if start is not None:  # the first body
            if not more and len(body) < MIN_SIZE:
                self.passing = True
                await self.send(start)
                await self.send(message)
                return
            headers = [(n, v) for n, v in start.get("headers") or () if n.lower() != b"content-length"]
            headers += [(b"content-encoding", b"gzip"), VARY]
            if not more:
                body = gzip_bytes(body)
                headers.append((b"content-length", str(len(body)).encode()))
                await self.send({**start, "headers": headers})
                await self.send({"type": "http.response.body", "body": body, "more_body": False})
                return
            await self.send({**start, "headers": headers})
            self.compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, 31)
        # A streamed answer: each chunk leaves as soon as it came, flushed.
        out = self.compressor.compress(body)
        out += self.compressor.flush(zlib.Z_SYNC_FLUSH if more else zlib.Z_FINISH)
        await self.send({"type": "http.response.body", "body": out, "more_body": more})


def gzip_bytes(data: bytes) -> bytes:
    compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()


def _crc_shift(length: int) -> tuple[list[int], ...]:
    """Tables that move a CRC-32 past `length` zero bytes: crc(a + b) = shift(crc(a)) ^ crc(b).

    The move is linear over GF(2), so it is found for the 32 single bits with zlib itself
    and each table answers one byte of the CRC as the XOR of its bits' moves.
    """
    zeros = bytes(length)
    bit = [zlib.crc32(zeros, (1 << i) ^ 0xFFFFFFFF) ^ 0xFFFFFFFF for i in range(32)]
    tables = []
    for byte in range(4):
        table = [0] * 256
        for value in range(1, 256):
            low = value & -value  # the lowest bit set: table[value] = table[value without it] ^ its move
            table[value] = table[value ^ low] ^ bit[8 * byte + low.bit_length() - 1]
        tables.append(table)
    return tuple(tables)


class Spliced:
    """A gzip stream of `prefix + middle + suffix`, compressed once around a middle of fixed length."""

    def __init__(self, prefix: bytes, suffix: bytes, middle_length: int) -> None:
        self.middle_length = middle_length
        head = zlib.compressobj(9, zlib.DEFLATED, -15)
        # A sync flush ends the prefix's blocks on a byte boundary without a final block.
        self.head = GZIP_HEADER + head.compress(prefix) + head.flush(zlib.Z_SYNC_FLUSH)
        # The suffix may refer back into the prefix: its compressor's history is the prefix
        # followed by as many NUL bytes as the middle has. Text never holds NUL, so no match
        # lands in the middle, and every distance counts the middle's real length.
        history = (prefix + bytes(middle_length))[-32768:] if b"\x00" not in suffix else b"\x01"
        tail = zlib.compressobj(9, zlib.DEFLATED, -15, zdict=history)
        self.tail = tail.compress(suffix) + tail.flush()
        self.stored_header = b"\x00" + struct.pack("<HH", middle_length, middle_length ^ 0xFFFF)
        self.prefix_crc = zlib.crc32(prefix)
        self.suffix_crc = zlib.crc32(suffix)
        self.size = struct.pack("<I", (len(prefix) + middle_length + len(suffix)) & 0xFFFFFFFF)
        self.shift = _crc_shift(len(suffix))

    def with_middle(self, middle: bytes) -> bytes:
        if len(middle) != self.middle_length:
            raise ValueError(f"the middle must be {self.middle_length} bytes, not {len(middle)}")
        crc = zlib.crc32(middle, self.prefix_crc)
        t0, t1, t2, t3 = self.shift
        crc = t0[crc & 0xFF] ^ t1[(crc >> 8) & 0xFF] ^ t2[(crc >> 16) & 0xFF] ^ t3[crc >> 24] ^ self.suffix_crc
        return b"".join((self.head, self.stored_header, middle, self.tail, struct.pack("<I", crc), self.size))
