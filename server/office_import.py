"""The office's XLSForm upload: an admin sends a Kobo/ODK workbook and sees the form it
makes (TOML) and every row that did not come with it, then hands the TOML to the form
workshop (`POST /admin/forms/new`), where it is a draft until it is published.

Nothing is written here: the page only shows what the import gives.
"""

from __future__ import annotations

from typing import Any

import anyio
from litestar import Request, Router, get, post
from litestar.datastructures import UploadFile
from litestar.di import Provide
from litestar.exceptions import HTTPException, PermissionDeniedException
from litestar.response import Template

from server.accounts import User
from server.public import Ctx, multipart_form
from server.signin import CSRF_FIELD, NO_STORE, CurrentUser, check_token, current_user, same_site
from server.xlsform import Imported, XLSFormError, read_xlsform

# A survey of a few hundred rows is tens of kilobytes; pictures pasted into the sheet are what
# make a workbook large, and they are not read.
MAX_WORKBOOK_BYTES = 5 * 1024 * 1024
WORKSHOP_NEW = "/admin/forms/new"


def _admin(user: User) -> None:
    if not user.is_admin:
        raise PermissionDeniedException("admins only")


def _page(user: User, *, status: int = 200, **extra: Any) -> Template:
    context = {"user": user, "section": "import", "csrf_field": CSRF_FIELD, "workshop_new": WORKSHOP_NEW}
    context |= {"problems": [], "imported": None, "form_id": "", "taken": False}
    return Template("admin/import.html", context=context | extra, status_code=status)


@get("/forms/import", sync_to_thread=False)
def import_page(user: CurrentUser) -> Template:
    _admin(user)
    return _page(user)


@post("/forms/import", status_code=200, request_max_body_size=MAX_WORKBOOK_BYTES)
async def import_workbook(request: Request, ctx: Ctx, user: CurrentUser) -> Template:
    _admin(user)
    same_site(request)
    if request.content_type[0] != "multipart/form-data":
        raise HTTPException(status_code=415, detail="expected a multipart upload")
    posted = await multipart_form(request)
    token = posted.get(CSRF_FIELD)
    check_token({CSRF_FIELD: [token if isinstance(token, str) else ""]}, user.csrf)
    form_id = posted.get("form_id")
    form_id = form_id.strip() if isinstance(form_id, str) else ""
    upload = posted.get("workbook")
    data = await upload.read() if isinstance(upload, UploadFile) else b""
    if not data:
        return _page(user, status=422, problems=["请选择一个 Excel 文件（.xlsx）"], form_id=form_id)
    name = upload.filename if isinstance(upload, UploadFile) else ""
    campaign = ctx.catalog.campaign

    def read() -> Imported:  # seconds of CPU for a large workbook: off the event loop
        return read_xlsform(data, name, form_id or None, campaign)

    try:
        imported = await anyio.to_thread.run_sync(read)
    except XLSFormError as exc:
        return _page(user, status=422, problems=exc.messages, form_id=form_id)
    taken = ctx.catalog.get(imported.form_id) is not None
    return _page(user, imported=imported, form_id=imported.form_id, taken=taken)


router = Router(
    "/admin",
    route_handlers=[import_page, import_workbook],
    dependencies={"user": Provide(current_user, sync_to_thread=False)},
    cache_control=NO_STORE,
)
