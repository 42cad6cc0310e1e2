"""The two answers residents ask for most, made at the front door before Litestar routes (issue 15).

- `blank_form`: `GET /f/{id}` or `/e/{code}` of a public, open form or event, straight
  from the blank-page cache; `thanks` the same for its thank-you page (`…/thanks`).
- `quick_submit`: a plain form-data `POST` there, of a form without photos, read,
  validated and stored by the same functions as the routed path, and answered with the
  same 303. Litestar's request object, routing and response machinery cost about as much
  as everything else such a submission does.

Anything else goes the usual way: an answer with a page to show (a mistake to correct, a
rate limit, a closed form), htmx, photos, an address with a query. When a POST's body was
read here first, the app is handed the same messages again (`_replaying`), so it sees the
request as it came. `FrontDoor` adds the security headers to these answers as to any other.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from litestar.exceptions import ClientException

from server import public
from server.blank_pages import kept, kept_whole
from server.compression import VARY, gzip_accepted
from server.context import Context as AppContext
from server.events import Target
from server.proxy import Message, Receive, Reply
from server.storage import StorageError
from server.uploads import decode_form_data
from server.validate import validate

FORM_DATA = b"application/x-www-form-urlencoded"
THANKS = "/thanks"
_NOT_SHARED = (b"cache-control", public.NOT_SHARED.encode())
_PAGE = (b"content-type", b"text/html; charset=utf-8")
# What Litestar's `Redirect(…, status_code=303)` sends, besides the location.
_REDIRECT = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"0")]


async def shortcut(ctx: AppContext, scope: MutableMapping[str, Any], receive: Receive) -> tuple[Reply | None, Receive]:
    """The answer to a request when it can be made here, and the `receive` the app must use."""
    method = scope["method"]
    if method == "GET":
        return (thanks(ctx, scope) if scope["path"].endswith(THANKS) else blank_form(ctx, scope)), receive
    if method == "POST":
        return await quick_submit(ctx, scope, receive)
    return None, receive


def _open_target(ctx: AppContext, scope: MutableMapping[str, Any], path: str | None = None) -> Target | None:
    """The target of `/f/{id}` or `/e/{code}` asked for without a query, when it is open."""
    path = scope["path"] if path is None else path
    kind, _, name = path[1:].partition("/")
    if scope["query_string"] or not name or "/" in name:
        return None
    if kind == "f":
        target = public.find_form_target(ctx, name)
    elif kind == "e":
        target = public.find_event_target(ctx, name)
    else:
        return None
    return target if target is not None and target.state() == "open" else None


def blank_form(ctx: AppContext, scope: MutableMapping[str, Any]) -> Reply | None:
    """`form_page`'s answer with its cached page, for a plain GET (not htmx) of a kept page.

    Anything else is None, and the request goes the usual way (which is also how a page gets
    into the cache)."""
    target = _open_target(ctx, scope)
    if target is None:
        return None
    headers = scope["headers"]
    if any(name == b"hx-request" for name, _ in headers):
        return None
    page = kept(("form.html", target.path, target.form.version, target.event))
    if page is None:
        return None
    gzip = gzip_accepted(headers)
    body = page.body(public.new_submission_key(), gzip=gzip)
    answer = [_PAGE, (b"content-length", str(len(body)).encode()), VARY, _NOT_SHARED]
    return 200, ([*answer, (b"content-encoding", b"gzip")] if gzip else answer), body


def thanks(ctx: AppContext, scope: MutableMapping[str, Any]) -> Reply | None:
    """The thank-you page of an open form or event as kept (a quiz's score needs `?key=`: routed)."""
    target = _open_target(ctx, scope, scope["path"].removesuffix(THANKS))
    if target is None:
        return None
    page = kept_whole(("thanks.html", target.path, target.form.version, target.event))
    if page is None:
        return None
    gzip = gzip_accepted(scope["headers"])
    body = page.gzipped if gzip else page.body
    answer = [_PAGE, (b"content-length", str(len(body)).encode()), VARY]
    return 200, ([*answer, (b"content-encoding", b"gzip")] if gzip else answer), body


async def quick_submit(
    ctx: AppContext, scope: MutableMapping[str, Any], receive: Receive
) -> tuple[Reply | None, Receive]:
    """`submit_form`'s 303 for a valid plain submission, stored; else None for the app to answer.

    The only difference from the routed path is the order of two checks: a key sent before is
    found by the writer (which stores it once and answers with the earlier receipt) rather
    than looked up first, so an answer sent again that the form would now refuse goes to the
    routed path, which finds the key and thanks the resident as before."""
    target = _open_target(ctx, scope)
    if target is None or target.form.has_photos:
        return None, receive
    length = _plain_form_data_length(scope["headers"])
    if length is None:
        return None, receive
    messages, body = await _read_body(receive, length)
    again = _replaying(messages, receive)
    if body is None:
        return None, again
    try:
        data = decode_form_data(body, public.MAX_FIELDS)
        key = public.submission_key(data)
        outcome = validate(target.form, data, target.fixed_answers())
    except (ValueError, ClientException):  # malformed: the routed path says so
        return None, again
    client = scope.get("client")
    if not outcome.ok or not ctx.limiter.allow(client[0] if client else "unknown"):
        return None, again  # a page to show: the routed path validates (and counts the refusal) again
    submission = public.make_submission(target, key, data, outcome)
    try:
        await ctx.store.writer.store(submission)
    except StorageError:
        return None, again  # the routed path tries once more, and shows the 503 page if it fails too
    location = public.thanks_location(target, submission.submission_key)
    return (303, [(b"location", location.encode()), *_REDIRECT], b""), again


def _plain_form_data_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The Content-Length of a form-data body small enough for a form without photos, not
    sent by htmx; None for anything else."""
    length = None
    form_data = False
    for name, value in headers:
        if name == b"content-length":
            if length is not None or not value.isdigit():
                return None
            length = int(value)
        elif name == b"content-type":
            form_data = value.partition(b";")[0].strip().lower() == FORM_DATA
        elif name in (b"hx-request", b"transfer-encoding"):
            return None
    return length if form_data and length is not None and length <= public.MAX_TEXT_BYTES else None


async def _read_body(receive: Receive, length: int) -> tuple[list[Message], bytes | None]:
    """The messages read, and the body when it came whole and as long as announced."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":  # the client went away: the app hears it too
            return messages, None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > length:
            return messages, None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return messages, b"".join(chunks) if size == length else None


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    """A `receive` that gives these messages again, then what the client sends next."""
    pending = messages[::-1]

    async def again() -> Message:
        return pending.pop() if pending else await receive()

    return again
