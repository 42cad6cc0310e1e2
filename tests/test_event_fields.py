"""Event-bound answers, page-address values, worded ratings and the error summary (SPEC §5.5)."""

import html
import re

import pytest

from server.clock import now
from server.events import add_events, make_event
from server.export import export_csv
from server.forms import FormError, load_form
from tests.conftest import client_with_forms, database, make_app_client, signed_in_admin, stored_answers, submission_key

FORM = """
title = "乡镇行问卷"
kind = "township-event"

[[fields]]
name = "township"
type = "text"
label = "您是哪个乡镇的？"
required = true
from_event = "township"

[[fields]]
name = "venue"
type = "choice"
label = "在哪里参加的？"
required = true
options = [{ value = "school", label = "学校" }, { value = "community", label = "社区" }]
from_event = "venue_type"

[[fields]]
name = "attended_on"
type = "date"
label = "您是哪一天参加活动的？"
required = true
from_event = "date"

[[fields]]
name = "satisfaction"
type = "rating"
label = "您对本次活动满意吗？"
required = true
labels = ["很不满意", "不满意", "一般", "满意", "很满意"]

[[fields]]
name = "src"
type = "hidden"
label = "来源"
"""


TODAY = now().date().isoformat()  # the product's clock: an event stays open a week after its day


@pytest.fixture
def client(tmp_path):
    with client_with_forms(tmp_path, town=FORM) as client:
        yield client


def new_event(client, **values) -> str:
    forms = {f.id: f for f in client.app.state["context"].catalog.all()}
    school = {"form": "town", "title": "质量文化乡镇行", "venue_type": "学校", "county": "白沙", "township": "牙叉镇",
              "date": TODAY}  # fmt: skip
    [event] = add_events(database(client), [make_event(forms, school | values)])
    return event.code


def questions(page: str) -> list[str]:
    """The names a resident is asked to answer on a page, in order."""
    return list(dict.fromkeys(re.findall(r'<div class="field[^"]*" id="q-(\w+)"', page)))


def post(client, path, data, **query):
    page = client.get(path, params=query)
    return client.post(path, data=data | {"_key": submission_key(page.text)}, follow_redirects=False)


def test_an_event_page_asks_fewer_questions_and_stores_the_events_values(client):
    code = new_event(client)
    assert questions(client.get("/f/town").text) == ["township", "venue", "attended_on", "satisfaction"]
    assert questions(client.get(f"/e/{code}").text) == ["satisfaction"]
    assert post(client, f"/e/{code}", {"satisfaction": "4"}).status_code == 303
    assert stored_answers(client) == [
        {"township": "牙叉镇", "venue": "school", "attended_on": TODAY, "satisfaction": 4}
    ]


def test_what_a_client_posts_for_an_event_bound_question_is_not_taken(client):
    code = new_event(client)
    answer = post(client, f"/e/{code}", {"satisfaction": "5", "township": "邦溪镇", "venue": "community"})
    assert answer.status_code == 303
    assert stored_answers(client)[0] | {} == {
        "township": "牙叉镇", "venue": "school", "attended_on": TODAY, "satisfaction": 5
    }  # fmt: skip


def test_a_question_the_event_cannot_answer_is_asked_on_its_page(client):
    code = new_event(client, township="", date="", venue_type="机关")  # 机关 is not an option of `venue`
    assert questions(client.get(f"/e/{code}").text) == ["township", "venue", "attended_on", "satisfaction"]
    missing = post(client, f"/e/{code}", {"satisfaction": "3"})
    assert missing.status_code == 422
    assert post(client, f"/e/{code}", {"satisfaction": "3", "township": "七坊镇", "venue": "community",
                                       "attended_on": "2026-09-16"}).status_code == 303  # fmt: skip
    assert stored_answers(client)[0]["township"] == "七坊镇"


def test_on_the_forms_own_page_event_bound_questions_are_asked_as_usual(client):
    answer = post(client, "/f/town", {"satisfaction": "2"})
    assert answer.status_code == 422
    assert post(client, "/f/town", {"satisfaction": "2", "township": "博鳌镇", "venue": "school",
                                    "attended_on": "2026-09-01"}).status_code == 303  # fmt: skip
    assert stored_answers(client)[0]["township"] == "博鳌镇"


def test_a_hidden_field_is_filled_from_the_page_address(client):
    page = client.get("/f/town", params={"src": "poster"}).text
    assert '<input type="hidden" name="src" value="poster">' in page
    code = new_event(client)
    assert post(client, f"/e/{code}", {"satisfaction": "5", "src": "poster"}, src="poster").status_code == 303
    assert post(client, f"/e/{code}", {"satisfaction": "5"}).status_code == 303  # no address value: no answer
    too_long = post(client, f"/e/{code}", {"satisfaction": "5", "src": "x" * 101})
    assert too_long.status_code == 303  # nobody typed it and nobody could fix it: left out, not refused
    assert [a.get("src") for a in stored_answers(client)] == ["poster", None, None]


def test_page_address_values_are_escaped(client):
    page = client.get("/f/town", params={"src": '"><script>alert(1)</script>'}).text
    assert "<script>alert(1)" not in page
    assert 'value="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in page


def test_a_worded_rating_shows_its_words_and_stores_the_point(client):
    page = client.get("/f/town").text
    for point, words in enumerate(["很不满意", "不满意", "一般", "满意", "很满意"], start=1):
        assert f'<input type="radio" name="satisfaction" value="{point}"><span>{words}</span>' in page
    code = new_event(client)
    post(client, f"/e/{code}", {"satisfaction": "5", "src": "wechat"})
    stored = stored_answers(client)[0]
    assert stored["satisfaction"] == 5
    form = client.app.state["context"].catalog.get("town")
    csv = b"".join(export_csv(database(client), form, header="names")).decode("utf-8-sig")
    assert csv.splitlines()[0] == "id,submitted_at,event,township,venue,attended_on,satisfaction,src"
    assert csv.splitlines()[1].endswith(f",{code},牙叉镇,school,{TODAY},5,wechat")


def test_results_show_the_words_of_a_rating_and_where_answers_came_from(client, tmp_path):
    code = new_event(client)
    for point, src in ((5, "poster"), (5, "poster"), (4, "wechat")):
        post(client, f"/e/{code}", {"satisfaction": str(point), "src": src}, src=src)
    signed_in_admin(client)
    results = html.unescape(client.get("/admin/forms/town").text)
    assert "5 分 很满意" in results and "2（66.7%）" in results
    assert "poster" in results and "wechat" in results


def test_after_a_failed_submit_the_page_opens_at_a_summary_linking_each_wrong_question(client):
    answer = post(client, "/f/town", {"attended_on": "昨天"})
    assert answer.status_code == 422
    summary = re.search(r'<div class="error-summary"[^>]*>(.*?)</div>', answer.text, re.S)
    assert summary and "autofocus" in answer.text.split('class="error-summary"', 1)[1].split(">", 1)[0]
    links = re.findall(r'<li><a href="#q-(\w+)">([^<]+)</a> ([^<]+)</li>', summary.group(1))
    assert [name for name, _, _ in links] == ["township", "venue", "attended_on", "satisfaction"]
    assert links[2][1:] == ("您是哪一天参加活动的？", "请填写正确的日期，如 2022-09-15")
    assert "show:window:top" not in answer.text  # an htmx swap no longer jumps to the top


@pytest.mark.parametrize(
    "field, message",
    [
        ('name = "t"\ntype = "text"\nlabel = "乡镇"\nfrom_event = "village"', "from_event 必须是"),
        ('name = "r"\ntype = "rating"\nlabel = "评分"\nfrom_event = "date"', "from_event 只能用于"),
        ('name = "r"\ntype = "rating"\nlabel = "评分"\nlabels = ["差", "好"]', "labels 要有 5 个"),
        ('name = "s"\ntype = "hidden"\nlabel = "来源"\nrequired = true', "hidden 由网址带入"),
        ('name = "s"\ntype = "hidden"\nlabel = "来源"\nmax_length = 5000', "max_length 应在 1 到 200 之间"),
    ],
)
def test_the_checker_names_the_file_and_field_of_each_mistake(tmp_path, field, message):
    path = tmp_path / "bad.toml"
    path.write_text(f'title = "t"\nkind = "general"\n\n[[fields]]\n{field}\n', encoding="utf-8")
    with pytest.raises(FormError) as caught:
        load_form(path)
    [line] = caught.value.messages
    assert line.startswith(f"{path}: 字段 ") and message in line


def test_at_a_township_event_residents_answer_fewer_questions_and_the_row_has_its_township_and_date(tmp_path):
    from tests.conftest import BUNDLED_FORMS

    with make_app_client(tmp_path, forms=BUNDLED_FORMS) as client:
        forms = {f.id: f for f in client.app.state["context"].catalog.all()}
        event = {"form": "township-event", "title": "质量文化乡镇行", "county": "白沙", "township": "牙叉镇",
                 "venue_type": "乡镇", "date": TODAY}  # fmt: skip
        [made] = add_events(database(client), [make_event(forms, event)])
        on_its_own = questions(client.get("/f/township-event").text)
        at_the_event = questions(client.get(f"/e/{made.code}").text)
        assert set(on_its_own) - set(at_the_event) == {"township", "attended_on"}
        answers = {"age_group": "60plus", "learned": "food", "helpful": "5", "recommend": "yes"}
        assert post(client, f"/e/{made.code}", answers).status_code == 303
        [stored] = stored_answers(client)
        assert (stored["township"], stored["attended_on"]) == ("白沙黎族自治县/牙叉镇", TODAY)
