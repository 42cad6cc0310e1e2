"""The Litestar application: wiring of settings, forms, storage, templates and assets."""

from __future__ import annotations

import functools
import gc
import logging
from typing import Any

from litestar import Litestar, Request, Response
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.plugins.htmx import HTMXPlugin
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect
from litestar.template.config import TemplateConfig

from server import (
    api,
    downloads,
    office,
    office_crosstab,
    office_data,
    office_events,
    office_import,
    office_photos,
    office_report,
    office_reports,
    office_workshop,
    offline,
    posters,
    public,
    shortcuts,
    signin,
)
from server.accounts import secret_key
from server.clock import chinese_date
from server.context import Context
from server.forms import KIND_LABELS, FormCatalog
from server.paths import STATIC, TEMPLATES, VENDOR
from server.proxy import FrontDoor, TrustedProxies
from server.ratelimit import RateLimiter
from server.sender import Sender
from server.settings import Settings, load_settings
from server.signin import NO_STORE
from server.static import StaticFiles, static_route
from server.storage import Store

MAX_BODY_BYTES = 1024 * 1024

log = logging.getLogger(__name__)

# Every page loads from this server alone; htmx's indicator styles are off (see base.html).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]


def create_app(settings: Settings | None = None) -> Litestar:
    """Build the application; without settings they come from the environment."""
    settings = settings or load_settings()
    context = Context(
        settings=settings,
        catalog=FormCatalog(settings.forms),
        store=Store(settings.db),
        limiter=RateLimiter(settings.rate_limit),
        secret_key=secret_key(settings.secret_key, settings.db),
    )
    if not (VENDOR / "htmx.min.js").is_file():
        log.warning("htmx is not installed (run `npm ci`); pages work without it, only less smoothly")
    static_files = StaticFiles(STATIC, VENDOR)
    sender = Sender(settings.db, first_retry=settings.webhook_retry, timeout=settings.webhook_timeout)

    def configure_jinja(engine: JinjaTemplateEngine) -> None:
        engine.engine.globals.update(asset_url=static_files.url, kind_labels=KIND_LABELS)
        engine.engine.filters.update(paragraphs=_paragraphs, chinese_date=chinese_date)

    app = Litestar(
        route_handlers=[
            *public.ROUTES,
            *posters.ROUTES,
            *offline.ROUTES,
            signin.router,
            office.router,
            office_events.router,
            office_crosstab.router,
            office_photos.router,
            office_import.router,
            office_reports.router,
            office_workshop.router,
            office_report.router,
            downloads.router,
            *api.ROUTES,
            office_data.router,
            static_route(static_files),
        ],
        dependencies={"ctx": Provide(lambda: context, use_cache=True, sync_to_thread=False)},
        plugins=[HTMXPlugin()],
        template_config=TemplateConfig(
            directory=TEMPLATES, engine=JinjaTemplateEngine, engine_callback=configure_jinja
        ),
        on_startup=[
            context.store.start,
            sender.start,
            lambda: static_files.read_own(["htmx.min.js"]),
            _freeze_startup_objects,
        ],
        on_shutdown=[sender.close, context.store.close],
        request_max_body_size=MAX_BODY_BYTES,
        exception_handlers={HTTPException: _http_error, Exception: _unexpected_error},
        openapi_config=None,
        state=State({"context": context}),
    )
    # Before routing, so that 404s, static files and error pages pass the same door.
    app.asgi_handler = FrontDoor(  # type: ignore[assignment]  # an ASGI app, as Litestar's own is
        app.asgi_handler,
        trusted=TrustedProxies(settings.trusted_proxies),
        hosts=settings.hosts(),
        security_headers=SECURITY_HEADERS,
        refusal=_refusal_page(app),
        skip_compression=downloads.SKIP_COMPRESSION,
        shortcut=functools.partial(shortcuts.shortcut, context),
    )
    return app


def _refusal_page(app: Litestar) -> str:
    """The Chinese 400 page for a host we do not answer to, rendered once."""
    title, text = public.MESSAGES[400]
    assert app.template_engine is not None  # create_app configures Jinja
    return app.template_engine.get_template("message.html").render(title=title, text=text, status=400)


def _freeze_startup_objects() -> None:
    """Move everything made at start-up out of the collector's sight: the app, templates and
    forms live as long as the process, and scanning them again and again shows as latency
    spikes under load."""
    gc.collect()
    gc.freeze()


def _http_error(request: Request, exc: HTTPException) -> Response[Any]:
    """Errors the framework raises (404 route, 405, 413…) as short Chinese pages.

    An office page asked for without a session sends a person to the sign-in page.
    """
    # The office's answers are never kept by a browser or proxy, its error pages included.
    private = {"Cache-Control": NO_STORE.to_header()} if _is_office(request) else {}
    if exc.status_code == 401 and request.method == "GET" and "hx-request" not in request.headers:
        return Redirect("/admin/login", status_code=303, headers=private)
    return public.message_page(request, exc.status_code, headers=(exc.headers or {}) | private)


def _unexpected_error(request: Request, exc: Exception) -> Response[Any]:
    """A bug: logged with its traceback, answered with a short Chinese page, not a trace."""
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return public.message_page(request, 500)


def _is_office(request: Request) -> bool:
    return request.url.path == "/admin" or request.url.path.startswith("/admin/")
