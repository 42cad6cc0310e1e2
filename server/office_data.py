"""Office pages for data that leaves the server: read-API tokens and webhook deliveries.

Admins only. Making or revoking a token and sending a message again are audit-logged.
A new token is shown once, on the page that answers its creation; only its hash is kept.
"""

from __future__ import annotations

from typing import Any

import anyio
from litestar import Request, Response, Router, get, post
from litestar.di import Provide
from litestar.exceptions import NotFoundException, PermissionDeniedException
from litestar.params import FromPath
from litestar.response import Redirect, Template

from server import accounts, tokens, webhooks
from server.accounts import User
from server.context import Context as AppContext
from server.public import Ctx
from server.signin import CSRF_FIELD, NO_STORE, CurrentUser, checked_form, current_user, form_value

STATUS_LABELS = {"pending": "待发送", "sent": "已送达", "failed": "已放弃"}


def _admin(user: User) -> None:
    if not user.is_admin:
        raise PermissionDeniedException("admins only")


def _page(user: User, **extra: Any) -> dict[str, Any]:
    return {"user": user, "section": "data", "csrf_field": CSRF_FIELD} | extra


def _tokens_context(ctx: AppContext, user: User, **extra: Any) -> dict[str, Any]:
    rows = tokens.list_tokens(ctx.store.reader())
    return _page(user, rows=rows, forms=ctx.catalog.all(), problem="", new_token="", values={}) | extra


@get("/tokens", sync_to_thread=False)
def tokens_page(ctx: Ctx, user: CurrentUser) -> Template:
    _admin(user)
    return Template("admin/tokens.html", context=_tokens_context(ctx, user))


@post("/tokens", status_code=200)
async def add_token(request: Request, ctx: Ctx, user: CurrentUser) -> Template:
    data = await checked_form(request, user)
    _admin(user)
    values = {"name": form_value(data, "name").strip(), "form": form_value(data, "form"), "personal": ""}
    values["personal"] = "1" if form_value(data, "personal") else ""
    form_id = values["form"] or None
    if form_id is not None and ctx.catalog.get(form_id) is None:
        context = _tokens_context(ctx, user, problem="没有这个表单", values=values)
        return Template("admin/tokens.html", context=context, status_code=422)

    def make() -> str:
        db = ctx.store.reader()
        token = tokens.add_token(db, values["name"], form_id, bool(values["personal"]), user.username)
        scope = f"form {form_id}" if form_id else "every form"
        accounts.record(db, user.username, "add-token", f"token {values['name']} {scope}" + (
            " with personal answers" if values["personal"] else ""
        ))  # fmt: skip
        return token

    try:
        token = await anyio.to_thread.run_sync(make)
    except tokens.TokenError as exc:
        context = _tokens_context(ctx, user, problem=str(exc), values=values)
        return Template("admin/tokens.html", context=context, status_code=422)
    return Template("admin/tokens.html", context=_tokens_context(ctx, user, new_token=token, created=values["name"]))


@post("/tokens/revoke", status_code=303)
async def revoke_token(request: Request, ctx: Ctx, user: CurrentUser) -> Response[Any]:
    data = await checked_form(request, user)
    _admin(user)
    name = form_value(data, "name")

    def revoke() -> None:
        db = ctx.store.reader()
        tokens.revoke_token(db, name)
        accounts.record(db, user.username, "revoke-token", f"token {name}")

    try:
        await anyio.to_thread.run_sync(revoke)
    except tokens.TokenError as exc:
        context = _tokens_context(ctx, user, problem=str(exc))
        return Template("admin/tokens.html", context=context, status_code=404)
    return Redirect("/admin/tokens", status_code=303)


@get("/webhooks", sync_to_thread=True)
def webhooks_page(request: Request, ctx: Ctx, user: CurrentUser) -> Template:
    _admin(user)
    status = request.query_params.get("status", "")
    status = status if status in STATUS_LABELS else ""
    db = ctx.store.reader()
    context = _page(
        user,
        hooks=webhooks.list_webhooks(db),
        counts=webhooks.message_counts(db),
        messages=webhooks.recent_messages(db, status),
        status=status,
        status_labels=STATUS_LABELS,
    )
    return Template("admin/webhooks.html", context=context)


@post("/webhooks/messages/{message_id:int}/resend", status_code=303)
async def resend(request: Request, ctx: Ctx, user: CurrentUser, message_id: FromPath[int]) -> Response[Any]:
    await checked_form(request, user)
    _admin(user)

    def queue() -> None:
        db = ctx.store.reader()
        delivery = webhooks.resend(db, message_id)
        accounts.record(db, user.username, "resend-webhook", f"delivery {delivery}")

    try:
        await anyio.to_thread.run_sync(queue)
    except webhooks.WebhookError:
        raise NotFoundException() from None
    return Redirect("/admin/webhooks", status_code=303)


router = Router(
    "/admin",
    route_handlers=[tokens_page, add_token, revoke_token, webhooks_page, resend],
    dependencies={"user": Provide(current_user, sync_to_thread=False)},
    cache_control=NO_STORE,
)
