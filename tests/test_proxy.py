"""Behind a reverse proxy (SPEC §5.1): who the client is, which scheme and host it used; and the
front door's own checks (allowed hosts, security headers) and QR codes no header can poison.

The proxy is played by a client on 127.0.0.1 (trusted by default) that sends the headers nginx
would send; residents who reach the server directly come from 127.0.0.2 and up.
"""

import asyncio
import re
import shlex
import shutil
import sqlite3

import httpx
import pytest

from server import posters, sheets
from server.app import SECURITY_HEADERS
from server.cli import build_parser
from server.proxy import Hop, TrustedProxies, believe, forwarded_hops
from server.qr import qr_svg
from tests.conftest import ROOT, TEST_FORMS, free_port, make_app_client, run, running_server, submission_key

ANSWERS = {"unit": "琼海市嘉积镇", "venue": "school", "satisfaction": "4"}
PASSWORD = "correct horse battery"
PUBLIC = "forms.example.cn"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A real server on loopback, without QF_BASE_URL, answering to its public name and 127.0.0.1."""
    workdir = tmp_path_factory.mktemp("proxied")
    shutil.copytree(TEST_FORMS, workdir / "forms")
    assert run("user", "add", "boss", "--role", "admin", input=PASSWORD.encode() + b"\n", cwd=workdir).returncode == 0
    env = {"QF_RATE_LIMIT": "3", "QF_ALLOWED_HOSTS": f"{PUBLIC},127.0.0.1", "QF_BASE_URL": ""}
    with running_server(workdir, "--workers", "1", env=env) as port:
        yield port, workdir


def client_from(address: str, port: int) -> httpx.Client:
    """A client whose connections leave from `address` (the server sees it as the peer)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", transport=transport, timeout=30)


def submit(client: httpx.Client, headers: dict[str, str]) -> int:
    key = submission_key(client.get("/f/all-types", headers=headers).text)
    return client.post("/f/all-types", data=ANSWERS | {"_key": key}, headers=headers).status_code


def sign_in(client: httpx.Client, headers: dict[str, str], password: str = PASSWORD) -> httpx.Response:
    page = client.get("/admin/login", headers=headers)
    token = re.search(r'name="_csrf" value="([^"]+)"', page.text).group(1)
    # The client speaks plain http to the server, so it would keep back a Secure cookie; the
    # browser behind the TLS proxy sends it.
    cookie = {"Cookie": f"qf_login={page.cookies['qf_login']}"}
    data = {"_csrf": token, "username": "boss", "password": password}
    return client.post("/admin/login", data=data, headers=headers | cookie)


def through_proxy(browser: str, **extra: str) -> dict[str, str]:
    """The headers nginx sends for a browser at `browser` that came over TLS to the public name."""
    return {"X-Forwarded-For": browser, "X-Forwarded-Proto": "https", "X-Forwarded-Host": PUBLIC} | extra


def query(workdir, sql: str, *args) -> list[tuple]:
    with sqlite3.connect(workdir / "data" / "quality-forms.db") as db:
        return db.execute(sql, args).fetchall()


def test_two_residents_behind_the_proxy_have_separate_rate_limits(site):
    port, _ = site
    with client_from("127.0.0.1", port) as proxy:
        first, second = through_proxy("203.0.113.7"), through_proxy("203.0.113.8")
        assert [submit(proxy, first) for _ in range(3)] == [303, 303, 303]
        assert submit(proxy, first) == 429
        assert submit(proxy, second) == 303  # the neighbour is not throttled with the first
        # Whatever the phone invented sits left of what nginx appended: the right-most counts.
        assert submit(proxy, through_proxy("198.51.100.1, 203.0.113.7")) == 429


def test_a_direct_client_cannot_dodge_the_limit_by_inventing_forwarding_headers(site):
    port, _ = site
    with client_from("127.0.0.2", port) as direct:
        invented = [
            {"X-Forwarded-For": "203.0.113.50"},
            {"X-Forwarded-For": "203.0.113.51"},
            {"Forwarded": "for=203.0.113.52"},
            {"X-Forwarded-For": "203.0.113.53", "Forwarded": "for=203.0.113.54"},
        ]
        assert [submit(direct, headers) for headers in invented] == [303, 303, 303, 429]


def test_through_a_tls_proxy_the_office_signs_in_with_secure_cookies_and_the_log_shows_the_browser(site):
    port, workdir = site
    headers = through_proxy("203.0.113.20", Origin=f"https://{PUBLIC}")
    with client_from("127.0.0.1", port) as proxy:
        assert "Secure" in proxy.get("/admin/login", headers=headers).headers["set-cookie"]
        refused = sign_in(proxy, through_proxy("203.0.113.21", Origin=f"https://{PUBLIC}"), password="wrong")
        assert refused.status_code == 401
        signed = sign_in(proxy, headers)
        assert signed.status_code == 303 and signed.headers["location"] == "/admin"
        assert "; Secure" in signed.headers["set-cookie"]
        session = {"Cookie": f"qf_session={signed.cookies['qf_session']}"}
        assert proxy.get("/admin", headers=headers | session).status_code == 200
    assert ("from 203.0.113.20",) in query(workdir, "SELECT detail FROM audit_log WHERE action = 'sign-in'")


def test_a_direct_client_is_not_believed_about_scheme_host_or_address(site):
    port, workdir = site
    with client_from("127.0.0.3", port) as direct:
        # It says it came over TLS to the public name: the Origin check still sees plain http.
        assert sign_in(direct, through_proxy("203.0.113.30", Origin=f"https://{PUBLIC}")).status_code == 403
        assert "Secure" not in direct.get("/admin/login", headers=through_proxy("203.0.113.30")).headers["set-cookie"]
        assert sign_in(direct, {"X-Forwarded-For": "203.0.113.31"}).status_code == 303
    details = [detail for (detail,) in query(workdir, "SELECT detail FROM audit_log WHERE action = 'sign-in'")]
    assert "from 127.0.0.3" in details and "from 203.0.113.31" not in details


def test_qr_codes_carry_the_public_host_from_the_proxy_and_never_an_invented_one(site):
    port, _ = site
    with client_from("127.0.0.1", port) as proxy, client_from("127.0.0.4", port) as direct:
        assert proxy.get("/f/all-types/qr.svg", headers=through_proxy("203.0.113.40")).text == qr_svg(
            f"https://{PUBLIC}/f/all-types"
        )
        phishing = through_proxy("203.0.113.40", **{"X-Forwarded-Host": "forms.example.cn.phish.example"})
        assert proxy.get("/f/all-types/qr.svg", headers=phishing).status_code == 400
        assert direct.get("/f/all-types/qr.svg", headers=phishing).text == qr_svg(
            f"http://127.0.0.1:{port}/f/all-types"
        )


def test_serving_on_loopback_without_a_public_address_gives_no_warning(site):
    _, workdir = site
    assert "QF_BASE_URL" not in (workdir / "server.log").read_text()


def test_serving_beyond_loopback_without_a_public_address_warns_loudly(workdir):
    # 192.0.2.1 is a documentation address: binding it fails, after the warning.
    result = run("serve", "--host", "192.0.2.1", "--port", str(free_port()), cwd=workdir, env={"QF_BASE_URL": ""})
    lines = result.stderr.decode().splitlines()
    assert result.returncode == 2
    assert "WARNING: QF_BASE_URL is not set: QR codes, posters and links will point at whatever host" in lines[0]
    assert lines[-1].startswith("quality-forms: cannot serve on 192.0.2.1:")


def test_a_bad_trusted_proxies_setting_is_one_line(workdir):
    result = run("check", cwd=workdir, env={"QF_TRUSTED_PROXIES": "127.0.0.1,nginx"})
    assert result.returncode == 2
    assert result.stderr.decode().startswith("quality-forms: QF_TRUSTED_PROXIES: bad value '127.0.0.1,nginx'")


# The forwarding rules, one by one --------------------------------------------------------

TRUSTED = TrustedProxies("127.0.0.1,10.0.0.0/8,::1")


def test_the_client_is_the_right_most_forwarded_address_not_itself_trusted():
    hops = forwarded_hops({b"x-forwarded-for": [b"198.51.100.1, 203.0.113.9, 10.1.2.3"]})
    assert believe("127.0.0.1", hops, TRUSTED)[0] == "203.0.113.9"
    all_trusted = forwarded_hops({b"x-forwarded-for": [b"10.0.0.1", b"10.0.0.2"]})  # two header lines
    assert believe("127.0.0.1", all_trusted, TRUSTED)[0] == "10.0.0.1"


def test_behind_a_proxy_that_appends_to_x_forwarded_for_a_phones_own_forwarded_header_is_ignored():
    headers = {b"forwarded": [b"for=198.51.100.1"], b"x-forwarded-for": [b"203.0.113.9"]}
    assert believe("127.0.0.1", forwarded_hops(headers), TRUSTED)[0] == "203.0.113.9"


def test_a_forwarded_entry_that_is_no_address_stops_the_walk():
    hops = forwarded_hops({b"x-forwarded-for": [b"203.0.113.9, unknown"]})
    assert believe("10.0.0.7", hops, TRUSTED)[0] == "10.0.0.7"


def test_the_standard_forwarded_header_with_ports_quotes_and_ipv6():
    header = b'for=198.51.100.1;proto=http, for="[2001:db8::17]:4711";proto=https;host=forms.example.cn, for=10.0.0.2'
    client, hop = believe("::1", forwarded_hops({b"forwarded": [header]}), TRUSTED)
    assert client == "2001:db8::17" and hop == Hop("2001:db8::17", "https", "forms.example.cn")


def test_none_trusts_nobody_and_mapped_addresses_are_recognised():
    assert "127.0.0.1" not in TrustedProxies("none") and not TrustedProxies("none")
    assert "::ffff:10.9.8.7" in TRUSTED and "nginx" not in TRUSTED


# The front door: hosts, headers, QR codes (issue 10, items 6 and 7) -----------------------


def test_a_host_too_long_to_be_a_name_gets_the_chinese_400_page_and_no_qr_code_is_drawn(tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr(posters, "qr_svg", lambda url, **kw: drawn.append(url) or qr_svg(url, **kw))
    with make_app_client(tmp_path) as client:  # allowed_hosts "*": any real name is answered
        for length in (1150, 2100):  # 1,150 took seconds to draw; 2,000 and more was a 500
            refused = client.get("/f/all-types/qr.svg", headers={"Host": "a" * length + ".example.cn"})
            assert refused.status_code == 400
            assert refused.headers["content-type"] == "text/html; charset=utf-8"
            assert '<h1 class="form-title">请求有误</h1>' in refused.text
        assert client.get("/f/all-types/qr.svg", headers={"Host": "bad host!"}).status_code == 400
        assert client.get("/f/all-types/qr.svg", headers={"Host": "zlj.example.cn:8080"}).status_code == 200
    assert drawn == ["http://zlj.example.cn:8080/f/all-types"]


def test_qr_codes_and_posters_are_drawn_off_the_event_loop(tmp_path, monkeypatch):
    where = []

    def spy(url: str, **kw) -> str:
        try:
            asyncio.get_running_loop()
            where.append("event loop")
        except RuntimeError:
            where.append("worker thread")
        return qr_svg(url, **kw)

    monkeypatch.setattr(posters, "qr_svg", spy)
    monkeypatch.setattr(sheets, "qr_svg", spy)  # the poster's code is drawn with the poster
    with make_app_client(tmp_path) as client:
        assert client.get("/f/all-types/qr.svg").status_code == 200
        assert client.get("/f/all-types/poster").status_code == 200
    assert where == ["worker thread", "worker thread"]


def test_a_qr_code_made_from_the_request_host_is_never_kept_by_shared_caches(tmp_path):
    phishing = {"Host": "zlj.hainan.phish.example"}
    with make_app_client(tmp_path / "a") as client:  # no QF_BASE_URL: the code follows the Host
        answer = client.get("/f/all-types/qr.png", headers=phishing)
        assert answer.status_code == 200 and answer.headers["cache-control"] == "private, max-age=86400"
        assert client.get("/f/all-types/poster", headers=phishing).headers["cache-control"] == "private, no-cache"
    with make_app_client(tmp_path / "b", base_url="https://zlj.hainan.example.cn") as client:
        answer = client.get("/f/all-types/qr.svg", headers=phishing)  # allowed_hosts "*" in tests
        assert answer.headers["cache-control"] == "public, max-age=86400"
        assert answer.text == qr_svg("https://zlj.hainan.example.cn/f/all-types")


@pytest.mark.parametrize(
    ("path", "host", "status"),
    [
        ("/healthz", "testserver.local", 200),
        ("/no/such/page", "testserver.local", 404),
        ("/static/app.css", "testserver.local", 200),
        ("/f/all-types", "testserver.local", 200),  # the blank page, gzipped once around its key
        ("/sw.js", "testserver.local", 200),
        ("/", "testserver.local", 200),  # gzipped on the way out
        ("/healthz", "a..b!", 400),
        ("/f/all-types", "a..b!", 400),
    ],
)
@pytest.mark.parametrize("encoding", ["gzip, deflate, br", "identity"])
def test_every_answer_carries_the_security_headers(client, path, host, status, encoding):
    answer = client.get(path, headers={"Host": host, "Accept-Encoding": encoding})
    assert answer.status_code == status
    for name, value in SECURITY_HEADERS.items():
        assert answer.headers.get_list(name) == [value]


def test_the_shipped_systemd_unit_runs_serve_as_its_own_user_with_private_state():
    lines = (ROOT / "deploy" / "quality-forms.service").read_text().splitlines()
    settings: dict[str, list[str]] = {}
    for line in lines:
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    assert settings["User"] == ["quality-forms"] and settings["Restart"] == ["on-failure"]
    assert settings["UMask"] == ["0077"] and settings["StateDirectory"] == ["quality-forms"]
    assert "QF_DB=/var/lib/quality-forms/quality-forms.db" in settings["Environment"]
    program, *args = shlex.split(settings["ExecStart"][0])
    serve = build_parser().parse_args(args)  # the options exist
    assert program.endswith("/quality-forms") and (serve.command, serve.host, serve.port) == (
        "serve",
        "127.0.0.1",
        8000,
    )
