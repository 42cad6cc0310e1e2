"""The cross-tab page beside a form's results, and its workbook (server/crosstab.py counts).

Same filters as the results page, same scope (`server.scope`): an account crosses only the
answers it may see."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, Router, get
from litestar.di import Provide
from litestar.params import FromPath
from litestar.response import Template

from server import accounts, crosstab, storage
from server.accounts import User
from server.clock import now
from server.context import Context as AppContext
from server.office import _filter_choices, _filters, _page, form_or_404
from server.public import Ctx
from server.results import Filters
from server.signin import NO_STORE, CurrentUser, current_user

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# Colours of a stacked bar's parts, told apart in print too (lightness alternates).
PALETTE = ("#b3121f", "#f0b429", "#0b4f9c", "#7fb3e0", "#2e7d32", "#a5d6a7", "#6a1b9a", "#ce93d8", "#5d4037", "#bcaaa4")


def _table(
    request: Request, ctx: AppContext, user: User, form_id: str
) -> tuple[dict[str, Any], crosstab.Crosstab | None, list[str]]:
    form = form_or_404(ctx, form_id)
    filters, problems = _filters(request, ctx, user)
    choices = crosstab.axes(form)
    rows = request.query_params.get("rows", "")
    columns = request.query_params.get("columns", "")
    if not rows and not columns:  # first visit: the first question by 市县
        rows, columns = (choices[0].key, "county") if len(choices) > 2 else ("", "")
    table = None
    if rows and columns and not problems:
        db = ctx.store.reader()
        try:
            history = storage.stored_definitions(db, form.id)
            table = crosstab.crosstab(db, form, rows, columns, filters, user.scope, history)
        except crosstab.CrosstabError as exc:
            problems = [str(exc)]
    context = {"form": form, "filters": filters, "axes": choices, "rows": rows, "columns": columns}
    return context, table, problems


@get("/forms/{form_id:str}/crosstab", sync_to_thread=True)
def crosstab_page(request: Request, ctx: Ctx, user: CurrentUser, form_id: FromPath[str]) -> Template:
    context, table, problems = _table(request, ctx, user, form_id)
    return _page_of(request, ctx, user, context, table, problems)


def _page_of(
    request: Request,
    ctx: AppContext,
    user: User,
    context: dict[str, Any],
    table: crosstab.Crosstab | None,
    problems: list[str],
) -> Template:
    context |= {"table": table, "problems": problems, "palette": PALETTE, "query": request.url.query or ""}
    context |= _filter_choices(ctx, user, context["form"]) | _page(user, "results")
    return Template("admin/crosstab.html", context=context, status_code=400 if problems else 200)


@get("/forms/{form_id:str}/crosstab.xlsx", sync_to_thread=True)
def crosstab_file(request: Request, ctx: Ctx, user: CurrentUser, form_id: FromPath[str]) -> Response[Any]:
    context, table, problems = _table(request, ctx, user, form_id)
    if table is None:
        return _page_of(request, ctx, user, context, None, problems or ["请选择两个题目"])
    form, filters = context["form"], context["filters"]
    title = f"{form.title}：{table.rows.label} × {table.columns.label}"
    workbook = crosstab.crosstab_xlsx(table, title, _described(filters, table.total))
    detail = f"crosstab form {form.id} {table.rows.key} x {table.columns.key}"
    accounts.record(ctx.store.reader(), user.username, "export", detail)
    name = f"{form.id}-crosstab-{table.rows.key}-{table.columns.key}-{now():%Y%m%d-%H%M%S}.xlsx"
    return Response(workbook, media_type=XLSX, headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _described(filters: Filters, total: int) -> str:
    """The filters in words, for the workbook: which answers it counts."""
    parts = [
        f"活动 {filters.event}" if filters.event else "",
        filters.county,
        filters.venue_type,
        f"{filters.date_from or '开始'} 至 {filters.date_to or '今天'}" if filters.date_from or filters.date_to else "",
    ]
    chosen = "，".join(p for p in parts if p) or "全部答卷"
    return f"范围：{chosen}；两题都回答了的答卷 {total} 份（不含疑似垃圾）"


router = Router(
    "/admin",
    route_handlers=[crosstab_page, crosstab_file],
    dependencies={"user": Provide(current_user, sync_to_thread=False)},
    cache_control=NO_STORE,
)
