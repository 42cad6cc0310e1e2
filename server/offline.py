"""The service worker that keeps form pages usable without network, served from the root.

A worker controls only the URLs under the folder it is served from, so `/sw.js` (not
`/static/sw.js`) is what lets it answer for `/f/...` and `/e/...` pages.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from litestar import Request, Response, route

from server.static import StaticFile, file_response

SERVICE_WORKER = Path(__file__).resolve().parent.parent / "static" / "sw.js"


@functools.cache
def _service_worker() -> StaticFile:
    """Read and gzipped once per process, as the static files are."""
    return StaticFile.read(SERVICE_WORKER)


@route("/sw.js", http_method=["GET", "HEAD"], sync_to_thread=False, include_in_schema=False)
def service_worker(request: Request) -> Response[Any]:
    # no-cache: the browser asks again each time (a 304 while it has this one), so a new
    # worker reaches phones at once
    return file_response(request, _service_worker(), "no-cache", revalidated=True)


ROUTES = [service_worker]
