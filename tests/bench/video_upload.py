"""A 200 MB video sent with an event report to the real server: time, and the server's memory.

The server runs as a user starts it; a staff account files an event's report with one
200 MB clip (the largest `max_mb` allows), sent by http.client in 64 KB pieces. Figures:
the upload's seconds against `cp` of the same bytes on the same disk (the server cannot
beat the disk), and the peak resident memory of the server's processes before and after
(`VmHWM`): streaming to disk means the clip costs no more than a few chunks.
"""

from __future__ import annotations

import http.client
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from server.accounts import add_user
from server.events import Event, add_events, new_code
from server.storage import connect
from tests.bench import serving
from tests.test_event_reports import MP4_HEAD, video_post

CLIP_MB = 200
PIECE = 64 * 1024
PASSWORD = "correct horse battery"
GOAL_EXTRA_MB = 32  # the clip may raise the server's peak memory by this much at most


@dataclass
class VideoFigures:
    seconds: float
    cp_seconds: float
    peak_before_mb: float
    peak_after_mb: float
    status: int

    def rows(self) -> list[tuple[str, str, str, str]]:
        extra = self.peak_after_mb - self.peak_before_mb
        return [
            (
                f"event report with a {CLIP_MB} MB video (one request, streamed to disk)",
                f"**{self.seconds:.2f} s** ({CLIP_MB / self.seconds:,.0f} MB/s; `cp` of the same bytes"
                f" {self.cp_seconds:.2f} s, ratio {self.seconds / self.cp_seconds:.1f}); answer {self.status}",
                "answer 303",
                "met" if self.status == 303 else "**not met**",
            ),
            (
                "server's peak memory (VmHWM, all processes) before → after that upload",
                f"**{self.peak_before_mb:.0f} MB → {self.peak_after_mb:.0f} MB** (+{extra:.0f} MB)",
                f"+ ≤ {GOAL_EXTRA_MB} MB",
                "met" if self.status == 303 and extra <= GOAL_EXTRA_MB else "**not met**",
            ),
        ]


def video_figures(work: Path) -> VideoFigures:
    work.mkdir(parents=True, exist_ok=True)
    forms = work / "forms"
    forms.mkdir(exist_ok=True)
    shutil.copy(serving.ROOT / "tests" / "forms" / "photo-report.toml", forms)
    report = (serving.ROOT / "forms" / "event-report.toml").read_text(encoding="utf-8")
    (forms / "event-report.toml").write_text(report.replace("max_mb = 50", f"max_mb = {CLIP_MB}"), encoding="utf-8")
    with serving.running(work, forms) as server:
        db = connect(server.db)
        add_user(db, "wang", PASSWORD, "staff")
        [event] = add_events(db, [Event(new_code(), "photo-report", "视频测试", created_by="wang")])
        db.conn.close()
        session = _sign_in(server.port)
        path = f"/admin/events/{event.code}/report"
        page = _get(server.port, path, session)
        fields = {
            "_csrf": re.search(r'name="_csrf" value="([^"]+)"', page).group(1),
            "_key": re.search(r'name="_key" value="([^"]+)"', page).group(1),
            "held": "yes", "held_on": "2026-09-10", "people": "100", "summary": "视频上传测试",
        }  # fmt: skip
        before = _peak_mb(server.process.pid)
        started = time.perf_counter()
        status = _upload(server.port, path, session, fields)
        seconds = time.perf_counter() - started
        after = _peak_mb(server.process.pid)
    return VideoFigures(seconds, _cp_seconds(work), before, after, status)


def _sign_in(port: int) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request("GET", "/admin/login")
    answer = connection.getresponse()
    page = answer.read().decode()
    login = re.search(r"qf_login=([^;]+)", answer.getheader("set-cookie", "")).group(1)
    token = re.search(r'name="_csrf" value="([^"]+)"', page).group(1)
    body = f"_csrf={token}&username=wang&password={PASSWORD.replace(' ', '+')}"
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"qf_login={login}"}
    connection.request("POST", "/admin/login", body=body, headers=headers)
    answer = connection.getresponse()
    answer.read()
    return re.search(r"qf_session=([^;]+)", answer.getheader("set-cookie", "")).group(1)


def _get(port: int, path: str, session: str) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request("GET", path, headers={"Cookie": f"qf_session={session}"})
    return connection.getresponse().read().decode()


def _upload(port: int, path: str, session: str, fields: dict[str, str]) -> int:
    boundary = "qfbench7MA4YWxkTrZu0gW"
    head, tail = video_post(fields, boundary)
    size = CLIP_MB * 1024 * 1024 - len(MP4_HEAD)
    piece = bytes(range(256)) * (PIECE // 256)

    def body():
        yield head
        left = size
        while left > 0:
            yield piece[: min(left, PIECE)]
            left -= PIECE
        yield tail

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    headers = {
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Content-Length": str(len(head) + size + len(tail)),
        "Cookie": f"qf_session={session}",
    }
    connection.request("POST", path, body=body(), headers=headers)
    answer = connection.getresponse()
    answer.read()
    return answer.status


def _peak_mb(pid: int) -> float:
    """The sum of VmHWM over the server and its worker processes."""
    total = 0
    for process in [pid, *_descendants(pid)]:
        try:
            status = Path(f"/proc/{process}/status").read_text()
        except FileNotFoundError:
            continue
        total += int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))
    return total / 1024


def _descendants(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        children = (task / "children").read_text().split() if (task / "children").exists() else []
        for child in map(int, children):
            found += [child, *_descendants(child)]
    return found


def _cp_seconds(work: Path) -> float:
    source, copy = work / "clip.bin", work / "clip-copy.bin"
    with source.open("wb") as file:
        for _ in range(CLIP_MB * 16):
            file.write(bytes(PIECE))
    started = time.perf_counter()
    subprocess.run(["cp", str(source), str(copy)], check=True)
    subprocess.run(["sync", str(copy)], check=True)
    seconds = time.perf_counter() - started
    source.unlink()
    copy.unlink()
    return seconds


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        for row in video_figures(Path(folder)).rows():
            print(" | ".join(row))
