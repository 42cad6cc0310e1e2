"""The form workshop's pages: list, new form, editor with live check and preview, publishing,
history, closing early. HTTP only: the work is `server/workshop.py`'s.

Every signed-in account may write drafts (a staff or county account's draft is a proposal);
publishing, closing, reopening and discarding are an admin's. `/admin/forms/{id}` stays the
results page: the editor is at `/admin/forms/{id}/edit`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import msgspec
from litestar import Request, Response, Router, get, post
from litestar.di import Provide
from litestar.exceptions import NotFoundException, PermissionDeniedException
from litestar.params import FromPath
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template

from server import public, storage, workshop
from server.accounts import User
from server.clock import now
from server.context import Context as AppContext
from server.forms import Form, check_text
from server.public import Ctx, Target
from server.readiness import form_warnings
from server.signin import CSRF_FIELD, NO_STORE, CurrentUser, checked_form, current_user, form_value
from server.validate import Malformed, validate

BUNDLED_FORMS = Path(__file__).resolve().parent.parent / "forms"
# The preview is shown in a frame of the editor: this page alone may be framed, by this site.
PREVIEW_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; form-action 'self'; "
    "frame-ancestors 'self'; base-uri 'none'"
)
PREVIEW_HEADERS = {"Content-Security-Policy": PREVIEW_CSP, "X-Frame-Options": "SAMEORIGIN"}
STATE_LABELS = {"open": "已发布", "upcoming": "未开始", "closed": "已结束"}


def _page(user: User, **extra: Any) -> dict[str, Any]:
    return {"user": user, "section": "workshop", "csrf_field": CSRF_FIELD} | extra


def _toml(data: dict[str, list[str]]) -> str:
    """The posted form text, with the line ends a browser sends (CRLF) made plain newlines."""
    return form_value(data, "toml").replace("\r\n", "\n")


def _admin_only(user: User) -> None:
    if not user.is_admin:
        raise PermissionDeniedException("only an admin publishes")


def _source(ctx: AppContext, form_id: str) -> tuple[str, workshop.Draft | None]:
    """The text the editor starts from: the draft, else the live file; 404 when neither."""
    draft = workshop.get_draft(ctx.store.reader(), form_id)
    if draft is not None:
        return draft.toml, draft
    text = workshop.live_text(ctx.settings.forms, form_id)
    if text is None:
        raise NotFoundException()
    return text, None


# The list -------------------------------------------------------------------------------


@get("/forms", sync_to_thread=True)
def forms_list(request: Request, ctx: Ctx, user: CurrentUser) -> Template:
    db = ctx.store.reader()
    counts, _ = storage.dashboard_counts(db, now().date().isoformat())
    drafts = workshop.list_drafts(db)
    live = {form.id: form for form in ctx.catalog.all()}
    broken = ctx.catalog.broken()
    rows = []
    for form_id in sorted(live.keys() | drafts.keys() | broken.keys()):
        form, draft = live.get(form_id), drafts.get(form_id)
        if form is not None:
            state, label, title = form.state(), STATE_LABELS[form.state()], form.title
        elif form_id in broken:
            state, label, title = "broken", "文件有错误", form_id
        else:
            parsed, _ = check_text(form_id, draft.toml, ctx.catalog.campaign) if draft else (None, [])
            state, label, title = "draft", "草稿", parsed.title if parsed else form_id
        rows.append(
            {
                "id": form_id,
                "title": title,
                "state": state,
                "state_label": label,
                "form": form,
                "draft": draft,
                "responses": counts[form_id].total if form_id in counts else 0,
                "warnings": form_warnings([form], None, db) if form else broken.get(form_id, []),
            }
        )
    context = {"rows": rows, "published": request.query_params.get("published", "")}
    return Template("admin/workshop.html", context=context | _page(user))


# A new form -----------------------------------------------------------------------------


@get("/forms/new", sync_to_thread=True)
def new_form_page(request: Request, ctx: Ctx, user: CurrentUser) -> Template:
    templates = workshop.bundled_templates(BUNDLED_FORMS)
    text, form_id = "", ""
    if name := request.query_params.get("template", ""):
        text = next((t.toml for t in templates if t.form_id == name), "")
        form_id = f"{name}-{now().year}"
    elif name := request.query_params.get("copy", ""):
        text = _source(ctx, name)[0]
        form_id = f"{name}-copy"
    return _new_page(user, templates, form_id, text, "", 200)


def _new_page(
    user: User, templates: list[workshop.FormTemplate], form_id: str, text: str, problem: str, status: int
) -> Template:
    context = {"templates": templates, "form_id": form_id, "text": text, "problem": problem}
    return Template("admin/workshop_new.html", context=context | _page(user), status_code=status)


@post("/forms/new", status_code=303)
async def create_form(request: Request, ctx: Ctx, user: CurrentUser) -> Response[Any]:
    """A draft from the posted `form_id` and `toml` (the XLSForm import posts here too)."""
    data = await checked_form(request, user)
    form_id, text = form_value(data, "form_id").strip(), _toml(data)

    def create() -> str:
        db = ctx.store.reader()
        problem = workshop.new_form_problem(db, ctx.settings.forms, form_id)
        if not problem and not text.strip():
            problem = "表单内容是空的：请从模板开始，或粘贴表单内容"
        if not problem:
            try:
                workshop.save_draft(db, form_id, text, user.username, action="create-draft")
            except workshop.WorkshopError as exc:
                problem = str(exc)
        return problem

    problem = await anyio.to_thread.run_sync(create)
    if problem:
        templates = await anyio.to_thread.run_sync(workshop.bundled_templates, BUNDLED_FORMS)
        return _new_page(user, templates, form_id, text, problem, 422)
    return Redirect(f"/admin/forms/{form_id}/edit", status_code=303)


# The editor -----------------------------------------------------------------------------


def _editor(ctx: AppContext, user: User, form_id: str, text: str, *, message: str = "", status: int = 200) -> Template:
    form, problems = check_text(form_id, text, ctx.catalog.campaign)
    draft = workshop.get_draft(ctx.store.reader(), form_id)
    live = ctx.catalog.get(form_id)
    context = {
        "form_id": form_id,
        "text": text,
        "line_count": max(text.count("\n") + 1, 1),
        "problems": problems,
        "bad_lines": workshop.problems_by_line(problems),
        "draft": draft,
        "live": live,
        "has_file": workshop.live_text(ctx.settings.forms, form_id) is not None,
        "message": message,
        "title": form.title if form else (live.title if live else form_id),
    }
    return Template("admin/workshop_edit.html", context=context | _page(user), status_code=status)


@get("/forms/{form_id:str}/edit", sync_to_thread=True)
def editor_page(request: Request, ctx: Ctx, user: CurrentUser, form_id: FromPath[str]) -> Template:
    text, _ = _source(ctx, form_id)
    message = "草稿已保存。" if request.query_params.get("saved") else ""
    return _editor(ctx, user, form_id, text, message=message)


@post("/forms/{form_id:str}/check", status_code=200)
async def check_draft(request: HTMXRequest, ctx: Ctx, user: CurrentUser, form_id: FromPath[str]) -> Template:
    """The problems of the text being typed (htmx, on a pause in typing)."""
    data = await checked_form(request, user)
    _, problems = await anyio.to_thread.run_sync(check_text, form_id, _toml(data), ctx.catalog.campaign)
    return Template("admin/workshop_problems.html", context={"problems": problems})


@post("/forms/{form_id:str}/edit", status_code=303)
async def save_draft(request: Request, ctx: Ctx, user: CurrentUser, form_id: FromPath[str]) -> Response[Any]:
    data = await checked_form(request, user)
    text = _toml(data)
    await anyio.to_thread.run_sync(_source, ctx, form_id)  # only an existing form or draft is edited here
    try:
        await anyio.to_thread.run_sync(lambda: workshop.save_draft(ctx.store.reader(), form_id, text, user.username))
    except workshop.WorkshopError as exc:
        return _editor(ctx, user, form_id, text, message=str(exc), status=422)
    return Redirect(f"/admin/forms/{form_id}/edit?saved=1", status_code=303)


@post("/forms/{form_id:str}/discard", status_code=303)
async def discard_draft(request: Request, ctx: Ctx, user: CurrentUser, form_id: FromPath[str]) -> Response[Any]:
    await checked_form(request, user)
    _admin_only(user)
    await anyio.to_thread.run_sync(lambda: workshop.discard_draft(ctx.store.reader(), form_id, user.username))
    return Redirect("/admin/forms", status_code=303)


# Publishing -----------------------------------------------------------------------------


@post("/forms/{form_id:str}/publish", status_code=303)
async def publish(request: Request, ctx: Ctx, user: CurrentUser, form_id: FromPath[str]) -> Response[Any]:
    """Save the posted text as the draft, then publish it if it checks clean; a form that has
    answers first shows what happens to them and asks to confirm."""
    data = await checked_form(request, user)
    _admin_only(user)
    text = _toml(data)
    confirmed = form_value(data, "confirm") == "yes"

    def run() -> Response[Any]:
        db = ctx.store.reader()
        _source(ctx, form_id)
        workshop.save_draft(db, form_id, text, user.username)
        form, problems = check_text(form_id, text, ctx.catalog.campaign)
        if form is None:
            message = f"草稿已保存，但有 {len(problems)} 处错误，改正后才能发布。群众看到的仍是原来的表单。"
            return _editor(ctx, user, form_id, text, message=message, status=422)
        live = ctx.catalog.get(form_id)
        effects = workshop.impact(db, live, form) if live is not None and live.version != form.version else []
        if effects and not confirmed:
            context = {"form_id": form_id, "text": text, "effects": effects, "title": form.title}
            return Template("admin/workshop_confirm.html", context=context | _page(user))
        workshop.publish(db, ctx.settings.forms, form_id, text, ctx.catalog.campaign, user.username)
        ctx.catalog.published()
        return Redirect(f"/admin/forms?published={form_id}", status_code=303)

    try:
        return await anyio.to_thread.run_sync(run)
    except workshop.WorkshopError as exc:
        return _editor(ctx, user, form_id, text, message=str(exc), status=422)


@post("/forms/{form_id:str}/close", status_code=303)
async def close_form(request: Request, ctx: Ctx, user: CurrentUser, form_id: FromPath[str]) -> Response[Any]:
    return await _change_window(request, ctx, user, form_id, "close")


@post("/forms/{form_id:str}/reopen", status_code=303)
async def reopen_form(request: Request, ctx: Ctx, user: CurrentUser, form_id: FromPath[str]) -> Response[Any]:
    return await _change_window(request, ctx, user, form_id, "reopen")


async def _change_window(request: Request, ctx: AppContext, user: User, form_id: str, action: str) -> Response[Any]:
    await checked_form(request, user)
    _admin_only(user)
    form = ctx.catalog.get(form_id)
    if form is None:
        raise NotFoundException()

    def change() -> None:
        db, campaign = ctx.store.reader(), ctx.catalog.campaign
        workshop.change_window(db, ctx.settings.forms, form, campaign, user.username, action)
        ctx.catalog.published()

    try:
        await anyio.to_thread.run_sync(change)
    except workshop.WorkshopError as exc:
        return Template("message.html", context={"title": "无法操作", "text": str(exc), "status": 409}, status_code=409)
    return Redirect(f"/admin/forms?published={form_id}", status_code=303)


# History --------------------------------------------------------------------------------


@get("/forms/{form_id:str}/history", sync_to_thread=True)
def history_page(request: Request, ctx: Ctx, user: CurrentUser, form_id: FromPath[str]) -> Template:
    versions = workshop.history(ctx.store.reader(), form_id)
    if not versions and workshop.live_text(ctx.settings.forms, form_id) is None:
        raise NotFoundException()
    shown = _version_id(request.query_params.get("version", ""), versions)
    changes: list[workshop.DiffLine] = []
    if shown is not None:
        index = next(i for i, v in enumerate(versions) if v.id == shown)
        before = versions[index + 1].toml if index + 1 < len(versions) else ""
        changes = workshop.diff(before, versions[index].toml)
    context = {
        "form_id": form_id,
        "versions": versions,
        "shown": shown,
        "changes": changes,
        "labels": workshop.ACTION_LABELS,
    }
    return Template("admin/workshop_history.html", context=context | _page(user))


def _version_id(text: str, versions: list[workshop.Version]) -> int | None:
    """The version asked for (`?version=ID`), else the newest; a bad id is the newest too."""
    ids = {v.id for v in versions}
    if text.isascii() and text.isdigit() and len(text) < 19 and int(text) in ids:
        return int(text)
    return versions[0].id if versions else None


@post("/forms/{form_id:str}/history/{version_id:int}/restore", status_code=303)
async def restore_version(
    request: Request, ctx: Ctx, user: CurrentUser, form_id: FromPath[str], version_id: FromPath[int]
) -> Response[Any]:
    await checked_form(request, user)
    try:
        await anyio.to_thread.run_sync(lambda: workshop.restore(ctx.store.reader(), form_id, version_id, user.username))
    except workshop.WorkshopError:
        raise NotFoundException() from None
    return Redirect(f"/admin/forms/{form_id}/edit?saved=1", status_code=303)


# Preview --------------------------------------------------------------------------------


def _preview_target(form: Form) -> Target:
    """The draft as residents would see it, whatever its dates say, posting to the preview."""
    shown = msgspec.structs.replace(form, opens=None, closes=None)
    return Target(shown, f"/admin/forms/{form.id}/preview")


def _preview(request: Request, ctx: AppContext, form_id: str, text: str) -> Response[Any]:
    form, problems = check_text(form_id, text, ctx.catalog.campaign)
    if form is None:
        response: Response[Any] = Template("admin/workshop_preview_broken.html", context={"problems": problems})
    else:
        # With a value, the page is drawn afresh, not kept among the residents' cached blank pages.
        response = public.show_form(request, _preview_target(form), values={"_preview": []})
    response.headers.update(PREVIEW_HEADERS)
    return response


@get("/forms/{form_id:str}/preview", sync_to_thread=True)
def preview_page(request: HTMXRequest, ctx: Ctx, user: CurrentUser, form_id: FromPath[str]) -> Response[Any]:
    return _preview(request, ctx, form_id, _source(ctx, form_id)[0])


@post("/forms/{form_id:str}/preview", status_code=200)
async def preview_post(request: HTMXRequest, ctx: Ctx, user: CurrentUser, form_id: FromPath[str]) -> Response[Any]:
    """From the editor (with its CSRF token): a preview of the text typed. From the form in the
    preview: the answers checked against the saved draft as a submission would be; nothing
    is stored."""
    data = await public.read_answers(request)  # the body is kept: checked_form reads it again
    if CSRF_FIELD in data:
        data = await checked_form(request, user)
        return _preview(request, ctx, form_id, _toml(data))
    form, _ = check_text(form_id, _source(ctx, form_id)[0], ctx.catalog.campaign)
    if form is None:
        return _preview(request, ctx, form_id, _source(ctx, form_id)[0])
    target = _preview_target(form)
    try:
        outcome = validate(target.form, data)
    except Malformed:
        outcome = None
    if outcome is not None and not outcome.ok:
        response = public.show_form(request, target, values=data, errors=outcome.errors, status=422)
    else:
        template = "_message.html" if request.htmx else "message.html"
        text = "这是预览：答卷填写正确，但预览中提交的答卷不会保存。"
        response = Template(template, context={"title": "预览", "text": text, "status": 200})
    response.headers.update(PREVIEW_HEADERS)
    return response


@post("/forms/{form_id:str}/preview/check/{field_name:str}", status_code=200)
async def preview_check(
    request: HTMXRequest, ctx: Ctx, user: CurrentUser, form_id: FromPath[str], field_name: FromPath[str]
) -> Template:
    form, _ = check_text(form_id, _source(ctx, form_id)[0], ctx.catalog.campaign)
    if form is None:
        raise NotFoundException()
    return await public.check_field(request, _preview_target(form), field_name)


router = Router(
    "/admin",
    route_handlers=[
        forms_list,
        new_form_page,
        create_form,
        editor_page,
        check_draft,
        save_draft,
        discard_draft,
        publish,
        close_form,
        reopen_form,
        history_page,
        restore_version,
        preview_page,
        preview_post,
        preview_check,
    ],
    dependencies={"user": Provide(current_user, sync_to_thread=False)},
    cache_control=NO_STORE,
)
