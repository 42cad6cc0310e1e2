"""The office: sign-in, dashboard, results, responses, events, exports, audit log.

Every page under /admin except the sign-in page takes a `user` dependency, which answers
401 without a valid session (the error handler turns that into a redirect to the sign-in
page for a plain GET). Every POST carries the session's CSRF token and must come from this
site. `admin` may do everything; `staff` sees only the events it made and their answers,
and deletes nothing.
"""

from __future__ import annotations

import hmac
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import msgspec
from litestar import Request, Response, Router, get, post
from litestar.di import NamedDependency, Provide
from litestar.exceptions import ClientException, NotAuthorizedException, NotFoundException, PermissionDeniedException
from litestar.params import FromPath
from litestar.response import Redirect, Stream, Template
from sqlite_utils import Database

from server import accounts, report
from server import events as ev
from server.accounts import User
from server.campaign import COUNTIES, ORGANIZERS, VENUE_TYPES
from server.clock import now
from server.context import Context as AppContext
from server.export import export_csv
from server.forms import Form
from server.public import Ctx, read_answers
from server.results import Filters, mask, parse_filters, summarize, where
from server.storage import connect, transaction
from server.xlsx import export_xlsx

CurrentUser = NamedDependency[User]
SESSION_COOKIE = "qf_session"
LOGIN_COOKIE = "qf_login"
CSRF_FIELD = "_csrf"
PAGE_SIZE = 50
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _user(request: Request, ctx: Ctx) -> User:
    token = request.cookies.get(SESSION_COOKIE, "")
    user = accounts.session_user(ctx.store.reader(), token) if token else None
    if user is None:
        raise NotAuthorizedException()
    return user


async def checked_form(request: Request, user: User | None, expected: str | None = None) -> dict[str, list[str]]:
    """The posted fields of an admin form, after proving the post came from our own page."""
    site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin")
    if site == "cross-site" or (origin and origin != str(request.base_url).rstrip("/")):
        raise PermissionDeniedException("cross-site request")
    data = await read_answers(request)
    token = (data.get(CSRF_FIELD) or [""])[0]
    wanted = expected if expected is not None else (user.csrf if user else "")
    if not token or not hmac.compare_digest(token, wanted):
        raise PermissionDeniedException("missing or wrong CSRF token")
    return data


def _one(data: dict[str, list[str]], name: str) -> str:
    return (data.get(name) or [""])[0]


# Sign-in and sign-out -------------------------------------------------------------------


def _login_page(
    request: Request, ctx: AppContext, *, message: str = "", status: int = 200, username: str = ""
) -> Template:
    key = ctx.secret_key
    token = request.cookies.get(LOGIN_COOKIE, "")
    if not accounts.valid_signed_token(key, token):
        token = accounts.signed_token(key)
    response = Template(
        "admin/login.html",
        context={"csrf": token, "message": message, "username": username, "csrf_field": CSRF_FIELD},
        status_code=status,
    )
    response.set_cookie(
        LOGIN_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request, ctx), path="/admin"
    )
    return response


def _secure(request: Request, ctx: AppContext) -> bool:
    return request.url.scheme == "https" or ctx.settings.base_url.startswith("https://")


@get("/login", sync_to_thread=False)
def login_page(request: Request, ctx: Ctx) -> Response[Any]:
    return _login_page(request, ctx)


@post("/login", status_code=303)
async def sign_in(request: Request, ctx: Ctx) -> Response[Any]:
    token = request.cookies.get(LOGIN_COOKIE, "")
    if not accounts.valid_signed_token(ctx.secret_key, token):
        raise PermissionDeniedException("missing sign-in token")
    data = await checked_form(request, None, expected=token)
    username, password = _one(data, "username").strip(), _one(data, "password")
    db = ctx.store.reader()
    wait = accounts.locked_for(db, username)
    if wait:
        response = _login_page(
            request, ctx, message=f"尝试次数过多，请 {wait} 秒后再试。", status=429, username=username
        )
        response.headers["Retry-After"] = str(wait)
        return response
    address = request.client.host if request.client else "unknown"
    # argon2 takes tens of milliseconds of CPU on purpose: off the event loop.
    signed = await anyio.to_thread.run_sync(lambda: accounts.sign_in(ctx.store.reader(), username, password, address))
    if signed is None:
        return _login_page(request, ctx, message="用户名或密码不对。", status=401, username=username)
    _, session = signed
    response = Redirect("/admin", status_code=303)
    response.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="lax", secure=_secure(request, ctx), path="/")
    response.delete_cookie(LOGIN_COOKIE, path="/admin")
    return response


@post("/logout", status_code=303)
async def sign_out(request: Request, ctx: Ctx, user: CurrentUser) -> Response[Any]:
    await checked_form(request, user)
    accounts.sign_out(ctx.store.reader(), request.cookies.get(SESSION_COOKIE, ""))
    response = Redirect("/admin/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# Dashboard ------------------------------------------------------------------------------


def _owner(user: User) -> str | None:
    """Whose events a user may see: everyone's for an admin, their own for staff."""
    return None if user.is_admin else user.username


def dashboard_context(ctx: AppContext, user: CurrentUser) -> dict[str, Any]:
    db = ctx.store.reader()
    today = now().date().isoformat()
    owner = _owner(user)
    scope, params = ("", []) if owner is None else (
        "WHERE event IN (SELECT code FROM events WHERE created_by = ?)", [owner]
    )  # fmt: skip
    per_form = {
        row[0]: (int(row[1]), int(row[2]), int(row[3]))
        for row in db.execute(
            f"""SELECT form_id, total(NOT suspected_spam), total(submitted_at >= ? AND NOT suspected_spam),
                       total(suspected_spam) FROM responses {scope} GROUP BY form_id""",
            [today, *params],
        )
    }
    per_event = {
        row[0]: (row[1], row[2])
        for row in db.execute(
            """SELECT event, count(*), total(submitted_at >= ?) FROM responses
               WHERE event IS NOT NULL AND NOT suspected_spam GROUP BY event""",
            [today],
        )
    }
    forms = [(form, *per_form.get(form.id, (0, 0, 0))) for form in ctx.catalog.all()]
    events = [(row.event, *per_event.get(row.event.code, (0, 0))) for row in ev.list_events(db, created_by=owner)]
    return {"forms": forms, "events": events, "updated": now(), "user": user}


@get("/", sync_to_thread=False)
def dashboard(ctx: Ctx, user: CurrentUser) -> Template:
    return Template("admin/dashboard.html", context=dashboard_context(ctx, user) | _page(user, "dashboard"))


@get("/live", sync_to_thread=False)
def live_counts(ctx: Ctx, user: CurrentUser) -> Template:
    """The counts alone: the dashboard asks for them every few seconds (htmx polling)."""
    return Template("admin/_counts.html", context=dashboard_context(ctx, user))


def _page(user: User, section: str, **extra: Any) -> dict[str, Any]:
    return {"user": user, "section": section, "csrf_field": CSRF_FIELD} | extra


# Results and responses ------------------------------------------------------------------


def _form(ctx: AppContext, form_id: str) -> Form:
    form = ctx.catalog.get(form_id)
    if form is None:
        raise NotFoundException()
    return form


def _filters(request: Request, ctx: AppContext, user: User) -> tuple[Filters, list[str]]:
    filters, problems = parse_filters(dict(request.query_params))
    if filters.event and not user.is_admin:
        event = ev.get_event(ctx.store.reader(), filters.event)
        if event is None or event.created_by != user.username:
            raise PermissionDeniedException("not your event")
    return filters, problems


def _filter_choices(ctx: AppContext, user: User, form: Form) -> dict[str, Any]:
    events = [row.event for row in ev.list_events(ctx.store.reader(), form_id=form.id, created_by=_owner(user))]
    return {"event_choices": events, "counties": COUNTIES, "venue_types": VENUE_TYPES}


@get("/forms/{form_id:str}", sync_to_thread=True)
def results_page(request: Request, ctx: Ctx, user: CurrentUser, form_id: FromPath[str]) -> Template:
    form = _form(ctx, form_id)
    filters, problems = _filters(request, ctx, user)
    summary = summarize(ctx.store.reader(), form, filters, _owner(user))
    context = {"form": form, "filters": filters, "problems": problems, "summary": summary}
    return Template(
        "admin/results.html",
        context=context | _filter_choices(ctx, user, form) | _page(user, "results"),
        status_code=400 if problems else 200,
    )


@get("/forms/{form_id:str}/responses", sync_to_thread=True)
def responses_page(request: Request, ctx: Ctx, user: CurrentUser, form_id: FromPath[str]) -> Template:
    form = _form(ctx, form_id)
    filters, problems = _filters(request, ctx, user)
    before = request.query_params.get("before", "")
    clause, params = where(form.id, filters, _owner(user), include_spam=True)
    if before.isdigit():
        clause, params = clause + " AND r.id < ?", [*params, int(before)]
    db = ctx.store.reader()
    rows = db.execute(
        f"""SELECT r.id, r.submitted_at, r.event, r.answers, r.suspected_spam FROM responses r WHERE {clause}
            ORDER BY r.id DESC LIMIT {PAGE_SIZE + 1}""",
        params,
    ).fetchall()
    shown = [_masked_row(form, row) for row in rows[:PAGE_SIZE]]
    context = {
        "form": form,
        "filters": filters,
        "problems": problems,
        "rows": shown,
        "columns": [f for f in form.answer_fields if f.type != "consent"],
        "next_before": shown[-1]["id"] if len(rows) > PAGE_SIZE else None,
    }
    return Template(
        "admin/responses.html",
        context=context | _filter_choices(ctx, user, form) | _page(user, "results"),
        status_code=400 if problems else 200,
    )


def _masked_row(form: Form | None, row: tuple) -> dict[str, Any]:
    answers = msgspec.json.decode(row[3])
    cells = {name: mask(form.field(name) if form else None, value) for name, value in answers.items()}
    return {"id": row[0], "submitted_at": row[1], "event": row[2] or "", "cells": cells, "spam": bool(row[4])}


def _response(ctx: AppContext, user: User, response_id: int) -> tuple[dict[str, Any], Form | None]:
    row = (
        ctx.store.reader()
        .execute(
            """SELECT r.id, r.submitted_at, r.event, r.answers, r.suspected_spam, r.form_id, e.created_by
           FROM responses r LEFT JOIN events e ON e.code = r.event WHERE r.id = ?""",
            [response_id],
        )
        .fetchone()
    )
    if row is None:
        raise NotFoundException()
    if not user.is_admin and row[6] != user.username:
        raise PermissionDeniedException("not your event")
    form = ctx.catalog.get(row[5])
    return _masked_row(form, row[:5]) | {"form_id": row[5]}, form


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
        with transaction(ctx.store.reader()) as db:
            db.execute("DELETE FROM responses WHERE id = ?", [response_id])
            accounts.log_action(db, user.username, "delete-response", f"form {shown['form_id']} response {response_id}")

    await anyio.to_thread.run_sync(delete)
    return Redirect(f"/admin/forms/{shown['form_id']}/responses", status_code=303)


# Exports --------------------------------------------------------------------------------


class ExportScope(msgspec.Struct, frozen=True):
    header: str
    event: str | None
    include_spam: bool

    def describe(self, form: Form, kind: str) -> str:
        return f"form {form.id} {kind} event {self.event or '-'}" + (
            " with suspected spam" if self.include_spam else ""
        )


def _export_scope(request: Request, ctx: AppContext, user: User, form: Form) -> ExportScope:
    """What an export request asks for; staff export one of their own events only."""
    header = request.query_params.get("header", "labels")
    if header not in ("labels", "names"):
        raise ClientException("header must be labels or names")
    asked = request.query_params.get("event", "")
    event = ev.get_event(ctx.store.reader(), asked) if asked else None
    if asked and (event is None or event.form_id != form.id):
        raise NotFoundException()
    if not user.is_admin and (event is None or event.created_by != user.username):
        raise PermissionDeniedException("staff export their own events")
    return ExportScope(header, event.code if event else None, request.query_params.get("spam") == "include")


@get("/forms/{form_id:str}/export.csv", sync_to_thread=True)
def export_csv_file(request: Request, ctx: Ctx, user: CurrentUser, form_id: FromPath[str]) -> Stream:
    form = _form(ctx, form_id)
    scope = _export_scope(request, ctx, user, form)
    accounts.record(ctx.store.reader(), user.username, "export", scope.describe(form, "csv"))
    options = {"header": scope.header, "event": scope.event, "include_spam": scope.include_spam}
    return Stream(
        _streamed(ctx, lambda db: export_csv(db, form, **options)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": _attachment(f"{form.id}-{now():%Y%m%d-%H%M%S}.csv")},
    )


@get("/forms/{form_id:str}/export.xlsx", sync_to_thread=True)
def export_xlsx_file(request: Request, ctx: Ctx, user: CurrentUser, form_id: FromPath[str]) -> Response[bytes]:
    form = _form(ctx, form_id)
    scope = _export_scope(request, ctx, user, form)
    options = {"header": scope.header, "event": scope.event, "include_spam": scope.include_spam}
    content = _xlsx_bytes(lambda path: export_xlsx(ctx.store.reader(), form, path, **options))
    return _download(ctx, user, scope.describe(form, "xlsx"), content, f"{form.id}.xlsx")


def _streamed(ctx: AppContext, make: Callable[[Database], Iterator[bytes]]) -> Iterator[bytes]:
    """Chunks from a connection of their own: a stream is read in other threads, after the handler."""
    db = connect(ctx.store.path, check_same_thread=False)
    try:
        yield from make(db)
    finally:
        db.conn.close()


def _attachment(filename: str) -> str:
    return f"attachment; filename=\"{filename}\"; filename*=UTF-8''{quote(filename)}"


# Events ---------------------------------------------------------------------------------


def _event(ctx: AppContext, user: User, code: str) -> ev.Event:
    event = ev.get_event(ctx.store.reader(), code)
    if event is None:
        raise NotFoundException()
    if not user.is_admin and event.created_by != user.username:
        raise PermissionDeniedException("not your event")
    return event


def _events_context(ctx: AppContext, user: User, **extra: Any) -> dict[str, Any]:
    rows = ev.list_events(ctx.store.reader(), created_by=_owner(user))
    choices = {"forms": ctx.catalog.all(), "counties": COUNTIES, "venue_types": VENUE_TYPES, "organizers": ORGANIZERS}
    return {"rows": rows, "values": {}, "problems": []} | choices | _page(user, "events") | extra


@get("/events", sync_to_thread=False)
def events_page(ctx: Ctx, user: CurrentUser) -> Template:
    return Template("admin/events.html", context=_events_context(ctx, user))


@post("/events", status_code=303)
async def add_event(request: Request, ctx: Ctx, user: CurrentUser) -> Response[Any]:
    data = await checked_form(request, user)
    values = {key: _one(data, key) for key in ev.IMPORT_HEADERS}
    forms = {form.id: form for form in ctx.catalog.all()}
    try:
        event = msgspec.structs.replace(ev.make_event(forms, values), created_by=user.username)
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


@get("/events/{code:str}", sync_to_thread=False)
def event_page(request: Request, ctx: Ctx, user: CurrentUser, code: FromPath[str]) -> Template:
    event = _event(ctx, user, code)
    count = ctx.store.reader().execute("SELECT count(*) FROM responses WHERE event = ?", [event.code]).fetchone()[0]
    base = ctx.settings.base_url or str(request.base_url).rstrip("/")
    context = {"event": event, "responses": count, "url": base + event.path, "form": ctx.catalog.get(event.form_id)}
    return Template("admin/event.html", context=context | _page(user, "events"))


# Statistics report ----------------------------------------------------------------------


def _report(request: Request, ctx: AppContext, user: User) -> tuple[report.Report | None, str]:
    """The report for the query's dates; staff get the report of their own events."""
    codes = None
    if not user.is_admin:
        codes = [row.event.code for row in ev.list_events(ctx.store.reader(), created_by=user.username)]
    forms = {form.id: form for form in ctx.catalog.all()}
    try:
        built = report.build_report(
            ctx.store.reader(),
            forms,
            date_from=request.query_params.get("date_from") or None,
            date_to=request.query_params.get("date_to") or None,
            codes=codes,
        )
    except report.ReportError as exc:
        return None, str(exc)
    return built, ""


@get("/report", sync_to_thread=True)
def report_page(request: Request, ctx: Ctx, user: CurrentUser) -> Template:
    built, problem = _report(request, ctx, user)
    context = {"report": built, "problem": problem, "query": request.url.query or ""}
    context |= {
        "date_from": request.query_params.get("date_from", ""),
        "date_to": request.query_params.get("date_to", ""),
    }
    return Template("admin/report.html", context=context | _page(user, "report"), status_code=400 if problem else 200)


def _report_or_400(request: Request, ctx: AppContext, user: User) -> report.Report:
    built, problem = _report(request, ctx, user)
    if built is None:
        raise ClientException(problem)
    return built


@get("/report.csv", sync_to_thread=True)
def report_csv_file(request: Request, ctx: Ctx, user: CurrentUser) -> Response[bytes]:
    content = report.report_csv(_report_or_400(request, ctx, user))
    return _download(ctx, user, "report csv", content, "report.csv")


@get("/report.xlsx", sync_to_thread=True)
def report_xlsx_file(request: Request, ctx: Ctx, user: CurrentUser) -> Response[bytes]:
    built = _report_or_400(request, ctx, user)
    return _download(ctx, user, "report xlsx", _xlsx_bytes(lambda path: report.report_xlsx(built, path)), "report.xlsx")


def _xlsx_bytes(write: Callable[[Path], None]) -> bytes:
    """XLSX is a zip: xlsxwriter writes it whole to a temporary file (in constant memory)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "download.xlsx"
        write(path)
        return path.read_bytes()


def _download(ctx: AppContext, user: User, what: str, content: bytes, filename: str) -> Response[bytes]:
    """A file to save, named with the time, and a line in the audit log saying who took it."""
    accounts.record(ctx.store.reader(), user.username, "export", what)
    stem, _, suffix = filename.rpartition(".")
    media_type = XLSX if suffix == "xlsx" else "text/csv; charset=utf-8"
    headers = {"Content-Disposition": _attachment(f"{stem}-{now():%Y%m%d-%H%M%S}.{suffix}")}
    return Response(content, media_type=media_type, headers=headers)


# Audit log ------------------------------------------------------------------------------


@get("/audit", sync_to_thread=False)
def audit_page(ctx: Ctx, user: CurrentUser) -> Template:
    if not user.is_admin:
        raise PermissionDeniedException("admins only")
    rows = (
        ctx.store.reader()
        .execute("SELECT at, username, action, detail FROM audit_log ORDER BY id DESC LIMIT 200")
        .fetchall()
    )
    return Template("admin/audit.html", context={"rows": rows} | _page(user, "audit"))


router = Router(
    "/admin",
    route_handlers=[
        login_page,
        sign_in,
        sign_out,
        dashboard,
        live_counts,
        results_page,
        responses_page,
        response_page,
        delete_response,
        export_csv_file,
        export_xlsx_file,
        events_page,
        add_event,
        event_page,
        report_page,
        report_csv_file,
        report_xlsx_file,
        audit_page,
    ],
    dependencies={"user": Provide(_user, sync_to_thread=False)},
)
ROUTES = [router]
