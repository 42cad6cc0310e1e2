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
from litestar import MediaType, Request, Response, Router, get
from litestar.di import Provide
from litestar.exceptions import NotFoundException, PermissionDeniedException
from litestar.params import FromPath
from litestar.response import Stream

from server import accounts, report
from server import events as ev
from server.accounts import User
from server.clock import now
from server.context import Context as AppContext
from server.export import Header, Layout, Multi, ascii_file_stem, file_stem
from server.export_process import Job
from server.forms import Form
from server.office import form_or_404
from server.office_report import report_or_400
from server.public import Ctx
from server.results import Filters, parse_filters
from server.scope import Scope
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
    """What an export request asks for: the results page's filters, and the table's layout."""

    filters: Filters
    layout: Layout
    scope: Scope  # the account's: only the responses of events it sees

    def describe(self, form: Form, kind: str) -> str:
        return f"form {form.id} {kind} event {self.filters.event or '-'}" + (
            f" filters {query}" if (query := self.filters.query(event="")) else ""
        )

    def attachment(self, form: Form, suffix: str) -> str:
        """`Content-Disposition` naming the file by what it holds: `consumer-survey_白沙_2026-09.xlsx`."""
        name = f"{file_stem(form.id, self.filters)}.{suffix}"
        fallback = f"{ascii_file_stem(form.id, self.filters)}.{suffix}"
        return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name)}"


def _export_scope(request: Request, ctx: AppContext, user: User, form: Form) -> ExportScope | list[str]:
    """What an export request asks for, or what is wrong with it (in Chinese). The rows are
    those of the account's scope: staff export their own events, a county its 市县's."""
    query = request.query_params
    filters, problems = parse_filters(dict(query))
    asked = {"header": query.get("header", "labels"), "multi": query.get("multi", "joined")}
    if asked["header"] not in ("labels", "names"):
        problems.append("header 只能是 labels 或 names")
    if asked["multi"] not in ("joined", "columns"):
        problems.append("multi 只能是 joined 或 columns")
    if query.get("event_details", "") not in ("", "0", "1"):
        problems.append("event_details 只能是 0 或 1")
    if problems:
        return problems
    header: Header = "names" if asked["header"] == "names" else "labels"
    multi: Multi = "columns" if asked["multi"] == "columns" else "joined"
    event = ev.get_event(ctx.store.reader(), filters.event) if filters.event else None
    if filters.event and (event is None or event.form_id != form.id):
        raise NotFoundException()
    if event is not None and not user.scope.sees(event):
        raise PermissionDeniedException("not an event of this account")
    layout = Layout(header, multi, query.get("event_details") == "1")
    return ExportScope(filters, layout, user.scope)


@get("/forms/{form_id:str}/export.csv", sync_to_thread=True, opt={SKIP_COMPRESSION: True})
def export_csv_file(request: Request, ctx: Ctx, user: CurrentUser, form_id: FromPath[str]) -> Stream | Response[str]:
    form = form_or_404(ctx, form_id)
    scope = _export_scope(request, ctx, user, form)
    if isinstance(scope, list):
        return _refused(scope)
    accounts.record(ctx.store.reader(), user.username, "export", scope.describe(form, "csv"))
    gzip = "gzip" in request.headers.get("accept-encoding", "")
    headers = {"Content-Disposition": scope.attachment(form, "csv"), "Vary": "Accept-Encoding"}
    if gzip:
        headers["Content-Encoding"] = "gzip"
    job = Job(str(ctx.store.path), form, scope.filters, scope.layout, scope.scope, gzip)
    return Stream(_made_in_process(job), media_type=CSV, headers=headers)


@get("/forms/{form_id:str}/export.xlsx", sync_to_thread=True, opt={SKIP_COMPRESSION: True})
def export_xlsx_file(request: Request, ctx: Ctx, user: CurrentUser, form_id: FromPath[str]) -> Stream | Response[str]:
    form = form_or_404(ctx, form_id)
    scope = _export_scope(request, ctx, user, form)
    if isinstance(scope, list):
        return _refused(scope)
    layout = scope.layout
    chunks = _xlsx_chunks(
        lambda path: export_xlsx(
            ctx.store.reader(),
            form,
            path,
            scope.filters,
            scope=scope.scope,
            header=layout.header,
            multi=layout.multi,
            event_details=layout.event_details,
        )
    )
    accounts.record(ctx.store.reader(), user.username, "export", scope.describe(form, "xlsx"))
    headers = {"Content-Disposition": scope.attachment(form, "xlsx")}
    return Stream(chunks, media_type=XLSX, headers=headers)


def _refused(problems: list[str]) -> Response[str]:
    """A download whose address was edited into something wrong: what is wrong, in Chinese."""
    return Response("导出的条件不对：" + "；".join(problems) + "\n", status_code=400, media_type=MediaType.TEXT)


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
