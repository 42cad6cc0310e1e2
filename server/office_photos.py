"""Photos on office pages: a response's pictures and their thumbnails, for signed-in users only.

A photo is served through the response that holds it, so the response's scope decides
(`server/scope.py`: staff see their own events' responses, a county its 市县's; personal photos
are for admins, see `office._response`).
Nothing here is public, and browsers are told to keep the pictures private.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from litestar import Response, Router, get
from litestar.di import Provide
from litestar.exceptions import NotFoundException
from litestar.params import FromPath

from server import photos
from server.office import _response
from server.public import Ctx
from server.signin import CurrentUser, current_user

CACHE = "private, max-age=86400"  # a stored photo never changes: its name is its content's hash


def _photo_path(ctx: Ctx, user: CurrentUser, response_id: int, name: str) -> tuple[Path, str]:
    shown, _ = _response(ctx, user, response_id)
    if not any(name in names for names in shown["photos"].values()):
        raise NotFoundException()
    return photos.folder_for(ctx.store.path), name


@get("/{response_id:int}/photos/{name:str}", sync_to_thread=True)
def photo(ctx: Ctx, user: CurrentUser, response_id: FromPath[int], name: FromPath[str]) -> Response[bytes]:
    return _jpeg(lambda: photos.path_of(*_photo_path(ctx, user, response_id, name)))


@get("/{response_id:int}/photos/{name:str}/thumb", sync_to_thread=True)
def thumbnail(ctx: Ctx, user: CurrentUser, response_id: FromPath[int], name: FromPath[str]) -> Response[bytes]:
    return _jpeg(lambda: photos.thumbnail(*_photo_path(ctx, user, response_id, name)))


def _jpeg(locate: Callable[[], Path]) -> Response[bytes]:
    """The picture's bytes, private to the browser that asked; 404 when the file is gone."""
    try:
        content = locate().read_bytes()
    except FileNotFoundError:
        raise NotFoundException() from None
    return Response(content, media_type="image/jpeg", headers={"Cache-Control": CACHE})


router = Router(
    "/admin/responses",
    route_handlers=[photo, thumbnail],
    dependencies={"user": Provide(current_user, sync_to_thread=False)},
)
