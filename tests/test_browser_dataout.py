"""An admin in headless Chromium makes a read-API token, copies it from the one page that shows
it, uses it, revokes it, and reads the webhook delivery log. Screenshots in tests/artifacts/."""

from __future__ import annotations

import http.client
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import ADMIN_PASSWORD, ROOT, TEST_FORMS, run, running_server

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"


def serious_axe_violations(page) -> list[str]:
    """axe-core's serious and critical findings on the page (evaluated through DevTools: the CSP stays)."""
    page.evaluate(AXE.read_text(encoding="utf-8"))
    results = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['impact']}: {v['id']} at {node['target']}"
        for v in results["violations"]
        if v["impact"] in ("serious", "critical")
        for node in v["nodes"]
    ]


def api_status(port: int, token: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/api/forms/all-types/responses", headers={"Authorization": f"Bearer {token}"})
        answer = connection.getresponse()
        answer.read()
        return answer.status
    finally:
        connection.close()


def test_an_admin_makes_uses_and_revokes_a_token_and_reads_the_delivery_log(tmp_path: Path):
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("CI must run the browser tests: .ci/run installs Debian's chromium")
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    shutil.copytree(TEST_FORMS, tmp_path / "forms")
    assert (
        run("user", "add", "boss", "--role", "admin", cwd=tmp_path, input=f"{ADMIN_PASSWORD}\n".encode()).returncode
        == 0
    )
    hook = run(
        "webhook",
        "add",
        "http://127.0.0.1:9/closed",
        "--form",
        "all-types",
        "--secret",
        "0123456789abcdef",
        cwd=tmp_path,
    )
    assert hook.returncode == 0
    ARTIFACTS.mkdir(exist_ok=True)
    with running_server(tmp_path, "--workers", "1") as port, playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 800}, locale="zh-CN")
        page.goto(f"http://127.0.0.1:{port}/admin/login")
        page.fill("input[name=username]", "boss")
        page.fill("input[name=password]", ADMIN_PASSWORD)
        page.click("button[type=submit]")
        page.click("text=数据接口")
        assert page.url.endswith("/admin/tokens")
        page.fill("#tk-name", "province")
        page.select_option("#tk-form", "all-types")
        page.click("text=创建令牌")
        token = page.inner_text("#new-token")
        page.screenshot(path=str(ARTIFACTS / "dataout-token-made.png"), full_page=True)
        assert serious_axe_violations(page) == []
        assert token.startswith("qf_")
        assert api_status(port, token) == 200
        page.goto(f"http://127.0.0.1:{port}/admin/tokens")
        assert token not in page.content()  # shown once
        page.click("text=吊销")
        assert "已吊销" in page.inner_text("table")
        assert api_status(port, token) == 401

        page.goto(f"http://127.0.0.1:{port}/f/all-types")
        page.fill("input[name=unit]", "白沙中学")
        page.check("input[name=agree]")
        page.click("button[type=submit]")
        page.goto(f"http://127.0.0.1:{port}/admin/webhooks?status=pending")
        page.wait_for_timeout(1500)  # the sender's first attempt fails: nothing listens on port 9
        page.reload()
        assert "连接被拒绝" in page.content()
        page.click("summary")
        page.screenshot(path=str(ARTIFACTS / "dataout-webhooks.png"), full_page=True)
        assert serious_axe_violations(page) == []
        page.click("text=重新发送")
        assert page.url.endswith("/admin/webhooks")
        browser.close()
