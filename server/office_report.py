"""The office's statistics table page and the campaign package download (SPEC §5.6).

Both read the same filters (`date_from`, `date_to`, `county`, `approved=1`) as the results
pages do. Staff see the table of their own events; the package is for admins.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import msgspec
from litestar import Request, Router, get
from litestar.di import Provide
from litestar.exceptions import ClientException
from litestar.response import Stream, Template

from server import accounts, package, report
from server.accounts import User
from server.campaign import COUNTIES
from server.clock import now
from server.context import Context as AppContext
from server.photos import folder_for
from server.public import Ctx
from server.results import Filters
from server.signin import CSRF_FIELD, NO_STORE, CurrentUser, current_user

ZIP = "application/zip"
# downloads.SKIP_COMPRESSION (downloads imports this module): a ZIP of JPEGs gains nothing from
# gzip, which would run on the event loop.
SKIP_COMPRESSION = "skip_compression"


def _wanted(request: Request, user: User) -> tuple[Filters, bool]:
    """The filters and the approved-only choice of a request; a 400 naming a bad filter. A
    county account's table is its own 市县's, whatever the query asks."""
    try:
        filters = report.report_filters(request.query_params)
    except report.ReportError as exc:
        raise ClientException(str(exc)) from None
    if user.scope.county is not None:
        filters = msgspec.structs.replace(filters, county=user.scope.county)
    return filters, request.query_params.get("approved") == "1"


def report_or_400(request: Request, ctx: AppContext, user: User) -> report.Report:
    """The table for the request's filters, over the events the user may see."""
    filters, approved_only = _wanted(request, user)
    forms = {form.id: form for form in ctx.catalog.all()}
    return report.build_report(ctx.store.reader(), forms, filters, scope=user.scope, approved_only=approved_only)


@get("/report", sync_to_thread=True)
def report_page(request: Request, ctx: Ctx, user: CurrentUser) -> Template:
    query = request.query_params
    context: dict[str, Any] = {
        "report": None,
        "problem": "",
        "query": request.url.query or "",
        "values": {key: query.get(key, "") for key in ("date_from", "date_to", "county", "approved")},
        "counties": COUNTIES,
        "headers": report.HEADERS,
        "user": user,
        "section": "report",
        "csrf_field": CSRF_FIELD,
    }
    try:
        context["report"] = report_or_400(request, ctx, user)
    except ClientException as exc:
        context["problem"] = exc.detail
        return Template("admin/report.html", context=context, status_code=400)
    return Template("admin/report.html", context=context)


@get("/package.zip", sync_to_thread=True, opt={SKIP_COMPRESSION: True})
def package_zip(request: Request, ctx: Ctx, user: CurrentUser) -> Stream:
    """The ZIP, streamed as it is made: the photos are read from disk one chunk at a time. An
    account that sees less than everything gets the package of its own events."""
    filters, approved_only = _wanted(request, user)
    forms = {form.id: form for form in ctx.catalog.all()}
    db = ctx.store.reader()
    built = report.build_report(db, forms, filters, scope=user.scope, approved_only=approved_only)
    chunks = package.package_chunks(built, folder_for(ctx.store.path), ctx.catalog.campaign, package.chosen_photos(db))
    accounts.record(db, user.username, "export", f"package {request.url.query or '-'}")
    filename = package.package_name(built, now())
    disposition = f"attachment; filename=\"package.zip\"; filename*=UTF-8''{quote(filename)}"
    return Stream(chunks, media_type=ZIP, headers={"Content-Disposition": disposition})


router = Router(
    "/admin",
    route_handlers=[report_page, package_zip],
    dependencies={"user": Provide(current_user, sync_to_thread=False)},
    cache_control=NO_STORE,
)
