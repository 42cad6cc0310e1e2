"""The public pages driven over HTTP, as a phone would."""

import json

import pytest

from tests.conftest import database, errors_on_page, make_app_client, stored_answers, submission_key

GOOD = {"unit": "海口市第一中学", "venue": "school", "satisfaction": "4", "topics": ["食品", "电梯"]}


def open_form(client, path="/f/all-types"):
    page = client.get(path)
    assert page.status_code == 200
    return submission_key(page.text)


def submit(client, data, path="/f/all-types", **kwargs):
    return client.post(path, data=data, follow_redirects=False, **kwargs)


def test_landing_page_lists_open_forms(client):
    page = client.get("/")
    assert page.status_code == 200
    assert 'href="/f/all-types"' in page.text
    assert "/f/closed" not in page.text and "/f/upcoming" not in page.text


def test_form_page_is_a_plain_post_form_named_by_field(client):
    page = client.get("/f/all-types").text
    assert '<form class="survey" method="post" action="/f/all-types"' in page
    for name in ("unit", "people", "spend", "held_on", "why", "name", "mobile", "mail", "agree"):
        assert f'name="{name}"' in page
    assert page.count('type="radio" name="venue"') == 3  # two options and 其他
    assert 'name="venue_other"' in page
    assert page.count('type="checkbox" name="topics"') == 4
    assert [f'value="{n}"' in page for n in range(1, 6)] == [True] * 5
    assert "当「满意度」≤ 2 且 「场所」为“学校”时填写" in page  # show_if, readable without script
    assert "个人信息说明" in page and "活动结束 90 天后删除" in page


def test_every_asset_comes_from_this_server(client):
    page = client.get("/f/all-types").text
    assert "http://" not in page and "https://" not in page and "//" not in page.replace("<!--", "")
    assert client.get("/f/all-types").headers["content-security-policy"].startswith("default-src 'self'")


def test_accepted_submission_redirects_to_thanks_and_is_stored(client):
    key = open_form(client)
    answer = submit(client, GOOD | {"_key": key})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/f/all-types/thanks"
    thanks = client.get("/f/all-types/thanks")
    assert thanks.status_code == 200 and "谢谢！" in thanks.text
    assert stored_answers(client) == [
        {"unit": "海口市第一中学", "venue": "school", "topics": ["食品", "电梯"], "satisfaction": 4}
    ]
    row = next(database(client)["responses"].rows)
    assert row["submission_key"] == key and row["form_id"] == "all-types" and row["event"] is None
    assert row["submitted_at"].endswith("+08:00") and len(row["submitted_at"]) == 25


def test_multipart_submissions_are_accepted_too(client):
    key = open_form(client)
    answer = client.post(
        "/f/all-types",
        files={k: (None, v.encode()) for k, v in {"_key": key, "unit": "琼海市"}.items()},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert stored_answers(client) == [{"unit": "琼海市"}]


def test_same_submission_key_twice_stores_one_response(client):
    key = open_form(client)
    first = submit(client, GOOD | {"_key": key})
    again = submit(client, GOOD | {"_key": key})
    assert first.status_code == again.status_code == 303
    assert first.headers["location"] == again.headers["location"]
    assert database(client)["responses"].count == 1


def test_each_page_view_gets_its_own_key(client):
    assert open_form(client) != open_form(client)


def test_invalid_answers_get_422_with_every_value_kept_and_errors_in_place(client):
    key = open_form(client)
    sent = {
        "_key": key, "unit": "局", "people": "abc", "mail": "x@", "venue": "other", "venue_other": "",
        "topics": ["食品"], "satisfaction": "2", "name": "王小明", "spend": "12.5",
    }  # fmt: skip
    answer = submit(client, sent)
    assert answer.status_code == 422
    page = answer.text
    assert errors_on_page(page) == {
        "unit": "至少填写 2 个字（现在是 1 个）",
        "venue": "选了“其他”，请填写具体内容",
        "people": "请填写整数，如 25",
        "mail": "请填写正确的电子邮箱，如 name@example.com",
        "_consent": "填写了个人信息，请先阅读并勾选同意个人信息说明",
    }
    assert 'value="局"' in page and 'value="abc"' in page and 'value="x@"' in page
    assert 'value="王小明"' in page and 'value="12.5"' in page
    assert 'value="other" checked' in page and 'value="食品" checked' in page and 'value="2" checked' in page
    assert f'value="{key}"' in page  # the same key: fixing and resubmitting stores once
    assert 'aria-invalid="true"' in page and "有 5 处需要修改" in page
    assert database(client)["responses"].count == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [("people", "NaN"), ("people", "1e309"), ("spend", "abc"), ("spend", "NaN"), ("spend", "1e309"),
     ("venue", "not-an-option"), ("satisfaction", "99"), ("unit", "长" * 11), ("held_on", "昨天")],
)  # fmt: skip
def test_each_bad_value_is_a_422_and_nothing_is_stored(client, field, value):
    answer = submit(client, GOOD | {field: value, "_key": open_form(client)})
    assert answer.status_code == 422
    assert field in errors_on_page(answer.text)
    assert database(client)["responses"].count == 0


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"data": {"unit": ["一", "二"]}}, 400),  # two values for a one-answer question
        ({"content": b"unit=%ff%fe", "headers": {"content-type": "application/x-www-form-urlencoded"}}, 400),
        ({"content": b"unit=\xff\xfe", "headers": {"content-type": "application/x-www-form-urlencoded"}}, 400),
        ({"files": {"unit": (None, b"\xff\xfe")}}, 400),
        ({"files": {"unit": ("a.txt", b"file", "text/plain")}}, 400),
        ({"content": b'{"unit": "x"}', "headers": {"content-type": "application/json"}}, 415),
        ({"content": b"unit=x", "headers": {"content-type": "text/plain"}}, 415),
        ({"data": {"_key": "short"}}, 400),
        (
            {
                "content": b"unit=" + b"x" * (1024 * 1024),
                "headers": {"content-type": "application/x-www-form-urlencoded"},
            },
            413,
        ),
    ],
)
def test_requests_no_person_could_type_get_a_plain_4xx(client, kwargs, status):
    answer = client.post("/f/all-types", follow_redirects=False, **kwargs)
    assert answer.status_code == status
    assert "<html" in answer.text and "Traceback" not in answer.text
    assert database(client)["responses"].count == 0


def test_a_missing_key_still_stores_the_answer(client):
    assert submit(client, {"unit": "没有密钥的提交"}).status_code == 303
    assert stored_answers(client) == [{"unit": "没有密钥的提交"}]


def test_unknown_form_is_404_and_stores_nothing(client):
    assert client.get("/f/no-such-form").status_code == 404
    assert submit(client, GOOD, path="/f/no-such-form").status_code == 404
    assert "没有找到这个页面" in client.get("/f/no-such-form").text
    assert client.get("/f/Bad_Id!").status_code == 404


@pytest.mark.parametrize(("form_id", "text"), [("closed", "本问卷已经结束"), ("upcoming", "本问卷尚未开始")])
def test_closed_form_is_410_and_stores_nothing(client, form_id, text):
    page = client.get(f"/f/{form_id}")
    assert page.status_code == 410 and text in page.text
    assert submit(client, {"q": "迟到的回答"}, path=f"/f/{form_id}").status_code == 410
    assert database(client)["responses"].count == 0


def test_ignored_draft_files_are_not_forms(client):
    assert client.get("/f/_draft").status_code == 404


def test_htmx_submit_gets_the_thanks_fragment(client):
    answer = submit(client, GOOD | {"_key": open_form(client)}, headers={"HX-Request": "true"})
    assert answer.status_code == 200
    assert answer.text.startswith('<section class="thanks"') and "谢谢！" in answer.text


def test_htmx_invalid_submit_gets_the_form_fragment_with_errors(client):
    answer = submit(client, {"unit": ""}, headers={"HX-Request": "true"})
    assert answer.status_code == 422
    assert answer.text.lstrip().startswith('<form class="survey"') and "<html" not in answer.text
    assert errors_on_page(answer.text) == {"unit": "此项为必填"}


def test_inline_check_validates_one_question_in_context(client):
    check = client.post("/f/all-types/check/people", data={"people": "abc"})
    assert check.status_code == 200
    assert errors_on_page(check.text) == {"people": "请填写整数，如 25"}
    assert errors_on_page(client.post("/f/all-types/check/people", data={"people": "30"}).text) == {}
    # `why` is required only while shown
    assert errors_on_page(client.post("/f/all-types/check/why", data={"satisfaction": "5"}).text) == {}
    shown = client.post("/f/all-types/check/why", data={"satisfaction": "1", "venue": "school"})
    assert errors_on_page(shown.text) == {"why": "此项为必填"}
    assert client.post("/f/all-types/check/nope", data={}).status_code == 404
    assert database(client)["responses"].count == 0


def test_rate_limit_answers_429_keeps_answers_and_stores_nothing_more(tmp_path):
    with make_app_client(tmp_path, rate_limit=2) as client:
        assert submit(client, {"unit": "第一份"}).status_code == 303
        assert submit(client, {"unit": "第二份"}).status_code == 303
        third = submit(client, {"unit": "第三份"})
        assert third.status_code == 429
        assert int(third.headers["retry-after"]) >= 1
        assert "提交太频繁了" in third.text and 'value="第三份"' in third.text
        assert submit(client, {"unit": ""}).status_code == 422  # invalid posts are not counted, nor refused
        assert database(client)["responses"].count == 2


def test_rate_limit_zero_turns_it_off(tmp_path):
    with make_app_client(tmp_path, rate_limit=0) as client:
        assert all(submit(client, {"unit": f"第{i}份"}).status_code == 303 for i in range(30))


def test_cjk_extension_b_and_emoji_round_trip(client):
    text = "𠀋𡈽𪚥 质量 👍🏽"
    assert submit(client, {"unit": text}).status_code == 303
    assert stored_answers(client) == [{"unit": text}]


def test_healthz_says_ok_when_the_database_is_writable(client):
    answer = client.get("/healthz")
    assert (answer.status_code, answer.text) == (200, "ok")


def test_the_definition_version_is_stored_with_each_response(client):
    submit(client, {"unit": "第一份"})
    db = database(client)
    response = next(db["responses"].rows)
    version = next(db["form_versions"].rows)
    assert response["form_version"] == version["version"]
    assert json.loads(version["definition"])["title"] == "全部题型"


def test_a_blank_form_page_follows_edits_to_its_file_and_keys_never_repeat(client):
    first = client.get("/f/all-types").text
    catalog = client.app.state["context"].catalog
    path = catalog.directory / "all-types.toml"
    path.write_text(
        path.read_text(encoding="utf-8").replace('title = "全部题型"', 'title = "全部题型（修订）"'), "utf-8"
    )
    catalog._next_scan = 0  # as if the two seconds between looks had passed
    second = client.get("/f/all-types").text
    assert "全部题型（修订）" not in first and "全部题型（修订）" in second
    keys = {submission_key(client.get("/f/all-types").text) for _ in range(20)} | {submission_key(first)}
    assert len(keys) == 21
