"""A web CSV export, made in a process of its own at low priority.

Writing the CSV of a million responses is seconds of Python: in a server process it would
hold the interpreter lock against the event loop that answers residents, and gzip on the
event loop would add more. So the office's download runs `python -m server.export_process`
with the lowest priority (nice 19): it reads the job (JSON) on standard input and writes the CSV,
gzipped when the browser takes gzip, to standard output, which the server streams.
"""

from __future__ import annotations

import os
import sys
import zlib

import msgspec

from server.export import AS_IN_SPEC, Layout, export_csv
from server.forms import Form
from server.results import Filters
from server.scope import EVERYTHING, Scope
from server.storage import connect

NICENESS = 19  # the lowest: residents' submissions (and the server) get the processor first


class Job(msgspec.Struct, frozen=True):
    db: str
    form: Form
    filters: Filters
    layout: Layout = AS_IN_SPEC
    scope: Scope = EVERYTHING  # the account's: only the responses of events it sees
    gzip: bool = False


def main() -> int:
    os.nice(NICENESS)
    job = msgspec.json.decode(sys.stdin.buffer.read(), type=Job)
    db = connect(job.db)
    out = sys.stdout.buffer
    gzip = zlib.compressobj(6, zlib.DEFLATED, 31) if job.gzip else None  # wbits 31: the gzip format
    layout = job.layout
    chunks = export_csv(
        db,
        job.form,
        job.filters,
        scope=job.scope,
        header=layout.header,
        multi=layout.multi,
        event_details=layout.event_details,
    )
    for chunk in chunks:
        out.write(gzip.compress(chunk) if gzip else chunk)
    if gzip:
        out.write(gzip.flush())
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
