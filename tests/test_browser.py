"""A resident on a cheap phone in WeChat, in headless Chromium: with and without script.

Screenshots land in tests/artifacts/ for people to look at.
"""

import datetime as dt
import os
import re
import shutil
import time
import zipfile
from pathlib import Path

import pytest

from server.campaign import load_campaign
from server.clock import now
from server.forms import form_files
from tests.conftest import OFFICE_ONLY_FORMS, ROOT, TEST_FORMS, run, running_server

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")

FORMS_RESCAN_SECONDS = 2.0  # server/forms.py FormCatalog's rescan_seconds
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "tests" / "artifacts"
PHONE = {"width": 360, "height": 740}
WECHAT_UA = (
    "Mozilla/5.0 (Linux; Android 10; V2001A Build/QP1A.190711.020; wv) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Version/4.0 Chrome/86.0.4240.99 XWEB/4317 MMWEBSDK/20220903 Mobile Safari/537.36 MMWEBID/1234 "
    "MicroMessenger/8.0.28.2240(0x28001C57) WeChat/arm64 Weixin NetType/4G Language/zh_CN ABI/arm64"
)
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip

RESIDENTS_FORMS = [p.stem for p in form_files(ROOT / "forms") if p.stem not in OFFICE_ONLY_FORMS]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("site")
    shutil.copytree(TEST_FORMS, workdir / "forms")
    for bundled in (ROOT / "forms").glob("*.toml"):
        shutil.copy(bundled, workdir / "forms")
    with running_server(workdir) as port:
        yield f"http://127.0.0.1:{port}", workdir


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("CI must run the browser tests: .ci/run installs Debian's chromium")
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def phone(browser, javascript=True):
    return browser.new_context(
        viewport=PHONE, user_agent=WECHAT_UA, java_script_enabled=javascript, locale="zh-CN", device_scale_factor=2
    )


def shoot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def add_form(folder: Path, form_id: str, text: str) -> None:
    """A form file added to the running site's folder (once: the site is shared by the module).

    Each server process looks at the folder again on a request at least two seconds after its
    last look, so two seconds after the file is written every process serves the form: without
    the wait, a page served by one process could be posted to the other, which answers 404.
    """
    path = folder / f"{form_id}.toml"
    if not path.exists():
        path.write_text(text, encoding="utf-8")
        time.sleep(FORMS_RESCAN_SECONDS + 0.2)


def open_page(page, url: str) -> None:
    """Open a page of the site, which must answer 200."""
    assert page.goto(url).status == 200, url


def count_responses(workdir) -> int:
    from server.storage import connect

    return connect(workdir / "data" / "quality-forms.db")["responses"].count


def test_with_script_show_if_inline_checks_and_thanks_swap(site, browser):
    base, workdir = site
    before = count_responses(workdir)
    context = phone(browser)
    page = context.new_page()
    page.goto(f"{base}/f/all-types")
    shoot(page, "form-all-types-360")
    why = page.locator("#q-why")
    assert why.is_hidden()  # shown only when satisfaction <= 2 and venue is school
    page.get_by_label("学校").check()
    page.locator("#q-satisfaction label", has_text="1").click()
    assert why.is_visible()
    page.locator("#q-satisfaction label", has_text="5").click()
    assert why.is_hidden()

    page.fill("#i-people", "abc")
    page.locator("#i-people").blur()
    page.locator("#e-people", has_text="请填写整数").wait_for()  # inline check via htmx

    page.fill("#i-people", "25")
    page.locator("#i-people").blur()
    page.locator("#e-people:empty").wait_for(state="attached")
    page.click("button.submit")
    page.locator("#e-unit", has_text="此项为必填").wait_for()  # the 422 fragment swapped in
    assert page.input_value("#i-people") == "25"  # nothing typed is lost

    page.fill("#i-unit", "海口市第一中学")
    page.click("button.submit")
    page.locator("section.thanks").wait_for()
    assert page.url == f"{base}/f/all-types"  # swapped in place, no reload
    shoot(page, "thanks-360")
    assert count_responses(workdir) == before + 1
    context.close()


def test_without_script_plain_post_422_and_thanks_page(site, browser):
    base, workdir = site
    before = count_responses(workdir)
    context = phone(browser, javascript=False)
    page = context.new_page()
    page.goto(f"{base}/f/all-types")
    assert page.locator("#q-why").is_visible()  # without script every question shows, with its condition
    page.fill("#i-people", "abc")
    page.click("button.submit")
    assert page.locator("#e-unit").inner_text() == "此项为必填"
    assert page.locator("#e-people").inner_text() == "请填写整数，如 25"
    assert page.input_value("#i-people") == "abc"
    shoot(page, "form-errors-no-js-360")
    page.fill("#i-unit", "琼海市嘉积镇")
    page.fill("#i-people", "30")
    page.click("button.submit")
    assert page.url == f"{base}/f/all-types/thanks"
    assert "谢谢！" in page.inner_text("main")
    assert count_responses(workdir) == before + 1
    context.close()


@pytest.mark.parametrize("form_id", RESIDENTS_FORMS)
def test_bundled_form_renders_on_a_phone(site, browser, form_id):
    base, _ = site
    context = phone(browser)
    page = context.new_page()
    page.goto(f"{base}/f/{form_id}")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # no sideways scrolling
    shoot(page, f"form-{form_id}-360")
    context.close()


def test_landing_page_on_a_phone(site, browser):
    base, _ = site
    context = phone(browser)
    page = context.new_page()
    page.goto(base)
    campaign = load_campaign(ROOT / "forms" / "campaign.toml")
    assert page.inner_text("h1") == (campaign.theme or f"{campaign.year}年“质量月”活动")
    shoot(page, "landing-360")
    context.close()


def pdf_pages(pdf: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page[^s]", pdf))


def test_qr_svg_rasterised_by_chromium_scans_and_the_poster_prints_on_one_a4_page(site, browser):
    from tests.test_events import decode_png

    base, workdir = site
    added = run("event", "add", "all-types", "--title", "消费品安全进校园", "--venue-type", "学校", "--county", "白沙",
                "--venue", "白沙中学", "--date", now().date().isoformat(), "--organizer", "省教育厅", cwd=workdir)  # fmt: skip
    code = added.stdout.decode().split()[0]
    page = browser.new_page(viewport={"width": 400, "height": 400})
    page.goto(f"{base}/e/{code}/qr.svg")
    assert decode_png(page.screenshot()) == f"{base}/e/{code}"
    page.close()

    page = browser.new_page(viewport={"width": 794, "height": 1123})  # A4 at 96 dpi
    page.goto(f"{base}/e/{code}/poster")
    page.emulate_media(media="print")
    shoot(page, "poster-a4")
    assert decode_png(page.screenshot()) == f"{base}/e/{code}"  # the printed code scans too
    pdf = page.pdf(prefer_css_page_size=True, print_background=True)
    ARTIFACTS.joinpath("poster-a4.pdf").write_bytes(pdf)
    assert pdf_pages(pdf) == 1
    page.close()


def test_a_sheet_of_posters_prints_one_page_per_event(site, browser):
    _, workdir = site
    for title in ("进机关", "进企业", "进社区"):
        run("event", "add", "all-types", "--title", title, "--county", "琼中", "--date", "2022-09-20", cwd=workdir)
    sheet = workdir / "sheet.html"
    result = run(
        "posters", "--county", "琼中", "--out", str(sheet), cwd=workdir, env={"QF_BASE_URL": "https://q.example"}
    )
    assert result.returncode == 0, result.stderr
    page = browser.new_page()
    page.goto(sheet.as_uri())
    assert page.locator(".poster").count() == 3
    assert pdf_pages(page.pdf(prefer_css_page_size=True, print_background=True)) == 3
    page.close()


def fill_like_a_resident(page, form) -> None:
    """Answer every question on screen, in order (so questions that appear are answered too)."""
    for field in form.answer_fields:
        box = page.locator(f"#q-{field.name}")
        if not box.is_visible():
            continue  # a show_if question that these answers do not ask
        if field.type == "rating":  # tap the labels, as a thumb does
            box.locator("label.rating-point, label.option").last.click()  # satisfied residents: no follow-up asked
        elif field.type == "choice":
            box.locator("label.option").first.click()
        elif field.type == "multi":
            for index in range(max(1, field.min_choices or 0)):
                box.locator("label.option").nth(index).click()
        elif field.type == "consent":
            box.locator("label.consent").click()
        elif field.type == "grid":  # each row's highest point
            for row in field.rows:
                box.get_by_role("radiogroup", name=row.label).locator("label.rating-point").last.click()
        elif field.type == "region":  # with script two lists, without one grouped list
            if page.locator(f"#q-{field.name} select.region-part").count():
                page.select_option(f"#i-{field.name}", "白沙黎族自治县")
                page.locator(f"#q-{field.name} select.region-part").nth(1).select_option("牙叉镇")
            else:
                page.select_option(f"#i-{field.name}", "牙叉镇")
        else:
            page.fill(f"#i-{field.name}", sample_answer(field))
    if form.asks_privacy_consent:  # personal answers were given: the box is shown (with script, only now)
        page.locator("label.option", has=page.locator("input[name=_consent]")).click()


def sample_answer(field) -> str:
    if field.type in ("text", "textarea"):
        return "琼海市嘉积镇居民"[: field.max_length].ljust(field.min_length or 0, "好")
    if field.type in ("integer", "number"):
        return str(field.min if field.min is not None else 1)
    return {"phone": "138 1234 5678", "email": "resident@example.cn", "date": field.min or "2022-09-15"}[field.type]


@pytest.mark.parametrize("javascript", [True, False], ids=["script", "no-script"])
@pytest.mark.parametrize("form_id", RESIDENTS_FORMS)
def test_a_resident_fills_each_bundled_form(site, browser, form_id, javascript):
    from server.forms import load_form
    from server.storage import connect

    base, workdir = site
    form = load_form(ROOT / "forms" / f"{form_id}.toml")
    db = connect(workdir / "data" / "quality-forms.db")
    before = db.execute("SELECT count(*) FROM responses WHERE form_id = ?", [form_id]).fetchone()[0]
    context = phone(browser, javascript=javascript)
    page = context.new_page()
    page.goto(f"{base}/f/{form_id}")
    fill_like_a_resident(page, form)
    page.click("button.submit")
    page.wait_for_selector("#thanks")
    assert "提交成功" in page.inner_text("main")
    if not javascript:  # a quiz's thank-you page carries the key of the response it scores
        assert page.url.split("?key=")[0] == f"{base}/f/{form_id}/thanks"
    if form.quiz:
        assert "您答对了" in page.inner_text("main")
    shoot(page, f"thanks-{form_id}-{'js' if javascript else 'nojs'}-360")
    context.close()
    after = db.execute("SELECT count(*) FROM responses WHERE form_id = ?", [form_id]).fetchone()[0]
    assert after == before + 1


def test_the_office_signs_in_and_sees_the_dashboard_and_results(site, browser):
    base, workdir = site
    assert run("user", "add", "boss", "--role", "admin", input=b"correct horse battery\n", cwd=workdir).returncode == 0
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page = context.new_page()
    page.goto(f"{base}/admin/forms/five-into-session")
    assert page.url == f"{base}/admin/login"  # sent to sign in first
    page.fill("#username", "boss")
    page.fill("#password", "correct horse battery")
    page.click("button.submit")
    assert page.url == f"{base}/admin"
    shoot(page, "office-dashboard")
    page.goto(f"{base}/admin/forms/five-into-session")
    assert page.locator("svg.chart").count() >= 3  # bar charts of choice, multi and rating questions
    shoot(page, "office-results")
    page.goto(f"{base}/admin/report")
    shoot(page, "office-report")
    with page.expect_download() as download:  # the 10月14日 package, saved as the office saves it
        page.click("text=10月14日报送材料包")
    assert re.fullmatch(r"质量月报送材料-\d{8}-\d{6}\.zip", download.value.suggested_filename)
    with zipfile.ZipFile(download.value.path()) as archive:
        assert archive.namelist()[:3] == ["统计表.xlsx", "活动清单.xlsx", "活动总结.docx"]
    context.close()


@pytest.mark.parametrize("javascript", [True, False], ids=["script", "no-script"])
def test_at_an_event_a_resident_answers_only_what_the_event_does_not_know(site, browser, javascript):
    from server.clock import now
    from server.storage import connect
    from tests.test_event_fields import FORM

    base, workdir = site
    forms = workdir / "forms"
    add_form(forms, "town", FORM)
    added = run("event", "add", "town", "--title", "质量文化乡镇行", "--venue-type", "学校", "--county", "白沙",
                "--township", "牙叉镇", "--date", now().date().isoformat(), cwd=workdir)  # fmt: skip
    assert added.returncode == 0, added.stderr
    code = added.stdout.decode().split()[0]
    context = phone(browser, javascript)
    page = context.new_page()
    open_page(page, f"{base}/e/{code}?src=poster")
    fields = page.locator(".field:visible")
    assert fields.count() == 1 and "满意" in fields.first.inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.get_by_role("button", name="提交").click()
    page.wait_for_selector(".error-summary")
    assert page.evaluate("document.activeElement.className") == "error-summary"
    assert page.locator(".error-summary li").all_inner_texts() == ["您对本次活动满意吗？ 请选择一个分数"]
    shoot(page, f"event-bound-errors-{'js' if javascript else 'nojs'}")
    page.locator(".error-summary a").click()
    page.get_by_text("很满意", exact=True).click()
    shoot(page, f"event-bound-worded-rating-{'js' if javascript else 'nojs'}")
    page.get_by_role("button", name="提交").click()
    page.wait_for_selector(".thanks-title")
    context.close()
    row = (
        connect(workdir / "data" / "quality-forms.db")
        .execute("SELECT answers FROM responses WHERE event = ? ORDER BY id DESC", [code])
        .fetchone()
    )
    assert row is not None and '"township":"牙叉镇"' in row[0] and '"src":"poster"' in row[0]
    assert '"venue":"school"' in row[0] and '"satisfaction":5' in row[0]


def test_the_consent_box_appears_with_the_first_personal_answer(site, browser):
    base, _ = site
    context = phone(browser)
    page = context.new_page()
    page.goto(f"{base}/f/all-types")
    consent = page.locator(".consent-box")
    assert consent.is_hidden()  # an anonymous resident never sees it
    page.locator("details.privacy-full, .privacy details").first.locator("summary").click()
    assert page.get_by_text("活动结束 90 天后删除").is_visible()  # the full notice unfolds where it is needed
    page.fill("#i-mobile", "13812345678")
    assert consent.is_visible()
    shoot(page, "privacy-consent-360")
    page.fill("#i-mobile", "")
    assert consent.is_hidden()
    context.close()


@pytest.mark.parametrize("javascript", [True, False], ids=["script", "no-script"])
def test_a_grid_fits_a_phone_and_a_zoomed_page_without_sideways_scrolling(site, browser, javascript):
    from tests.test_grid import FORM

    base, workdir = site
    add_form(workdir / "forms", "five", FORM)
    context = phone(browser, javascript)
    page = context.new_page()
    open_page(page, f"{base}/f/five")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shoot(page, f"grid-360-{'js' if javascript else 'nojs'}")
    page.evaluate("document.documentElement.style.fontSize = '200%'")  # text at 200 %
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    for row in ("安全", "质量", "服务", "维权", "价格"):
        page.get_by_role("radiogroup", name=row).get_by_text("4", exact=True).click()
    page.get_by_role("button", name="提交").click()
    page.wait_for_selector("#thanks")
    context.close()


@pytest.mark.parametrize("javascript", [True, False], ids=["script", "no-script"])
def test_a_resident_picks_county_then_town(site, browser, javascript):
    from server.storage import connect
    from tests.test_region import FORM

    base, workdir = site
    add_form(workdir / "forms", "town-region", FORM)
    context = phone(browser, javascript)
    page = context.new_page()
    open_page(page, f"{base}/f/town-region")
    if javascript:  # two short lists: the county's towns only
        page.select_option("#i-place", "白沙黎族自治县")
        towns = page.locator("#q-place select.region-part").nth(1)
        assert towns.locator("option").count() == 12  # 请选择乡镇 and 白沙's 11
        towns.select_option("牙叉镇")
    else:
        page.select_option("#i-place", "牙叉镇")
    shoot(page, f"region-360-{'js' if javascript else 'nojs'}")
    page.get_by_role("button", name="提交").click()
    page.wait_for_selector("#thanks")
    context.close()
    row = (
        connect(workdir / "data" / "quality-forms.db")
        .execute("SELECT answers FROM responses WHERE form_id = 'town-region' ORDER BY id DESC")
        .fetchone()
    )
    assert row[0] == '{"place":"白沙黎族自治县/牙叉镇"}'


def camera_photo(path: Path) -> Path:
    """A 12-megapixel camera JPEG of 3 MB or more, sideways (EXIF orientation 6) with a GPS position."""
    from PIL import Image

    gradient = Image.linear_gradient("L").resize((4000, 3000))
    noise = Image.effect_noise((4000, 3000), 10)
    image = Image.merge("RGB", (gradient, noise, Image.blend(gradient, noise, 0.5)))
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x8825] = {1: "N", 2: (18.0, 15.0, 0.0), 3: "E", 4: (109.0, 30.0, 0.0)}
    image.save(path, "JPEG", quality=92, exif=exif)
    assert path.stat().st_size >= 3 * 1024 * 1024
    return path


def stored_photo(workdir):
    import json

    from PIL import Image

    from server.storage import connect

    row = (
        connect(workdir / "data" / "quality-forms.db")
        .execute("SELECT answers FROM responses ORDER BY id DESC")
        .fetchone()
    )
    [name] = json.loads(row[0])["pictures"]
    path = workdir / "data" / "photos" / name[:2] / name
    with Image.open(path) as image:
        return image.size, image.getexif()


def test_with_script_a_camera_photo_is_shrunk_on_the_phone_before_upload(site, browser, tmp_path):
    base, workdir = site
    photo = camera_photo(tmp_path / "IMG_20220915_101010.jpg")
    context = phone(browser)
    page = context.new_page()
    sent = []
    page.on("request", lambda r: sent.append(r) if r.method == "POST" and r.url.endswith("/f/photo-report") else None)
    page.goto(f"{base}/f/photo-report")
    pickers = page.locator("input[name=pictures]")
    assert pickers.nth(0).is_visible() and pickers.nth(1).is_hidden()  # one picker at a time
    page.fill("#i-place", "琼海市嘉积镇农贸市场")
    pickers.nth(0).set_input_files(str(photo))
    page.locator("#q-pictures .photo-preview").wait_for()
    assert pickers.nth(1).is_visible() and pickers.nth(2).is_hidden()
    shoot(page, "photo-chosen-360")
    page.click("button.submit")
    page.locator("section.thanks").wait_for()
    shoot(page, "photo-thanks-360")
    [request] = sent
    assert 100_000 < int(request.header_value("content-length")) <= 400 * 1024  # 3.9 MB became this
    size, exif = stored_photo(workdir)
    assert size == (1200, 1600)  # upright, and made smaller on the phone (the server keeps up to 2560)
    assert not exif
    context.close()


def test_without_script_the_original_photo_is_accepted(site, browser, tmp_path):
    base, workdir = site
    photo = camera_photo(tmp_path / "IMG_20220915_101011.jpg")
    context = phone(browser, javascript=False)
    page = context.new_page()
    sent = []
    page.on("request", lambda r: sent.append(r) if r.method == "POST" and r.url.endswith("/f/photo-report") else None)
    page.goto(f"{base}/f/photo-report")
    assert page.locator("input[name=pictures]").count() == 3  # all pickers shown without script
    shoot(page, "photo-no-script-360")
    page.fill("#i-place", "琼海市嘉积镇农贸市场")
    page.locator("input[name=pictures]").nth(0).set_input_files(str(photo))
    page.click("button.submit")
    assert page.url == f"{base}/f/photo-report/thanks"
    [request] = sent
    assert int(request.header_value("content-length")) > photo.stat().st_size  # the original, whole
    size, exif = stored_photo(workdir)
    assert size == (1920, 2560)  # the original, turned upright and kept at 2560 on its longest side
    assert not exif
    context.close()


def test_with_script_chosen_photos_come_back_after_a_page_with_errors(site, browser, tmp_path):
    base, workdir = site
    photo = camera_photo(tmp_path / "IMG_20220915_101012.jpg")
    context = phone(browser)
    page = context.new_page()
    page.goto(f"{base}/f/photo-report")
    page.locator("input[name=pictures]").nth(0).set_input_files(str(photo))
    page.locator("#q-pictures .photo-preview").wait_for()
    page.click("button.submit")  # the place is missing
    page.locator("#e-place", has_text="此项为必填").wait_for()
    page.locator("#q-pictures .photo-preview").wait_for()  # the picture is chosen still
    assert page.locator("input[name=pictures]").nth(0).evaluate("input => input.files.length") == 1
    assert "照片没有保存" not in page.content()
    shoot(page, "photo-422-360")
    page.fill("#i-place", "琼海市嘉积镇农贸市场")
    page.click("button.submit")
    page.locator("section.thanks").wait_for()
    size, _ = stored_photo(workdir)
    assert size == (1200, 1600)
    context.close()


def test_the_office_sees_a_responses_photos_as_thumbnails(site, browser, tmp_path):
    from server.storage import connect

    base, workdir = site
    context = phone(browser)
    page = context.new_page()
    page.goto(f"{base}/f/photo-report")
    page.fill("#i-place", "琼海市嘉积镇农贸市场")
    page.locator("input[name=pictures]").nth(0).set_input_files(str(camera_photo(tmp_path / "a.jpg")))
    page.locator("#q-pictures .photo-preview").wait_for()
    page.click("button.submit")
    page.locator("section.thanks").wait_for()
    context.close()
    db = connect(workdir / "data" / "quality-forms.db")
    [response_id] = db.execute("SELECT max(id) FROM responses WHERE form_id = 'photo-report'").fetchone()
    assert run("user", "add", "chen", "--role", "admin", input=b"correct horse battery\n", cwd=workdir).returncode == 0
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page = context.new_page()
    page.goto(f"{base}/admin/responses/{response_id}")
    page.fill("#username", "chen")
    page.fill("#password", "correct horse battery")
    page.click("button.submit")
    page.goto(f"{base}/admin/responses/{response_id}")
    thumbnail = page.locator("dd.photos img")
    thumbnail.wait_for()
    page.wait_for_function("() => document.querySelector('dd.photos img').naturalWidth > 0")
    assert thumbnail.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [240, 320]  # upright
    shoot(page, "office-response-photos")
    with page.expect_response(lambda r: "/photos/" in r.url and not r.url.endswith("/thumb")) as full:
        thumbnail.click()
    assert full.value.headers["content-type"] == "image/jpeg"
    context.close()


def signed_in_page(context, base: str, username: str):
    """A page of a browser context in which an office account (made by the test) has signed in."""
    page = context.new_page()
    page.goto(f"{base}/admin/login")
    page.fill("#username", username)
    page.fill("#password", "correct horse battery")
    page.click("button.submit")
    page.wait_for_url(f"{base}/admin")
    return page


def _send(url: str, answers: list[tuple[str, str]]) -> None:
    """One resident's answers posted to a form page as the page itself would (its own key)."""
    import urllib.parse
    import urllib.request

    with urllib.request.urlopen(url) as blank:
        key = re.search(r'name="_key" value="([^"]+)"', blank.read().decode()).group(1)
    body = urllib.parse.urlencode([*answers, ("_key", key)]).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=body)) as sent:
        assert sent.status == 200 and "/thanks" in sent.url


def test_the_office_edits_an_event_and_crosses_two_questions_on_a_desktop_and_a_phone(site, browser):
    base, workdir = site
    assert run("user", "add", "zhou", "--role", "admin", input=b"correct horse battery\n", cwd=workdir).returncode == 0
    desk = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page = signed_in_page(desk, base, "zhou")
    page.goto(f"{base}/admin/events")
    assert page.locator("#ev-venue-type").input_value() == ""  # nothing chosen for the user
    page.select_option("#ev-form", "five-into-session")
    page.fill("#ev-title", "质量宣讲进校园")
    today = now().date()
    page.fill("#ev-date", today.isoformat())  # a date picker: <input type=date>
    page.select_option("#ev-county", "白沙黎族自治县")
    page.click("#new-event button.submit")
    assert "请填写场所类型" in page.locator(".notice").inner_text()  # the form takes it from the event
    page.select_option("#ev-venue-type", "学校")
    page.click("#new-event button.submit")
    page.wait_for_url(re.compile(r".*/admin/events/[A-Z0-9]+$"))
    code = page.url.rsplit("/", 1)[-1]
    page.click("text=修改活动信息")
    page.fill("#ev-title", "质量宣讲进白沙中学")
    page.fill("#ev-date", (today + dt.timedelta(days=1)).isoformat())
    shoot(page, "office-event-edit-desktop")
    page.click("#edit-event button.submit")
    assert (
        page.locator("h1").inner_text() == "质量宣讲进白沙中学" and "已保存修改" in page.locator(".notice").inner_text()
    )
    assert page.url.endswith(f"/admin/events/{code}?done=saved")  # the same code: printed posters still work
    page.click("#close-event")
    page.wait_for_url(re.compile(r".*\?done=closed$"))
    assert "已停止收集" in page.locator(".answers").inner_text()
    resident = page.context.new_page()
    closed = resident.goto(f"{base}/e/{code}")
    assert closed.status == 410 and "的问卷已停止收集" in resident.inner_text("main")
    page.click("#reopen-event")
    page.wait_for_url(re.compile(r".*\?done=reopened$"))
    assert resident.goto(f"{base}/e/{code}").status == 200  # not the 410 the browser was given before

    for satisfaction, topics in (("5", ["food", "elevator"]), ("4", ["food"]), ("5", ["fuel"])):
        _send(
            f"{base}/e/{code}",
            [("unit_name", "白沙中学"), ("satisfaction", satisfaction)] + [("topics", t) for t in topics],
        )
    page.goto(f"{base}/admin/forms/five-into-session?event={code}")
    page.click("text=交叉分析")
    page.select_option("#ct-rows", "satisfaction")
    page.select_option("#ct-columns", "topics")
    page.click("#crosstab-form button")
    first = page.locator("#crosstab-table tbody tr").first
    assert first.locator("th").inner_text() == "5 分 很满意"
    assert [c.split("\n")[0] for c in first.locator("td").all_inner_texts()] == ["1", "1", "1", "2"]
    assert page.locator("svg.stacked rect").count() == 4
    shoot(page, "office-crosstab-desktop")
    with page.expect_download() as workbook:
        page.click("#crosstab-xlsx")
    assert workbook.value.suggested_filename.startswith("five-into-session-crosstab-satisfaction-topics-")
    crossing = page.url
    desk.close()

    small = phone(browser)
    page = signed_in_page(small, base, "zhou")
    for path, name in ((crossing, "office-crosstab-phone"), (f"{base}/admin/events/{code}", "office-event-phone")):
        page.goto(path)
        if name == "office-event-phone":
            page.click("text=修改活动信息")
        # Nothing wider than the phone but the table's own scrolling box.
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], name
        shoot(page, name)
    small.close()
