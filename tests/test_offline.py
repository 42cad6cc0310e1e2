"""Drafts and offline sending, in headless Chromium on a 360 px phone with script on.

What is typed stays on the phone across reloads; the service worker serves the form page
without network; a submission made offline is queued with its submission key and sent
when the network returns, and however often it is sent, one response is stored. A photo
form's submission is queued the same way, pictures and all (in IndexedDB).
"""

import gzip
import json
import shutil
import sqlite3

import pytest

from server.app import SECURITY_HEADERS
from tests import test_browser
from tests.conftest import ROOT, running_server
from tests.test_browser import phone, shoot

pytestmark = pytest.mark.browser
FORM = "/f/consumer-survey"
SAVED = "已保存，联网后自动提交"
browser = test_browser.browser  # the same headless Chromium fixture


@pytest.fixture
def site(tmp_path):
    """A fresh server per test, so the database holds only this test's responses."""
    (tmp_path / "forms").mkdir()
    shutil.copy(ROOT / "forms" / "consumer-survey.toml", tmp_path / "forms")
    with running_server(tmp_path) as port:
        yield f"http://127.0.0.1:{port}", tmp_path / "data" / "quality-forms.db"


def stored(db) -> list[tuple[str, dict]]:
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT submission_key, answers FROM responses ORDER BY id").fetchall()
    return [(key, json.loads(answers)) for key, answers in rows]


def kept_by_service_worker(page) -> None:
    """Wait until the worker holds this page, so it can be reloaded without network."""
    page.wait_for_function("() => window.caches && caches.match(location.pathname).then(Boolean)", timeout=10_000)


def fill_survey(page) -> None:
    page.get_by_label("听说过，也了解内容", exact=True).check()
    page.get_by_label("知道，而且用过", exact=True).check()  # shows two conditional questions
    page.get_by_label("宣传活动、宣传单", exact=True).check()
    page.locator("#q-rating_12315 label", has_text="满意").nth(2).click()  # 很不满意, 不满意, then 满意: the 4th point
    page.get_by_label("食品", exact=True).check()
    page.get_by_label("网购商品", exact=True).check()
    page.fill("#i-online_trouble", "快递的儿童玩具 缺零件 & 没有说明书")
    page.get_by_label("没有", exact=True).check()
    page.fill("#i-email", "resident@example.com")  # a personal answer: the consent box appears
    page.get_by_label("我已阅读并同意个人信息说明").check()


def assert_survey_filled(page) -> None:
    assert page.get_by_label("听说过，也了解内容", exact=True).is_checked()
    assert page.get_by_label("知道，而且用过", exact=True).is_checked()
    assert page.get_by_label("宣传活动、宣传单", exact=True).is_checked()
    assert page.locator("#q-rating_12315 input[value='4']").is_checked()
    assert page.get_by_label("食品", exact=True).is_checked()
    assert page.get_by_label("网购商品", exact=True).is_checked()
    assert not page.get_by_label("家用电器", exact=True).is_checked()
    assert page.input_value("#i-online_trouble") == "快递的儿童玩具 缺零件 & 没有说明书"
    assert page.get_by_label("没有", exact=True).is_checked()
    assert page.input_value("#i-email") == "resident@example.com"
    assert page.get_by_label("我已阅读并同意个人信息说明").is_checked()
    assert page.locator("#q-food_worry").is_visible()  # conditions are applied to restored answers


EXPECTED_ANSWERS = {
    "fangxin_aware": "know_well",
    "know_12315": "used",
    "how_known_12315": ["event"],
    "rating_12315": 4,
    "concerns": ["food", "online"],
    "online_trouble": "快递的儿童玩具 缺零件 & 没有说明书",
    "had_problem": "no",
    "email": "resident@example.com",
}


def test_answers_come_back_after_reload_and_an_offline_submit_is_stored_once_online(site, browser):
    base, db = site
    context = phone(browser)
    page = context.new_page()
    page.goto(base + FORM)
    kept_by_service_worker(page)  # the first page a phone opens is kept too, without a second download
    fill_survey(page)

    context.set_offline(True)
    response = page.reload()  # the copy the first page handed to the service worker
    assert response.from_service_worker
    assert response.headers["content-security-policy"] == SECURITY_HEADERS["Content-Security-Policy"]
    assert page.locator("h1").first.inner_text() == "消费者质量意识调查"
    assert_survey_filled(page)

    context.set_offline(False)
    page.reload()  # from the network now: the answers come from the draft
    assert_survey_filled(page)

    context.set_offline(True)
    page.reload()  # the copy the worker kept from that network answer
    assert_survey_filled(page)
    page.click("button.submit")
    page.get_by_text(SAVED).wait_for()
    assert page.locator("form.survey").is_hidden()
    shoot(page, "offline-saved-360")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    assert stored(db) == []
    queue = page.evaluate("JSON.parse(localStorage.getItem('qf:queue'))")
    assert len(queue) == 1 and queue[0]["path"] == FORM and len(queue[0]["key"]) >= 16

    context.set_offline(False)  # the page hears `online` and sends the queued submission
    page.locator("section.thanks").wait_for()
    shoot(page, "offline-sent-thanks-360")
    assert stored(db) == [(queue[0]["key"], EXPECTED_ANSWERS)]
    assert page.evaluate("localStorage.getItem('qf:queue')") == "[]"

    page.reload()  # the draft was cleared once the answers were stored
    assert not page.get_by_label("听说过，也了解内容", exact=True).is_checked()
    assert page.input_value("#i-online_trouble") == ""
    assert page.input_value("input[name=_key]") != queue[0]["key"]
    context.close()


def test_a_queued_submission_sent_three_times_is_stored_once(site, browser):
    base, db = site
    context = phone(browser)
    page = context.new_page()
    page.goto(base + FORM)
    fill_survey(page)
    context.set_offline(True)
    page.click("button.submit")
    page.get_by_text(SAVED).wait_for()
    queued = page.evaluate("localStorage.getItem('qf:queue')")

    sends = []

    def lose_the_first_answer(route):
        response = route.fetch()  # the server stores the submission…
        sends.append(response.status)
        if len(sends) == 1:
            route.abort("connectionreset")  # …but the phone never hears back
        else:
            route.fulfill(response=response)

    page.route(
        base + FORM, lambda route: lose_the_first_answer(route) if route.request.method == "POST" else route.continue_()
    )
    with page.expect_event("requestfailed"):
        context.set_offline(False)  # `online`: the queued submission is sent
    assert sends == [200]
    assert page.get_by_text(SAVED).is_visible()  # still queued: the phone does not know it arrived
    assert page.evaluate("localStorage.getItem('qf:queue')") == queued

    page.evaluate("window.dispatchEvent(new Event('online'))")  # the next time the network comes back
    page.locator("section.thanks").wait_for()
    assert sends == [200, 200]
    assert page.evaluate("localStorage.getItem('qf:queue')") == "[]"

    # another tab had queued the same submission: it is sent on the next page load
    page.evaluate("queued => localStorage.setItem('qf:queue', queued)", queued)
    page.goto(base + "/")
    page.wait_for_function("() => localStorage.getItem('qf:queue') === '[]'")
    assert sends == [200, 200, 200]

    key = json.loads(queued)[0]["key"]
    assert stored(db) == [(key, EXPECTED_ANSWERS)]
    context.close()


def test_first_visit_with_the_service_worker_stays_under_30_kb_gzip(site, browser):
    """Everything a phone downloads on its first visit, the worker's own fetches included."""
    base, _ = site
    context = phone(browser)
    bodies = {}

    def keep(request):
        bodies.setdefault(request.url, request.response().body())

    context.on("requestfinished", keep)
    page = context.new_page()
    page.goto(base + FORM)
    kept_by_service_worker(page)
    page.wait_for_function("() => navigator.serviceWorker.controller !== null")
    for _ in range(100):  # the worker script's own "finished" event may come a little later
        if any(url.startswith(base + "/sw.js") for url in bodies):
            break
        page.wait_for_timeout(100)
    context.remove_listener("requestfinished", keep)  # a late fetch must not read a closed context
    sizes = {url.removeprefix(base): len(gzip.compress(body, 9)) for url, body in bodies.items()}
    assert {"/sw.js", FORM} <= {url.split("?")[0] for url in sizes}, sizes
    assert sum(sizes.values()) <= 30 * 1024, sizes
    context.close()


PHOTO_FORM = "/f/photo-report"
PLACE = "琼海市嘉积镇农贸市场"
# What photo.js keeps in IndexedDB: each queued send's key, path and fields (a picture as its type and size)
QUEUED_PHOTOS = """() => new Promise((resolve, reject) => {
  const open = indexedDB.open("qf-photos", 1);
  open.onerror = reject;
  open.onsuccess = () => {
    const all = open.result.transaction("queue").objectStore("queue").getAll();
    all.onerror = reject;
    all.onsuccess = () => { open.result.close(); resolve(all.result.map(item => ({
      key: item.key, path: item.path,
      entries: item.entries.map(e => e.length === 2 ? e : [e[0], e[2], e[1].type, e[1].size]),
    }))); };
  };
})"""


@pytest.fixture
def photo_site(tmp_path):
    (tmp_path / "forms").mkdir()
    shutil.copy(ROOT / "tests" / "forms" / "photo-report.toml", tmp_path / "forms")
    with running_server(tmp_path) as port:
        yield f"http://127.0.0.1:{port}", tmp_path


def photo_files(workdir) -> list[str]:
    return sorted(p.name for p in (workdir / "data" / "photos").rglob("*.jpg") if "thumbs" not in p.parts)


def choose_photo(page, path) -> None:
    page.fill("#i-place", PLACE)
    page.locator("input[name=pictures]").nth(0).set_input_files(str(path))
    page.locator("#q-pictures .photo-preview").wait_for()


def queue_photo_report_offline(context, page, base, path) -> dict:
    page.goto(base + PHOTO_FORM)
    kept_by_service_worker(page)
    page.wait_for_function("() => navigator.serviceWorker.controller !== null")
    context.set_offline(True)
    assert page.reload().from_service_worker  # photo.js and photo.css come from the worker too
    choose_photo(page, path)  # made smaller on the phone, without network
    page.click("button.submit")
    page.get_by_text(SAVED).wait_for()
    [item] = page.evaluate(QUEUED_PHOTOS)
    return item


def test_an_offline_photo_report_is_queued_with_its_pictures_and_stored_once_online(photo_site, browser, tmp_path):
    from PIL import Image

    base, workdir = photo_site
    db = workdir / "data" / "quality-forms.db"
    context = phone(browser)
    page = context.new_page()
    item = queue_photo_report_offline(context, page, base, test_browser.camera_photo(tmp_path / "IMG_0001.jpg"))
    assert page.locator("form.survey").is_hidden()
    shoot(page, "offline-photo-saved-360")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    assert stored(db) == []
    assert page.evaluate("localStorage.getItem('qf:queue')") is None  # not the plain forms' queue
    assert item["path"] == PHOTO_FORM and len(item["key"]) >= 16
    fields = [e for e in item["entries"] if e[0] != "pictures" and e[0] != "faces"]
    assert ["place", PLACE] in fields and ["_key", item["key"]] in fields
    [picture] = [e for e in item["entries"] if e[0] == "pictures" and e[1]]
    assert picture[1:3] == ["IMG_0001.jpg", "image/jpeg"] and 100_000 < picture[3] <= 400 * 1024  # the smaller copy

    sent = []
    page.on("request", lambda r: sent.append(r) if r.method == "POST" else None)
    context.set_offline(False)  # the page hears `online` and sends the queued report
    page.locator("section.thanks").wait_for()
    shoot(page, "offline-photo-sent-thanks-360")
    [request] = sent
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert request.headers["hx-request"] == "true"
    [(key, answers)] = stored(db)
    assert key == item["key"] and answers["place"] == PLACE
    [name] = answers["pictures"]
    assert photo_files(workdir) == [name]
    with Image.open(workdir / "data" / "photos" / name[:2] / name) as image:
        assert image.size == (1200, 1600)
    assert page.evaluate(QUEUED_PHOTOS) == []
    context.close()


def test_a_queued_photo_report_sent_three_times_stores_one_response_and_one_set_of_files(photo_site, browser, tmp_path):
    base, workdir = photo_site
    db = workdir / "data" / "quality-forms.db"
    context = phone(browser)
    page = context.new_page()
    item = queue_photo_report_offline(context, page, base, test_browser.camera_photo(tmp_path / "IMG_0002.jpg"))
    # kept aside in the page, pictures and all, to put back as another tab's copy
    page.evaluate("""() => new Promise(resolve => {
      const open = indexedDB.open("qf-photos", 1);
      open.onsuccess = () => {
        const all = open.result.transaction("queue").objectStore("queue").getAll();
        all.onsuccess = () => { window.keptCopy = all.result[0]; open.result.close(); resolve(); };
      };
    })""")

    sends = []

    def lose_the_first_answer(route):
        response = route.fetch()  # the server stores the report…
        sends.append(response.status)
        if len(sends) == 1:
            route.abort("connectionreset")  # …but the phone never hears back
        else:
            route.fulfill(response=response)

    page.route(
        base + PHOTO_FORM,
        lambda route: lose_the_first_answer(route) if route.request.method == "POST" else route.continue_(),
    )
    with page.expect_event("requestfailed"):
        context.set_offline(False)  # `online`: the queued report is sent
    assert sends == [200]
    assert page.get_by_text(SAVED).is_visible()  # still queued: the phone does not know it arrived
    assert page.evaluate(QUEUED_PHOTOS) == [item]

    page.evaluate("window.dispatchEvent(new Event('online'))")  # the next time the network comes back
    page.locator("section.thanks").wait_for()
    assert sends == [200, 200]
    assert page.evaluate(QUEUED_PHOTOS) == []

    page.evaluate("""() => new Promise(resolve => {
      const open = indexedDB.open("qf-photos", 1);
      open.onsuccess = () => {
        const tx = open.result.transaction("queue", "readwrite");
        tx.objectStore("queue").put(window.keptCopy);
        tx.oncomplete = () => { open.result.close(); resolve(); };
      };
    })""")
    assert page.evaluate(QUEUED_PHOTOS) == [item]
    page.reload()  # sent on the next page load
    for _ in range(100):  # wait_for_function does not wait for a promise
        if len(sends) == 3 and page.evaluate(QUEUED_PHOTOS) == []:
            break
        page.wait_for_timeout(100)
    assert sends == [200, 200, 200]
    assert page.evaluate(QUEUED_PHOTOS) == []

    [(key, answers)] = stored(db)
    assert key == item["key"] and answers["place"] == PLACE
    assert photo_files(workdir) == answers["pictures"]  # one set of files: the repeats wrote none
    context.close()
