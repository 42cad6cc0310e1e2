"""The form catalog after a publish from the workshop: what asking for a form costs each
request, and how soon another process (here: another catalog over the same folder, with its
own view of the shared publish counter) serves the published change."""

from __future__ import annotations

import shutil
import time
import timeit
from pathlib import Path

from server.forms import FormCatalog
from server.workshop import write_atomically
from tests.bench.serving import BUNDLED_FORMS

CALLS = 200_000


def _ns_per_call(statement, calls: int = CALLS) -> float:
    return min(timeit.repeat(statement, number=calls, repeat=5)) / calls * 1e9


def catalog_rows(work: Path) -> list[tuple[str, str, str, str]]:
    folder = work / "catalog-forms"
    shutil.copytree(BUNDLED_FORMS, folder)
    publisher = FormCatalog(folder)
    other = FormCatalog(folder)
    known = _ns_per_call(lambda: other.get("quality-quiz"))
    plain = dict(other._forms)
    baseline = _ns_per_call(lambda: plain.get("quality-quiz"))
    unknown = _ns_per_call(lambda: other.get("no-such-form"), calls=20_000)

    path = folder / "quality-quiz.toml"
    text = path.read_text(encoding="utf-8")
    delays, stale = [], 0
    for round_ in range(50):
        changed = text.replace('title = "', f'title = "第{round_}版', 1)
        started = time.perf_counter()
        write_atomically(path, changed)
        publisher.published()
        seen = other.get("quality-quiz")
        delays.append(time.perf_counter() - started)
        stale += seen is None or not seen.title.startswith(f"第{round_}版")
    delays.sort()
    return [
        (
            "form catalog: asking for a known form (per request)",
            f"**{known:.0f} ns** (a bare dict lookup: {baseline:.0f} ns); an unknown id {unknown / 1000:.1f} µs",
            "—",
            "",
        ),
        (
            "workshop publish (atomic write, fsync, counter, reload) until another process serves it",
            f"median {delays[len(delays) // 2] * 1000:.1f} ms, worst {delays[-1] * 1000:.1f} ms;"
            f" {stale} of {len(delays)} next answers still the old version",
            "0 stale",
            "met" if stale == 0 else "**not met**",
        ),
    ]
