"""Compression where it pays (issue 15): gzipped blank pages, static files, dynamic text."""

from __future__ import annotations

import asyncio
import gzip
import os
import re
import shutil
import zlib

import brotli
import httpx
import pytest

from server.app import SECURITY_HEADERS, STATIC
from server.clock import now
from server.compression import MIN_SIZE, GzipSend, Spliced, accepts_gzip, gzip_once, prefers_brotli
from server.events import add_events, make_event
from server.static import StaticFile
from tests.conftest import ROOT, TEST_FORMS, database, make_app_client, running_server, submission_key

KEY = re.compile(r'name="_key" value="([A-Za-z0-9_-]{24})"')
PHONE = {"Accept-Encoding": "gzip, deflate, br"}


def raw(client, path: str, **headers: str) -> httpx.Response:
    """The answer as sent: the body still compressed, if it was."""
    with client.stream("GET", path, headers=headers) as answer:
        answer.raw_body = b"".join(answer.iter_raw())
    return answer


def one_gzip_member(body: bytes) -> bytes:
    """The body as a browser reads it: Chromium stops after the first gzip member, so there must be one."""
    reader = zlib.decompressobj(31)
    plain = reader.decompress(body)
    assert reader.eof and reader.unused_data == b""
    return plain


@pytest.fixture
def bare_client(tmp_path):
    """A client that sends no Accept-Encoding at all (httpx sends one unless told not to)."""
    with make_app_client(tmp_path) as client:
        del client.headers["accept-encoding"]
        yield client


def test_a_gzipped_blank_page_is_exactly_the_page_with_a_fresh_key(client):
    plain = raw(client, "/f/all-types", **{"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    keys = set()
    for _ in range(5):
        zipped = raw(client, "/f/all-types", **PHONE)
        assert zipped.headers["content-encoding"] == "gzip"
        assert int(zipped.headers["content-length"]) == len(zipped.raw_body) < len(plain.raw_body) / 3
        page = one_gzip_member(zipped.raw_body)
        key = KEY.search(page.decode()).group(1)
        keys.add(key)
        assert page == plain.raw_body.replace(submission_key(plain.raw_body.decode()).encode(), key.encode())
    assert len(keys) == 5 and submission_key(plain.raw_body.decode()) not in keys


def test_an_event_page_and_the_htmx_fragment_are_gzipped_around_their_key_too(client):
    forms = {f.id: f for f in client.app.state["context"].catalog.all()}
    school = {"form": "all-types", "title": "消费品安全进校园", "venue_type": "学校", "county": "白沙",
              "township": "牙叉镇", "venue": "白沙中学", "date": now().date().isoformat(), "organizer": "省教育厅"}  # fmt: skip
    [event] = add_events(database(client), [make_event(forms, school)])
    for path, headers in [(f"/e/{event.code}", {}), ("/f/all-types", {"HX-Request": "true"})]:
        plain = raw(client, path, **headers, **{"Accept-Encoding": "identity"})
        page = one_gzip_member(raw(client, path, **headers, **PHONE).raw_body)
        key = KEY.search(page.decode()).group(1)
        assert page == plain.raw_body.replace(submission_key(plain.raw_body.decode()).encode(), key.encode())
        assert ("消费品安全进校园" in page.decode()) == path.startswith("/e/")
    assert "<html" not in page.decode()  # htmx gets the fragment


@pytest.mark.parametrize("accept", [None, "gzip, deflate, br"])
def test_the_page_from_the_cache_before_routing_is_the_page_litestar_answers(tmp_path, accept):
    with make_app_client(tmp_path) as client:
        del client.headers["accept-encoding"]
        headers = {"Accept-Encoding": accept} if accept else {}
        rendered = raw(client, "/f/all-types", **headers)  # the first view renders and keeps the page
        cached = raw(client, "/f/all-types", **headers)  # later views come from the front door's shortcut
        cached_again = raw(client, "/f/all-types", **headers)
    assert rendered.status_code == cached.status_code == 200

    def without_length(answer):
        return sorted((k, v) for k, v in answer.headers.multi_items() if k != "content-length")

    assert without_length(rendered) == without_length(cached) == without_length(cached_again)
    pages = [one_gzip_member(a.raw_body) if accept else a.raw_body for a in (rendered, cached, cached_again)]
    keys = [KEY.search(p.decode()).group(1) for p in pages]
    assert len(set(keys)) == 3
    assert pages[1] == pages[0].replace(keys[0].encode(), keys[1].encode())
    assert pages[2] == pages[0].replace(keys[0].encode(), keys[2].encode())


def test_only_a_plain_view_of_an_open_form_takes_the_shortcut(client, clock):
    client.get("/f/all-types")  # kept
    assert client.get("/f/all-types?src=poster").status_code == 200  # hidden fields from the address
    assert "<html" not in client.get("/f/all-types", headers={"HX-Request": "true"}).text
    assert client.head("/f/all-types").status_code == 405  # as ever: the route takes GET, and so does the shortcut
    assert client.get("/f/all-types/").status_code == 200  # Litestar takes the slash; the shortcut does not
    assert client.get("/f/no-such-form").status_code == 404
    assert client.get("/f/event-report").status_code == 404  # office-only forms are never public


@pytest.mark.parametrize("accept", [None, "identity", "gzip;q=0", "br", "gzip;q=0, *"])
def test_a_browser_that_does_not_take_gzip_gets_the_page_as_it_is(bare_client, accept):
    answer = raw(bare_client, "/f/all-types", **({"Accept-Encoding": accept} if accept else {}))
    assert "content-encoding" not in answer.headers
    assert answer.headers["vary"] == "Accept-Encoding"
    assert answer.raw_body.startswith(b"<!doctype html>") and KEY.search(answer.raw_body.decode())


@pytest.mark.parametrize("accept", [None, "gzip, deflate, br"])
def test_the_fast_form_page_carries_every_header(bare_client, accept):
    for _ in ("rendered through the routes", "straight from the cache"):
        answer = raw(bare_client, "/f/all-types", **({"Accept-Encoding": accept} if accept else {}))
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "text/html; charset=utf-8"
        assert answer.headers.get_list("vary") == ["Accept-Encoding"]
        assert answer.headers.get_list("cache-control") == ["private, no-cache"]  # its key is one resident's
        for name, value in SECURITY_HEADERS.items():
            assert answer.headers.get_list(name) == [value]
        assert answer.headers.get("content-encoding") == ("gzip" if accept else None)


@pytest.mark.parametrize(
    "accept, encoding",
    [
        ("gzip, deflate, br", "br"),  # a phone over HTTPS
        ("gzip, deflate", "gzip"),  # the same phone over plain HTTP
        ("br;q=0.5, gzip", "gzip"),  # gzip preferred
        ("br", "br"),
        ("identity", None),
        (None, None),
    ],
)
def test_a_static_file_is_sent_compressed_once_made_as_the_browser_takes_it(bare_client, accept, encoding):
    css = (STATIC / "app.css").read_bytes()
    answer = raw(bare_client, "/static/app.css", **({"Accept-Encoding": accept} if accept else {}))
    assert answer.headers.get("content-encoding") == encoding
    assert decoded(answer.raw_body, encoding) == css
    assert answer.headers["cache-control"] == "public, max-age=31536000"
    assert answer.headers["content-type"] == "text/css; charset=utf-8"
    assert answer.headers["vary"] == "Accept-Encoding"
    for name, value in SECURITY_HEADERS.items():
        assert answer.headers.get_list(name) == [value]
    assert "etag" not in answer.headers  # its URL has its hash: never revalidated


def test_brotli_is_the_smallest_of_the_three():
    for name in ("app.css", "form.js"):
        file = StaticFile.read(STATIC / name)
        assert file.brotli is not None and file.gzipped is not None
        assert len(file.brotli) < len(file.gzipped) < len(file.body)
        assert brotli.decompress(file.brotli) == file.body == one_gzip_member(file.gzipped)


def decoded(body: bytes, encoding: str | None) -> bytes:
    return one_gzip_member(body) if encoding == "gzip" else brotli.decompress(body) if encoding == "br" else body


def test_the_service_worker_is_compressed_and_revalidates_with_a_304_per_encoding(bare_client):
    worker = (STATIC / "sw.js").read_bytes()
    tags = set()
    for accept, encoding in (("gzip, deflate, br", "br"), ("gzip", "gzip"), ("identity", None)):
        first = raw(bare_client, "/sw.js", **{"Accept-Encoding": accept})
        assert first.status_code == 200 and first.headers["cache-control"] == "no-cache"
        assert first.headers.get("content-encoding") == encoding and decoded(first.raw_body, encoding) == worker
        again = raw(bare_client, "/sw.js", **{"Accept-Encoding": accept, "If-None-Match": first.headers["etag"]})
        assert again.status_code == 304 and again.raw_body == b""
        tags.add(first.headers["etag"])
    assert len(tags) == 3  # each representation its own tag


@pytest.mark.parametrize(
    "path", ["/static/../server/app.py", "/static/%2e%2e/pyproject.toml", "/static/", "/static/ext"]
)
def test_nothing_outside_the_static_folders_is_served(client, path):
    assert client.get(path).status_code == 404


def test_a_big_dynamic_page_is_gzipped_and_a_tiny_answer_is_not(bare_client):
    landing = raw(bare_client, "/", **PHONE)
    assert landing.headers["content-encoding"] == "gzip" and landing.headers["vary"] == "Accept-Encoding"
    assert one_gzip_member(landing.raw_body) == raw(bare_client, "/").raw_body
    health = raw(bare_client, "/healthz", **PHONE)
    assert health.raw_body == b"ok" and "content-encoding" not in health.headers
    missing = raw(bare_client, "/no/such/page", **PHONE)  # error pages pass the same door
    assert missing.status_code == 404 and "找不到页面" in one_gzip_member(missing.raw_body).decode()


def test_accept_encoding_is_read_as_the_standard_says():
    assert accepts_gzip(b"gzip, deflate, br") and accepts_gzip(b"GZIP") and accepts_gzip(b"*")
    assert accepts_gzip(b"br;q=1.0, gzip;q=0.5") and accepts_gzip(b"x-gzip")
    assert not accepts_gzip(b"gzip;q=0") and not accepts_gzip(b"identity") and not accepts_gzip(b"")
    assert not accepts_gzip(b"gzip;q=0, *") and not accepts_gzip(b"*;q=0") and not accepts_gzip(b"gzip;q=x")
    assert prefers_brotli(b"gzip, deflate, br") and prefers_brotli(b"br") and prefers_brotli(b"*")
    assert not prefers_brotli(b"gzip, deflate") and not prefers_brotli(b"br;q=0.5, gzip") and not prefers_brotli(b"")
    assert not prefers_brotli(b"br;q=0") and prefers_brotli(b"gzip;q=0.5, br;q=0.5")


@pytest.mark.parametrize(("prefix", "suffix"), [
    (b"<p>", b"</p>"),
    (os.urandom(40_000), os.urandom(70_000)),  # past the window, and incompressible
    ("问卷".encode() * 9000, "选项".encode() * 20_000),
    (b"a" * 100, b"\x00b\x00" * 50),  # a NUL in the suffix: no shared history then
    (b"", b""),
])  # fmt: skip
def test_a_spliced_gzip_stream_is_the_parts_joined(prefix, suffix):
    spliced = Spliced(prefix, suffix, 24)
    for _ in range(20):
        middle = os.urandom(18).hex()[:24].encode()
        body = spliced.with_middle(middle)
        assert one_gzip_member(body) == gzip.decompress(body) == prefix + middle + suffix
    with pytest.raises(ValueError):
        spliced.with_middle(b"short")


def test_compressed_once_is_compressed_well():
    page = (ROOT / "templates" / "form.html").read_bytes() * 4
    assert gzip.decompress(gzip_once(page)) == page and len(gzip_once(page)) <= len(gzip.compress(page, 6))


def test_a_streamed_answer_is_gzipped_chunk_by_chunk_and_a_small_or_encoded_one_passes():
    async def answer(start_headers, bodies, opt=None):
        sent = []

        async def send(message):
            sent.append(message)

        scope = {"route_handler": type("Handler", (), {"opt": opt or {}})()}
        wrapped = GzipSend(send, scope, "skip_compression")
        await wrapped({"type": "http.response.start", "status": 200, "headers": start_headers})
        for n, body in enumerate(bodies):
            await wrapped({"type": "http.response.body", "body": body, "more_body": n < len(bodies) - 1})
        return dict(sent[0]["headers"]), b"".join(m.get("body", b"") for m in sent[1:]), len(sent) - 1

    def run(*args):
        return asyncio.run(answer(*args))

    chunks = [b"id,answer\r\n" * 300, b"1,2\r\n" * 400, b""]
    headers, body, count = run([(b"content-type", b"text/csv; charset=utf-8")], chunks)
    assert headers[b"content-encoding"] == b"gzip" and b"content-length" not in headers and count == 3
    assert one_gzip_member(body) == b"".join(chunks)
    small = [(b"content-type", b"text/html"), (b"content-length", str(MIN_SIZE - 1).encode())]
    assert run(small, [b"x" * (MIN_SIZE - 1)])[1] == b"x" * (MIN_SIZE - 1)
    for headers_in, opt in [
        ([(b"content-type", b"text/csv"), (b"content-encoding", b"gzip")], None),
        ([(b"content-type", b"image/png")], None),
        ([(b"content-type", b"text/csv")], {"skip_compression": True}),
    ]:
        headers, body, _ = run(headers_in, [b"y" * 2000], opt)
        assert body == b"y" * 2000 and headers.get(b"content-encoding") in (None, b"gzip")
        assert (b"content-encoding" in headers) == any(n == b"content-encoding" for n, _ in headers_in)


@pytest.mark.browser
def test_chromium_reads_the_spliced_page_whole(tmp_path):
    playwright_api = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(chromium):
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    shutil.copytree(TEST_FORMS, tmp_path / "forms")
    with running_server(tmp_path) as port, playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        encodings = []
        page.on("response", lambda r: encodings.append(r.headers.get("content-encoding")) if "/f/" in r.url else None)
        page.goto(f"http://127.0.0.1:{port}/f/all-types")
        assert encodings == ["gzip"]
        key = page.locator('input[name="_key"]').input_value()
        assert re.fullmatch(r"[A-Za-z0-9_-]{24}", key)
        html = page.content()
        assert html.rstrip().endswith("</html>") and page.locator("footer, form button[type=submit]").count() >= 1
        browser.close()


def test_the_thank_you_page_is_kept_gzipped_and_a_quiz_score_never_is(bare_client):
    plain = raw(bare_client, "/f/all-types/thanks")
    zipped = raw(bare_client, "/f/all-types/thanks", **PHONE)
    assert "提交成功" in plain.raw_body.decode() and one_gzip_member(zipped.raw_body) == plain.raw_body
    assert zipped.headers["content-encoding"] == "gzip" and zipped.headers["vary"] == "Accept-Encoding"
    assert plain.headers["content-type"] == zipped.headers["content-type"] == "text/html; charset=utf-8"
    for name, value in SECURITY_HEADERS.items():
        assert zipped.headers.get_list(name) == [value]
