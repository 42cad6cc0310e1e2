"""Signing in and out of the office, the session behind every office page, and CSRF.

Every page under /admin except the sign-in page takes a `user` dependency (`current_user`),
which answers 401 without a valid session (the error handler turns that into a redirect to
the sign-in page for a plain GET). Every POST carries the session's CSRF token and must
come from this site.
"""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import urlsplit

import anyio
from litestar import Request, Response, Router, get, post
from litestar.datastructures import CacheControlHeader
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.response import Redirect, Template

from server import accounts, passwords
from server.accounts import User
from server.context import Context as AppContext
from server.public import Ctx, read_answers

CurrentUser = NamedDependency[User]
SESSION_COOKIE = "qf_session"
LOGIN_COOKIE = "qf_login"
CSRF_FIELD = "_csrf"
# Every office answer (pages, downloads, the sign-in page) is kept by no browser or proxy: a
# shared computer's back button or cache must not show answers after sign-out.
NO_STORE = CacheControlHeader(no_store=True)


def current_user(request: Request, ctx: Ctx) -> User:
    token = request.cookies.get(SESSION_COOKIE, "")
    user = accounts.session_user(ctx.store.reader(), token) if token else None
    if user is None:
        raise NotAuthorizedException()
    return user


async def checked_form(request: Request, user: User | None, expected: str | None = None) -> dict[str, list[str]]:
    """The posted fields of an admin form, after proving the post came from our own page."""
    same_site(request)
    data = await read_answers(request)
    check_token(data, expected if expected is not None else (user.csrf if user else ""))
    return data


def same_site(request: Request) -> None:
    """Refuse a post that a browser says came from another site."""
    site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin")
    if origin:
        # Our origin as the browser sees it: the public address, or this request's scheme and
        # host (which the front door took from a trusted proxy, when there is one).
        base = request.base_url
        own = {f"{base.scheme}://{base.netloc}".lower()}
        if public := request.app.state["context"].settings.base_url:
            parts = urlsplit(public)
            own.add(f"{parts.scheme}://{parts.netloc}".lower())
        if origin.lower() not in own:
            raise PermissionDeniedException("cross-site request")
    if site == "cross-site":
        raise PermissionDeniedException("cross-site request")


def check_token(data: dict[str, list[str]], wanted: str) -> None:
    """The posted CSRF token must be the session's (multipart posts read their own body)."""
    token = (data.get(CSRF_FIELD) or [""])[0]
    if not token or not hmac.compare_digest(token, wanted):
        raise PermissionDeniedException("missing or wrong CSRF token")


def form_value(data: dict[str, list[str]], name: str) -> str:
    return (data.get(name) or [""])[0]


# Sign-in and sign-out -------------------------------------------------------------------

WRONG = "用户名或密码不对。"
BUSY = "登录的人太多，请稍等几秒再试。"


def _login_page(
    request: Request, ctx: AppContext, *, message: str = "", status: int = 200, username: str = ""
) -> Template:
    key = ctx.secret_key
    token = request.cookies.get(LOGIN_COOKIE, "")
    age = accounts.signed_token_age(key, token)
    # Kept while young, so two open tabs share one token; renewed in time for a page left open.
    if age is None or age > accounts.SIGN_IN_PAGE_LIFETIME.total_seconds() / 2:
        token = accounts.signed_token(key)
    response = Template(
        "admin/login.html",
        context={
            "csrf": token,
            "message": message,
            "username": username,
            "csrf_field": CSRF_FIELD,
            "max_username": accounts.MAX_USERNAME,
            "max_password": passwords.MAX_LENGTH,
        },
        status_code=status,
    )
    response.set_cookie(
        LOGIN_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request, ctx), path="/admin"
    )
    return response


def _wait_page(request: Request, ctx: AppContext, message: str | None, seconds: int, username: str) -> Template:
    """429 with the sign-in page; without a message, it says how long too many failures must wait."""
    message = message or f"尝试次数过多，请 {seconds} 秒后再试。"
    response = _login_page(request, ctx, message=message, status=429, username=username)
    response.headers["Retry-After"] = str(seconds)
    return response


def _secure(request: Request, ctx: AppContext) -> bool:
    """Cookies only over TLS when the browser uses it (a trusted proxy's X-Forwarded-Proto counts)."""
    return request.scope.get("scheme") == "https" or ctx.settings.base_url.startswith("https://")


@get("/login", sync_to_thread=False)
def login_page(request: Request, ctx: Ctx) -> Response[Any]:
    return _login_page(request, ctx)


@post("/login", status_code=303)
async def sign_in(request: Request, ctx: Ctx) -> Response[Any]:
    token = request.cookies.get(LOGIN_COOKIE, "")
    if accounts.signed_token_age(ctx.secret_key, token) is None:
        # Most often a page left open for hours: a fresh one, not a bare refusal.
        return _login_page(request, ctx, message="登录页面已过期，请重新登录。", status=403)
    data = await checked_form(request, None, expected=token)
    username, password = form_value(data, "username").strip(), form_value(data, "password")
    if not accounts.plausible(username, password):  # answered at once: nothing hashed, nothing stored
        return _login_page(request, ctx, message=WRONG, status=401)
    address = request.client.host if request.client else "unknown"
    wait = accounts.throttled_for(ctx.store.reader(), username, address)  # spares a flood the hashing queue
    if wait:
        return _wait_page(request, ctx, None, wait, username)
    with passwords.hash_slot() as free:
        if not free:
            return _wait_page(request, ctx, BUSY, 2, username)
        try:
            # The count, the decision and argon2's tens of milliseconds, in a thread off the event loop.
            signed = await anyio.to_thread.run_sync(
                lambda: accounts.sign_in(ctx.store.reader(), username, password, address)
            )
        except accounts.Throttled as exc:
            return _wait_page(request, ctx, None, exc.seconds, username)
        except accounts.Busy:
            return _wait_page(request, ctx, BUSY, 2, username)
    if signed is None:
        return _login_page(request, ctx, message=WRONG, status=401, username=username)
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


router = Router(
    "/admin",
    route_handlers=[login_page, sign_in, sign_out],
    dependencies={"user": Provide(current_user, sync_to_thread=False)},
    cache_control=NO_STORE,
)
