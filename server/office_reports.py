"""Event reports in the office: staff file an event's report; admins review it and choose photos.

The report page draws the catalog's `kind = "event-report"` form with the residents' own
templates (`_form.html`, `_field.html`), so drafts, inline checks, photos and the offline
queue work the same. Saving and reviewing are `event_reports.py`; this module speaks HTTP.
"""

from __future__ import annotations

import logging
import math
import sqlite3
from pathlib import Path
from typing import Any

import anyio
from litestar import Request, Response, Router, get, post
from litestar.di import Provide
from litestar.exceptions import ClientException, HTTPException, NotFoundException, PermissionDeniedException
from litestar.params import FromPath
from litestar.plugins.htmx import HTMXRequest
from litestar.response import File, Redirect, Template

from server import event_reports as reports
from server import expressions, photos, videos
from server.accounts import User
from server.campaign import COUNTIES
from server.context import Context as AppContext
from server.events import Event
from server.forms import FILE_TYPES, MAX_VIDEO_MB, Form
from server.office import _event
from server.public import (
    HONEYPOT,
    MAX_FIELDS,
    MAX_TEXT_BYTES,
    NOTICE_NOT_STORED,
    SUBMISSION_KEY,
    Ctx,
    Target,
    check_field,
    clean_uploads,
    new_submission_key,
    read_answers,
    submission_key,
)
from server.signin import CSRF_FIELD, NO_STORE, CurrentUser, check_token, checked_form, current_user, same_site
from server.uploads import BadUpload, Posted, TooMuchText, read_multipart
from server.validate import PRIVACY_CONSENT, Malformed, validate

log = logging.getLogger(__name__)
# Nine photos, three clips at the most a form may allow, and the text.
MAX_REPORT_BYTES = 9 * photos.MAX_UPLOAD_BYTES + 3 * MAX_VIDEO_MB * videos.MB + MAX_TEXT_BYTES
KEEP = "_keep_"  # `_keep_<question>`: the stored files of a question that stay (ticked boxes)
VIDEO_TOO_BIG = "每段视频不能超过 {limit} MB（这段约 {size} MB），请剪短后再选"
VIDEOS_TOO_MANY = "最多上传 {most} 段视频（现在是 {count} 段）"
NOTICE_FILES_AGAIN = "照片和视频没有保存，请重新选择后再点“保存”。"
SUBMIT_HINT = "保存后可以再修改；每次修改都记入操作记录，并重新交给省质量强省办审核。"


def _report_form(ctx: AppContext) -> Form | None:
    return reports.report_form(ctx.catalog.all())


def _missing(user: User) -> Template:
    """The catalog has no event-report form: a Chinese page, 404."""
    return Template("admin/report_missing.html", context=_page(user), status_code=404)


def _page(user: User, **extra: Any) -> dict[str, Any]:
    return {"user": user, "section": "events", "csrf_field": CSRF_FIELD} | extra


def _path(event: Event) -> str:
    return f"/admin/events/{event.code}/report"


# The report page ----------------------------------------------------------------------------


@get("/events/{code:str}/report", sync_to_thread=True)
def report_page(request: Request, ctx: Ctx, user: CurrentUser, code: FromPath[str]) -> Template:
    event = _event(ctx, user, code)
    form = _report_form(ctx)
    if form is None:
        return _missing(user)
    report = reports.get_report(ctx.store.reader(), form.id, event.code)
    values = _values(form, report.answers) if report else {}
    just_saved = request.query_params.get("saved") == "1" and report is not None  # after a save without script
    return _show(ctx, user, event, form, report, values=values, extra={"just_saved": just_saved})


def _show(
    ctx: AppContext,
    user: User,
    event: Event,
    form: Form,
    report: reports.Report | None,
    *,
    values: dict[str, list[str]],
    errors: dict[str, str] | None = None,
    key: str = "",
    notice: str = "",
    status: int = 200,
    fragment: bool = False,
    extra: dict[str, Any] | None = None,
) -> Template:
    """The report page (or, for htmx, its form alone), drawn by the residents' templates."""
    posted_keeps = {name: values[name] for name in values if name.startswith(KEEP)} if errors is not None else None
    context = {
        "target": Target(form, _path(event)),  # no event: its answers are not the report's, nor its dates
        "form": form,
        "values": values,
        "errors": errors or {},
        "key": key or new_submission_key(),
        "notice": notice,
        "show_if_json": lambda field: expressions.to_json(field.condition),
        "consent_name": PRIVACY_CONSENT,
        "key_name": SUBMISSION_KEY,
        "honeypot_name": HONEYPOT,
        "photo_limit": photos.MAX_UPLOAD_TEXT,
        "fixed": {},
        "regions": None,
        "csrf": user.csrf,
        "csrf_field": CSRF_FIELD,
        "submit_label": "保存",
        "submit_hint": SUBMIT_HINT,
        "existing": _existing(form, report, posted_keeps, event),
    }
    if fragment:
        return Template("_form.html", context=context, status_code=status)
    chosen = set()
    if report and user.is_admin:
        chosen = reports.chosen_photos(ctx.store.reader(), reports.file_names(form, report.answers))
    context |= {"event": event, "report": report, "chosen": chosen, "statuses": reports.STATUS_LABELS}
    return Template("admin/report_page.html", context=context | _page(user) | (extra or {}), status_code=status)


def _values(form: Form, answers: dict[str, Any]) -> dict[str, list[str]]:
    """A stored report as the page's inputs: each answer as the strings a post would carry."""
    values: dict[str, list[str]] = {}
    for field in form.answer_fields:
        for name in field.answer_names:
            if name in answers and field.type not in FILE_TYPES:
                value = answers[name]
                values[name] = [str(v) for v in value] if isinstance(value, list) else [str(value)]
    return values


def _existing(
    form: Form, report: reports.Report | None, keeps: dict[str, list[str]] | None, event: Event
) -> dict[str, list[dict[str, Any]]]:
    """Each file question's stored files with a 保留 box (ticked unless unticked in a refused post)."""
    if report is None:
        return {}
    shown: dict[str, list[dict[str, Any]]] = {}
    for field in form.fields:
        if field.type not in FILE_TYPES:
            continue
        value = report.answers.get(field.name)
        names = photos.names_in(value) if field.type == "photo" else videos.names_in(value)
        kept = None if keeps is None else set(keeps.get(KEEP + field.name, []))
        shown[field.name] = [
            {
                "name": name,
                "kept": kept is None or name in kept,
                "thumb": f"/admin/responses/{report.id}/photos/{name}/thumb" if field.type == "photo" else "",
                "url": f"/admin/responses/{report.id}/photos/{name}"
                if field.type == "photo"
                else f"{_path(event)}/videos/{name}",
            }
            for name in names
        ]
    return shown


# Saving -------------------------------------------------------------------------------------


@post("/events/{code:str}/report", status_code=200, request_max_body_size=MAX_REPORT_BYTES)
async def save_report(request: HTMXRequest, ctx: Ctx, user: CurrentUser, code: FromPath[str]) -> Response[Any]:
    event = _event(ctx, user, code)
    form = _report_form(ctx)
    if form is None:
        return _missing(user)
    same_site(request)
    posted = await _read(request, ctx, form)
    try:
        check_token(posted.data, user.csrf)
        return await _save(request, ctx, user, event, form, posted)
    finally:
        posted.close()


async def _read(request: Request, ctx: AppContext, form: Form) -> Posted:
    media_type, options = request.content_type
    if media_type != "multipart/form-data":
        if (request.content_length or 0) > MAX_TEXT_BYTES:
            raise HTTPException(status_code=413, detail="body too large")
        return Posted(await read_answers(request, limit=MAX_TEXT_BYTES), {})
    try:
        return await read_multipart(
            request.stream(),
            options.get("boundary", ""),
            {f.name for f in form.fields if f.type == "photo"},
            max_text=MAX_TEXT_BYTES,
            max_parts=MAX_FIELDS,
            max_body=math.inf,
            video_fields={f.name: f.max_mb * videos.MB for f in form.fields if f.type == "video"},
            video_folder=videos.folder_for(ctx.store.path),
        )
    except BadUpload as exc:
        raise ClientException(str(exc)) from None
    except TooMuchText:
        raise HTTPException(status_code=413, detail="too much text") from None


async def _save(
    request: HTMXRequest, ctx: AppContext, user: User, event: Event, form: Form, posted: Posted
) -> Response[Any]:
    data = posted.data
    key = submission_key(data) or new_submission_key()
    if reports.already_saved(ctx.store.reader(), key):  # sent again from a phone's queue: done already
        return _saved(request, event, form, reports.Saved(0, created=False, duplicate=True))
    report = reports.get_report(ctx.store.reader(), form.id, event.code)  # one indexed row
    pictures, errors = await clean_uploads(form, posted)
    clips, clip_errors = await _clips(form, posted)
    errors |= clip_errors
    stored = report.answers if report else {}
    for field in form.fields:
        if field.type in FILE_TYPES:
            before = reports.file_names(form, {field.name: stored.get(field.name)})
            kept = [name for name in dict.fromkeys(data.get(KEEP + field.name, [])) if name in before]
            new = [p.name for p in pictures.get(field.name, [])] + [name for name, _ in clips.get(field.name, [])]
            data[field.name] = kept + new
    try:
        outcome = validate(form, data)
    except Malformed as exc:
        raise ClientException(str(exc)) from None
    if errors or not outcome.ok:
        notice = NOTICE_FILES_AGAIN if posted.uploads and not request.htmx else ""
        return _show(
            ctx, user, event, form, report, values=data, errors=outcome.errors | errors, key=key, notice=notice,
            status=422, fragment=bool(request.htmx),
        )  # fmt: skip
    written = await anyio.to_thread.run_sync(_store_files, ctx.store.path, pictures, clips, set(outcome.answers))
    try:
        saved = await anyio.to_thread.run_sync(  # each thread reads and writes with its own connection
            lambda: reports.save_report(ctx.store.reader(), form, event.code, outcome.answers, key, user.username)
        )
    except sqlite3.Error as exc:  # locked past the busy timeout, disk full…: nothing was stored
        log.error("could not save the report of event %s: %s", event.code, exc)
        await anyio.to_thread.run_sync(lambda: reports.remove_unused_files(ctx.store.reader(), written))
        return _show(
            ctx, user, event, form, report, values=data, errors={}, key=key, notice=NOTICE_NOT_STORED,
            status=503, fragment=bool(request.htmx),
        )  # fmt: skip
    forget = (written if saved.duplicate else set()) | saved.dropped_files
    if forget:
        await anyio.to_thread.run_sync(lambda: reports.remove_unused_files(ctx.store.reader(), forget))
    return _saved(request, event, form, saved)


def _saved(request: HTMXRequest, event: Event, form: Form, saved: reports.Saved) -> Response[Any]:
    if request.htmx:
        return Template("admin/report_saved.html", context={"event": event, "form": form, "saved": saved})
    return Redirect(_path(event) + "?saved=1", status_code=303)


async def _clips(form: Form, posted: Posted) -> tuple[dict[str, list[tuple[str, Any]]], dict[str, str]]:
    """Each video question's uploads as (stored name, upload), or a Chinese error for the question."""
    clips: dict[str, list[tuple[str, Any]]] = {}
    errors: dict[str, str] = {}
    for field in form.fields:
        uploads = posted.uploads.get(field.name, []) if field.type == "video" else []
        if len(uploads) > field.max_videos:
            errors[field.name] = VIDEOS_TOO_MANY.format(most=field.max_videos, count=len(uploads))
            continue
        if big := next((u for u in uploads if u.too_big), None):
            errors[field.name] = VIDEO_TOO_BIG.format(limit=field.max_mb, size=math.ceil(big.size / videos.MB))
            continue
        for number, upload in enumerate(uploads, start=1):
            try:
                name = await anyio.to_thread.run_sync(videos.name_for, upload.file, upload.digest.hexdigest())
            except videos.VideoError as exc:
                errors[field.name] = f"第 {number} 段：{exc}" if len(uploads) > 1 else str(exc)
                break
            clips.setdefault(field.name, []).append((name, upload))
    return clips, errors


def _store_files(
    database: Path,
    pictures: dict[str, list[photos.Photo]],
    clips: dict[str, list[tuple[str, Any]]],
    answered: set[str],
) -> set[str]:
    """Write the new pictures and clips of answered questions; the names that were not there."""
    written = set()
    for name, group in pictures.items():
        for picture in group if name in answered else []:
            if photos.save(photos.folder_for(database), picture):
                written.add(picture.name)
    for question, uploaded in clips.items():
        for clip, upload in uploaded if question in answered else []:
            if videos.store(videos.folder_for(database), upload.file, clip):
                written.add(clip)
    return written


@post("/events/{code:str}/report/check/{field_name:str}", status_code=200)
async def check_report_field(
    request: HTMXRequest, ctx: Ctx, user: CurrentUser, code: FromPath[str], field_name: FromPath[str]
) -> Template:
    event = _event(ctx, user, code)
    form = _report_form(ctx)
    if form is None:
        raise NotFoundException()
    await checked_form(request, user)
    return await check_field(request, Target(form, _path(event)), field_name)


# Review and the photos chosen for the summary -------------------------------------------------


@post("/events/{code:str}/report/review", status_code=303)
async def review_report(request: Request, ctx: Ctx, user: CurrentUser, code: FromPath[str]) -> Response[Any]:
    data = await checked_form(request, user)
    if not user.is_admin:
        raise PermissionDeniedException("admins review")
    event = _event(ctx, user, code)
    form = _report_form(ctx)
    if form is None:
        return _missing(user)
    status = (data.get("decision") or [""])[0]
    comment = (data.get("comment") or [""])[0]
    try:
        await anyio.to_thread.run_sync(
            lambda: reports.review_report(ctx.store.reader(), form.id, event.code, status, comment, user.username)
        )
    except reports.ReportError as exc:
        report = reports.get_report(ctx.store.reader(), form.id, event.code)
        values = _values(form, report.answers) if report else {}
        extra = {"review_problem": str(exc), "review_comment": comment}
        return _show(ctx, user, event, form, report, values=values, status=422, extra=extra)
    return Redirect(_path(event) + "#review", status_code=303)


@post("/events/{code:str}/report/photos/{name:str}/choose", status_code=303)
async def choose_photo(
    request: Request, ctx: Ctx, user: CurrentUser, code: FromPath[str], name: FromPath[str]
) -> Response[Any]:
    data = await checked_form(request, user)
    if not user.is_admin:
        raise PermissionDeniedException("admins choose")
    event = _event(ctx, user, code)
    form = _report_form(ctx)
    report = reports.get_report(ctx.store.reader(), form.id, event.code) if form else None
    if form is None or report is None or name not in reports.file_names(form, report.answers):
        raise NotFoundException()
    chosen = (data.get("chosen") or [""])[0] == "1"
    await anyio.to_thread.run_sync(
        lambda: reports.choose_photo(ctx.store.reader(), name, chosen, user.username, event.code)
    )
    return Redirect(f"{_path(event)}#photo-{name[:12]}", status_code=303)


@get("/events/{code:str}/report/videos/{name:str}", sync_to_thread=True)
def report_video(ctx: Ctx, user: CurrentUser, code: FromPath[str], name: FromPath[str]) -> File:
    """A clip of the report, streamed from disk (with ranges, for the player's seeking)."""
    event = _event(ctx, user, code)
    form = _report_form(ctx)
    report = reports.get_report(ctx.store.reader(), form.id, event.code) if form else None
    if form is None or report is None or name not in reports.file_names(form, report.answers):
        raise NotFoundException()
    path = videos.path_of(videos.folder_for(ctx.store.path), name)
    if not path.is_file():
        raise NotFoundException()
    media_type = videos.MEDIA_TYPES[name.rsplit(".", 1)[1]]
    return File(path, media_type=media_type, content_disposition_type="inline", headers={"Cache-Control": "private"})


# The list for review --------------------------------------------------------------------------


@get("/reports", sync_to_thread=True)
def reports_page(request: Request, ctx: Ctx, user: CurrentUser) -> Template:
    if not user.is_admin:
        raise PermissionDeniedException("admins review")
    form = _report_form(ctx)
    if form is None:
        return _missing(user)
    county = request.query_params.get("county", "")
    status = request.query_params.get("status", "")
    county = county if county in COUNTIES else ""
    status = status if status in reports.STATUS_LABELS else ""
    rows = reports.list_reports(ctx.store.reader(), form.id, county=county, status=status, scope=user.scope)
    context = {"rows": rows, "county": county, "status": status, "counties": COUNTIES}
    context |= {"statuses": reports.STATUS_LABELS}
    return Template("admin/report_list.html", context=context | _page(user, section="reports"))


router = Router(
    "/admin",
    route_handlers=[
        report_page,
        save_report,
        check_report_field,
        review_report,
        choose_photo,
        report_video,
        reports_page,
    ],
    dependencies={"user": Provide(current_user, sync_to_thread=False)},
    cache_control=NO_STORE,
)
