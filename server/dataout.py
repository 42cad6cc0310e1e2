"""A response as it leaves the server: the read API's pages and the webhooks' bodies.

One shape for both (`ResponseOut`): id, submitted_at, event, and the answers as stored
(option values, numbers as numbers). Personal answers are masked as on office screens
unless the token or webhook was made to carry them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
from sqlite_utils import Database

from server.forms import Field
from server.results import Filters, mask, where

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
CHUNK_BYTES = 64 * 1024


class ResponseOut(msgspec.Struct, frozen=True):
    id: int
    submitted_at: str
    event: str | None
    answers: dict[str, Any]


class Delivery(msgspec.Struct, frozen=True):
    """A webhook's body: the form and the response."""

    form_id: str
    response: ResponseOut


_decode_answers = msgspec.json.Decoder(dict[str, Any]).decode
_encode = msgspec.json.Encoder().encode


def shown(row: tuple[int, str, str | None, str], personal: dict[str, Field] | None) -> ResponseOut:
    """A stored row (id, submitted_at, event, answers JSON); with `personal`, those answers masked."""
    answers = _decode_answers(row[3])
    if personal:
        answers = {k: mask(personal[k], v) if k in personal else v for k, v in answers.items()}
    return ResponseOut(row[0], row[1], row[2], answers)


def rows_after(
    db: Database, form_id: str, filters: Filters, after: int, limit: int
) -> Iterator[tuple[int, str, str | None, str]]:
    """Up to `limit` + 1 rows with an id above `after`, oldest first, streamed from the cursor.

    Ids only grow and a writer commits them in order, so paging by id sees every response
    once, however many arrive meanwhile. The extra row says whether there is a next page.
    """
    clause, params = where(form_id, filters)
    cursor = db.execute(
        f"""SELECT r.id, r.submitted_at, r.event, r.answers FROM responses r
            WHERE {clause} AND r.id > ? ORDER BY r.id LIMIT ?""",
        [*params, after, limit + 1],
    )
    while rows := cursor.fetchmany(200):
        yield from rows


def response_row(db: Database, response_id: int) -> tuple[str, tuple[int, str, str | None, str]] | None:
    """(form id, row) of one response, or None when it was deleted."""
    row = db.execute(
        "SELECT form_id, id, submitted_at, event, answers FROM responses WHERE id = ?", [response_id]
    ).fetchone()
    return (row[0], (row[1], row[2], row[3], row[4])) if row else None


def page_json(
    rows: Iterator[tuple[int, str, str | None, str]], limit: int, personal: dict[str, Field] | None
) -> Iterator[bytes]:
    """`{"responses": [...], "next": ID|null}` in chunks, as the rows come."""
    buffer = bytearray(b'{"responses":[')
    last = None
    # A row whose stored JSON does not even mention a personal question's name (as `"name"`,
    # however the JSON was spaced) is copied as it is, without decoding and encoding it again.
    markers = [f'"{name}"' for name in personal or ()]
    for count, row in enumerate(rows):
        if count == limit:  # the extra row: there is more after the last one shown
            buffer += b'],"next":' + str(last).encode() + b"}"
            yield bytes(buffer)
            return
        if count:
            buffer += b","
        if any(marker in row[3] for marker in markers):
            buffer += _encode(shown(row, personal))
        else:
            buffer += b'{"id":%d,"submitted_at":%b,"event":%b,"answers":%b}' % (
                row[0],
                _encode(row[1]),
                _encode(row[2]),
                row[3].encode(),
            )
        last = row[0]
        if len(buffer) >= CHUNK_BYTES:
            yield bytes(buffer)
            buffer.clear()
    buffer += b'],"next":null}'
    yield bytes(buffer)


def delivery_body(form_id: str, row: tuple[int, str, str | None, str], personal: dict[str, Field] | None) -> bytes:
    return _encode(Delivery(form_id, shown(row, personal)))
