"""QR codes and printable A4 posters for forms and events.

The URL in a QR code is the public address (`QF_BASE_URL`) plus the page's path; when
the setting is empty, the address the request came to, which is what staff typed into
their browser (its host passed the front door's allowed-host check, server/proxy.py). The
same rendering (server/sheets.py) serves the web page and `quality-forms posters`.

Drawing a code takes milliseconds of pure Python, so handlers that may draw one run in a
worker thread, never on the event loop.
"""

from __future__ import annotations

from litestar import Request, Response, get
from litestar.params import FromPath
from litestar.response import Template

from server.context import Context as AppContext
from server.events import Target
from server.public import Ctx, event_target, form_target
from server.qr import qr_png, qr_svg
from server.sheets import poster, sheet_context

# A code drawn from QF_BASE_URL is the same for everyone, so shared caches may keep it. One
# drawn from the request's host stays in the browser that asked: a caching proxy must never
# hand a code made for one Host (an attacker's) to someone else.
SHARED = {"Cache-Control": "public, max-age=86400"}
PRIVATE = {"Cache-Control": "private, max-age=86400"}
PRIVATE_PAGE = {"Cache-Control": "private, no-cache"}  # a poster also shows the event, which may change


def public_url(ctx: AppContext, request: Request, path: str) -> str:
    """The address residents open for a path: QF_BASE_URL, else the address staff came to."""
    base = ctx.settings.base_url or str(request.base_url).rstrip("/")
    return base + path


def _svg(ctx: AppContext, url: str) -> Response[str]:
    headers = SHARED if ctx.settings.base_url else PRIVATE
    return Response(qr_svg(url), media_type="image/svg+xml", headers=headers)


def _png(ctx: AppContext, url: str) -> Response[bytes]:
    headers = SHARED if ctx.settings.base_url else PRIVATE
    return Response(qr_png(url), media_type="image/png", headers=headers)


@get("/f/{form_id:str}/qr.svg", sync_to_thread=True)
def form_qr_svg(request: Request, ctx: Ctx, form_id: FromPath[str]) -> Response[str]:
    return _svg(ctx, public_url(ctx, request, form_target(ctx, form_id).path))


@get("/f/{form_id:str}/qr.png", sync_to_thread=True)
def form_qr_png(request: Request, ctx: Ctx, form_id: FromPath[str]) -> Response[bytes]:
    return _png(ctx, public_url(ctx, request, form_target(ctx, form_id).path))


@get("/e/{code:str}/qr.svg", sync_to_thread=True)
def event_qr_svg(request: Request, ctx: Ctx, code: FromPath[str]) -> Response[str]:
    return _svg(ctx, public_url(ctx, request, event_target(ctx, code).path))


@get("/e/{code:str}/qr.png", sync_to_thread=True)
def event_qr_png(request: Request, ctx: Ctx, code: FromPath[str]) -> Response[bytes]:
    return _png(ctx, public_url(ctx, request, event_target(ctx, code).path))


@get("/f/{form_id:str}/poster", sync_to_thread=True)
def form_poster(request: Request, ctx: Ctx, form_id: FromPath[str]) -> Template:
    return _poster_page(ctx, request, form_target(ctx, form_id))


@get("/e/{code:str}/poster", sync_to_thread=True)
def event_poster(request: Request, ctx: Ctx, code: FromPath[str]) -> Template:
    return _poster_page(ctx, request, event_target(ctx, code))


def _poster_page(ctx: AppContext, request: Request, target: Target) -> Template:
    context = sheet_context([poster(target, public_url(ctx, request, target.path), ctx.catalog.campaign)])
    return Template("posters.html", context=context, headers={} if ctx.settings.base_url else PRIVATE_PAGE)


ROUTES = [form_qr_svg, form_qr_png, event_qr_svg, event_qr_png, form_poster, event_poster]
