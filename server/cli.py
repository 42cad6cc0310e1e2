"""The `quality-forms` command: serve, check, export, events, QR codes and posters.

Every failure is one plain line on standard error and a non-zero exit.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import math
import os
import sqlite3
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import msgspec

from server import events as ev
from server.accounts import Account, AccountError, check_secret_key
from server.backup import DEFAULT_KEEP, BackupError
from server.campaign import read_campaign
from server.clock import now
from server.export import export_csv
from server.forms import FORM_ID, Form, FormError, check_forms, load_form
from server.qr import qr_png, qr_svg
from server.results import parse_filters
from server.settings import SETTINGS, SettingError, Settings, load_settings, to_environ
from server.storage import open_database, stored_definitions

if TYPE_CHECKING:
    from granian.server.common import AbstractServer

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
# Two processes serve submissions ~1.7x faster than one with p99 under 50 ms (docs/benchmarks.md);
# more than two would only add writers taking turns at the one SQLite lock.
DEFAULT_WORKERS = min(2, os.cpu_count() or 1)
SHUTDOWN_SECONDS = 5  # a stopping server finishes answers in flight for this long, then exits


class CommandError(Exception):
    """A problem to report as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not a usage block
        raise CommandError(message)


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    for setting in SETTINGS:
        if setting.option:
            flag = "--" + setting.name.replace("_", "-")
            common.add_argument(flag, default=argparse.SUPPRESS, help=f"{setting.help} [{setting.env}]")

    parser = _Parser(prog="quality-forms", description="Forms and surveys on phones.", parents=[common])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    serve = commands.add_parser("serve", parents=[common], help="run the web server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers",
        type=int,
        default=DEFAULT_WORKERS,
        help=f"server processes (default {DEFAULT_WORKERS}: one per core, at most 2)",
    )

    commands.add_parser("check", parents=[common], help="validate every form file")

    export = commands.add_parser("export", parents=[common], help="write a form's responses as CSV")
    export.add_argument("form_id")
    export.add_argument("--out", help="file to write, or - for standard output")
    export.add_argument("--header", choices=("labels", "names"), default="labels")
    export.add_argument("--event", help="only responses of this event code")
    export.add_argument("--county", help="only responses of events in this 市县, e.g. 白沙")
    export.add_argument("--venue-type", help="only responses of events at this venue type, e.g. 学校")
    export.add_argument("--from", dest="date_from", help="first day submitted, YYYY-MM-DD")
    export.add_argument("--to", dest="date_to", help="last day submitted, YYYY-MM-DD")
    export.add_argument("--include-spam", action="store_true", help="also responses flagged as suspected spam")
    export.add_argument(
        "--multi", choices=("joined", "columns"), default="joined", help="columns: one 0/1 column per option"
    )
    export.add_argument(
        "--event-details", action="store_true", help="the event's title, 市县, 乡镇 and venue type after its code"
    )

    event = commands.add_parser("event", parents=[common], help="create and list events")
    event_commands = event.add_subparsers(dest="event_command", required=True, parser_class=_Parser)
    add = event_commands.add_parser("add", parents=[common], help="create an event; prints its code and URL")
    add.add_argument("form_id")
    add.add_argument("--title", required=True)
    add.add_argument("--venue-type", help="机关 企业 乡镇 社区 学校 其他 (default 其他)")
    add.add_argument("--county", help="one of Hainan's 市县, e.g. 海口市 or 白沙")
    add.add_argument("--township")
    add.add_argument("--venue", help="the place, e.g. 白沙中学")
    add.add_argument("--date", help="YYYY-MM-DD")
    add.add_argument("--organizer", help="one of the co-hosting units, or free text")
    add.add_argument("--expected", help="expected attendance")
    listing = event_commands.add_parser("list", parents=[common], help="events with their numbers of responses")
    listing.add_argument("--form", help="only events of this form")
    listing.add_argument("--county", help="only events in this county")
    importing = event_commands.add_parser("import", parents=[common], help="create the events of a schedule CSV")
    importing.add_argument("file", type=Path)

    qr = commands.add_parser("qr", parents=[common], help="write a QR code of a form or event URL")
    target = qr.add_mutually_exclusive_group(required=True)
    target.add_argument("form_id", nargs="?")
    target.add_argument("--event", help="event code")
    qr.add_argument("--format", choices=("svg", "png"), default="svg")
    qr.add_argument("--out", help="file to write (default exports/qr-<id>.<format>), or - for standard output")

    purge = commands.add_parser("purge", parents=[common], help="delete personal answers after the retention period")
    purge.add_argument("form_id")
    purge.add_argument("--older-than", type=int, required=True, metavar="DAYS", help="submitted more than DAYS ago")

    report = commands.add_parser("report", parents=[common], help="write the statistics report (CSV and XLSX)")
    report.add_argument("--from", dest="date_from", help="first day, YYYY-MM-DD")
    report.add_argument("--to", dest="date_to", help="last day, YYYY-MM-DD")
    report.add_argument("--county", help="only this 市县, e.g. 白沙")
    report.add_argument("--approved-only", action="store_true", help="count only reports the province approved")
    report.add_argument("--out-dir", type=Path, default=Path("exports"), help="folder (default exports)")

    package = commands.add_parser("package", parents=[common], help="write the campaign package (ZIP) for the province")
    package.add_argument("--from", dest="date_from", help="first day, YYYY-MM-DD")
    package.add_argument("--to", dest="date_to", help="last day, YYYY-MM-DD")
    package.add_argument("--county", help="only this 市县, e.g. 白沙")
    package.add_argument("--approved-only", action="store_true", help="count only reports the province approved")
    package.add_argument("--out", type=Path, required=True, help="the ZIP file to write")

    user = commands.add_parser("user", parents=[common], help="office accounts")
    user_commands = user.add_subparsers(dest="user_command", required=True, parser_class=_Parser)
    add_user = user_commands.add_parser("add", parents=[common], help="create an account; password on stdin")
    add_user.add_argument("username")
    add_user.add_argument("--role", choices=("admin", "staff", "county", "organizer"), default="staff")
    add_user.add_argument("--county", default="", help="a county account's 市县, e.g. 白沙 or 白沙黎族自治县")
    add_user.add_argument("--organizer", default="", help="an organizer account's unit, one of the campaign's")
    user_commands.add_parser("list", parents=[common], help="every account: role, what it sees, state, last sign-in")
    for name, text in (
        ("passwd", "give an account a new password (on stdin) and end its sessions"),
        ("disable", "refuse the account's sign-ins and end its sessions"),
        ("enable", "let a disabled account sign in again"),
        ("unlock", "forget the account's failed sign-ins"),
    ):
        user_commands.add_parser(name, parents=[common], help=text).add_argument("username")

    posters = commands.add_parser("posters", parents=[common], help="write A4 posters of events as one HTML file")
    posters.add_argument("--event", action="append", default=[], help="event code (repeatable)")
    posters.add_argument("--form", help="every event of this form")
    posters.add_argument("--county", help="every event in this county")
    posters.add_argument("--out", help="file to write (default exports/posters-<time>.html)")

    backup = commands.add_parser("backup", parents=[common], help="copy the live database, checked; prints the path")
    backup.add_argument("--out", type=Path, help="folder (default: backups beside the database)")
    backup.add_argument("--keep", type=int, default=DEFAULT_KEEP, help=f"newest backups kept (default {DEFAULT_KEEP})")
    restore = commands.add_parser("restore", parents=[common], help="put a backup in place of the database")
    source = restore.add_mutually_exclusive_group(required=True)
    source.add_argument("file", nargs="?", type=Path, help="a backup file")
    source.add_argument("--from-replica", action="store_true", help="the latest state of QF_REPLICA_URL")
    commands.add_parser("doctor", parents=[common], help="check this deployment; one line per finding")

    xls_in = commands.add_parser("import", parents=[common], help="make a form from an XLSForm workbook (.xlsx)")
    xls_in.add_argument("file", type=Path)
    xls_in.add_argument(
        "--id", dest="form_id", help="form id (default: the settings sheet's form_id, or the file name)"
    )
    xls_in.add_argument("--out", type=Path, help="file to write (default <forms>/<id>.toml)")
    xls_in.add_argument("--force", action="store_true", help="replace an existing form file")
    xls_out = commands.add_parser("xlsform", parents=[common], help="write a form as an XLSForm workbook")
    xls_out.add_argument("form_id")
    xls_out.add_argument("--out", help="file to write (default exports/<id>.xlsx), or - for standard output")
    _token_parser(commands, common)
    _webhook_parser(commands, common)
    return parser


def _token_parser(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    token = commands.add_parser("token", parents=[common], help="read-API tokens")
    token_commands = token.add_subparsers(dest="token_command", required=True, parser_class=_Parser)
    add = token_commands.add_parser("add", parents=[common], help="make a token; prints it, the one time")
    add.add_argument("name")
    add.add_argument("--form", help="the one form it reads (default: every form)")
    add.add_argument("--personal", action="store_true", help="personal answers unmasked (default: masked)")
    token_commands.add_parser("list", parents=[common], help="every token: scope, state")
    token_commands.add_parser("revoke", parents=[common], help="stop a token working").add_argument("name")


def _webhook_parser(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    webhook = commands.add_parser("webhook", parents=[common], help="send responses to other systems as they arrive")
    webhook_commands = webhook.add_subparsers(dest="webhook_command", required=True, parser_class=_Parser)
    add = webhook_commands.add_parser("add", parents=[common], help="send each response (or a daily summary) there")
    add.add_argument("url")
    add.add_argument("--form", help="the form whose responses are sent (json: required)")
    add.add_argument("--secret", help="key of the X-QF-Signature HMAC (json: required, 16+ characters); - reads stdin")
    add.add_argument("--format", choices=("json", "wecom"), default="json", help="wecom: a daily 企业微信 summary")
    add.add_argument("--personal", action="store_true", help="personal answers unmasked (default: masked)")
    add.add_argument("--county", help="wecom: one 市县's summary (default: every 市县)")
    add.add_argument("--hour", type=int, help="wecom: the hour, China time, the summary goes out (default 20)")
    webhook_commands.add_parser("list", parents=[common], help="every webhook with its messages' states")
    webhook_commands.add_parser("remove", parents=[common], help="delete a webhook and its messages").add_argument(
        "id", type=int
    )


def main(argv: Sequence[str] | None = None) -> int:
    # Answers, backups and exports are personal data: every file this command or a server it
    # starts creates (database, -wal, -shm, secret.key, backups, CSV) is its owner's alone.
    os.umask(0o077)
    try:
        args = build_parser().parse_args(argv)
        settings = load_settings({s.name: getattr(args, s.name, None) for s in SETTINGS})
        check_secret_key(settings.secret_key)
        return COMMANDS[args.command](args, settings)
    except (CommandError, SettingError, AccountError, BackupError) as exc:
        print(f"quality-forms: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `export --out - | head`
        return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    if args.workers < 1:
        raise CommandError("--workers must be 1 or more")
    # Each process keeps its own rate-limit buckets, so each gets its share of the limit.
    share = msgspec.structs.replace(settings, rate_limit=math.ceil(settings.rate_limit / args.workers))
    # Without QF_BASE_URL, QR codes carry the address the request came to (see posters.py).
    os.environ.update(to_environ(share))
    try:
        loopback = args.host == "localhost" or ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = False
    if not settings.base_url and not loopback:
        print(
            f"WARNING: QF_BASE_URL is not set: QR codes, posters and links will point at whatever host "
            f"each request came to. Set QF_BASE_URL to the public address, e.g. https://forms.example.cn "
            f"(serving on {args.host})",
            file=sys.stderr,
        )
    _, errors = check_forms(settings.forms)
    for line in errors:
        print(f"form skipped: {line}", file=sys.stderr)
    # Create and migrate the database here, once: each server process then finds it ready. Two
    # processes making a new file at once race for its WAL switch, and the loser exits.
    try:
        open_database(settings.db).conn.close()
    except (OSError, sqlite3.Error) as exc:
        raise CommandError(f"cannot open the database {settings.db}: {exc}") from None
    server = granian_server("server.app:create_app", host=args.host, port=args.port, workers=args.workers)
    with _replicated(settings):
        try:
            server.serve()
        except RuntimeError as exc:  # granian's word for a socket it cannot bind
            raise CommandError(f"cannot serve on {args.host}:{args.port}: {str(exc).splitlines()[0]}") from None
    return 0


def granian_server(target: str, *, host: str, port: int, workers: int) -> AbstractServer:
    """Granian serving an app factory as `serve` does (the benchmark's bare stack uses it too)."""
    from granian import Granian
    from granian.constants import Interfaces

    return Granian(
        target,
        factory=True,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        workers_kill_timeout=SHUTDOWN_SECONDS,  # idle keep-alive connections must not hold a stop
        log_access=False,
    )


@contextlib.contextmanager
def _replicated(settings: Settings) -> Iterator[None]:
    """Hold the database as served; with QF_REPLICA_URL, stream it to the replica meanwhile."""
    from server.backup import check_replica_url, hold_server_lock, start_replication, stop_replication

    lock = hold_server_lock(settings.db)
    if not settings.replica_url:
        yield
        return
    check_replica_url(settings.replica_url)
    open_database(settings.db).conn.close()  # Litestream needs the file, in WAL mode
    replication = start_replication(settings.db, settings.replica_url, lock)
    stopping = threading.Event()

    def watch() -> None:  # serving goes on without a replica; say so (doctor flags it too)
        status = replication.wait()
        if not stopping.is_set():
            print(f"quality-forms: litestream exited (status {status}): answers are not replicated", file=sys.stderr)

    threading.Thread(target=watch, name="litestream-watch", daemon=True).start()
    print(f"replicating {settings.db} to {settings.replica_url}", file=sys.stderr)
    try:
        yield
    finally:
        stopping.set()
        stop_replication(replication)


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    from server.readiness import folder_warnings

    if not settings.forms.is_dir():
        raise CommandError(f"no forms folder at {settings.forms}")
    forms, errors = check_forms(settings.forms)
    for line in errors:
        print(line)
    for line in folder_warnings(settings.forms, settings.db):  # they leave the exit status alone
        print(f"警告：{line}")
    print(f"{len(forms)} form(s) OK, {len(errors)} error(s)", file=sys.stderr)
    return 1 if errors else 0


def resolve_form(settings: Settings, form_id: str) -> Form:
    """The form as its file defines it now, else as it was last stored with responses."""
    if not FORM_ID.match(form_id):
        raise CommandError(f"unknown form {form_id!r}")
    path = settings.forms / f"{form_id}.toml"
    problem = ""
    if path.is_file():
        try:
            return load_form(path)
        except FormError as exc:
            problem = f" ({exc.messages[0]})"
    if settings.db.exists():
        db = open_database(settings.db)
        history = stored_definitions(db, form_id)
        db.conn.close()
        if history:
            return history[-1]
    raise CommandError(f"unknown form {form_id!r}{problem}")


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    form = resolve_form(settings, args.form_id)
    db = open_database(settings.db)
    if args.event is not None:
        event = _event(db, args.event)
        if event.form_id != form.id:
            raise CommandError(f"event {event.code} belongs to form {event.form_id!r}, not {form.id!r}")
        args.event = event.code
    asked = {key: getattr(args, key) or "" for key in ("event", "county", "venue_type", "date_from", "date_to")}
    filters, problems = parse_filters(asked | {"spam": "include" if args.include_spam else ""})
    if problems:
        raise CommandError("；".join(problems))
    chunks = export_csv(db, form, filters, header=args.header, multi=args.multi, event_details=args.event_details)
    if args.out == "-":
        for chunk in chunks:
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        return 0
    out = Path(args.out) if args.out else Path("exports") / f"{form.id}-{now():%Y%m%d-%H%M%S}.csv"
    _write(out, chunks)
    return 0


def _read(path: Path) -> bytes:
    """A file the user named, whole; one plain line when it cannot be read."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror}") from None


def _write(out: Path, chunks: Iterator[bytes] | list[bytes]) -> None:
    """Write the file whole or not at all (a reader never sees half a file); print its path."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".partial")
        with partial.open("wb") as file:
            for chunk in chunks:
                file.write(chunk)
        partial.replace(out)
    except OSError as exc:
        raise CommandError(f"cannot write {out}: {exc.strerror}") from None
    print(out)


def _event(db, code: str) -> ev.Event:
    event = ev.get_event(db, code)
    if event is None:
        raise CommandError(f"unknown event {code!r}")
    return event


def _forms(settings: Settings) -> dict[str, Form]:
    if not settings.forms.is_dir():
        raise CommandError(f"no forms folder at {settings.forms}")
    return check_forms(settings.forms)[0]


def _base_url(settings: Settings) -> str:
    if not settings.base_url:
        print(
            f"warning: QF_BASE_URL is not set; codes point at {DEFAULT_BASE_URL}, which phones cannot reach",
            file=sys.stderr,
        )
    return settings.base_url or DEFAULT_BASE_URL


def cmd_event(args: argparse.Namespace, settings: Settings) -> int:
    return EVENT_COMMANDS[args.event_command](args, settings)


def cmd_event_add(args: argparse.Namespace, settings: Settings) -> int:
    values = {key: getattr(args, key, None) or "" for key in ev.IMPORT_HEADERS} | {"form": args.form_id}
    try:
        event = ev.make_event(_forms(settings), values)
    except ev.EventError as exc:
        raise CommandError("；".join(exc.messages)) from None
    [event] = ev.add_events(open_database(settings.db), [event])
    print(event.code, _base_url(settings) + event.path)
    return 0


def cmd_event_list(args: argparse.Namespace, settings: Settings) -> int:
    county = ev.county_named(args.county) if args.county else None
    if args.county and county is None:
        raise CommandError(f"unknown county {args.county!r}")
    rows = ev.list_events(open_database(settings.db), form_id=args.form, county=county)
    table = [("code", "date", "county", "venue type", "responses", "form", "title")]
    for row in rows:
        e = row.event
        table.append((e.code, e.date or "-", e.county or "-", e.venue_type, str(row.responses), e.form_id, e.title))
    _print_table(table)
    print(f"{len(rows)} event(s), {sum(r.responses for r in rows)} response(s)", file=sys.stderr)
    return 0


def cmd_event_import(args: argparse.Namespace, settings: Settings) -> int:
    data = _read(args.file)
    try:
        events = ev.read_schedule(data, _forms(settings))
    except ev.EventError as exc:
        for message in exc.messages:
            print(f"{args.file}: {message}", file=sys.stderr)
        print(f"{args.file}: nothing imported ({len(exc.messages)} error(s))", file=sys.stderr)
        return 1
    db = open_database(settings.db)
    stored = ev.add_events(db, events)
    for event in stored:
        print(event.code, event.date or "-", event.title, sep="\t")
    print(f"{args.file}: imported {len(stored)} event(s)", file=sys.stderr)
    return 0


def cmd_qr(args: argparse.Namespace, settings: Settings) -> int:
    if args.event:
        path = _event(open_database(settings.db), args.event).path
        name = path.rsplit("/", 1)[-1]
    else:
        form = resolve_form(settings, args.form_id)
        path, name = f"/f/{form.id}", form.id
    url = _base_url(settings) + path
    image = qr_png(url) if args.format == "png" else qr_svg(url).encode("utf-8")
    _deliver(args.out, Path("exports") / f"qr-{name}.{args.format}", image)
    return 0


def cmd_posters(args: argparse.Namespace, settings: Settings) -> int:
    from server.campaign import read_campaign
    from server.sheets import poster, render_sheet

    db = open_database(settings.db)
    forms = _forms(settings)
    chosen = [_event(db, code) for code in args.event]
    if args.form or args.county or not chosen:
        county = ev.county_named(args.county) if args.county else None
        if args.county and county is None:
            raise CommandError(f"unknown county {args.county!r}")
        chosen += [row.event for row in ev.list_events(db, form_id=args.form, county=county)]
    missing = sorted({e.form_id for e in chosen} - forms.keys())
    if missing:
        raise CommandError(f"form file missing or broken: {', '.join(missing)}")
    if not chosen:
        raise CommandError("no events match")
    base_url = _base_url(settings)
    campaign, _ = read_campaign(settings.forms)
    sheet = [poster(ev.Target(forms[e.form_id], e.path, e), base_url + e.path, campaign) for e in chosen]
    html = render_sheet(sheet)
    _write(Path(args.out) if args.out else Path("exports") / f"posters-{now():%Y%m%d-%H%M%S}.html", [html.encode()])
    return 0


def cmd_purge(args: argparse.Namespace, settings: Settings) -> int:
    import datetime as dt

    from server.accounts import record
    from server.results import personal_fields_of
    from server.storage import purge_personal

    if args.older_than < 0:
        raise CommandError("--older-than must be 0 or more days")
    form = resolve_form(settings, args.form_id)
    db = open_database(settings.db)
    names = sorted(personal_fields_of(db, form.id, form))  # every version's, and their 其他 texts
    if not names:
        raise CommandError(f"form {form.id!r} has no personal questions")
    before = (now() - dt.timedelta(days=args.older_than)).isoformat()
    erased = purge_personal(db, form.id, names, before)
    removed = f"personal answers ({', '.join(names)}) removed from {erased.responses} response(s)"
    if erased.photos:
        removed += f", with {erased.photos} photo file(s)"
    detail = f"form {form.id}: {removed} before {before}"
    if erased.wal_left:
        detail += f"; the WAL still holds {erased.wal_left} bytes (a reader was busy): purge again later to clear it"
    record(db, "command line", "purge", detail)
    print(detail)
    return 0


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from server.report import ReportError, report_filters, write_report_files

    db = open_database(settings.db)
    try:
        filters = report_filters({"date_from": args.date_from, "date_to": args.date_to, "county": args.county})
        paths = write_report_files(db, _forms(settings), args.out_dir, filters, approved_only=args.approved_only)
    except ReportError as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(f"cannot write into {args.out_dir}: {exc.strerror}") from None
    for path in paths:
        print(path)
    return 0


def cmd_package(args: argparse.Namespace, settings: Settings) -> int:
    from server.package import write_package
    from server.report import ReportError, report_filters

    db = open_database(settings.db)
    try:
        filters = report_filters({"date_from": args.date_from, "date_to": args.date_to, "county": args.county})
        figures = write_package(
            db, _forms(settings), settings.forms, args.out, filters, approved_only=args.approved_only
        )
    except ReportError as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(f"cannot write {args.out}: {exc.strerror}") from None
    print(f"{args.out}: {figures.events} event(s), {figures.photos} photo(s)")
    return 0


def cmd_user(args: argparse.Namespace, settings: Settings) -> int:
    from server import accounts

    db = open_database(settings.db)
    name = getattr(args, "username", "")
    try:
        if args.user_command == "add":
            campaign, _ = read_campaign(settings.forms)  # its co-hosts are the organizer accounts' units
            organizers = campaign.organizers if campaign else ()
            # Checked before the password is asked for.
            county, unit = accounts.account_scope(args.role, args.county, args.organizer, organizers)
            accounts.add_user(db, name, _read_password(), args.role, county, unit)
            print(f"user {name} ({' '.join(filter(None, [args.role, county, unit]))}) added", file=sys.stderr)
        elif args.user_command == "list":
            _print_accounts(accounts.list_accounts(db))
        elif args.user_command == "passwd":
            ended = accounts.set_password(db, name, _read_password())
            print(f"password of {name} changed; {ended} session(s) ended", file=sys.stderr)
        elif args.user_command == "disable":
            ended = accounts.disable(db, name)
            print(f"user {name} disabled; {ended} session(s) ended", file=sys.stderr)
        elif args.user_command == "enable":
            accounts.enable(db, name)
            print(f"user {name} enabled", file=sys.stderr)
        else:
            forgotten = accounts.unlock(db, name)
            print(f"user {name} unlocked; {forgotten} failed sign-in(s) forgotten", file=sys.stderr)
    except accounts.AccountError as exc:
        raise CommandError(str(exc)) from None
    return 0


def _print_accounts(rows: list[Account]) -> None:
    table = [("username", "role", "county/unit", "state", "created", "last sign-in")]
    for row in rows:
        state = "disabled" if row.disabled_at else f"locked {row.locked_for} s" if row.locked_for else "active"
        last = (row.last_sign_in_at or "never")[:16]
        table.append((row.username, row.role, row.county or row.organizer or "-", state, row.created_at[:16], last))
    _print_table(table)
    print(f"{len(rows)} user(s)", file=sys.stderr)


def _print_table(table: Sequence[Sequence[str]]) -> None:
    """Rows in columns padded to the widest cell (Chinese counts double); the last column unpadded."""
    from server.xlsx import text_width  # here: xlsxwriter costs every other command 50 ms to import

    widths = [max(text_width(line[i]) for line in table) for i in range(len(table[0]) - 1)]
    for line in table:
        cells = [cell + " " * (width - text_width(cell)) for cell, width in zip(line, widths, strict=False)]
        print("  ".join([*cells, line[-1]]))


def _read_password() -> str:
    """The first line of standard input; on a terminal, a hidden prompt asked twice."""
    if sys.stdin.isatty():
        import getpass

        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise CommandError("the passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    from server.backup import make_backup

    os.nice(10)  # the copy and its check are seconds of CPU: the server's submissions come first
    print(make_backup(settings.db, args.out or settings.db.parent / "backups", args.keep))
    return 0


def cmd_restore(args: argparse.Namespace, settings: Settings) -> int:
    from server.backup import restore_file, restore_from_replica

    if args.from_replica:
        kept = restore_from_replica(settings.db, settings.replica_url)
        source = settings.replica_url
    else:
        kept = restore_file(settings.db, args.file)
        source = str(args.file)
    if kept:
        print(f"the replaced database is kept at {kept}", file=sys.stderr)
    print(f"restored {settings.db} from {source}")
    return 0


def cmd_doctor(args: argparse.Namespace, settings: Settings) -> int:
    from server.doctor import diagnose

    findings = diagnose(settings)
    for finding in findings:
        print(finding)
    return 1 if any(f.level == "error" for f in findings) else 0


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    from server.campaign import read_campaign
    from server.xlsform import XLSFormError, read_xlsform

    data = _read(args.file)
    try:
        imported = read_xlsform(data, args.file.name, args.form_id, read_campaign(settings.forms)[0])
    except XLSFormError as exc:
        raise CommandError(f"{args.file}: " + "；".join(exc.messages)) from None
    out = args.out or settings.forms / f"{imported.form_id}.toml"
    if out.exists() and not args.force:
        raise CommandError(f"{out} exists: choose another --id, or add --force to replace it")
    for dropped in imported.dropped:
        print(f"{args.file}: {dropped.text}", file=sys.stderr)
    print(f"{args.file}: {len(imported.dropped)} row(s) not carried over", file=sys.stderr)
    _write(out, [imported.toml.encode("utf-8")])
    return 0


def cmd_xlsform(args: argparse.Namespace, settings: Settings) -> int:
    from server.tomlfile import read_toml
    from server.xlsform_export import write_xlsform

    if not FORM_ID.match(args.form_id) or not (settings.forms / f"{args.form_id}.toml").is_file():
        raise CommandError(f"unknown form {args.form_id!r}")
    path = settings.forms / f"{args.form_id}.toml"
    try:
        form = load_form(path)
    except FormError as exc:
        raise CommandError(exc.messages[0]) from None
    workbook, notes = write_xlsform(form, read_toml(path))
    for note in notes:
        print(f"{form.id}: {note}", file=sys.stderr)
    _deliver(args.out, Path("exports") / f"{form.id}.xlsx", workbook)
    return 0


def _deliver(out: str | None, default: Path, data: bytes) -> None:
    """A made file to `--out` (`-`: standard output, alone), else to its default path."""
    if out == "-":
        sys.stdout.buffer.write(data)
    else:
        _write(Path(out) if out else default, [data])


def cmd_token(args: argparse.Namespace, settings: Settings) -> int:
    from server import accounts, tokens

    db = open_database(settings.db)
    try:
        if args.token_command == "add":
            if args.form is not None:
                resolve_form(settings, args.form)
            token = tokens.add_token(db, args.name, args.form, args.personal, "command line")
            scope = f"form {args.form}" if args.form else "every form"
            accounts.record(db, "command line", "add-token", f"token {args.name} {scope}")
            print(token)
            print(f"token {args.name} ({scope}) made: it is shown this once", file=sys.stderr)
        elif args.token_command == "list":
            rows: list[tuple[str, ...]] = [("name", "form", "personal", "created", "state")]
            for t in tokens.list_tokens(db):
                state = f"revoked {t.revoked_at[:16].replace('T', ' ')}" if t.revoked_at else "active"
                rows.append(
                    (
                        t.name,
                        t.form_id or "*",
                        "yes" if t.personal else "masked",
                        t.created_at[:16].replace("T", " "),
                        state,
                    )
                )
            _print_table(rows)
            print(f"{len(rows) - 1} in all", file=sys.stderr)
        else:
            tokens.revoke_token(db, args.name)
            accounts.record(db, "command line", "revoke-token", f"token {args.name}")
            print(f"token {args.name} revoked", file=sys.stderr)
    except tokens.TokenError as exc:
        raise CommandError(str(exc)) from None
    return 0


def cmd_webhook(args: argparse.Namespace, settings: Settings) -> int:
    from server import accounts, webhooks

    db = open_database(settings.db)
    try:
        if args.webhook_command == "add":
            if args.secret == "-":  # kept out of `ps` and the shell's history
                args.secret = sys.stdin.readline().rstrip("\r\n")
            if args.form is not None:
                resolve_form(settings, args.form)
            hook = webhooks.add_webhook(
                db, args.url, form_id=args.form, created_by="command line", format=args.format,
                secret=args.secret or "", personal=args.personal, county=args.county or "", hour=args.hour,
            )  # fmt: skip
            accounts.record(db, "command line", "add-webhook", f"webhook {hook.id} {hook.format} form {hook.form_id}")
            print(hook.id, hook.url)
        elif args.webhook_command == "list":
            counts = webhooks.message_counts(db)
            rows: list[tuple[str, ...]] = [("id", "format", "form", "pending", "sent", "failed", "url")]
            for h in webhooks.list_webhooks(db):
                c = counts.get(h.id, {})
                kind = f"wecom {h.hour}h {h.county or '*'}" if h.format == "wecom" else "json"
                number = [str(c.get(s, 0)) for s in ("pending", "sent", "failed")]
                rows.append((str(h.id), kind, h.form_id or "*", *number, h.url))
            _print_table(rows)
            print(f"{len(rows) - 1} in all", file=sys.stderr)
        else:
            hook = webhooks.remove_webhook(db, args.id)
            accounts.record(db, "command line", "remove-webhook", f"webhook {hook.id} {hook.url}")
            print(f"webhook {hook.id} removed with its messages", file=sys.stderr)
    except webhooks.WebhookError as exc:
        raise CommandError(str(exc)) from None
    return 0


EVENT_COMMANDS = {"add": cmd_event_add, "list": cmd_event_list, "import": cmd_event_import}
COMMANDS = {
    "serve": cmd_serve,
    "check": cmd_check,
    "export": cmd_export,
    "event": cmd_event,
    "qr": cmd_qr,
    "posters": cmd_posters,
    "purge": cmd_purge,
    "report": cmd_report,
    "package": cmd_package,
    "user": cmd_user,
    "backup": cmd_backup,
    "restore": cmd_restore,
    "doctor": cmd_doctor,
    "import": cmd_import,
    "xlsform": cmd_xlsform,
    "token": cmd_token,
    "webhook": cmd_webhook,
}
