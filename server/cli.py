"""The `quality-forms` command: serve, check, export.

Every failure is one plain line on standard error and a non-zero exit.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from server.clock import now
from server.export import export_csv
from server.forms import FORM_ID, Form, FormError, check_forms, load_form
from server.settings import SETTINGS, SettingError, Settings, load_settings, to_environ
from server.storage import open_database, stored_definitions


class CommandError(Exception):
    """A problem to report as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not a usage block
        raise CommandError(message)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    for setting in SETTINGS:
        if setting.name != "rate_limit":  # set by QF_RATE_LIMIT only (SPEC §2)
            flag = "--" + setting.name.replace("_", "-")
            common.add_argument(flag, default=argparse.SUPPRESS, help=f"{setting.help} [{setting.env}]")

    parser = _Parser(prog="quality-forms", description="Forms and surveys on phones.", parents=[common])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    serve = commands.add_parser("serve", parents=[common], help="run the web server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="server processes (default 1)")

    commands.add_parser("check", parents=[common], help="validate every form file")

    export = commands.add_parser("export", parents=[common], help="write a form's responses as CSV")
    export.add_argument("form_id")
    export.add_argument("--out", help="file to write, or - for standard output")
    export.add_argument("--header", choices=("labels", "names"), default="labels")
    export.add_argument("--event", help="only responses of this event code")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        settings = load_settings({s.name: getattr(args, s.name, None) for s in SETTINGS})
        return COMMANDS[args.command](args, settings)
    except (CommandError, SettingError) as exc:
        print(f"quality-forms: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `export --out - | head`
        return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from granian import Granian
    from granian.constants import Interfaces

    base_url = settings.base_url or f"http://{args.host}:{args.port}"
    os.environ.update(to_environ(settings) | {"QF_BASE_URL": base_url})
    _, errors = check_forms(settings.forms)
    for line in errors:
        print(f"form skipped: {line}", file=sys.stderr)
    Granian(
        "server.app:create_app",
        factory=True,
        address=args.host,
        port=args.port,
        interface=Interfaces.ASGI,
        workers=args.workers,
        log_access=False,
    ).serve()
    return 0


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.forms.is_dir():
        raise CommandError(f"no forms folder at {settings.forms}")
    forms, errors = check_forms(settings.forms)
    for line in errors:
        print(line)
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
    chunks = export_csv(db, form, header=args.header, event=args.event)
    if args.out == "-":
        for chunk in chunks:
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        return 0
    out = Path(args.out) if args.out else Path("exports") / f"{form.id}-{now():%Y%m%d-%H%M%S}.csv"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".partial")
        with partial.open("wb") as file:
            for chunk in chunks:
                file.write(chunk)
        partial.replace(out)  # a reader never sees half a file
    except OSError as exc:
        raise CommandError(f"cannot write {out}: {exc.strerror}") from None
    print(out)
    return 0


COMMANDS = {"serve": cmd_serve, "check": cmd_check, "export": cmd_export}
