"""Whatever bytes a phone, a proxy or a bot posts, the submit endpoint never answers 5xx,
and the rows stored are exactly the submissions it accepted (303)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import string
from collections.abc import Iterator
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from server.validate import validate
from tests.conftest import database, make_app_client

FORM = "/f/all-types"
MB = 1024 * 1024
FIELD_NAMES = [
    "unit", "venue", "venue_other", "people", "spend", "held_on", "topics", "topics_other", "satisfaction",
    "why", "elevator_issue", "name", "mobile", "mail", "agree", "_consent", "_key", "intro", "welcome",
]  # fmt: skip
KEYS = ["fuzz-key-aaaaaaaaaaaaaa", "fuzz-key-bbbbbbbbbbbbbb", "fuzz-key-cccccccccccccc"]  # few, so they repeat
URLENCODED = "application/x-www-form-urlencoded"
CONTENT_TYPES = [
    URLENCODED,
    URLENCODED + "; charset=utf-8",
    URLENCODED + "; charset=gb18030",
    URLENCODED.upper(),
    "multipart/form-data",  # no boundary
    "multipart/form-data; boundary=fuzz",
    "application/json",
    "text/plain",
    "application/octet-stream",
    "",
    "x/y; z",
    None,  # no header at all
]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Any code point, surrogates included (they cannot be UTF-8, so they reach the server as bad bytes).
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=30)
plausible = st.one_of(
    st.text("海口琼海博鳌镇一中社区 abc", min_size=2, max_size=10),
    st.sampled_from(["school", "community", "other", "食品", "电梯", "油品", "yes", "", " "]),
    st.integers(-10, 600).map(str),
    st.sampled_from(["２５", "12.5", "1e3", "NaN", "2022-09-15", "2022年9月5日", "13812345678", "a@b.cn", "x@"]),
    st.integers(1, 6).map(str),
)
huge = st.integers(1, 400_000).map(lambda n: "质" * n)  # up to 3.6 MB once percent-encoded
values = st.one_of(plausible, plausible, any_text, st.just("\x00"), huge)
names = st.one_of(st.sampled_from(FIELD_NAMES), st.sampled_from(FIELD_NAMES), any_text)
pair = st.one_of(st.tuples(names, values), st.tuples(st.just("_key"), st.sampled_from(KEYS)))
# Answers a resident could give (so that many posts are accepted), in any order, with some noise.
resident_answers = st.fixed_dictionaries(
    {"unit": st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Z")), min_size=2, max_size=10)},
    optional={
        "venue": st.sampled_from(["school", "community", " school "]),
        "people": st.integers(1, 500).map(str),
        "spend": st.decimals(0, 10000, places=2).map(str),
        "held_on": st.dates(dt.date(2022, 9, 1), dt.date(2022, 10, 31)).map(str),
        "topics": st.lists(st.sampled_from(["食品", "电梯", "油品"]), unique=True, max_size=3),
        "satisfaction": st.integers(3, 5).map(str),
        "elevator_issue": st.text(max_size=20),
        "mail": st.sampled_from(["a@b.cn", "resident@example.com", ""]),
        "agree": st.just("yes"),
        "_key": st.one_of(st.sampled_from(KEYS), st.uuids().map(lambda u: f"fuzz-{u.hex}")),
    },
).map(
    lambda answers: [
        (name, v) for name, value in answers.items() for v in (value if isinstance(value, list) else [value])
    ]
)
submissions = st.one_of(
    st.lists(pair, max_size=12),
    st.tuples(resident_answers, st.lists(pair, max_size=2)).flatmap(lambda t: st.permutations(t[0] + t[1])),
    resident_answers,
)


@contextlib.contextmanager
def fuzz_client(tmp_path) -> Iterator[TestClient]:
    with make_app_client(tmp_path, rate_limit=0) as client:  # 429 is allowed, but would hide the rest
        yield client


def stored(client: TestClient) -> dict[str, dict]:
    """submission key -> answers, of every stored response."""
    rows = database(client).execute("SELECT submission_key, answers FROM responses").fetchall()
    assert len(rows) == len({key for key, _ in rows})
    return {key: json.loads(answers) for key, answers in rows}


def post_and_check(
    client: TestClient, sent_key: str | None, htmx: bool = False, **request
) -> tuple[int, dict[str, dict]]:
    """POST, then the property: never 5xx; a new row exactly when a 303 came for a new key
    (for htmx, 200 with the thanks fragment stands for the 303).

    Returns the status and the rows the request added (submission key -> answers)."""
    accepted = 200 if htmx else 303
    if htmx:
        request["headers"] = {**request.get("headers", {}), "HX-Request": "true"}
    before = stored(client)
    answer = client.post(FORM, follow_redirects=False, **request)
    after = stored(client)
    assert answer.status_code == accepted or 400 <= answer.status_code < 500, answer.text[:2000]
    assert "Traceback" not in answer.text
    new = {k: v for k, v in after.items() if k not in before}
    assert {k: after[k] for k in before} == before, "stored rows never change"
    if answer.status_code != accepted:
        assert new == {}, "a refused submission stored nothing"
    elif sent_key in before:
        assert new == {}, "the same key again stores nothing new"
    else:
        assert len(new) == 1, "an accepted submission is stored, once"
        if sent_key:
            assert list(new) == [sent_key]
    return answer.status_code, new


def encode_pairs(pairs: list[tuple[str, str]], encoding: str, percent: bool) -> bytes:
    parts = []
    for name, value in pairs:
        raw = [s.encode(encoding, "surrogatepass" if encoding == "utf-8" else "replace") for s in (name, value)]
        parts.append(b"=".join(quote_from_bytes(b, safe="").encode() if percent else b for b in raw))
    return b"&".join(parts)


def the_key(pairs: list[tuple[str, str]]) -> str | None:
    keys = [value for name, value in pairs if name == "_key"]
    return keys[0] if len(keys) == 1 else None


@given(
    pairs=submissions,
    encoding=st.sampled_from(["utf-8", "utf-8", "utf-8", "gb18030", "utf-16-le", "latin-1"]),
    percent=st.booleans(),
    content_type=st.sampled_from(CONTENT_TYPES),
    htmx=st.booleans(),
)
@SETTINGS
def _urlencoded_submission_is_303_or_4xx_and_stored_exactly_when_accepted(
    client, pairs, encoding, percent, content_type, htmx
):
    body = encode_pairs(pairs, encoding, percent)
    headers = {} if content_type is None else {"Content-Type": content_type}
    status, new = post_and_check(client, the_key(pairs), htmx, content=body, headers=headers)
    if new and body == encode_pairs(pairs, "utf-8", percent=True):
        # What was stored is exactly what was typed, cleaned: nothing lost on the way.
        data: dict[str, list[str]] = {}
        for name, value in pairs:
            data.setdefault(name, []).append(value)
        assert list(new.values()) == [validate(client.app.state["context"].catalog.get("all-types"), data).answers]
    if len(body) > MB and (content_type or "").split(";")[0].strip().lower() == URLENCODED:
        assert status == 413


def test_urlencoded_submissions_never_5xx_and_rows_are_the_accepted_ones(tmp_path):
    with fuzz_client(tmp_path) as client:
        _urlencoded_submission_is_303_or_4xx_and_stored_exactly_when_accepted(client)
        assert database(client)["responses"].count > 0, "some fuzzed submissions were accepted"


Part = tuple[bytes, bytes, bytes | None, bytes | None]  # name, content, file name, content type


def multipart(parts: list[Part], boundary: bytes = b"fuzz-boundary") -> bytes:
    """A multipart body built by hand, so names, file names and part headers may be any bytes."""
    body = b""
    for name, content, filename, content_type in parts:
        headers = b'Content-Disposition: form-data; name="' + name + b'"'
        if filename is not None:
            headers += b'; filename="' + filename + b'"'
        if content_type is not None:
            headers += b"\r\nContent-Type: " + content_type
        body += b"--" + boundary + b"\r\n" + headers + b"\r\n\r\n" + content + b"\r\n"
    return body + b"--" + boundary + b"--\r\n"


def utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


@given(
    parts=st.one_of(
        st.lists(
            st.tuples(
                names.map(utf8),
                st.one_of(values.map(utf8), st.binary(max_size=50)),
                st.sampled_from([None, None, b"a.txt", b"", utf8("质量.jpg")]),
                st.sampled_from(
                    [
                        None,
                        None,
                        b"text/plain; charset=utf-8",
                        b"text/plain; charset=gbk",
                        b"text/plain; charset=no-such-charset",
                        b"application/octet-stream",
                    ]
                ),
            ),
            max_size=10,
        ),
        resident_answers.map(lambda pairs: [(utf8(name), utf8(value), None, None) for name, value in pairs]),
    ),
    pair=st.one_of(st.none(), st.tuples(st.just(b"_key"), st.sampled_from(KEYS).map(utf8), st.none(), st.none())),
)
@SETTINGS
def _multipart_submission_is_303_or_4xx_and_stored_exactly_when_accepted(client, parts, pair):
    parts = [*parts, pair] if pair else parts
    keys = [content for name, content, _, _ in parts if name == b"_key"]
    sent_key = keys[0].decode("utf-8", "replace") if len(keys) == 1 else None
    body = multipart(parts)
    headers = {"Content-Type": "multipart/form-data; boundary=fuzz-boundary"}
    status, new = post_and_check(client, sent_key, content=body, headers=headers)
    if new and all(plain_part(*part) for part in parts):
        data: dict[str, list[str]] = {}
        for name, content, _, _ in parts:
            data.setdefault(name.decode(), []).append(content.decode())
        assert list(new.values()) == [validate(client.app.state["context"].catalog.get("all-types"), data).answers]
    if len(body) > MB:
        assert status == 413


def plain_part(name: bytes, content: bytes, filename: bytes | None, content_type: bytes | None) -> bool:
    """A part as a browser sends a text input: UTF-8, no file, no headers of its own, a tame name."""
    try:
        name.decode(), content.decode()
    except UnicodeDecodeError:
        return False
    return filename is None and content_type is None and not any(c in name for c in b'"\\\r\n%;')


def test_multipart_submissions_never_5xx_and_rows_are_the_accepted_ones(tmp_path):
    with fuzz_client(tmp_path) as client:
        _multipart_submission_is_303_or_4xx_and_stored_exactly_when_accepted(client)


@given(
    body=st.one_of(
        st.binary(max_size=3000),
        st.text(string.printable + "%&=+质", max_size=300).map(str.encode),
        st.sampled_from([b"", b"&", b"=", b"&&==", b"%", b"%zz", b"unit=%E8%B4", b"unit", b"unit&unit", b"_key"]),
    ),
    content_type=st.sampled_from([*CONTENT_TYPES, "multipart/form-data; boundary=----x", "multipart/mixed"]),
)
@SETTINGS
def _raw_body_is_303_or_4xx_and_stored_exactly_when_accepted(client, body, content_type):
    headers = {} if content_type is None else {"Content-Type": content_type}
    post_and_check(client, None, content=body, headers=headers)


def test_raw_bodies_never_5xx_and_rows_are_the_accepted_ones(tmp_path):
    with fuzz_client(tmp_path) as client:
        _raw_body_is_303_or_4xx_and_stored_exactly_when_accepted(client)


@pytest.mark.parametrize(
    ("content_type", "statuses"),
    [
        (URLENCODED, {413}),
        ("multipart/form-data; boundary=fuzz", {413}),
        ("text/plain", {413, 415}),
        (None, {413, 415}),
    ],
)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_bodies_over_one_megabyte_are_refused_however_they_are_sent(tmp_path, content_type, statuses, chunked):
    body = b"unit=" + b"x" * MB
    if content_type and content_type.startswith("multipart"):
        body = multipart([(b"unit", b"x" * MB, None, None)], boundary=b"fuzz")
    content = iter([body[i : i + 65536] for i in range(0, len(body), 65536)]) if chunked else body
    headers = {} if content_type is None else {"Content-Type": content_type}
    with fuzz_client(tmp_path) as client:
        status, _ = post_and_check(client, None, content=content, headers=headers)
        assert status in statuses
