"""The read API (SPEC §5.7): `GET /api/forms/{id}/responses?after=ID&limit=N` for a bearer token.

HTTP only: the token is `server.tokens`, the rows and their JSON `server.dataout`, the
filters the results page's (`server.results.parse_filters`). Errors are JSON with a
Chinese and an English message, never a page: the caller is a program.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get
from litestar.datastructures import CacheControlHeader
from litestar.params import FromPath
from litestar.response import Stream

from server import dataout, tokens
from server.public import Ctx
from server.results import parse_filters, personal_fields_of
from server.storage import connect

JSON = "application/json"
MAX_ID = 2**63 - 1
PRIVATE = CacheControlHeader(no_store=True)


def _error(status: int, chinese: str, english: str, **headers: str) -> Response[Any]:
    body = msgspec.json.encode({"error": chinese, "error_en": english})
    return Response(body, status_code=status, media_type=JSON, headers=headers)


def _whole_number(text: str, name: str, low: int, high: int) -> int | str:
    """The query value as an int in [low, high], or a Chinese message saying what is wrong."""
    if not (text.isascii() and text.isdigit() and len(text) <= 19 and low <= int(text) <= high):
        return f"{name} 应为 {low} 到 {high} 之间的整数"
    return int(text)


@get("/api/forms/{form_id:str}/responses", sync_to_thread=True, cache_control=PRIVATE)
def responses(request: Request, ctx: Ctx, form_id: FromPath[str]) -> Response[Any]:
    scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
    token = tokens.token_for(ctx.store.reader(), bearer.strip()) if scheme.lower() == "bearer" else None
    if token is None:
        return _error(
            401, "需要有效的访问令牌", "a valid bearer token is required", **{"WWW-Authenticate": 'Bearer realm="api"'}
        )
    if not token.reaches(form_id):
        return _error(403, "这个令牌不能读取该表单", "this token does not reach that form")
    form = ctx.catalog.get(form_id)
    if form is None:
        return _error(404, "没有这个表单", "no such form")
    query = request.query_params
    after = _whole_number(query.get("after", "0"), "after", 0, MAX_ID)
    limit = _whole_number(query.get("limit", str(dataout.DEFAULT_LIMIT)), "limit", 1, dataout.MAX_LIMIT)
    filters, problems = parse_filters(dict(query))
    problems += [p for p in (after, limit) if isinstance(p, str)]
    if problems:
        return _error(400, "；".join(problems), "bad query parameters (after, limit or the results page's filters)")
    assert isinstance(after, int) and isinstance(limit, int)
    personal = None if token.personal else personal_fields_of(ctx.store.reader(), form.id, form)
    return Stream(_page(ctx, form.id, filters, after, limit, personal), media_type=JSON)


def _page(ctx: Ctx, form_id: str, filters: Any, after: int, limit: int, personal: Any) -> Any:
    """The page's chunks, read over a connection of its own: the stream is iterated in
    whichever worker thread is free, and the thread's reader must stay with its thread."""
    db = connect(ctx.store.path, check_same_thread=False)
    try:
        yield from dataout.page_json(dataout.rows_after(db, form_id, filters, after, limit), limit, personal)
    finally:
        db.conn.close()


ROUTES = [responses]
