"""The office pages: dashboard, results, responses, the audit log, and the access check on
one event (`_event`) that every event page uses (events: office_events.py; the statistics
report: office_report.py).

Sign-in and the session are `signin.py`; file downloads are `downloads.py`; the event pages
`office_events.py`; the cross-tab `office_crosstab.py`. Who sees what is
`server/scope.py`: `admin` everything; `staff` the events it made, `county` its 市县's events,
`organizer` the events its unit hosts, with their answers; only an admin deletes or reads the
audit log. The SQL is in the domain modules (storage, events, accounts, results).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import anyio
from litestar import Request, Response, Router, get, post
from litestar.di import Provide
from litestar.exceptions import ClientException, NotFoundException, PermissionDeniedException
from litestar.params import FromPath
from litestar.response import Redirect, Template
from sqlite_utils import Database

from server import accounts, audit, display, event_reports, photos, storage
from server import events as ev
from server.accounts import User
from server.campaign import COUNTIES, VENUE_TYPES
from server.clock import now
from server.context import Context as AppContext
from server.forms import Field, Form
from server.public import Ctx
from server.readiness import form_warnings
from server.results import Filters, parse_filters, summarize, where
from server.signin import CSRF_FIELD, NO_STORE, CurrentUser, checked_form, current_user
from server.storage import Counts, dashboard_counts

PAGE_SIZE = 50
MAX_ID = 2**63 - 1  # SQLite's largest integer: a larger id cannot name a row
MAX_ID_DIGITS = len(str(MAX_ID))


# Dashboard ------------------------------------------------------------------------------


def dashboard_context(ctx: AppContext, user: CurrentUser) -> dict[str, Any]:
    """Every form and the user's events with their counts, read from the counts the database
    keeps (a few hundred rows, however many responses): 25 dashboards polling every 5 s must
    not cost residents' submissions anything."""
    db = ctx.store.reader()
    office_forms = {form.id for form in ctx.catalog.all() if not form.is_public}
    per_form, per_event = dashboard_counts(db, now().date().isoformat(), user.scope, office_forms)
    forms = [(form, per_form.get(form.id, Counts())) for form in ctx.catalog.all()]
    events = [(row.event, per_event.get(row.event.code, Counts())) for row in ev.list_events(db, scope=user.scope)]
    return {"forms": forms, "events": events, "updated": now(), "user": user}


# In threads: a request on the event loop would hold up every submission while it reads.
@get("/", sync_to_thread=True)
def dashboard(ctx: Ctx, user: CurrentUser) -> Template:
    warnings = form_warnings(ctx.catalog.all(), ctx.catalog.campaign, ctx.store.reader())
    context = dashboard_context(ctx, user) | _page(user, "dashboard", warnings=warnings)
    forms, today = ctx.catalog.all(), now().date()  # the table of templates/admin/_progress.html:
    context["progress"] = event_reports.progress_table(ctx.store.reader(), forms, today, scope=user.scope)
    return Template("admin/dashboard.html", context=context)


@get("/live", sync_to_thread=True)
def live_counts(ctx: Ctx, user: CurrentUser) -> Template:
    """The counts alone: the dashboard asks for them every few seconds (htmx polling)."""
    return Template("admin/_counts.html", context=dashboard_context(ctx, user))


def _page(user: User, section: str, **extra: Any) -> dict[str, Any]:
    return {"user": user, "section": section, "csrf_field": CSRF_FIELD} | extra


# Results and responses ------------------------------------------------------------------


def form_or_404(ctx: AppContext, form_id: str) -> Form:
    form = ctx.catalog.get(form_id)
    if form is None:
        raise NotFoundException()
    return form


def _filters(request: Request, ctx: AppContext, user: User) -> tuple[Filters, list[str]]:
    filters, problems = parse_filters(dict(request.query_params))
    if filters.event and not user.scope.everything:
        event = ev.get_event(ctx.store.reader(), filters.event)
        if not user.scope.sees(event):
            raise PermissionDeniedException("not your event")
    return filters, problems


def _filter_choices(ctx: AppContext, user: User, form: Form) -> dict[str, Any]:
    events = [row.event for row in ev.list_events(ctx.store.reader(), form_id=form.id, scope=user.scope)]
    return {"event_choices": events, "counties": _counties(user), "venue_types": VENUE_TYPES}


def _counties(user: User) -> tuple[str, ...]:
    """The 市县 a user may pick: a county account its own."""
    return (user.county,) if user.county else COUNTIES


@get("/forms/{form_id:str}", sync_to_thread=True)
def results_page(request: Request, ctx: Ctx, user: CurrentUser, form_id: FromPath[str]) -> Template:
    form = form_or_404(ctx, form_id)
    filters, problems = _filters(request, ctx, user)
    summary = summarize(ctx.store.reader(), form, filters, user.scope)
    context = {"form": form, "filters": filters, "problems": problems, "summary": summary}
    return Template(
        "admin/results.html",
        context=context | _filter_choices(ctx, user, form) | _page(user, "results"),
        status_code=400 if problems else 200,
    )


@get("/forms/{form_id:str}/responses", sync_to_thread=True)
def responses_page(request: Request, ctx: Ctx, user: CurrentUser, form_id: FromPath[str]) -> Template:
    form = form_or_404(ctx, form_id)
    filters, problems = _filters(request, ctx, user)
    before = request.query_params.get("before", "")
    clause, params = where(form.id, filters, user.scope)
    db = ctx.store.reader()
    rows = storage.responses_where(
        db, clause, params, before=_response_id(before) if before else None, limit=PAGE_SIZE + 1
    )
    shown_by = display.reader([*storage.stored_definitions(db, form.id), form])
    shown = [_shown_row(shown_by, row) for row in rows[:PAGE_SIZE]]
    choices = _filter_choices(ctx, user, form)
    context = {
        "form": form,
        "filters": filters,
        "problems": problems,
        "rows": shown,
        "columns": [
            (key, shown_by.label(key), f.type == "photo")
            for f in form.answer_fields
            if f.type != "consent"
            for key in f.answer_names
        ],
        "next_before": shown[-1]["id"] if len(rows) > PAGE_SIZE else None,
        "event_titles": {event.code: event.title for event in choices["event_choices"]},
    }
    return Template(
        "admin/responses.html",
        context=context | choices | _page(user, "results"),
        status_code=400 if problems else 200,
    )


def _response_id(text: str) -> int:
    """A response id from a link (`?before=`): ASCII digits within SQLite's integers, else a 400.

    `str.isdigit` says yes to `²`, and int() of thousands of digits raises.
    """
    if not (text.isascii() and text.isdigit() and len(text) <= MAX_ID_DIGITS and int(text) <= MAX_ID):
        raise ClientException("not a response id")
    return int(text)


def _shown_row(shown_by: display.Reader, row: storage.StoredResponse) -> dict[str, Any]:
    """A response as the office sees it: in words, personal answers (of any version of the form) masked."""
    cells = shown_by.cells(row.answers)
    return {
        "id": row.id,
        "submitted_at": row.submitted_at,
        "event": row.event or "",
        "cells": cells,
        "spam": row.suspected_spam,
    }


def _response(ctx: AppContext, user: User, response_id: int) -> tuple[dict[str, Any], Form | None]:
    if not 0 < response_id <= MAX_ID:  # no such row; SQLite could not even take the number
        raise NotFoundException()
    db = ctx.store.reader()
    row = storage.response_by_id(db, response_id)
    if row is None:
        raise NotFoundException()
    event = ev.get_event(db, row.event) if row.event else None
    if not user.scope.everything and not user.scope.sees(event):
        raise PermissionDeniedException("not your event")
    form = ctx.catalog.get(row.form_id)  # None once the form file is gone: its stored versions still mask
    definitions = [*storage.stored_definitions(db, row.form_id), *([form] if form else [])]
    shown_by = display.reader(definitions)
    shown = _shown_row(shown_by, row) | {"form_id": row.form_id, "event_title": event.title if event else ""}
    shown["labels"] = {key: shown_by.label(key) for key in row.answers}
    shown["photo_questions"] = {f.name for d in definitions for f in d.fields if f.type == "photo"}
    return shown | {"photos": photos_shown(definitions, row.answers, shown_by.personal, user)}, form


def photos_shown(definitions: list[Form], answers: dict[str, Any], personal: dict[str, Field], user: User) -> dict:
    """Photo question -> its photo names, for this user: a picture cannot be masked, so personal
    photos (faces) are shown to admins only."""
    questions = {f.name for d in definitions for f in d.fields if f.type == "photo"}
    return {
        name: photos.names_in(answers[name])
        for name in sorted(questions & answers.keys())
        if user.is_admin or name not in personal
    }


@get("/responses/{response_id:int}", sync_to_thread=True)
def response_page(ctx: Ctx, user: CurrentUser, response_id: FromPath[int]) -> Template:
    shown, form = _response(ctx, user, response_id)
    return Template("admin/response.html", context={"response": shown, "form": form} | _page(user, "results"))


@post("/responses/{response_id:int}/delete", status_code=303)
async def delete_response(request: Request, ctx: Ctx, user: CurrentUser, response_id: FromPath[int]) -> Response[Any]:
    await checked_form(request, user)
    if not user.is_admin:
        raise PermissionDeniedException("only an admin deletes")
    shown, _ = _response(ctx, user, response_id)

    def delete() -> None:
        detail = f"form {shown['form_id']} response {response_id}"

        def audit(db: Database) -> None:
            accounts.log_action(db, user.username, "delete-response", detail)

        storage.delete_response(ctx.store.reader(), response_id, also=audit)  # a busy WAL is in the server log

    await anyio.to_thread.run_sync(delete)
    return Redirect(f"/admin/forms/{shown['form_id']}/responses", status_code=303)


# Events ---------------------------------------------------------------------------------


def _event(ctx: AppContext, user: User, code: str) -> ev.Event:
    """The event of a code if this user may see it (`server.scope`): else 404 or 403."""
    event = ev.get_event(ctx.store.reader(), code)
    if event is None:
        raise NotFoundException()
    if not user.scope.sees(event):
        raise PermissionDeniedException("not your event")
    return event


# Audit log ------------------------------------------------------------------------------


@get("/audit", sync_to_thread=True)
def audit_page(request: Request, ctx: Ctx, user: CurrentUser) -> Template:
    """The audit log in Chinese, a page at a time (`before`), by account, action and days."""
    if not user.is_admin:
        raise PermissionDeniedException("admins only")
    db = ctx.store.reader()
    params = dict(request.query_params)
    try:
        query, problem = audit.parse_query(params), ""
    except audit.AuditError as exc:
        query, problem = audit.AuditQuery(), str(exc)
    rows, next_before = audit.audit_page(db, query) if not problem else ([], None)
    filters = {key: value for key, value in params.items() if key != "before" and value}
    context = {
        "rows": rows,
        "query": query,
        "problem": problem,
        "actions": audit.actions(db),
        "usernames": audit.usernames(db),
        "next_link": urlencode(filters | {"before": next_before}) if next_before else "",
        "first_link": urlencode(filters) if query.before else None,
    }
    return Template("admin/audit.html", context=context | _page(user, "audit"), status_code=400 if problem else 200)


router = Router(
    "/admin",
    route_handlers=[
        dashboard,
        live_counts,
        results_page,
        responses_page,
        response_page,
        delete_response,
        audit_page,
    ],
    dependencies={"user": Provide(current_user, sync_to_thread=False)},
    cache_control=NO_STORE,
)
