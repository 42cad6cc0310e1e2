"""The 10月14日 package of 2,000 events with 20,000 photos (~8 GB): speed against `zip -0`, and memory.

The photos are files of ~400 KB in the photo store (random bytes: the package copies them,
it never decodes them, except the few chosen for the summary, which are real JPEGs). The
same files are zipped by `zip -0 -r -q` and packaged by `quality-forms package`, one after
the other in the same run, both reading from the page cache and writing to the same disk;
the ratio of their times is the figure. The command's peak RSS comes from wait4().
`QF_BENCH_SCALE` (default 1) shrinks the set: 0.05 is 100 events and 1,000 photos.
Everything is made under a temporary folder and removed at the end.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from server.forms import load_form
from server.photos import folder_for, path_of
from server.storage import Submission, Writer, open_database
from tests.bench.serving import ROOT

EVENTS = 2_000
PHOTOS_PER_EVENT = 10
PHOTO_BYTES = 400 * 1024
CHOSEN = 20  # real JPEGs marked 选入总结
RSS_GOAL_MB = 100
COUNTIES = ("海口市", "三亚市", "儋州市", "琼海市", "白沙黎族自治县")


@dataclass
class PackageFigures:
    events: int
    photos: int
    gigabytes: float
    zip_seconds: list[float]  # before and after the package
    package_seconds: float
    package_bytes: int
    peak_rss_mb: float

    @property
    def ratio(self) -> float:
        return self.package_seconds / min(self.zip_seconds)

    def row(self) -> tuple[str, str, str, str]:
        return (
            f"`quality-forms package` of {self.events:,} events with {self.photos:,} photos ({self.gigabytes:.1f} GB)",
            f"**{self.package_seconds:.1f} s** ({self.gigabytes * 1024 / self.package_seconds:,.0f} MB/s), "
            f"{self.ratio:.2f}× the time of `zip -0 -r` of the same files (the faster of "
            f"{' and '.join(f'{s:.1f}' for s in self.zip_seconds)} s, run before and after); "
            f"peak RSS **{self.peak_rss_mb:.0f} MB**",
            f"< {RSS_GOAL_MB} MB",
            "met" if self.peak_rss_mb < RSS_GOAL_MB else "**not met**",
        )


def fill(work: Path, scale: float) -> tuple[int, int, int]:
    """The database and photo store: events across counties and kinds, each with a held
    report listing its photos. Returns (events, photos, bytes)."""
    events = max(1, round(EVENTS * scale))
    db_path = work / "data" / "quality-forms.db"
    db = open_database(db_path)
    report_form = load_form(ROOT / "forms" / "event-report.toml")
    forms = ("five-into-session", "township-event", "consumer-survey")
    venues = ("机关", "企业", "乡镇", "社区", "学校")
    store = folder_for(db_path)
    writer = Writer(db_path)
    writer.start()
    stored = []
    total = photos = 0
    try:
        for number in range(events):
            code = f"B{number:06d}"
            day = dt.date(2026, 9, 1) + dt.timedelta(days=number % 30)
            db.execute(
                """INSERT INTO events (code, form_id, title, venue_type, county, township, venue, date, organizer,
                                       expected, created_at)
                   VALUES (?, ?, ?, ?, ?, '', '', ?, '省市场监督管理局', NULL, '2026-08-01T00:00:00+08:00')""",
                [code, forms[number % 3], f"第{number}场 质量安全宣传", venues[number % 5], COUNTIES[number % 5],
                 day.isoformat()],
            )  # fmt: skip
            names = []
            for _ in range(PHOTOS_PER_EVENT):
                name = secrets.token_hex(32) + ".jpg"
                path = path_of(store, name)
                path.parent.mkdir(parents=True, exist_ok=True)
                data = _jpeg(photos) if photos < CHOSEN else os.urandom(PHOTO_BYTES)
                path.write_bytes(data)
                total += len(data)
                photos += 1
                names.append(name)
            answers = {"held": "yes", "held_on": day.isoformat(), "people": 100 + number % 50, "materials": 200,
                       "posters": 3, "summary": f"第{number}场活动的总结。" * 5, "problems": "", "photos": names}  # fmt: skip
            stored.append(writer.submit(Submission(report_form, f"report-{code}", answers, code)))
            if photos <= CHOSEN:
                db.conn.executemany("INSERT OR IGNORE INTO chosen_photos VALUES (?, 'bench', '2026-10-01')",
                               [[n] for n in names])  # fmt: skip
        for future in stored:
            future.result()
    finally:
        writer.close()
    for form_file in ("campaign.toml", "event-report.toml", *(f"{form}.toml" for form in forms)):
        (work / "forms").mkdir(exist_ok=True)
        shutil.copy(ROOT / "forms" / form_file, work / "forms" / form_file)
    return events, photos, total


def _jpeg(seed: int) -> bytes:
    """A camera-sized JPEG that compresses like a photo (noise would not)."""
    size = (2560, 1920)
    channels = [Image.effect_mandelbrot(size, (-2.0, -1.2, 1.0 + seed / 100, 1.2), 60 + seed * k) for k in (1, 2, 3)]
    image = Image.merge("RGB", channels)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def _timed(command: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one command."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    began = time.monotonic()
    child = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.monotonic() - began
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed with status {child.returncode}")
    return seconds, usage.ru_maxrss / 1024


def package_figures(scale: float | None = None) -> PackageFigures:
    scale = float(os.environ.get("QF_BENCH_SCALE", "1")) if scale is None else scale
    with tempfile.TemporaryDirectory(prefix="qf-bench-package-") as tmp:
        work = Path(tmp)
        events, photos, total = fill(work, scale)
        store = folder_for(work / "data" / "quality-forms.db")
        plain = ["zip", "-0", "-r", "-q", str(work / "plain.zip"), "."]
        command = [sys.executable, "-m", "server", "package", "--out", str(work / "package.zip")]
        # zip, package, zip: each after a sync (the photos just written must not be flushed
        # during a timed run), and the faster zip is the one compared with
        zip_seconds: list[float] = []
        for run in (plain, command, plain):
            os.sync()
            seconds, rss_mb = _timed(run, cwd=store if run is plain else work)
            if run is plain:
                zip_seconds.append(seconds)
                (work / "plain.zip").unlink()
            else:
                package_seconds, rss = seconds, rss_mb
        size = (work / "package.zip").stat().st_size
        return PackageFigures(events, photos, total / 1024**3, zip_seconds, package_seconds, size, rss)


if __name__ == "__main__":  # python -m tests.bench.package
    figures = package_figures()
    print("| " + " | ".join(figures.row()) + " |")
