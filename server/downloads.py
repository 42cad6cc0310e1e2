"""Office downloads: a form's responses as CSV or XLSX, and the statistics report.

Each download is named with the time and written to the audit log with who took it.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, cast
from urllib.parse import quote

import msgspec
from litestar import Request, Router, get
from litestar.di import Provide
from litestar.exceptions import ClientException, NotFoundException, PermissionDeniedException
from litestar.params import FromPath
from litestar.response import Stream

from server import accounts, report
from server import events as ev
from server.accounts import User
from server.clock import now
from server.context import Context as AppContext
from server.export import Header
from server.export_process import Job
from server.forms import Form
from server.office import form_or_404, report_or_400
from server.public import Ctx
from server.signin import NO_STORE, CurrentUser, current_user
from server.xlsx import export_xlsx

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV = "text/csv"  # Litestar adds `; charset=utf-8` to every text type itself
CHUNK_BYTES = 64 * 1024
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
# Downloads that come gzipped already (the CSV, from its process) or are a zip (XLSX) skip the
# server's gzip, which would run on the event loop (see server/compression.py's GzipSend).
SKIP_COMPRESSION = "skip_compression"


# Exports --------------------------------------------------------------------------------


class ExportScope(msgspec.Struct, frozen=True):
    header: Header
    event: str | None
    include_spam: bool

    def describe(self, form: Form, kind: str) -> str:
        return f"form {form.id} {kind} event {self.event or '-'}" + (
            " with suspected spam" if self.include_spam else ""
        )


def _export_scope(request: Request, ctx: AppContext, user: User, form: Form) -> ExportScope:
    """What an export request asks for; staff export one of their own events only."""
    asked_header = request.query_params.get("header", "labels")
    if asked_header not in ("labels", "names"):
        raise ClientException("header must be labels or names")
    header: Header = "names" if asked_header == "names" else "labels"
    asked = request.query_params.get("event", "")
    event = ev.get_event(ctx.store.reader(), asked) if asked else None
    if asked and (event is None or event.form_id != form.id):
        raise NotFoundException()
    if not user.is_admin and (event is None or event.created_by != user.username):
        raise PermissionDeniedException("staff export their own events")
    return ExportScope(header, event.code if event else None, request.query_params.get("spam") == "include")


@get("/forms/{form_id:str}/export.csv", sync_to_thread=True, opt={SKIP_COMPRESSION: True})
def export_csv_file(request: Request, ctx: Ctx, user: CurrentUser, form_id: FromPath[str]) -> Stream:
    form = form_or_404(ctx, form_id)
    scope = _export_scope(request, ctx, user, form)
    accounts.record(ctx.store.reader(), user.username, "export", scope.describe(form, "csv"))
    options = {"header": scope.header, "event": scope.event, "include_spam": scope.include_spam}
    gzip = "gzip" in request.headers.get("accept-encoding", "")
    headers = {"Content-Disposition": _attachment(f"{form.id}-{now():%Y%m%d-%H%M%S}.csv"), "Vary": "Accept-Encoding"}
    if gzip:
        headers["Content-Encoding"] = "gzip"
    return Stream(_made_in_process(Job(str(ctx.store.path), form, options, gzip)), media_type=CSV, headers=headers)


@get("/forms/{form_id:str}/export.xlsx", sync_to_thread=True, opt={SKIP_COMPRESSION: True})
def export_xlsx_file(request: Request, ctx: Ctx, user: CurrentUser, form_id: FromPath[str]) -> Stream:
    form = form_or_404(ctx, form_id)
    scope = _export_scope(request, ctx, user, form)
    chunks = _xlsx_chunks(
        lambda path: export_xlsx(
            ctx.store.reader(), form, path, header=scope.header, event=scope.event, include_spam=scope.include_spam
        )
    )
    return _download(ctx, user, scope.describe(form, "xlsx"), chunks, f"{form.id}.xlsx")


def _made_in_process(job: Job) -> Iterator[bytes]:
    """The export's chunks as `server.export_process` writes them (see there why a process).

    Started at the first chunk, so a download nobody reads starts nothing; killed if the
    client goes away before the end. A failed export ends the stream early: the browser
    reports a failed download rather than saving a short file as whole.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))}
    child = subprocess.Popen(
        [sys.executable, "-m", "server.export_process"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    )
    output = cast(io.BufferedReader, child.stdout)  # a pipe opened in binary mode: it has read1
    try:
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(msgspec.json.encode(job))
        child.stdin.close()
        while chunk := output.read1(CHUNK_BYTES):
            yield chunk
        if child.wait() != 0:
            raise RuntimeError(f"the export of form {job.form.id} failed (exit status {child.returncode})")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout:
            child.stdout.close()


def _attachment(filename: str) -> str:
    return f"attachment; filename=\"{filename}\"; filename*=UTF-8''{quote(filename)}"


@get("/report.csv", sync_to_thread=True)
def report_csv_file(request: Request, ctx: Ctx, user: CurrentUser) -> Stream:
    content = report.report_csv(report_or_400(request, ctx, user))
    return _download(ctx, user, "report csv", iter([content]), "report.csv")


@get("/report.xlsx", sync_to_thread=True, opt={SKIP_COMPRESSION: True})
def report_xlsx_file(request: Request, ctx: Ctx, user: CurrentUser) -> Stream:
    built = report_or_400(request, ctx, user)
    chunks = _xlsx_chunks(lambda path: report.report_xlsx(built, path))
    return _download(ctx, user, "report xlsx", chunks, "report.xlsx")


def _xlsx_chunks(write: Callable[[Path], None]) -> Iterator[bytes]:
    """An XLSX file as chunks to stream, never whole in memory.

    XLSX is a zip: xlsxwriter writes it whole to a temporary file (in constant memory). The
    file is opened and its folder removed at once, so nothing is left on disk however the
    download ends (finished, or the client gone): the open file is freed when it is closed.
    """
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "download.xlsx"
        write(path)
        file = path.open("rb")
    return _chunks_of(file)


def _chunks_of(file: BinaryIO) -> Iterator[bytes]:
    with file:
        while chunk := file.read(CHUNK_BYTES):
            yield chunk


def _download(ctx: AppContext, user: User, what: str, chunks: Iterator[bytes], filename: str) -> Stream:
    """A file to save, named with the time, and a line in the audit log saying who took it."""
    accounts.record(ctx.store.reader(), user.username, "export", what)
    stem, _, suffix = filename.rpartition(".")
    headers = {"Content-Disposition": _attachment(f"{stem}-{now():%Y%m%d-%H%M%S}.{suffix}")}
    return Stream(chunks, media_type=XLSX if suffix == "xlsx" else CSV, headers=headers)


router = Router(
    "/admin",
    route_handlers=[export_csv_file, export_xlsx_file, report_csv_file, report_xlsx_file],
    dependencies={"user": Provide(current_user, sync_to_thread=False)},
    cache_control=NO_STORE,
)
