"""The cross-tab beside a form's results: counts and row percentages of two questions (or a
question and 市县/活动), as a table, stacked bars and a workbook, over the results' filters
and the account's scope."""

from __future__ import annotations

import datetime as dt
import html
import io
import re

import msgspec
import openpyxl
import pytest

from server.accounts import add_user
from server.events import add_events, make_event
from tests.conftest import ADMIN_PASSWORD, database, sign_in, submission_key

ANSWERS = {  # event -> answers sent from its page ("" = the form's own page)
    "白沙": [
        {"unit": "白沙一中", "venue": "school", "satisfaction": "5", "topics": ["电梯", "食品"]},
        {"unit": "白沙二中", "venue": "school", "satisfaction": "4", "topics": ["食品"]},
        {"unit": "白沙社区", "venue": "community", "satisfaction": "5", "topics": ["油品"]},
    ],
    "琼海": [
        {"unit": "琼海社区", "venue": "community", "satisfaction": "2", "topics": ["电梯"]},
        {"unit": "琼海一中", "venue": "school", "satisfaction": "5"},
    ],
    "": [{"unit": "图书馆员", "venue": "other", "venue_other": "图书馆", "satisfaction": "3", "topics": ["食品"]}],
}


@pytest.fixture
def answered(office, clock):
    clock(dt.datetime(2022, 9, 16, 10))
    forms = {f.id: f for f in office.app.state["context"].catalog.all()}
    codes = {}
    for county in ("白沙", "琼海"):
        made = make_event(forms, {"form": "all-types", "title": f"{county}宣讲", "county": county})
        [event] = add_events(database(office), [msgspec.structs.replace(made, created_by="wang")])
        codes[county] = event.code
    for county, answers in ANSWERS.items():
        path = f"/e/{codes[county]}" if county else "/f/all-types"
        for answer in answers:
            key = submission_key(office.get(path).text)
            assert office.post(path, data=answer | {"_key": key}, follow_redirects=False).status_code == 303
    assert sign_in(office, "boss", ADMIN_PASSWORD).status_code == 303
    return codes


def table(page: str) -> dict[str, list[tuple[int, str]]]:
    """Row label -> (count, row percentage) per column, then the respondents (count, "")."""
    body = re.search(r'<table class="table crosstab" id="crosstab-table">.*?<tbody>(.*?)</tbody>', page, re.S).group(1)
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", body, re.S):
        label = html.unescape(re.search(r'<th scope="row">(.*?)</th>', row).group(1))
        cells = re.findall(r'<td class="num">(\d+)(?:<span class="share">([\d.]+%)</span>)?</td>', row)
        rows[label] = [(int(count), share) for count, share in cells]
    return rows


def columns(page: str) -> list[str]:
    head = re.search(r'id="crosstab-table">\s*<thead>(.*?)</thead>', page, re.S).group(1)
    return [html.unescape(c) for c in re.findall(r'<th scope="col" class="num">(.*?)</th>', head)]


def test_two_questions_crossed_give_counts_and_row_percentages(office, answered):
    page = office.get("/admin/forms/all-types/crosstab?rows=venue&columns=satisfaction")
    assert page.status_code == 200
    assert columns(page.text) == ["5 分", "4 分", "3 分", "2 分", "答题人数"]
    assert table(page.text) == {
        "学校": [(2, "66.7%"), (1, "33.3%"), (0, "0.0%"), (0, "0.0%"), (3, "")],
        "社区": [(1, "50.0%"), (0, "0.0%"), (0, "0.0%"), (1, "50.0%"), (2, "")],
        "其他": [(0, "0.0%"), (0, "0.0%"), (1, "100.0%"), (0, "0.0%"), (1, "")],
    }
    foot = re.search(r"<tfoot>(.*?)</tfoot>", page.text, re.S).group(1)
    assert re.findall(r'<td class="num">(\d+)</td>', foot) == ["3", "1", "1", "1", "6"]
    assert "两题都回答了的答卷 <strong>6</strong> 份" in page.text
    bars = re.search(r'<svg class="chart stacked".*?</svg>', page.text, re.S).group(0)
    widths = [float(w) for w in re.findall(r'<rect x="[\d.]+" y="\d+" width="([\d.]+)"', bars)]
    assert widths == [320.0, 160.0, 240.0, 240.0, 480.0]  # each row's parts fill the bar
    assert "<title>5 分：2</title>" in bars and "school" not in bars


def test_a_question_by_county_or_event_and_a_multi_question_counts_each_option(office, answered):
    page = office.get("/admin/forms/all-types/crosstab?rows=county&columns=topics").text
    assert columns(page) == ["食品", "电梯", "油品", "答题人数"]
    assert table(page) == {
        "琼海市": [(0, "0.0%"), (1, "100.0%"), (0, "0.0%"), (1, "")],
        "白沙黎族自治县": [(2, "66.7%"), (1, "33.3%"), (1, "33.3%"), (3, "")],
        "（未经活动）": [(1, "100.0%"), (0, "0.0%"), (0, "0.0%"), (1, "")],
    }
    assert "一行加起来可超过 100%" in page
    by_event = table(office.get("/admin/forms/all-types/crosstab?rows=event&columns=venue").text)
    assert by_event[f"白沙宣讲（{answered['白沙']}）"][:2] == [(2, "66.7%"), (1, "33.3%")]


def test_the_cross_tab_honours_the_filters_and_the_account_s_scope(office, answered):
    filtered = office.get("/admin/forms/all-types/crosstab?rows=venue&columns=satisfaction&county=白沙").text
    assert table(filtered) == {
        "学校": [(1, "50.0%"), (1, "50.0%"), (2, "")],
        "社区": [(1, "100.0%"), (0, "0.0%"), (1, "")],
    }
    add_user(database(office), "baisha", ADMIN_PASSWORD, "county", "白沙")
    assert sign_in(office, "baisha", ADMIN_PASSWORD).status_code == 303
    scoped = office.get("/admin/forms/all-types/crosstab?rows=county&columns=venue").text
    assert list(table(scoped)) == ["白沙黎族自治县"] and "琼海" not in scoped.split("<h2>")[1]
    sheet = openpyxl.load_workbook(
        io.BytesIO(office.get("/admin/forms/all-types/crosstab.xlsx?rows=county&columns=venue").content)
    ).active
    assert all("琼海" not in str(cell.value) for row in sheet.iter_rows() for cell in row)
    assert (
        office.get(f"/admin/forms/all-types/crosstab?rows=venue&columns=county&event={answered['琼海']}").status_code
        == 403
    )


def test_the_cross_tab_downloads_as_a_workbook_with_counts_and_shares(office, answered):
    got = office.get("/admin/forms/all-types/crosstab.xlsx?rows=venue&columns=satisfaction&date_from=2022-09-01")
    assert got.status_code == 200
    assert got.headers["content-type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert re.fullmatch(r'attachment; filename="all-types-crosstab-venue-satisfaction-\d{8}-\d{6}\.xlsx"',
                        got.headers["content-disposition"])  # fmt: skip
    sheet = openpyxl.load_workbook(io.BytesIO(got.content)).active
    rows = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert rows[0][0] == "全部题型：场所 × 满意度"
    assert rows[1][0] == "范围：2022-09-01 至 今天；两题都回答了的答卷 6 份（不含疑似垃圾）"
    assert rows[3][0] == "人数" and rows[4] == ["场所 \\ 满意度", "5 分", "4 分", "3 分", "2 分", "答题人数"]
    assert rows[5] == ["学校", 2, 1, 0, 0, 3] and rows[8] == ["合计", 3, 1, 1, 1, 6]
    assert rows[10][0] == "行百分比（占该行答题人数）"
    assert rows[12][0] == "学校" and [round(v, 4) for v in rows[12][1:5]] == [0.6667, 0.3333, 0, 0]
    assert sheet.cell(13, 2).number_format == "0.0%"
    line = database(office).execute("SELECT action, detail FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    assert line == ("export", "crosstab form all-types venue x satisfaction")


@pytest.mark.parametrize(
    "query, message",
    [("rows=venue&columns=venue", "请选择两个不同的题目"), ("rows=unit&columns=venue", "请从列表里选择两个题目")],
)
def test_axes_that_cannot_be_crossed_are_a_chinese_400(office, answered, query, message):
    page = office.get(f"/admin/forms/all-types/crosstab?{query}")
    assert page.status_code == 400 and message in page.text
    assert office.get(f"/admin/forms/all-types/crosstab.xlsx?{query}").status_code == 400
