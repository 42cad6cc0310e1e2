"""Events at campaign scale: a 500-row schedule imported, posters and QR codes for 1,000 events."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import time
from pathlib import Path

from server.campaign import COUNTIES, VENUE_TYPES, load_campaign
from server.qr import qr_png, qr_svg
from tests.bench.serving import BUNDLED_FORMS, ROOT

ORGANIZERS = load_campaign(BUNDLED_FORMS / "_campaign-2022.toml").organizers  # the schedule is 2022's

HEADER = ("问卷", "活动名称", "场所类型", "市县", "乡镇", "场所", "日期", "主办单位", "预计人数")


def schedule(rows: int) -> bytes:
    """A schedule as the office saves it from Excel: UTF-8 with BOM, Chinese headers."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HEADER)
    for i in range(rows):
        writer.writerow(
            ["five-into-session", f"消费品安全宣传第{i + 1}场", VENUE_TYPES[i % 5], COUNTIES[i % len(COUNTIES)],
             "某某镇", f"第{i + 1}小学", f"2022-09-{i % 30 + 1:02d}", ORGANIZERS[i % len(ORGANIZERS)], str(50 + i)]
        )  # fmt: skip
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def cli(workdir: Path, *args: str) -> float:
    """Seconds a `quality-forms` command takes, start to exit, as a user would run it."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "server", "--forms", str(BUNDLED_FORMS), "--db", str(workdir / "events.db"), *args],
        cwd=workdir,
        env={**os.environ, "PYTHONPATH": str(ROOT), "QF_BASE_URL": "https://zlj.hainan.example.cn"},
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


class EventFigures:
    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        cli(workdir, "check")  # creates nothing, but warms the imports' disk cache
        (workdir / "schedule.csv").write_bytes(schedule(500))
        self.import_500 = cli(workdir, "event", "import", "schedule.csv")
        (workdir / "more.csv").write_bytes(schedule(500))
        cli(workdir, "event", "import", "more.csv")
        self.posters_1000 = cli(workdir, "posters", "--out", str(workdir / "posters.html"))
        self.sheet_bytes = (workdir / "posters.html").stat().st_size
        urls = [f"https://zlj.hainan.example.cn/e/{n:07d}" for n in range(200)]  # distinct: no cache hits
        started = time.perf_counter()
        for url in urls:
            qr_png(url)
        self.png_per_second = 200 / (time.perf_counter() - started)
        started = time.perf_counter()
        for url in urls:
            qr_svg(url)
        self.svg_per_second = 200 / (time.perf_counter() - started)
