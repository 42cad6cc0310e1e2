"""The residents' submission answered at the front door (server/shortcuts.py, issue 15).

A plain submission is stored without Litestar's routing; everything with a page to show
goes to the routes with its body intact. `routed` counts the requests the routes answered.
"""

import asyncio
import random
from urllib.parse import parse_qsl, urlencode

import pytest

from server import blank_pages, public
from server.uploads import decode_form_data
from tests.conftest import database, errors_on_page, make_app_client, stored_answers
from tests.test_events import new_event
from tests.test_submit import GOOD

KEY = "resident-key-0000000001"
STORED = {"unit": "海口市第一中学", "venue": "school", "topics": ["食品", "电梯"], "satisfaction": 4}


@pytest.fixture
def routed(monkeypatch) -> list[str]:
    """The paths the routed submit handled (the shortcut declined them)."""
    seen: list[str] = []
    through = public.submit

    async def counting(request, ctx, target):
        seen.append(request.url.path)
        return await through(request, ctx, target)

    monkeypatch.setattr(public, "submit", counting)
    return seen


def post(client, path="/f/all-types", data=None, **kwargs):
    return client.post(path, data=GOOD | {"_key": KEY} if data is None else data, follow_redirects=False, **kwargs)


def test_a_valid_submission_is_stored_at_the_front_door_with_the_routes_answer(client, routed):
    quick = post(client)
    assert routed == [] and quick.status_code == 303 and quick.headers["location"] == "/f/all-types/thanks"
    slow = post(client, "/f/all-types?via=routes", data=GOOD | {"_key": "resident-key-0000000002"})
    assert routed == ["/f/all-types"] and slow.status_code == 303
    assert quick.headers.multi_items() == slow.headers.multi_items()  # security headers included
    assert stored_answers(client) == [STORED, STORED]
    assert [r["submission_key"] for r in database(client)["responses"].rows] == [KEY, "resident-key-0000000002"]


def test_an_event_submission_takes_the_shortcut_with_the_event_and_its_answers(client, routed):
    code = new_event(client, date="")
    answer = post(client, f"/e/{code.lower()}")  # typed from a poster in lower case
    assert answer.status_code == 303 and answer.headers["location"] == f"/e/{code}/thanks"
    assert routed == []
    assert [row["event"] for row in database(client)["responses"].rows] == [code]


def test_the_same_key_twice_is_one_response_even_when_the_form_would_now_refuse_it(client, routed):
    assert post(client).status_code == 303 and post(client).status_code == 303
    assert routed == []  # the writer found the key: no lookup first
    again = post(client, data={"_key": KEY, "unit": "x"})  # sent again from an old page, say
    assert again.status_code == 303 and routed == ["/f/all-types"]  # the routes find the key first
    assert stored_answers(client) == [STORED]


@pytest.mark.parametrize(
    "how, status",
    [
        ({"data": GOOD | {"_key": KEY, "unit": "x"}}, 422),
        ({"data": GOOD | {"_key": "短"}}, 400),
        ({"content": b"unit=\xff", "headers": {"Content-Type": "application/x-www-form-urlencoded"}}, 400),
        ({"content": "&".join(["a=1"] * 1001), "headers": {"Content-Type": "application/x-www-form-urlencoded"}}, 400),
        ({"data": GOOD | {"_key": KEY}, "headers": {"HX-Request": "true"}}, 200),
        ({"data": GOOD | {"_key": KEY}, "files": {"x": ("a.txt", b"a")}}, 400),
    ],
    ids=["mistake", "bad key", "not utf-8", "too many fields", "htmx", "multipart"],
)
def test_what_has_a_page_to_show_goes_to_the_routes_with_its_body(client, routed, how, status):
    answer = client.post("/f/all-types", follow_redirects=False, **how)
    assert answer.status_code == status and routed == ["/f/all-types"]
    if status == 422:  # the routes read the same body: what was typed is on the page again
        assert "unit" in errors_on_page(answer.text) and 'value="海口市第一中学"' not in answer.text
        assert 'name="unit"' in answer.text and 'value="x"' in answer.text
    if status == 200:
        assert "提交成功" in answer.text


def test_a_resident_over_the_rate_limit_gets_the_routes_page_with_everything_kept(tmp_path, routed):
    with make_app_client(tmp_path, rate_limit=1) as client:
        assert post(client).status_code == 303 and routed == []
        refused = post(client, data=GOOD | {"_key": "resident-key-0000000002"})
        assert refused.status_code == 429 and refused.headers["retry-after"]
        assert routed == ["/f/all-types"] and 'value="海口市第一中学"' in refused.text
        assert len(stored_answers(client)) == 1


def test_a_body_in_chunks_is_read_whole_and_one_cut_short_stores_nothing(client, routed):
    body = urlencode(GOOD | {"_key": KEY}, doseq=True).encode()
    assert asyncio.run(asgi_post(client.app, [body[:10], body[10:30], body[30:]], len(body))) == 303
    assert routed == [] and stored_answers(client) == [STORED]
    cut = body.replace(KEY.encode(), b"resident-key-0000000002")
    status = asyncio.run(asgi_post(client.app, [cut[:30]], len(cut), disconnect=True))
    assert status != 303 and len(stored_answers(client)) == 1


async def asgi_post(app, chunks: list[bytes], length: int, disconnect: bool = False) -> int | None:
    """POST /f/all-types as a server hands it to the app: the body in chunks, perhaps cut short."""
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1 or disconnect}
                for i, c in enumerate(chunks)]  # fmt: skip
    if disconnect:
        messages.append({"type": "http.disconnect"})
    status = None

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    headers = [(b"host", b"testserver.local"), (b"content-type", b"application/x-www-form-urlencoded"),
               (b"content-length", str(length).encode())]  # fmt: skip
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/f/all-types", "raw_path": b"/f/all-types", "query_string": b"", "root_path": "",
             "headers": headers, "client": ("127.0.0.1", 5000), "server": ("testserver.local", 80), "state": {}}  # fmt: skip
    await app(scope, receive, send)
    return status


PIECES = ["a", "b", "=", "&", "%", "%E7%BD%91", "%e7%bd%91", "%2", "%zz", "% 4", "%1 ", "+", "名", "%FF",
          "%C3%28", "&&", "==", " ", ";", "%25", "%2B", "%20", "%%", "x%41y"]  # fmt: skip


def test_form_data_is_read_exactly_as_parse_qsl_reads_it():
    shuffled = random.Random(15)
    for _ in range(20_000):
        text = "".join(shuffled.choice(PIECES) for _ in range(shuffled.randint(0, 10)))
        try:
            want: dict | str = {}
            for name, value in parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=5):
                want.setdefault(name, []).append(value)  # type: ignore[union-attr]
        except ValueError:
            want = "refused"
        try:
            got: dict | str = decode_form_data(text.encode(), 5)
        except ValueError:
            got = "refused"
        assert got == want, text
    with pytest.raises(ValueError):
        decode_form_data(b"why=\xe7\xbd", 5)  # raw bytes that are not UTF-8
    assert decode_form_data(b"why=%E7%BD%91%E8%B4%AD&why=", 5) == {"why": ["网购", ""]}


@pytest.mark.parametrize("accept", ["identity", "gzip, deflate, br"])
def test_a_kept_thank_you_page_comes_from_the_front_door_as_the_routes_send_it(client, monkeypatch, accept):
    shown: list[str] = []
    through = public._thanks

    def counting(request, ctx, target):
        shown.append(request.url.path)
        return through(request, ctx, target)

    monkeypatch.setattr(public, "_thanks", counting)
    monkeypatch.setattr(blank_pages, "_whole", {})  # nothing kept from other tests
    headers = {"Accept-Encoding": accept}
    code = new_event(client, date="")
    for path in ("/f/all-types/thanks", f"/e/{code}/thanks"):
        with client.stream("GET", path, headers=headers) as routed:  # the first view keeps the page
            routed_body = b"".join(routed.iter_raw())
        with client.stream("GET", path, headers=headers) as kept:
            kept_body = b"".join(kept.iter_raw())
        assert shown.count(path) == 1 and routed.status_code == kept.status_code == 200
        assert sorted(routed.headers.multi_items()) == sorted(kept.headers.multi_items()) and routed_body == kept_body
        assert kept.headers.get("content-encoding") == (None if accept == "identity" else "gzip")
    assert client.get("/f/closed/thanks").status_code == 200 and shown[-1] == "/f/closed/thanks"  # not open: routed
