"""Real nginx with TLS in front of the real server, and Chromium through it (SPEC §5.1).

nginx runs the shipped `deploy/nginx.conf` with only its ports and paths substituted, plus
`proxy_bind`, so the app sees nginx at 127.0.0.2 and the browser stays at 127.0.0.1: the
shipped file cannot rot, and the audit log can tell the browser from the proxy.
"""

import os
import re
import shutil
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from server.qr import qr_png
from tests.conftest import ROOT, TEST_FORMS, free_port, run, running_server, submission_key

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking"]
PUBLIC = "forms.example.cn"  # the name the shipped file uses; Chromium resolves it to 127.0.0.1
PROXY_ADDRESS = "127.0.0.2"
PASSWORD = "correct horse battery"


def require(path: str, package: str) -> None:
    if not os.path.exists(path):
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the nginx test: .ci/run installs Debian's {package}")
        pytest.skip(f"Debian's {package} is not installed (.ci/run installs it)")


def nginx_config(folder, *, app_port: int, https_port: int, http_port: int) -> str:
    """deploy/nginx.conf with our ports and paths, inside a minimal main configuration."""
    text = (ROOT / "deploy" / "nginx.conf").read_text()
    substitutions = [
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;"),
        (f"/etc/letsencrypt/live/{PUBLIC}/fullchain.pem", str(folder / "cert.pem")),
        (f"/etc/letsencrypt/live/{PUBLIC}/privkey.pem", str(folder / "key.pem")),
        ("proxy_pass http://127.0.0.1:8000;", f"proxy_pass http://127.0.0.1:{app_port}; proxy_bind {PROXY_ADDRESS};"),
    ]
    for old, new in substitutions:
        assert text.count(old) == 1, f"deploy/nginx.conf no longer has {old!r} once"
        text = text.replace(old, new)
    (folder / "quality-forms.conf").write_text(text)
    temp = " ".join(
        f"{kind}_temp_path {folder / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    user = "user root root;" if os.geteuid() == 0 else ""  # workers must read and write our folder
    return (
        f"{user}\nworker_processes 1;\npid {folder / 'nginx.pid'};\nevents {{ worker_connections 256; }}\n"
        f"http {{\n access_log {folder / 'access.log'};\n {temp}\n include {folder / 'quality-forms.conf'};\n}}\n"
    )


def wait_for_port(port: int, process: subprocess.Popen, log) -> None:
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError(log.read_text()) from None
            time.sleep(0.1)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    require(NGINX, "nginx")
    require(OPENSSL, "openssl")
    require(CHROMIUM, "chromium")
    folder = tmp_path_factory.mktemp("nginx")
    subprocess.run(
        [OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={PUBLIC}",
         "-addext", f"subjectAltName=DNS:{PUBLIC}", "-keyout", folder / "key.pem", "-out", folder / "cert.pem"],
        check=True, capture_output=True,
    )  # fmt: skip
    workdir = tmp_path_factory.mktemp("app")
    shutil.copytree(TEST_FORMS, workdir / "forms")
    assert run("user", "add", "boss", "--role", "admin", input=PASSWORD.encode() + b"\n", cwd=workdir).returncode == 0
    https_port, http_port = free_port(), free_port()
    base = f"https://{PUBLIC}:{https_port}"
    env = {"QF_BASE_URL": base, "QF_TRUSTED_PROXIES": PROXY_ADDRESS, "QF_RATE_LIMIT": "2"}
    with running_server(workdir, "--workers", "1", env=env) as app_port:
        conf = folder / "nginx.conf"
        conf.write_text(nginx_config(folder, app_port=app_port, https_port=https_port, http_port=http_port))
        log = folder / "error.log"
        nginx = subprocess.Popen(
            [NGINX, "-p", str(folder), "-c", str(conf), "-e", str(log), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_for_port(https_port, nginx, log)
            yield base, https_port, workdir
        finally:
            nginx.terminate()
            nginx.wait(timeout=15)


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {PUBLIC} 127.0.0.1"]
        )
        yield browser
        browser.close()


def audit(workdir, action: str) -> list[str]:
    with sqlite3.connect(workdir / "data" / "quality-forms.db") as db:
        return [row[0] for row in db.execute("SELECT detail FROM audit_log WHERE action = ? ORDER BY id", [action])]


def test_through_nginx_the_office_works_and_a_resident_submits(site, browser):
    base, https_port, workdir = site
    office = browser.new_context(ignore_https_errors=True, accept_downloads=True, locale="zh-CN")
    page = office.new_page()
    page.goto(f"{base}/admin/login")
    page.fill("#username", "boss")
    page.fill("#password", PASSWORD)
    page.click("button.submit")
    assert page.url == f"{base}/admin"  # the Origin check accepted the public origin
    assert {c["name"]: c["secure"] for c in office.cookies()}["qf_session"] is True

    page.goto(f"{base}/admin/events")
    page.select_option("#ev-form", "all-types")
    page.fill("#ev-title", "消费品安全进校园")
    page.select_option("#ev-county", "白沙黎族自治县")
    page.click("#new-event button.submit")
    page.wait_for_url(re.compile(r".*/admin/events/[A-Z0-9]+$"))
    code = page.url.rsplit("/", 1)[-1]
    assert page.get_by_role("link", name=f"{base}/e/{code}").count() == 1

    with page.expect_download() as qr_download:
        page.click("text=下载二维码图片")
    assert Path(qr_download.value.path()).read_bytes() == qr_png(f"{base}/e/{code}")
    page.click("text=打印海报（A4）")
    assert page.locator(".poster-url span").inner_text() == f"{PUBLIC}:{https_port}/e/{code}"

    phone = browser.new_context(ignore_https_errors=True, locale="zh-CN", viewport={"width": 360, "height": 740})
    resident = phone.new_page()
    encodings: dict[str, str | None] = {}
    resident.on("response", lambda r: encodings.setdefault(r.url.split("?")[0], r.headers.get("content-encoding")))
    resident.goto(f"{base}/e/{code}")
    assert resident.evaluate("typeof htmx") == "object"  # the scripts came whole, in brotli over HTTPS
    assert encodings[f"{base}/static/htmx.min.js"] == encodings[f"{base}/static/form.js"] == "br"
    assert encodings[f"{base}/e/{code}"] == "gzip"  # the page, made per view: gzip around its key
    resident.fill("#i-unit", "白沙中学")
    resident.click("button.submit")
    resident.wait_for_selector("#thanks")
    phone.close()

    page.goto(f"{base}/admin/forms/all-types?event={code}")
    with page.expect_download() as csv_download:
        page.click("a:text-is('CSV')")
    assert csv_download.value.suggested_filename == f"all-types_{code}.csv"  # named by what it holds
    rows = Path(csv_download.value.path()).read_bytes().decode("utf-8-sig").splitlines()
    assert len(rows) == 2 and f",{code}," in rows[1] and "白沙中学" in rows[1]

    page.click("button:text-is('退出')")
    assert page.url == f"{base}/admin/login"
    office.close()
    assert audit(workdir, "sign-in") == ["from 127.0.0.1"]  # the browser, not nginx at 127.0.0.2
    assert audit(workdir, "export") != []


def resident_behind_nginx(address: str, https_port: int) -> httpx.Client:
    """A phone at `address` that reaches the server through nginx."""
    return httpx.Client(
        base_url=f"https://127.0.0.1:{https_port}",
        headers={"Host": f"{PUBLIC}:{https_port}"},
        transport=httpx.HTTPTransport(local_address=address, verify=False),
        timeout=30,
    )


def submit(client: httpx.Client, **headers: str) -> int:
    key = submission_key(client.get("/f/all-types").text)
    return client.post("/f/all-types", data={"unit": "琼海市嘉积镇", "_key": key}, headers=headers).status_code


def test_two_residents_behind_nginx_have_separate_rate_limits(site):
    _, https_port, _ = site
    with (
        resident_behind_nginx("127.0.0.3", https_port) as first,
        resident_behind_nginx("127.0.0.4", https_port) as second,
    ):
        assert [submit(first), submit(first)] == [303, 303]  # QF_RATE_LIMIT=2
        assert submit(first, **{"X-Forwarded-For": "203.0.113.9"}) == 429  # nginx appends the real address
        assert submit(first, Forwarded="for=203.0.113.10") == 429  # nginx drops it
        assert submit(second) == 303
