"""Every public page, checked by axe-core in Chromium at 360 px, and read at 200 % text.

axe-core comes from node_modules (package-lock.json pins it); it is evaluated in the page
through the DevTools protocol, so the page keeps its Content-Security-Policy. A page may
have no `serious` or `critical` violation. Screenshots land in tests/artifacts/.
"""

import json

import pytest

from server.forms import form_files
from tests import test_browser
from tests.conftest import OFFICE_ONLY_FORMS, ROOT
from tests.test_browser import PHONE, phone, shoot

pytestmark = pytest.mark.browser
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
BUNDLED = [p.stem for p in form_files(ROOT / "forms") if p.stem not in OFFICE_ONLY_FORMS]
browser = test_browser.browser  # the same headless Chromium fixture
site = test_browser.site  # bundled forms and the test forms (closed, upcoming, all-types)


def axe_problems(page) -> list[str]:
    """Serious and critical axe violations, one readable line per element."""
    if not AXE.is_file():
        pytest.fail("axe-core is missing: run `npm ci`")
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))
    results = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['impact']}: {v['id']} ({v['help']}) at {node['target']}: {node['failureSummary']}"
        for v in results["violations"]
        if v["impact"] in ("serious", "critical")
        for node in v["nodes"]
    ]


def assert_accessible(page, name: str) -> None:
    shoot(page, f"a11y-{name}-360")
    problems = axe_problems(page)
    assert not problems, f"{page.url}\n" + "\n".join(problems)


def test_axe_finds_a_violation_it_should(browser):
    """The check itself works: a page with an unlabelled input and pale text fails."""
    page = browser.new_page()
    page.set_content('<html lang="zh"><title>t</title><input><p style="color:#ccc;background:#fff">浅色</p></html>')
    problems = axe_problems(page)
    page.close()
    assert any("label" in p for p in problems) and any("color-contrast" in p for p in problems), problems


PAGES = {
    "landing": ("/", 200),
    **{f"form-{form_id}": (f"/f/{form_id}", 200) for form_id in [*BUNDLED, "all-types", "photo-report"]},
    "thanks": ("/f/consumer-survey/thanks", 200),
    "closed": ("/f/closed", 410),
    "upcoming": ("/f/upcoming", 410),
    "not-found": ("/f/no-such-form", 404),
}


@pytest.mark.parametrize("name", PAGES)
def test_public_page_has_no_serious_axe_violation(site, browser, name):
    base, _ = site
    path, status = PAGES[name]
    context = phone(browser)
    page = context.new_page()
    assert page.goto(base + path).status == status
    assert_accessible(page, name)
    context.close()


def test_form_with_errors_after_422_has_no_serious_axe_violation(site, browser):
    base, _ = site
    context = phone(browser)
    page = context.new_page()
    page.goto(f"{base}/f/all-types")
    page.fill("#i-people", "abc")
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/f/all-types")) as answer:
        page.click("button.submit")
    assert answer.value.status == 422
    page.locator("#e-unit", has_text="此项为必填").wait_for()
    assert_accessible(page, "form-errors")
    context.close()


def test_offline_saved_notice_has_no_serious_axe_violation(site, browser):
    base, _ = site
    context = phone(browser)
    page = context.new_page()
    page.goto(f"{base}/f/five-into-session")
    context.set_offline(True)
    page.click("button.submit")
    page.get_by_text("已保存，联网后自动提交").wait_for()
    assert_accessible(page, "offline-saved")
    page.evaluate("localStorage.clear()")  # nothing to send later
    context.close()


# Reading at 200 %: either the phone's text size doubled (WeChat's and Android's font-size
# setting scale text, not the page), or the whole page zoomed to 200 % (the 360 px screen
# is then 180 CSS px wide). Either way nothing may need sideways scrolling, be cut off at
# the right edge, or hold text taller than its box.
DOUBLE_TEXT = """() => {
  const all = [document.documentElement, ...document.querySelectorAll('body, body *')];
  const sizes = all.map(el => parseFloat(getComputedStyle(el).fontSize));
  all.forEach((el, i) => el.style.setProperty('font-size', (sizes[i] * 2) + 'px', 'important'));
  return sizes[all.indexOf(document.body)];
}"""
READING_PROBLEMS = """(width) => {
  const problems = [];
  const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (el.className ? '.' + el.className : '');
  if (document.documentElement.scrollWidth > width) problems.push('page scrolls sideways: ' + document.documentElement.scrollWidth + 'px');
  for (const el of document.querySelectorAll('body *')) {
    const style = getComputedStyle(el), box = el.getBoundingClientRect();
    if (!box.width || style.visibility === 'hidden' || style.opacity === '0') continue;
    if (box.right > width + 1) problems.push(name(el) + ' reaches ' + Math.round(box.right) + 'px');
    if (el.matches('input:not([type=radio]):not([type=checkbox]):not([type=hidden]), textarea, button')) {
      const inner = el.clientHeight - parseFloat(style.paddingTop) - parseFloat(style.paddingBottom);
      if (inner + 1 < parseFloat(style.fontSize)) problems.push(name(el) + ' is ' + inner + 'px tall for ' + style.fontSize + ' text');
    }
    if (el.matches('.option, .rating-point span, .link-button, .form-card, legend, label') && el.scrollWidth > el.clientWidth + 1)
      problems.push(name(el) + ' cuts its text off');
  }
  return problems;
}"""
ZOOMS = {
    "text-200": ({"viewport": PHONE, "device_scale_factor": 2}, True),
    "page-200": (
        {"viewport": {"width": PHONE["width"] // 2, "height": PHONE["height"] // 2}, "device_scale_factor": 4},
        False,
    ),
}
READ_PAGES = {name: PAGES[name] for name in ("landing", *[f"form-{f}" for f in BUNDLED], "thanks", "closed")}


@pytest.mark.parametrize("zoom", ZOOMS)
@pytest.mark.parametrize("name", [*READ_PAGES, "form-errors"])
def test_page_reads_at_200_percent(site, browser, name, zoom):
    base, _ = site
    options, double_text = ZOOMS[zoom]
    context = browser.new_context(
        **options, user_agent=test_browser.WECHAT_UA, locale="zh-CN", java_script_enabled=True
    )
    page = context.new_page()
    if name == "form-errors":
        page.goto(f"{base}/f/all-types")
        page.click("button.submit")
        page.locator("#e-unit", has_text="此项为必填").wait_for()
    else:
        page.goto(base + READ_PAGES[name][0])
    if double_text:
        assert page.evaluate(DOUBLE_TEXT) == 18  # body text was 18 px, now 36 px
    width = options["viewport"]["width"]
    problems = page.evaluate(READING_PROBLEMS, width)
    shoot(page, f"a11y-{name}-{zoom}")
    assert not problems, json.dumps(problems, ensure_ascii=False, indent=1)
    context.close()
