"""The office in Chromium: filter the results with the date pickers, download the Excel file,
and get the rows the page counted in a file named by the filters."""

import datetime as dt
import re
import shutil
from pathlib import Path

import openpyxl
import pytest

from server.clock import set_now
from server.forms import load_form
from server.storage import Submission, Writer
from tests import test_browser
from tests.conftest import ADMIN_PASSWORD, ROOT, TEST_FORMS, run, running_server

pytestmark = pytest.mark.browser
ARTIFACTS = ROOT / "tests" / "artifacts"
GOOD = {"unit": "白沙中学", "venue": "school", "satisfaction": 4, "topics": ["食品", "电梯"]}


def add_event(workdir: Path, county: str) -> str:
    done = run("event", "add", "all-types", "--title", f"{county}质量课", "--county", county, cwd=workdir)
    assert done.returncode == 0, done.stderr
    return done.stdout.decode().split()[0]


@pytest.fixture
def site(tmp_path):
    """A running server whose 白沙 and 海口 events have answers in August, September and October."""
    shutil.copytree(TEST_FORMS, tmp_path / "forms")
    with running_server(tmp_path) as port:
        assert (
            run("user", "add", "boss", "--role", "admin", input=f"{ADMIN_PASSWORD}\n".encode(), cwd=tmp_path).returncode
            == 0
        )
        form = load_form(tmp_path / "forms" / "all-types.toml")
        writer = Writer(tmp_path / "data" / "quality-forms.db")
        writer.start()
        try:
            for code in (add_event(tmp_path, "白沙"), add_event(tmp_path, "海口")):
                for n, day in enumerate(
                    (dt.date(2026, 8, 31), dt.date(2026, 9, 1), dt.date(2026, 9, 20), dt.date(2026, 10, 1))
                ):
                    set_now(dt.datetime.combine(day, dt.time(20, 0)))
                    writer.submit(Submission(form, f"browser-{code}-{n}-padding-key", GOOD, code)).result()
        finally:
            set_now(None)
            writer.close()
        yield f"http://127.0.0.1:{port}"


browser = test_browser.browser  # the same headless Chromium fixture


def test_the_office_filters_with_date_pickers_and_downloads_those_rows(site, browser, tmp_path):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN", accept_downloads=True)
    page = context.new_page()
    page.goto(f"{site}/admin/login")
    page.fill("#username", "boss")
    page.fill("#password", ADMIN_PASSWORD)
    page.click("button.submit")
    page.goto(f"{site}/admin/forms/all-types")
    assert page.locator("input[name=date_from]").get_attribute("type") == "date"
    page.select_option("select[name=county]", "白沙黎族自治县")
    page.fill("input[name=date_from]", "2026-09-01")
    page.fill("input[name=date_to]", "2026-09-30")
    page.click("form.filters button[type=submit]")
    assert re.search(r"county=%E7%99%BD.*date_from=2026-09-01&date_to=2026-09-30", page.url)
    counted = int(page.locator("p.totals strong").first.inner_text())
    assert counted == 2  # 白沙 on 9-01 and 9-20; not August, October or 海口
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "office-results-export-links.png"), full_page=True)
    with page.expect_download() as waiting:
        page.click("p.exports a:text-is('Excel')")
    download = waiting.value
    assert download.suggested_filename == "all-types_白沙_2026-09.xlsx"
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    sheet = openpyxl.load_workbook(path).active
    rows = list(sheet.iter_rows(min_row=2, values_only=True))
    assert len(rows) == counted
    assert {row[1].date() for row in rows} == {dt.date(2026, 9, 1), dt.date(2026, 9, 20)}  # Excel dates
    context.close()
