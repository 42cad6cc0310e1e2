"""Public pages: the landing page, a form, submitting it, thanks, inline checks, health.

Handlers are thin: read the request, call validate/store, pick the template. An htmx
request gets the fragment of the page it replaces; everything works without it.
"""

from __future__ import annotations

import logging
import math
import re
import secrets
from pathlib import Path
from typing import Any

import anyio
from litestar import Request, Response, get, post, route
from litestar.datastructures import FormMultiDict
from litestar.di import NamedDependency
from litestar.exceptions import ClientException, HTTPException, NotFoundException
from litestar.params import FromPath
from litestar.response import Redirect, Template
from litestar.response.base import ASGIResponse

from server import expressions, photos, regions, storage
from server.blank_pages import blank_page, whole_page
from server.compression import gzip_accepted
from server.context import Context as AppContext
from server.events import Target, get_event
from server.forms import Form
from server.quiz import grade
from server.storage import StorageError, Submission, answers_for_key, receipt_for_key
from server.uploads import BadUpload, Posted, TooMuchText, decode_form_data, read_multipart
from server.validate import PRIVACY_CONSENT, Malformed, Outcome, validate

log = logging.getLogger(__name__)

Ctx = NamedDependency[AppContext]
SUBMISSION_KEY = "_key"
# A text box people never see (it is off-screen, and its label says to leave it empty) but
# form-filling bots do. A submission that fills it is stored, flagged as suspected spam.
HONEYPOT = "_homepage"
KEY_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
MAX_FIELDS = 1000
MAX_TEXT_BYTES = 1024 * 1024  # what a form post may carry besides photos (app.py's MAX_BODY_BYTES)
# The submit routes take this much: nine photos at the most each may weigh, and the text. A
# form without photo questions still takes MAX_TEXT_BYTES (`read_submission`), and the bytes
# of a photo past `photos.MAX_UPLOAD_BYTES` are counted, not kept (`server/uploads.py`).
MAX_SUBMIT_BYTES = 9 * photos.MAX_UPLOAD_BYTES + MAX_TEXT_BYTES

MESSAGES = {
    400: ("请求有误", "提交的内容格式不对。请回到问卷页面重新填写后提交。"),
    404: ("找不到页面", "没有找到这个页面。请检查网址，或重新扫描二维码。"),
    401: ("请先登录", "这个页面需要登录后才能查看。"),
    403: ("没有权限", "您的账号不能进行这个操作。如需帮助，请联系管理员。"),
    405: ("请求方式不对", "这个网址不支持这种请求方式。"),
    413: ("内容太多", f"提交的内容太大了：文字最多 1 MB，照片每张最多 {photos.MAX_UPLOAD_TEXT}。请删减后再提交。"),
    415: ("格式不对", "提交的格式不对。请在问卷页面里填写后提交。"),
    500: ("服务器出错", "服务器出了点问题，请稍后再试。"),
    503: ("暂时无法服务", "服务器暂时无法保存，请稍后再试。"),
}
NOTICE_RATE_LIMITED = "提交太频繁了，请 {seconds} 秒后再点“提交”。您填写的内容都还在。"
NOTICE_NOT_STORED = "网络或服务器繁忙，这次没有保存成功。您填写的内容都还在，请稍后再点“提交”。"
PHOTO_TOO_BIG = "每张照片不能超过 {limit}（这张约 {size} MB），请换一张或用手机自带的编辑功能缩小后再选"
PHOTOS_TOO_MANY = "最多上传 {most} 张照片（现在是 {count} 张）"
NOTICE_PHOTOS_AGAIN = "照片没有保存，请重新选择照片后再点“提交”。"


def new_submission_key() -> str:
    return secrets.token_urlsafe(18)


def form_target(ctx: AppContext, form_id: str) -> Target:
    target = find_form_target(ctx, form_id)
    if target is None:
        raise NotFoundException()
    return target


def find_form_target(ctx: AppContext, form_id: str) -> Target | None:
    form = ctx.catalog.get(form_id)
    return Target(form, f"/f/{form_id}") if form is not None and form.is_public else None


def event_target(ctx: AppContext, code: str) -> Target:
    """The event of a code as typed (any case); 404 when there is none or its form is gone."""
    target = find_event_target(ctx, code)
    if target is None:
        raise NotFoundException()
    return target


def find_event_target(ctx: AppContext, code: str) -> Target | None:
    event = get_event(ctx.store.reader(), code)
    form = ctx.catalog.get(event.form_id) if event else None
    if event is None or form is None or not form.is_public:
        return None
    return Target(form, event.path, event)


@get("/", sync_to_thread=False)
def landing(ctx: Ctx) -> Template:
    forms = [f for f in ctx.catalog.all() if f.is_public and f.state() == "open"]
    return Template("landing.html", context={"forms": forms, "campaign": ctx.catalog.campaign})


@get("/f/{form_id:str}", sync_to_thread=False, request_class=Request)
def form_page(request: Request, form_id: FromPath[str]) -> Response[Any]:
    target = form_target(app_context(request), form_id)
    return show_form(request, target, values=_from_address(request, target.form))


@post("/f/{form_id:str}", status_code=200, request_max_body_size=MAX_SUBMIT_BYTES, request_class=Request)
async def submit_form(request: Request, form_id: FromPath[str]) -> Response[Any]:
    ctx = app_context(request)
    return await submit(request, ctx, form_target(ctx, form_id))


@get("/f/{form_id:str}/thanks", sync_to_thread=False, request_class=Request)
def thanks_page(request: Request, form_id: FromPath[str]) -> Response[Any]:
    ctx = app_context(request)
    return _thanks(request, ctx, form_target(ctx, form_id))


@post("/f/{form_id:str}/check/{field_name:str}", status_code=200, request_class=Request)
async def check_form_field(request: Request, ctx: Ctx, form_id: FromPath[str], field_name: FromPath[str]) -> Template:
    return await check_field(request, form_target(ctx, form_id), field_name)


@get("/e/{code:str}", sync_to_thread=False, request_class=Request)
def event_page(request: Request, code: FromPath[str]) -> Response[Any]:
    target = event_target(app_context(request), code)
    return show_form(request, target, values=_from_address(request, target.form))


def _from_address(request: Request, form: Form) -> dict[str, list[str]]:
    """Values of `hidden` fields from the page address (`?src=poster`), for channel tracking."""
    if not request.scope["query_string"]:
        return {}
    query = request.query_params
    return {f.name: [query[f.name]] for f in form.fields if f.type == "hidden" and f.name in query}


@post("/e/{code:str}", status_code=200, request_max_body_size=MAX_SUBMIT_BYTES, request_class=Request)
async def submit_event(request: Request, code: FromPath[str]) -> Response[Any]:
    ctx = app_context(request)
    return await submit(request, ctx, event_target(ctx, code))


@get("/e/{code:str}/thanks", sync_to_thread=False, request_class=Request)
def event_thanks_page(request: Request, code: FromPath[str]) -> Response[Any]:
    ctx = app_context(request)
    return _thanks(request, ctx, event_target(ctx, code))


def _thanks(request: Request, ctx: AppContext, target: Target) -> Response[Any]:
    """The thank-you page: kept rendered and gzipped (`whole_page`), but a quiz's score."""
    context = thanks_context(ctx, target, request.query_params.get("key", "") if request.scope["query_string"] else "")
    if "grade" in context:  # this response's own score: never kept
        return Template("thanks.html", context=context)

    def render() -> str:
        engine = request.app.template_engine
        assert engine is not None  # create_app configures Jinja
        return engine.get_template("thanks.html").render(**context)

    page = whole_page(("thanks.html", target.path, target.form.version, target.event), render)
    gzip = gzip_accepted(request.scope["headers"])
    return Response(
        page.gzipped if gzip else page.body,
        media_type="text/html",  # Litestar adds the charset
        headers=_PAGE_GZIP_HEADERS if gzip else _PAGE_HEADERS,
    )


def thanks_context(ctx: AppContext, target: Target, key: str) -> dict[str, Any]:
    """The thank-you page; after a quiz, the score and each correction of the response sent
    with this submission key (the key is the resident's own, from the page they filled)."""
    if not target.form.quiz_fields or not KEY_PATTERN.match(key):
        return {"target": target}
    stored = answers_for_key(ctx.store.reader(), key)
    if stored is None or stored[0] != target.form.id:
        return {"target": target}
    return {"target": target, "grade": grade(target.form, stored[2])}


@post("/e/{code:str}/check/{field_name:str}", status_code=200, request_class=Request)
async def check_event_field(request: Request, ctx: Ctx, code: FromPath[str], field_name: FromPath[str]) -> Template:
    return await check_field(request, event_target(ctx, code), field_name)


# HEAD too: uptime monitors ask with HEAD, and get the status alone. The answers are made once:
# Litestar's Response machinery cost more per poll than the rest of the route.
_HEALTH = {
    (method, healthy): ASGIResponse(
        body=b"" if method == "HEAD" else b"ok" if healthy else b"database is not writable",
        status_code=200 if healthy else 503,
        media_type="text/plain",
    )
    for method in ("GET", "HEAD")
    for healthy in (True, False)
}


@route("/healthz", http_method=["GET", "HEAD"], media_type="text/plain", request_class=Request)
async def healthz(request: Request) -> ASGIResponse:
    """`ok` when the database takes writes. A probe runs in a thread (it may wait for the
    lock); a recent success is known without one, and a thread hop per poll would cost more
    than everything else /healthz does."""
    store = app_context(request).store
    healthy = store.known_healthy() or await anyio.to_thread.run_sync(store.healthy)
    return _HEALTH[request.method, healthy]


def app_context(request: Request) -> AppContext:
    """The application's context, for the residents' routes: what `ctx: Ctx` injects, without
    the dependency machinery, which cost more per request than /healthz's own work (issue 15)."""
    return request.app.state["context"]


def is_htmx(request: Request) -> bool:
    """Whether htmx sent the request (it then gets the fragment of the page it replaces)."""
    return any(name == b"hx-request" and value == b"true" for name, value in request.scope["headers"])


ROUTES = [
    landing,
    form_page,
    submit_form,
    thanks_page,
    check_form_field,
    event_page,
    submit_event,
    event_thanks_page,
    check_event_field,
    healthz,
]


def show_form(
    request: Request,
    target: Target,
    *,
    values: dict[str, list[str]] | None = None,
    errors: dict[str, str] | None = None,
    key: str | None = None,
    status: int = 200,
    notice: str = "",
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    """The form page, or with htmx only the form; 410 when the form or event is not open."""
    state = target.state()
    if state != "open":
        closed = _page(request, "closed.html", {"target": target, "state": state}, status=410)
        closed.headers["Cache-Control"] = "no-cache"  # browsers keep a 410; the office may reopen the event
        return closed
    template = "_form.html" if is_htmx(request) else "form.html"
    if not (values or errors or notice or key or status != 200):
        return _blank_form(request, template, target)
    context = _form_context(target, values=values or {}, errors=errors or {}, key=key or new_submission_key())
    return Template(template, context=context | {"notice": notice}, status_code=status, headers=headers or {})


def _form_context(target: Target, *, values: dict[str, list[str]], errors: dict[str, str], key: str) -> dict[str, Any]:
    has_region = any(f.type == "region" for f in target.form.fields)
    return {
        "target": target,
        "form": target.form,
        "values": values,
        "errors": errors,
        "key": key,
        "notice": "",
        "show_if_json": lambda field: expressions.to_json(field.condition),
        "consent_name": PRIVACY_CONSENT,
        "key_name": SUBMISSION_KEY,
        "honeypot_name": HONEYPOT,
        "photo_limit": photos.MAX_UPLOAD_TEXT,
        "fixed": target.fixed_answers(),
        "regions": regions.load() if has_region else None,
    }


_KEY_LENGTH = len(new_submission_key())
_PAGE_HEADERS = {"Vary": "Accept-Encoding"}
_PAGE_GZIP_HEADERS = _PAGE_HEADERS | {"Content-Encoding": "gzip"}
# A blank form carries a fresh submission key: a shared cache must never hand one to two
# residents (the second answer would count as the first one sent again).
NOT_SHARED = "private, no-cache"
_FORM_HEADERS = _PAGE_HEADERS | {"Cache-Control": NOT_SHARED}
_FORM_GZIP_HEADERS = _PAGE_GZIP_HEADERS | {"Cache-Control": NOT_SHARED}


def _blank_form(request: Request, template: str, target: Target) -> Response[bytes]:
    """A form as first shown, from the blank-page cache: only the key is new (`server/blank_pages.py`)."""

    def render(key_slot: str) -> str:
        engine = request.app.template_engine
        assert engine is not None  # create_app configures Jinja
        return engine.get_template(template).render(**_form_context(target, values={}, errors={}, key=key_slot))

    page = blank_page((template, target.path, target.form.version, target.event), render, _KEY_LENGTH)
    gzip = gzip_accepted(request.scope["headers"])
    return Response(
        page.body(new_submission_key(), gzip=gzip),
        media_type="text/html",  # Litestar adds the charset
        headers=_FORM_GZIP_HEADERS if gzip else _FORM_HEADERS,
    )


async def submit(request: Request, ctx: AppContext, target: Target) -> Response[Any]:
    """Validate and store one submission; the same key twice stores one response."""
    if target.state() != "open":
        return show_form(request, target)
    posted = await read_submission(request, target.form)
    try:
        return await _submit(request, ctx, target, posted)
    finally:
        posted.close()


async def _submit(request: Request, ctx: AppContext, target: Target, posted: Posted) -> Response[Any]:
    data = posted.data
    key = submission_key(data)
    if key and receipt_for_key(ctx.store.reader(), key):
        return _success(request, ctx, target, key)
    pictures, photo_errors = await clean_uploads(target.form, posted)
    for field in target.form.fields:  # a photo answer is what was uploaded now, never a posted name
        if field.type == "photo":
            data[field.name] = [p.name for p in pictures.get(field.name, [])]
    try:
        outcome = validate(target.form, data, target.fixed_answers())
    except Malformed as exc:
        raise ClientException(str(exc)) from None
    if photo_errors or not outcome.ok:
        errors = outcome.errors | photo_errors
        too_big = any(u.too_big for uploads in posted.uploads.values() for u in uploads)
        notice = NOTICE_PHOTOS_AGAIN if posted.uploads and not is_htmx(request) else ""  # photo.js puts them back
        status = 413 if too_big else 422
        return show_form(request, target, values=data, errors=errors, key=key, notice=notice, status=status)
    address = request.client.host if request.client else "unknown"
    if not ctx.limiter.allow(address):
        seconds = ctx.limiter.retry_after(address)
        return show_form(
            request, target, values=data, key=key, status=429,
            notice=NOTICE_RATE_LIMITED.format(seconds=seconds), headers={"Retry-After": str(seconds)},
        )  # fmt: skip
    submission = make_submission(target, key, data, outcome)
    folder = photos.folder_for(ctx.store.path)
    pictures = {name: group for name, group in pictures.items() if name in outcome.answers}  # not a hidden question's
    written = await anyio.to_thread.run_sync(_save_photos, folder, pictures) if pictures else set()
    try:
        receipt = await ctx.store.writer.store(submission)
    except StorageError:
        await anyio.to_thread.run_sync(_forget_photos, ctx, written)
        return show_form(request, target, values=data, key=key, status=503, notice=NOTICE_NOT_STORED)
    if receipt.duplicate and written:  # the same key was stored meanwhile, perhaps with other files
        await anyio.to_thread.run_sync(_forget_photos, ctx, written)
    return _success(request, ctx, target, submission.submission_key)


async def clean_uploads(form: Form, posted: Posted) -> tuple[dict[str, list[photos.Photo]], dict[str, str]]:
    """Each photo question's uploads as clean pictures, or a Chinese error for the question.

    Decoding is CPU work: it runs in threads (`photos.clean_photo` decodes two at a time)."""
    pictures: dict[str, list[photos.Photo]] = {}
    errors: dict[str, str] = {}
    for field in form.fields:
        uploads = posted.uploads.get(field.name, []) if field.type == "photo" else []
        if len(uploads) > field.max_photos:
            errors[field.name] = PHOTOS_TOO_MANY.format(most=field.max_photos, count=len(uploads))
            continue
        if big := next((u for u in uploads if u.too_big), None):
            errors[field.name] = PHOTO_TOO_BIG.format(limit=photos.MAX_UPLOAD_TEXT, size=round(big.size / 2**20))
            continue
        for number, upload in enumerate(uploads, start=1):
            try:
                picture = await anyio.to_thread.run_sync(photos.clean_photo, upload.file)
            except photos.PhotoError as exc:
                errors[field.name] = f"第 {number} 张：{exc}" if len(uploads) > 1 else str(exc)
                break
            pictures.setdefault(field.name, []).append(picture)
    return pictures, errors


def _save_photos(folder: Path, pictures: dict[str, list[photos.Photo]]) -> set[str]:
    """Write the pictures; the names of the files that were not there before."""
    return {p.name for group in pictures.values() for p in group if photos.save(folder, p)}


def _forget_photos(ctx: AppContext, written: set[str]) -> None:
    """Remove files this request wrote that no stored response names (never a shared one)."""
    try:
        storage.remove_unused_photos(ctx.store.reader(), written)
    except Exception as exc:  # the database is failing already: the files wait for a later purge
        log.warning("could not check %d new photo(s) for removal: %s", len(written), exc)


def make_submission(target: Target, key: str, data: dict[str, list[str]], outcome: Outcome) -> Submission:
    """What to store for valid answers: with the posted key (or a new one), flagged as
    suspected spam when the honeypot was filled."""
    event_code = target.event.code if target.event else None
    spam = any(value.strip() for value in data.get(HONEYPOT, []))
    return Submission(target.form, key or new_submission_key(), outcome.answers, event_code, spam)


def submission_key(data: dict[str, list[str]]) -> str:
    values = data.get(SUBMISSION_KEY) or [""]
    if len(values) > 1 or (values[0] and not KEY_PATTERN.match(values[0])):
        raise ClientException("bad submission key")
    return values[0]


def _success(request: Request, ctx: AppContext, target: Target, key: str) -> Response[Any]:
    if is_htmx(request):
        return Template("_thanks.html", context=thanks_context(ctx, target, key))
    return Redirect(thanks_location(target, key), status_code=303)


def thanks_location(target: Target, key: str) -> str:
    """Where a stored submission sends the browser (a quiz's thank-you page shows its score)."""
    return f"{target.path}/thanks?key={key}" if target.form.quiz_fields else f"{target.path}/thanks"


async def check_field(request: Request, target: Target, field_name: str) -> Template:
    """Inline validation of one question, in the context of the whole form."""
    field = target.form.field(field_name)
    if field_name != PRIVACY_CONSENT and (field is None or not field.has_answer):
        raise NotFoundException()
    data = await read_answers(request)
    try:
        error = validate(target.form, data, target.fixed_answers()).errors.get(field_name, "")
    except Malformed as exc:
        raise ClientException(str(exc)) from None
    return Template("_error.html", context={"name": field_name, "message": error})


async def read_submission(request: Request, form: Form) -> Posted:
    """A submission's answers and, for a form with photo questions, its uploads.

    Only a form with photo questions takes a body past `MAX_TEXT_BYTES`; the route's own
    ceiling (`MAX_SUBMIT_BYTES`) is a 413 before anything is read."""
    media_type, options = request.content_type
    photo_fields = {f.name for f in form.fields if f.type == "photo"}
    length = request.content_length or 0
    if length > MAX_TEXT_BYTES and not (media_type == "multipart/form-data" and photo_fields):
        raise HTTPException(status_code=413, detail="body too large")
    if media_type != "multipart/form-data":
        return Posted(await read_answers(request, limit=MAX_TEXT_BYTES), {})
    try:
        return await read_multipart(
            request.stream(),
            options.get("boundary", ""),
            photo_fields,
            max_text=MAX_TEXT_BYTES,
            max_parts=MAX_FIELDS,
            max_body=math.inf if photo_fields else MAX_TEXT_BYTES,  # without photos, as ever: 1 MB in all
        )
    except BadUpload as exc:
        raise ClientException(str(exc)) from None
    except TooMuchText:
        raise HTTPException(status_code=413, detail="too much text") from None


async def read_answers(request: Request, limit: int | None = None) -> dict[str, list[str]]:
    """The posted names and values, decoded strictly: bad bytes are a 400, not a guess."""
    media_type = request.content_type[0]
    if media_type == "application/x-www-form-urlencoded":
        body = await _body(request, limit)
        try:
            return decode_form_data(body, MAX_FIELDS)
        except ValueError:  # not UTF-8, or too many fields
            raise ClientException("body is not UTF-8 form data") from None
    if media_type != "multipart/form-data":
        raise HTTPException(status_code=415, detail="expected form data")
    pairs = list((await multipart_form(request)).multi_items())
    if len(pairs) > MAX_FIELDS or not all(isinstance(v, str) for _, v in pairs):
        raise ClientException("unexpected files or too many fields")
    data: dict[str, list[str]] = {}
    for name, value in pairs:
        data.setdefault(name, []).append(value)
    return data


async def multipart_form(request: Request) -> FormMultiDict:
    """A multipart body read whole; a body the parser refuses is a 400."""
    try:
        return await request.form()
    except HTTPException:
        raise
    except Exception:  # the multipart parser has many ways to say "malformed"
        raise ClientException("malformed multipart body") from None


async def _body(request: Request, limit: int | None) -> bytes:
    """The body, refused with a 413 as soon as it passes `limit` (the route's may be higher)."""
    if limit is None:
        return await request.body()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(status_code=413, detail="body too large")
    return bytes(body)


def _page(request: Request, template: str, context: dict[str, Any], status: int) -> Template:
    fragment = "_" + template if is_htmx(request) else template
    return Template(fragment, context=context, status_code=status)


def message_page(request: Request, status: int, headers: dict[str, str] | None = None) -> Response[Any]:
    """A short Chinese page for an error status (a fragment for htmx requests)."""
    title, text = MESSAGES.get(status, MESSAGES[400 if status < 500 else 500])
    response = _page(request, "message.html", {"title": title, "text": text, "status": status}, status)
    response.headers.update(headers or {})
    return response
