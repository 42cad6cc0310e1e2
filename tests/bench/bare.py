"""The bare stack, the anchor of the serving figures: a Litestar "hello" on granian.

Served with the same granian settings as `quality-forms serve` (`server.cli.granian_server`),
so the ratio of a quality-forms figure to this one is what the product's own work costs.
`python -m tests.bench.bare --port N --workers 2`.
"""

from __future__ import annotations

import argparse
import sys

from litestar import Litestar, get


@get("/", sync_to_thread=False, media_type="text/plain")
def hello() -> str:
    return "hello"


def create_app() -> Litestar:
    return Litestar(route_handlers=[hello], openapi_config=None)


def main(argv: list[str] | None = None) -> int:
    from server.cli import granian_server

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    granian_server("tests.bench.bare:create_app", host=args.host, port=args.port, workers=args.workers).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
