"""The 10月14日 package: a ZIP of the table, the event list, the draft summary and the photos.

Events and reports are stored as staff file them (the writer residents' submissions use,
the bundled event-report form); photos are real JPEGs stored as uploads are.
"""

import datetime as dt
import io
import shutil
import subprocess
import zipfile
from pathlib import Path

import docx
import openpyxl
import pytest
from PIL import Image

from server import package, photos
from server.accounts import add_user
from server.forms import load_form
from server.results import Filters
from server.storage import Submission, Writer, open_database
from tests.conftest import ADMIN_PASSWORD, BUNDLED_FORMS, ROOT, database, make_app_client, run, sign_in

ARTIFACTS = ROOT / "tests" / "artifacts"
TITLE = "白沙中学 质量安全进校园"
ODD_TITLE = '乡镇行 a/b:c*?"<>|. '  # every character Windows refuses, and a trailing dot and space
# code, form, venue type, county, date, title
EVENTS = [
    ("BSSCH22", "five-into-session", "学校", "白沙黎族自治县", "2026-09-10", TITLE),
    ("BSSCH33", "five-into-session", "学校", "白沙黎族自治县", "2026-09-10", TITLE),  # same day, same title
    ("BSTWN22", "township-event", "乡镇", "白沙黎族自治县", "2026-09-12", ODD_TITLE),
    ("HKCON22", "consumer-survey", "社区", "海口市", "2026-09-20", "海口 消费者调查"),  # no report
    ("HKOCT22", "consumer-survey", "社区", "海口市", "2026-10-20", "十月的调查"),  # after the days asked
]
# event, answers (photos: how many), review
REPORTS = [
    ("BSSCH22", {"people": 300, "materials": 200, "posters": 5, "photos": 2,
                 "summary": "为白沙中学师生讲解食品安全", "problems": "学生多，资料不够"}, "approved"),
    ("BSSCH33", {"people": 50, "photos": 1, "summary": "第二场"}, None),
    ("BSTWN22", {"people": 100, "photos": 1, "summary": "乡镇行走进牙叉镇"}, "returned"),
    ("HKOCT22", {"people": 7, "photos": 1, "summary": "十月"}, None),
]  # fmt: skip
# The table, worked out by hand: 白沙 and 海口 rows that are not zero, and the total.
EXPECTED = {
    ("白沙黎族自治县", "五进学校"): [2, 2, 350, 2, 200, 5, 3, 4.5],  # (4 + 5) / 2
    ("白沙黎族自治县", "质量文化乡镇行"): [1, 1, 100, 0, 0, 0, 1, None],
    ("白沙黎族自治县", "小计"): [3, 3, 450, 2, 200, 5, 4, 4.5],
    ("海口市", "消费者调查"): [1, 0, 0, 0, 0, 0, 0, None],
    ("海口市", "小计"): [1, 0, 0, 0, 0, 0, 0, None],
    ("合计", None): [4, 3, 450, 2, 200, 5, 4, 4.5],
}
ODD_FOLDER = "2026-09-12 乡镇行 a_b_c______"  # the trailing `. ` removed


def picture(seed: int) -> photos.Photo:
    """A real photo, stored as an upload is (decoded and encoded again)."""
    image = Image.new("RGB", (1200, 900) if seed % 2 else (900, 1200), (seed * 40 % 256, 120, 200 - seed * 30))
    out = io.BytesIO()
    image.save(out, "JPEG")
    return photos.clean_photo(io.BytesIO(out.getvalue()))


def fill(db_path: Path, clock) -> dict[str, list[str]]:
    """The events, reports, reviews and responses; returns each event's photo names."""
    db = open_database(db_path)
    forms = {name: load_form(BUNDLED_FORMS / f"{name}.toml") for name in ("event-report", "five-into-session")}
    for code, form_id, venue_type, county, date, title in EVENTS:
        db.execute(
            """INSERT INTO events (code, form_id, title, venue_type, county, township, venue, date, organizer,
                                   expected, created_at)
               VALUES (?, ?, ?, ?, ?, '', '', ?, '省教育厅', NULL, '2026-09-01T00:00:00+08:00')""",
            [code, form_id, title, venue_type, county, date],
        )
    folder = photos.folder_for(db_path)
    names: dict[str, list[str]] = {}
    writer = Writer(db_path)
    writer.start()
    try:
        seed = 0
        for code, figures, review in REPORTS:
            names[code] = []
            for _ in range(figures.get("photos", 0)):
                seed += 1
                photo = picture(seed)
                photos.save(folder, photo)
                names[code].append(photo.name)
            day = next(e[4] for e in EVENTS if e[0] == code)
            answers = {"held": "yes", "held_on": day} | figures | {"photos": names[code]}
            clock(dt.datetime.fromisoformat(day) + dt.timedelta(hours=18))
            writer.submit(Submission(forms["event-report"], f"report-{code}", answers, code)).result()
            if review:
                db.execute("INSERT INTO report_reviews VALUES (?, ?, '', 'boss', '2026-10-01T10:00:00+08:00')",
                           [code, review])  # fmt: skip
        for number, satisfaction in enumerate((4, 5)):
            answers = {"satisfaction": satisfaction, "venue_type": "school"}
            writer.submit(Submission(forms["five-into-session"], f"r{number}", answers, "BSSCH22")).result()
    finally:
        writer.close()
    db.execute("INSERT INTO chosen_photos VALUES (?, 'boss', '2026-10-02T10:00:00+08:00')", [names["BSSCH22"][1]])
    clock(dt.datetime(2026, 10, 10, 9, 30))
    return names


@pytest.fixture
def workdir(tmp_path, clock):
    shutil.copytree(BUNDLED_FORMS, tmp_path / "forms")
    names = fill(tmp_path / "data" / "quality-forms.db", clock)
    return tmp_path, names


def statistics(archive: zipfile.ZipFile) -> dict:
    """统计表.xlsx as {(市县, 活动类别): figures} for the rows that are not all zero."""
    sheet = openpyxl.load_workbook(io.BytesIO(archive.read("统计表.xlsx"))).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:3] == ("市县", "活动类别", "计划场次")
    return {(row[0], row[1]): list(row[2:]) for row in rows[1:] if any(row[2:9]) or row[0] == "合计"}


def test_the_package_command_writes_the_hand_computed_figures_and_the_photos(workdir):
    folder, names = workdir
    result = run("package", "--from", "2026-09-01", "--to", "2026-09-30", "--out", "out/包.zip", cwd=folder,
                 env={"QF_NOW": "2026-10-10T09:30:00"})  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().strip() == "out/包.zip: 4 event(s), 4 photo(s)"
    with zipfile.ZipFile(folder / "out" / "包.zip") as archive:
        assert archive.testzip() is None
        assert archive.namelist() == [
            "统计表.xlsx",
            "活动清单.xlsx",
            "活动总结.docx",
            f"图片/白沙黎族自治县/2026-09-10 {TITLE}/1.jpg",
            f"图片/白沙黎族自治县/2026-09-10 {TITLE}/2.jpg",
            f"图片/白沙黎族自治县/2026-09-10 {TITLE} BSSCH33/1.jpg",
            f"图片/白沙黎族自治县/{ODD_FOLDER}/1.jpg",
        ]
        # UTF-8 names flagged (bit 11) so Windows Explorer, WPS and 7-Zip read them; photos stored as they are
        assert all(info.flag_bits & 0x800 for info in archive.infolist())
        assert all(info.compress_type == zipfile.ZIP_STORED for info in archive.infolist())
        raw = (folder / "out" / "包.zip").read_bytes()
        assert "统计表.xlsx".encode() in raw and "统计表.xlsx".encode("gbk") not in raw
        assert statistics(archive) == EXPECTED
        store = photos.folder_for(folder / "data" / "quality-forms.db")
        second = archive.read(f"图片/白沙黎族自治县/2026-09-10 {TITLE}/2.jpg")
        assert second == photos.path_of(store, names["BSSCH22"][1]).read_bytes()
        events = list(
            openpyxl.load_workbook(io.BytesIO(archive.read("活动清单.xlsx"))).active.iter_rows(values_only=True)
        )
        assert events[0] == package.EVENT_HEADERS
        assert [row[:3] + row[6:] for row in events[1:]] == [  # 海口 first: the notice's order of counties
            ("HKCON22", "海口 消费者调查", "海口市", dt.datetime(2026, 9, 20), "省教育厅", "未填报", None, None, None, None, None),
            ("BSSCH22", TITLE, "白沙黎族自治县", dt.datetime(2026, 9, 10), "省教育厅", "已通过", "已举办", 300, 200, 5, 2),
            ("BSSCH33", TITLE, "白沙黎族自治县", dt.datetime(2026, 9, 10), "省教育厅", "待审核", "已举办", 50, 0, 0, 1),
            ("BSTWN22", ODD_TITLE, "白沙黎族自治县", dt.datetime(2026, 9, 12), "省教育厅", "已退回", "已举办", 100, 0, 0, 1),
        ]  # fmt: skip
        summary = docx.Document(io.BytesIO(archive.read("活动总结.docx")))
    text = "\n".join(p.text for p in summary.paragraphs)
    assert "2026年“质量月”活动总结（草稿）" in text
    assert "全省计划开展活动 4 场，已举办 3 场，覆盖 450 人次" in text
    assert f"{TITLE}（2026-09-10）：为白沙中学师生讲解食品安全" in text
    assert f"{TITLE}：学生多，资料不够" in text
    assert "联合主办单位：省市场监督管理局" in text
    assert len(summary.inline_shapes) == 1  # the one chosen photo, scaled to the page
    assert summary.inline_shapes[0].width <= docx.shared.Cm(15) + 1
    assert [[c.text for c in row.cells] for row in summary.tables[0].rows][-1] == [
        "合计", "4", "3", "450", "200", "2", "4.50"
    ]  # fmt: skip


def test_approved_only_and_a_county_narrow_the_package(workdir):
    folder, _ = workdir
    result = run("package", "--county", "白沙", "--approved-only", "--to", "2026-09-30", "--out", "b.zip", cwd=folder)
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(folder / "b.zip") as archive:
        assert [n for n in archive.namelist() if n.startswith("图片/")] == [
            f"图片/白沙黎族自治县/2026-09-10 {TITLE}/1.jpg",
            f"图片/白沙黎族自治县/2026-09-10 {TITLE}/2.jpg",
        ]
        assert statistics(archive)[("合计", None)] == [3, 1, 300, 2, 200, 5, 2, 4.5]
    bad = run("package", "--from", "2026-02-30", "--out", "c.zip", cwd=folder)
    assert (
        bad.returncode == 2
        and bad.stderr.decode().strip() == "quality-forms: 开始日期 '2026-02-30' 不对，应写成 2022-09-15"
    )
    assert not (folder / "c.zip").exists()


def test_entries_past_four_gigabytes_switch_to_zip64(workdir, monkeypatch):
    folder, _ = workdir
    monkeypatch.setattr(package, "ZIP32_LIMIT", 60_000 + package.ZIP32_MARGIN)  # as if the first files were 4 GB
    result = package.write_package(
        open_database(folder / "data" / "quality-forms.db"),
        {f.stem: load_form(f) for f in (folder / "forms").glob("[a-z]*-*.toml")},
        folder / "forms",
        folder / "z.zip",
        Filters(date_to="2026-09-30"),
    )
    assert result == package.PackageFigures(events=4, photos=4)
    with zipfile.ZipFile(folder / "z.zip") as archive:
        assert archive.testzip() is None
        extras = [info.extra for info in archive.infolist()]
        assert extras[0][:2] != b"\x01\x00" and extras[-1][:2] == b"\x01\x00"  # the ZIP64 extra field
        assert statistics(archive) == EXPECTED


@pytest.mark.parametrize(
    ("text", "safe"),
    [
        ('a\\b/c:d*e?f"g<h>i|j', "a_b_c_d_e_f_g_h_i_j"),
        ("活动。. . ", "活动。"),
        ("CON", "_CON"),
        ("nul.txt", "_nul.txt"),
        ("...", "_"),
        ("长" * 100, "长" * 60),
        ("换行\n制表\t", "换行_制表"),
    ],
)
def test_names_are_made_safe_for_windows(text, safe):
    assert package.safe_name(text) == safe


def test_the_package_downloads_for_each_account_its_own_events(tmp_path, clock):
    with make_app_client(tmp_path, forms=BUNDLED_FORMS) as client:
        fill(client.app.state["context"].store.path, clock)
        add_user(database(client), "boss", ADMIN_PASSWORD, "admin")
        add_user(database(client), "wang", ADMIN_PASSWORD, "staff")
        sign_in(client, "boss", ADMIN_PASSWORD)
        page = client.get("/admin/report?date_from=2026-09-01&date_to=2026-09-30").text
        assert 'href="/admin/package.zip?date_from=2026-09-01&amp;date_to=2026-09-30"' in page
        answer = client.get("/admin/package.zip?date_from=2026-09-01&date_to=2026-09-30&county=白沙")
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/zip"
        assert "content-encoding" not in answer.headers
        assert answer.headers["content-disposition"] == (
            "attachment; filename=\"package.zip\"; filename*=UTF-8''"
            "%E8%B4%A8%E9%87%8F%E6%9C%88%E6%8A%A5%E9%80%81%E6%9D%90%E6%96%99-"
            "%E7%99%BD%E6%B2%99%E9%BB%8E%E6%97%8F%E8%87%AA%E6%B2%BB%E5%8E%BF-20261010-093000.zip"
        )  # 质量月报送材料-白沙黎族自治县-20261010-093000.zip
        with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
            assert len([n for n in archive.namelist() if n.startswith("图片/白沙黎族自治县/")]) == 4
            assert statistics(archive)[("合计", None)] == [3, 3, 450, 2, 200, 5, 4, 4.5]
        assert client.get("/admin/package.zip?date_from=2026-13-01").status_code == 400
        log = [row["detail"] for row in database(client)["audit_log"].rows if row["action"] == "export"]
        assert log[-1].startswith("package date_from=2026-09-01")
        add_user(database(client), "haikou", ADMIN_PASSWORD, "county", county="海口市")
        for account, folders in (("wang", set()), ("haikou", {"海口市"})):  # 白沙's stays out, asked or not
            sign_in(client, account, ADMIN_PASSWORD)
            assert "package.zip" in client.get("/admin/report").text
            answer = client.get("/admin/package.zip?county=白沙")
            assert answer.status_code == 200
            with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
                photos = [n.split("/")[1] for n in archive.namelist() if n.startswith("图片/")]
                assert set(photos) == folders, account


def soffice(*args: str, cwd: Path) -> None:
    profile = cwd / "lo-profile"  # its own profile: another soffice running elsewhere does not block it
    result = subprocess.run(
        ["soffice", f"-env:UserInstallation=file://{profile}", "--headless", *args],
        cwd=cwd, capture_output=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice is installed by .ci/run")
def test_libreoffice_opens_the_summary_and_the_spreadsheets(workdir):
    folder, _ = workdir
    assert run("package", "--to", "2026-09-30", "--out", "p.zip", cwd=folder).returncode == 0
    out = folder / "lo"
    with zipfile.ZipFile(folder / "p.zip") as archive:
        archive.extractall(out, members=["统计表.xlsx", "活动清单.xlsx", "活动总结.docx"])
    soffice("--convert-to", "pdf", "活动总结.docx", "统计表.xlsx", "活动清单.xlsx", cwd=out)
    assert all((out / f"{name}.pdf").stat().st_size > 5000 for name in ("活动总结", "统计表", "活动清单"))
    soffice("--convert-to", "txt:Text (encoded):UTF8", "活动总结.docx", cwd=out)
    text = (out / "活动总结.txt").read_text(encoding="utf-8-sig")
    assert "全省计划开展活动 4 场，已举办 3 场，覆盖 450 人次" in text and "乡镇行走进牙叉镇" in text
    soffice("--convert-to", "csv:Text - txt - csv (StarCalc):44,34,76", "统计表.xlsx", cwd=out)
    lines = (out / "统计表.csv").read_text(encoding="utf-8").splitlines()
    assert lines[-1] == "合计,,4,3,450,2,200,5,4,4.50"
    # A picture of the summary's first page, to look at: tests/artifacts/package-summary-1.png
    if shutil.which("pdftoppm"):
        ARTIFACTS.mkdir(exist_ok=True)
        subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "3", out / "活动总结.pdf",
                        ARTIFACTS / "package-summary"], check=True, timeout=60)  # fmt: skip
        assert (ARTIFACTS / "package-summary-1.png").read_bytes()[:4] == b"\x89PNG"
    if shutil.which("pdftotext"):
        pdf_text = subprocess.run(["pdftotext", out / "活动总结.pdf", "-"], capture_output=True, check=True).stdout
        assert "已举办 3 场" in pdf_text.decode()
