"""An event report filed from a phone in headless Chromium (360 px, script on): the province
imports the schedule, a county account files the report of its event offline with two photos,
queued, sent when the network returns; the province returns it with a comment, the county
fixes it, the province approves. And a queued report whose sign-in has ended is kept, not lost.
"""

import io
import json
import shutil
import sqlite3
import zipfile
from pathlib import Path

import openpyxl
import pytest

from server.accounts import add_user
from server.storage import open_database
from tests import test_browser
from tests.conftest import ADMIN_PASSWORD, ROOT, TEST_FORMS, run, running_server
from tests.test_browser import phone, shoot

pytestmark = pytest.mark.browser
browser = test_browser.browser  # the same headless Chromium fixture
SAVED = "已保存，联网后自动提交"
NOW = "2026-09-20T10:00:00"


@pytest.fixture
def site(tmp_path):
    """A fresh server with the photo-report form (for the event) and the event-report form."""
    (tmp_path / "forms").mkdir()
    shutil.copy(TEST_FORMS / "photo-report.toml", tmp_path / "forms")
    shutil.copy(ROOT / "forms" / "event-report.toml", tmp_path / "forms")
    db = tmp_path / "data" / "quality-forms.db"
    database = open_database(db)
    add_user(database, "boss", ADMIN_PASSWORD, "admin")
    add_user(database, "wang", ADMIN_PASSWORD, "staff")
    add_user(database, "baisha", ADMIN_PASSWORD, "county", county="白沙")
    database.conn.close()
    with running_server(tmp_path, env={"QF_NOW": NOW}) as port:
        yield f"http://127.0.0.1:{port}", db


def report_row(db: Path) -> tuple[int, dict, str | None] | None:
    with sqlite3.connect(db) as connection:
        row = connection.execute("SELECT id, answers, event FROM responses WHERE form_id = 'event-report'").fetchone()
        if row is None:
            return None
        review = connection.execute("SELECT status FROM report_reviews WHERE event = ?", [row[2]]).fetchone()
    return row[0], json.loads(row[1]), review[0] if review else None


def sign_in(page, base, name):
    page.goto(base + "/admin/login")
    page.fill("#username", name)
    page.fill("#password", ADMIN_PASSWORD)
    page.click("button.submit")
    page.wait_for_url(base + "/admin")


def add_event(page, base) -> str:
    page.goto(base + "/admin/events")
    page.select_option("#ev-form", "photo-report")
    page.fill("#ev-title", "消费品安全进校园（白沙中学）")
    page.select_option("#ev-county", "白沙黎族自治县")
    page.fill("#ev-date", "2026-09-15")
    page.click("#new-event button.submit")
    page.wait_for_url(base + "/admin/events/*")
    return page.url.rsplit("/", 1)[1]


def pictures(tmp_path: Path) -> list[Path]:
    from PIL import Image

    paths = []
    for number, color in enumerate(((190, 40, 40), (40, 90, 190)), start=1):
        path = tmp_path / f"IMG_000{number}.jpg"
        Image.effect_noise((1600, 1200), 40).convert("RGB").resize((1600, 1200)).save(path, "JPEG", quality=90)
        with Image.open(path) as noise:
            Image.blend(noise, Image.new("RGB", noise.size, color), 0.6).save(path, "JPEG", quality=90)
        paths.append(path)
    return paths


def fill_report(page, photos) -> None:
    page.get_by_label("已举办", exact=True).check()
    page.fill("#i-held_on", "2026-09-15")
    page.fill("#i-people", "260")
    page.fill("#i-materials", "500")
    page.fill("#i-posters", "6")
    page.fill("#i-summary", "在白沙中学讲解儿童用品和电梯安全，师生 260 人参加。")
    for number, path in enumerate(photos):
        page.locator("input[name=photos]").nth(number).set_input_files(str(path))
        page.locator("#q-photos .photo-preview").nth(number).wait_for()


def import_schedule(tmp_path: Path) -> str:
    """The province's schedule, imported on the command line: nobody's event in the office."""
    schedule = tmp_path / "schedule.csv"
    schedule.write_text(
        "问卷,活动名称,场所类型,市县,日期\nphoto-report,消费品安全进校园（白沙中学）,学校,白沙,2026-09-15\n",
        encoding="utf-8-sig",
    )
    result = run("event", "import", str(schedule), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (code,) = [
        row[0] for row in sqlite3.connect(tmp_path / "data" / "quality-forms.db").execute("SELECT code FROM events")
    ]
    return code


def test_a_report_filed_offline_with_two_photos_arrives_then_is_returned_fixed_and_approved(site, browser, tmp_path):
    base, db = site
    code = import_schedule(tmp_path)
    staff = phone(browser)
    page = staff.new_page()
    sign_in(page, base, "baisha")  # the county's account: the imported event is its own
    page.goto(f"{base}/admin/events/{code}")
    page.click("text=填写活动开展情况")
    page.wait_for_url(f"{base}/admin/events/{code}/report")
    assert page.locator("text=每段不超过 50 MB").is_visible() is False  # the video question waits for 已举办

    staff.set_offline(True)
    fill_report(page, pictures(tmp_path))
    assert page.locator("text=最多 1 段，每段不超过 50 MB（MP4、MOV 或 WebM）。").is_visible()
    shoot(page, "report-filled-offline-360")
    page.click("button.submit")
    page.get_by_text(SAVED).wait_for()
    shoot(page, "report-queued-360")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    assert report_row(db) is None

    staff.set_offline(False)  # the page hears `online` and sends the queued report
    page.locator("section.thanks").wait_for()
    shoot(page, "report-sent-360")
    first_id, answers, status = report_row(db)
    assert {k: answers[k] for k in ("held", "held_on", "people", "materials", "posters")} == {
        "held": "yes", "held_on": "2026-09-15", "people": 260, "materials": 500, "posters": 6,
    }  # fmt: skip
    assert len(answers["photos"]) == 2 and status is None

    office = phone(browser)
    admin = office.new_page()
    sign_in(admin, base, "boss")
    assert "白沙黎族自治县" in admin.locator("#progress-title + .scroll").inner_text()
    admin.goto(f"{base}/admin/reports?status=pending")
    admin.click("text=消费品安全进校园（白沙中学）")
    admin.fill("#review-comment", "请补充媒体报道链接")
    admin.click("button.return")
    admin.wait_for_url(f"{base}/admin/events/{code}/report#review")
    shoot(admin, "report-returned-admin-360")
    assert report_row(db)[2] == "returned"

    page.goto(f"{base}/admin/events/{code}")
    assert page.locator(".report-status").inner_text().count("请补充媒体报道链接") == 1
    shoot(page, "report-returned-staff-360")
    page.click("text=修改活动开展情况")
    assert "请补充媒体报道链接" in page.locator(".report-status").inner_text()
    assert page.locator("input[name=_keep_photos]:checked").count() == 2  # the stored photos stay
    page.fill("#i-media", "白沙新闻 https://example.cn/baisha/0915")
    page.click("button.submit")
    page.locator("section.thanks").wait_for()
    assert "媒体报道" in page.locator("section.thanks").inner_text()
    report_id, answers, status = report_row(db)
    assert report_id == first_id and status is None
    assert answers["media"] == "白沙新闻 https://example.cn/baisha/0915" and len(answers["photos"]) == 2

    admin.goto(f"{base}/admin/events/{code}/report")
    admin.click("button.approve")
    admin.wait_for_url(f"{base}/admin/events/{code}/report#review")
    assert report_row(db)[2] == "approved"
    admin.locator(".chosen-photos button").first.click()  # 选入总结
    admin.locator(".chosen-photos .badge").first.wait_for()
    admin.goto(base + "/admin")
    shoot(admin, "report-dashboard-admin-360")
    assert admin.evaluate("document.documentElement.scrollWidth") <= 360
    row = admin.locator(".progress tr", has_text="白沙黎族自治县").inner_text().split()
    assert row == ["白沙黎族自治县", "1", "1", "1", "1", "0", "0"]
    page.goto(f"{base}/admin/events/{code}")
    assert "已通过" in page.locator(".report-status").inner_text()

    admin.goto(f"{base}/admin/report?date_from=2026-09-01&date_to=2026-09-30&approved=1")
    with admin.expect_download() as download:
        admin.click("text=10月14日报送材料包")
    with zipfile.ZipFile(download.value.path()) as archive:
        photos = sorted(n for n in archive.namelist() if n.startswith("图片/"))
        assert photos == [f"图片/白沙黎族自治县/2026-09-15 消费品安全进校园（白沙中学）/{n}.jpg" for n in (1, 2)]
        assert all(info.flag_bits & 0x800 for info in archive.infolist())  # UTF-8 names: Explorer, WPS, 7-Zip
        sheet = openpyxl.load_workbook(io.BytesIO(archive.read("统计表.xlsx"))).active
        total = next(row for row in sheet.iter_rows(values_only=True) if row[0] == "合计")
        assert total[2:5] == (1, 1, 260)  # planned, held, people reached (from the report)
    staff.close()
    office.close()


def test_a_queued_report_whose_sign_in_ended_is_kept_and_sent_after_signing_in_again(site, browser, tmp_path):
    base, db = site
    context = phone(browser)
    page = context.new_page()
    sign_in(page, base, "wang")
    code = add_event(page, base)
    page.goto(f"{base}/admin/events/{code}/report")
    context.set_offline(True)
    fill_report(page, pictures(tmp_path)[:1])
    page.click("button.submit")
    page.get_by_text(SAVED).wait_for()
    with sqlite3.connect(db) as connection:  # the session ends meanwhile (expired, or signed out elsewhere)
        connection.execute("DELETE FROM sessions")

    context.set_offline(False)
    page.get_by_text("请重新登录后再提交").wait_for()
    shoot(page, "report-sign-in-first-360")
    assert report_row(db) is None

    sign_in(page, base, "wang")  # a new session, with a new CSRF token
    page.goto(f"{base}/admin/events/{code}/report")  # the queued report goes with this page's token
    page.locator("section.thanks").wait_for()
    _, answers, _ = report_row(db)
    assert answers["people"] == 260 and len(answers["photos"]) == 1
    context.close()


def test_a_report_saved_after_the_sign_in_ended_keeps_the_typed_answers(site, browser, tmp_path):
    base, db = site
    context = phone(browser)
    page = context.new_page()
    sign_in(page, base, "wang")
    code = add_event(page, base)
    page.goto(f"{base}/admin/events/{code}/report")
    fill_report(page, [])
    with sqlite3.connect(db) as connection:
        connection.execute("DELETE FROM sessions")
    page.click("button.submit")
    page.get_by_text("登录已过期，这次没有保存").wait_for()
    assert page.locator("form.survey").is_visible() and page.input_value("#i-people") == "260"
    shoot(page, "report-sign-in-ended-online-360")
    sign_in(page, base, "wang")
    page.goto(f"{base}/admin/events/{code}/report")
    assert page.input_value("#i-people") == "260"  # from the draft kept on the phone
    assert page.input_value("#i-summary").startswith("在白沙中学")
    page.click("button.submit")
    page.locator("section.thanks").wait_for()  # the draft brought no stale token with it
    assert report_row(db)[1]["people"] == 260
    context.close()
