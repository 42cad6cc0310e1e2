"""The service worker that keeps form pages usable without network, served from the root.

A worker controls only the URLs under the folder it is served from, so `/sw.js` (not
`/static/sw.js`) is what lets it answer for `/f/...` and `/e/...` pages.
"""

from __future__ import annotations

from pathlib import Path

from litestar import Response, get

SERVICE_WORKER = Path(__file__).resolve().parent.parent / "static" / "sw.js"


@get("/sw.js", sync_to_thread=False, include_in_schema=False)
def service_worker() -> Response[bytes]:
    # no-cache: the browser asks again each time, so a new worker reaches phones at once
    return Response(
        SERVICE_WORKER.read_bytes(),
        media_type="text/javascript",
        headers={"Cache-Control": "no-cache"},
    )


ROUTES = [service_worker]
