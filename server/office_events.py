"""The office's event pages: the list, a new event, one event, and editing, closing,
reopening and deleting it. Each change is a line in the audit log; who may touch an event is
`server.office._event` (server/scope.py)."""

from __future__ import annotations

from typing import Any

import anyio
import msgspec
from litestar import Request, Response, Router, get, post
from litestar.di import Provide
from litestar.params import FromPath
from litestar.response import Redirect, Template
from sqlite_utils import Database

from server import accounts, event_reports, storage
from server import events as ev
from server.accounts import User
from server.campaign import VENUE_TYPES
from server.clock import now
from server.context import Context as AppContext
from server.office import _counties, _event, _page
from server.posters import public_url
from server.public import Ctx
from server.signin import NO_STORE, CurrentUser, checked_form, current_user, form_value

STATES = {"open": "正在收集答卷", "upcoming": "问卷尚未开始", "closed": "问卷已结束", "ended": "活动已过，不再收集"}


def _choices(ctx: AppContext, user: User) -> dict[str, Any]:
    organizers = ctx.catalog.campaign.organizers if ctx.catalog.campaign else ()
    organizers = (user.organizer,) if user.organizer else organizers
    return {"counties": _counties(user), "venue_types": VENUE_TYPES, "organizers": organizers}


def _events_context(ctx: AppContext, user: User, **extra: Any) -> dict[str, Any]:
    rows = ev.list_events(ctx.store.reader(), scope=user.scope)
    context = {"rows": rows, "forms": ctx.catalog.all(), "values": {}, "problems": [], "needed": ()}
    return context | _choices(ctx, user) | _page(user, "events") | extra


def _typed(data: Any, user: User) -> dict[str, str]:
    """The event form as typed; a county's (a co-host's) account gets its 市县 (unit) filled in."""
    values = {key: form_value(data, key) for key in ev.IMPORT_HEADERS}
    values["county"] = values["county"] or user.county
    values["organizer"] = values["organizer"] or user.organizer
    return values


def _check_scope(user: User, event: ev.Event, doing: str = "新建") -> None:
    """An account makes or moves events only within what it sees."""
    if not user.scope.sees(event):
        whose = f"本市县（{user.county}）" if user.county else f"本单位（{user.organizer}）主办"
        raise ev.EventError([f"只能{doing}{whose}的活动"])


@get("/events", sync_to_thread=False)
def events_page(ctx: Ctx, user: CurrentUser) -> Template:
    return Template("admin/events.html", context=_events_context(ctx, user))


@post("/events", status_code=303)
async def add_event(request: Request, ctx: Ctx, user: CurrentUser) -> Response[Any]:
    values = _typed(await checked_form(request, user), user)
    forms = {form.id: form for form in ctx.catalog.all()}
    try:
        event = msgspec.structs.replace(ev.make_event(forms, values, strict=True), created_by=user.username)
        _check_scope(user, event)
    except ev.EventError as exc:
        context = _events_context(ctx, user, values=values, problems=exc.messages)
        return Template("admin/events.html", context=context, status_code=422)

    def store() -> ev.Event:
        db = ctx.store.reader()
        [stored] = ev.add_events(db, [event])
        accounts.record(db, user.username, "add-event", f"event {stored.code} form {stored.form_id}")
        return stored

    stored = await anyio.to_thread.run_sync(store)
    return Redirect(f"/admin/events/{stored.code}", status_code=303)


def _event_context(request: Request, ctx: AppContext, user: User, event: ev.Event, **extra: Any) -> dict[str, Any]:
    form = ctx.catalog.get(event.form_id)
    context = {
        "event": event,
        "form": form,
        "responses": storage.event_response_count(ctx.store.reader(), event.code, event.form_id),
        "report": event_reports.report_of_event(ctx.store.reader(), ctx.catalog.all(), event.code),
        "url": public_url(ctx, request, event.path),
        "states": STATES,
        "values": msgspec.structs.asdict(event),
        "needed": ev.needed_by(form) if form else [],
        "problems": [],
        "notice": {"closed": "已停止收集答卷。", "reopened": "已重新开放收集。", "saved": "已保存修改。"}.get(
            request.query_params.get("done", ""), ""
        ),
    }
    return context | _choices(ctx, user) | _page(user, "events") | extra


@get("/events/{code:str}", sync_to_thread=False)
def event_page(request: Request, ctx: Ctx, user: CurrentUser, code: FromPath[str]) -> Template:
    event = _event(ctx, user, code)
    return Template("admin/event.html", context=_event_context(request, ctx, user, event))


@post("/events/{code:str}", status_code=303)
async def edit_event(request: Request, ctx: Ctx, user: CurrentUser, code: FromPath[str]) -> Response[Any]:
    """Save the event's title, place, date, organizer, venue type; its code and QR code stay."""
    values = _typed(await checked_form(request, user), user)
    event = _event(ctx, user, code)
    forms = {form.id: form for form in ctx.catalog.all()}
    try:
        changed = ev.edited(forms, event, values)
        _check_scope(user, changed, doing="改成")
    except ev.EventError as exc:
        context = _event_context(request, ctx, user, event, values=values, problems=exc.messages)
        return Template("admin/event.html", context=context, status_code=422)
    detail = ev.changes(event, changed)
    if detail:
        await anyio.to_thread.run_sync(_save, ctx, user, changed, "edit-event", f"event {event.code}: {detail}")
    return Redirect(f"/admin/events/{event.code}?done=saved", status_code=303)


def _save(ctx: AppContext, user: User, event: ev.Event, action: str, detail: str) -> None:
    def audit(db: Database) -> None:
        accounts.log_action(db, user.username, action, detail)

    ev.update_event(ctx.store.reader(), event, also=audit)


@post("/events/{code:str}/close", status_code=303)
async def close_event(request: Request, ctx: Ctx, user: CurrentUser, code: FromPath[str]) -> Response[Any]:
    """Stop taking answers before the event's last day: its page shows the closed page (410)."""
    return await _open_or_close(request, ctx, user, code, closing=True)


@post("/events/{code:str}/reopen", status_code=303)
async def reopen_event(request: Request, ctx: Ctx, user: CurrentUser, code: FromPath[str]) -> Response[Any]:
    return await _open_or_close(request, ctx, user, code, closing=False)


async def _open_or_close(request: Request, ctx: AppContext, user: User, code: str, *, closing: bool) -> Response[Any]:
    await checked_form(request, user)
    event = _event(ctx, user, code)
    if bool(event.closed_at) != closing:  # already so: nothing to change or log
        closed_at = now().isoformat(timespec="seconds") if closing else ""
        action = "close-event" if closing else "reopen-event"
        changed = msgspec.structs.replace(event, closed_at=closed_at)
        await anyio.to_thread.run_sync(_save, ctx, user, changed, action, f"event {event.code}")
    return Redirect(f"/admin/events/{event.code}?done={'closed' if closing else 'reopened'}", status_code=303)


@post("/events/{code:str}/delete", status_code=303)
async def delete_event(request: Request, ctx: Ctx, user: CurrentUser, code: FromPath[str]) -> Response[Any]:
    """Delete an event that has no answers; one that has keeps them and says why (409)."""
    await checked_form(request, user)
    event = _event(ctx, user, code)

    def delete() -> bool:
        def audit(db: Database) -> None:
            detail = f"event {event.code} form {event.form_id} title {event.title}"
            accounts.log_action(db, user.username, "delete-event", detail)

        return ev.delete_event(ctx.store.reader(), event.code, also=audit)

    if await anyio.to_thread.run_sync(delete):
        return Redirect("/admin/events", status_code=303)
    problem = "这个活动已有答卷或活动开展情况，不能删除（答卷不随活动删除）。如果不再收集，请点“提前结束收集”。"
    context = _event_context(request, ctx, user, event, notice=problem)
    return Template("admin/event.html", context=context, status_code=409)


router = Router(
    "/admin",
    route_handlers=[events_page, add_event, event_page, edit_event, close_event, reopen_event, delete_event],
    dependencies={"user": Provide(current_user, sync_to_thread=False)},
    cache_control=NO_STORE,
)
