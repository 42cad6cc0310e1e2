"""The office's filters reach the export: the links on the results and responses pages give
exactly the rows the page counted, as CSV and XLSX, in a file named by the filters."""

import csv
import datetime as dt
import html
import io
import re
from urllib.parse import parse_qsl, quote, urlsplit

import msgspec
import openpyxl
import pytest

from server.events import add_events, make_event
from server.results import Filters, parse_filters
from tests.conftest import ADMIN_PASSWORD, database, run, sign_in, submission_key

GOOD = {"unit": "海口市第一中学", "venue": "school", "satisfaction": "4", "topics": ["食品", "电梯"]}
SEPTEMBER = "county=白沙&date_from=2026-09-01&date_to=2026-09-30"
BAISHA_IN_SEPTEMBER = (
    "e.county = '白沙黎族自治县' AND r.submitted_at >= '2026-09-01' AND r.submitted_at < '2026-10-01'"
    " AND NOT r.suspected_spam"
)


def add_event(client, owner: str, **values) -> str:
    forms = {f.id: f for f in client.app.state["context"].catalog.all()}
    event = make_event(forms, {"form": "all-types", "title": "进学校", "venue_type": "学校"} | values)
    [stored] = add_events(database(client), [msgspec.structs.replace(event, created_by=owner)])
    return stored.code


def answer_at(client, clock, moment: dt.datetime, path: str, **extra) -> None:
    clock(moment)
    page = client.get(path)
    data = GOOD | {"unit": f"{moment:%m%d %H%M}", "_key": submission_key(page.text)} | extra
    assert client.post(path, data=data, follow_redirects=False).status_code == 303


@pytest.fixture
def filled(office, clock):
    """白沙 and 海口 events with answers either side of September's edges, one unlinked, one spam."""
    baisha = add_event(office, "wang", county="白沙", title="白沙中学质量课")
    haikou = add_event(office, "li", county="海口", title="海口一中质量课")
    for moment in (
        dt.datetime(2026, 8, 31, 23, 59, 59),
        dt.datetime(2026, 9, 1, 0, 0, 0),
        dt.datetime(2026, 9, 15, 12, 0),
        dt.datetime(2026, 9, 30, 23, 59, 59),
        dt.datetime(2026, 10, 1, 0, 0, 0),
    ):
        answer_at(office, clock, moment, f"/e/{baisha}")
        answer_at(office, clock, moment, f"/e/{haikou}")
        answer_at(office, clock, moment, "/f/all-types")
    answer_at(office, clock, dt.datetime(2026, 9, 20, 9, 0), f"/e/{baisha}", _homepage="http://spam.example")
    clock(dt.datetime(2026, 10, 8, 10, 0))
    return office, baisha


def ids_in_sql(client, where: str) -> list[int]:
    rows = database(client).execute(
        f"""SELECT r.id FROM responses r LEFT JOIN events e ON e.code = r.event
            WHERE r.form_id = 'all-types' AND {where} ORDER BY r.id"""
    )
    return [row[0] for row in rows]


def export_links(page: str) -> dict[str, str]:
    """The page's export links by their text, as a browser would follow them."""
    links = re.findall(r'<a href="(/admin/forms/all-types/export\.\w+\?[^"]*)">([^<]+)</a>', page)
    return {text: html.unescape(href) for href, text in links}


def csv_ids(download) -> list[int]:
    rows = list(csv.reader(io.StringIO(download.content.decode("utf-8-sig"), newline="")))
    return [int(row[0]) for row in rows[1:]]


def xlsx_ids(download) -> list[int]:
    sheet = openpyxl.load_workbook(io.BytesIO(download.content)).active
    return [row[0] for row in sheet.iter_rows(min_row=2, values_only=True)]


def test_the_export_links_give_exactly_the_rows_the_results_page_counted(filled):
    office, _ = filled
    sign_in(office, "boss", ADMIN_PASSWORD)
    page = office.get(f"/admin/forms/all-types?{SEPTEMBER}").text
    counted = int(re.search(r"<strong>(\d+)</strong> 份答卷", page).group(1))
    expected = ids_in_sql(office, BAISHA_IN_SEPTEMBER)
    assert counted == len(expected) == 3  # 9-01 00:00, 9-15 and 9-30 23:59:59 at 白沙; not 8-31, 10-01 or spam
    links = export_links(page)
    assert set(links) == {"CSV", "Excel", "Excel（统计用：多选题每个选项一列，附活动名称、市县、乡镇、场所类型）"}
    shown = Filters(county="白沙黎族自治县", date_from="2026-09-01", date_to="2026-09-30")
    assert [parse_filters(dict(parse_qsl(urlsplit(href).query)))[0] for href in links.values()] == [shown] * 3

    as_csv = office.get(links["CSV"])
    assert as_csv.status_code == 200 and as_csv.headers["content-type"] == "text/csv; charset=utf-8"
    assert csv_ids(as_csv) == expected
    name = "all-types_白沙_2026-09"
    assert as_csv.headers["content-disposition"] == (
        f"attachment; filename=\"all-types_2026-09.csv\"; filename*=UTF-8''{quote(name)}.csv"
    )
    for text in ("Excel", "Excel（统计用：多选题每个选项一列，附活动名称、市县、乡镇、场所类型）"):
        as_xlsx = office.get(links[text])
        assert as_xlsx.status_code == 200 and xlsx_ids(as_xlsx) == expected, text
        assert as_xlsx.headers["content-disposition"].endswith(f"filename*=UTF-8''{quote(name)}.xlsx")


def test_the_responses_page_links_carry_its_filters_and_spam_only_when_shown(filled):
    office, _ = filled
    sign_in(office, "boss", ADMIN_PASSWORD)
    plain = office.get(f"/admin/forms/all-types/responses?{SEPTEMBER}").text
    with_spam = office.get(f"/admin/forms/all-types/responses?{SEPTEMBER}&spam=include").text
    shown = [int(n) for n in re.findall(r'<a href="/admin/responses/(\d+)">', plain)]
    shown_with_spam = [int(n) for n in re.findall(r'<a href="/admin/responses/(\d+)">', with_spam)]
    assert "疑似垃圾</span>" not in plain and "疑似垃圾</span>" in with_spam
    assert len(shown_with_spam) == len(shown) + 1
    assert csv_ids(office.get(export_links(plain)["CSV"])) == sorted(shown)
    spam_csv = office.get(export_links(with_spam)["CSV"])
    assert csv_ids(spam_csv) == sorted(shown_with_spam)
    assert (
        "filename*=UTF-8''" + quote("all-types_白沙_2026-09_含疑似垃圾.csv") in spam_csv.headers["content-disposition"]
    )
    assert xlsx_ids(office.get(export_links(with_spam)["Excel"])) == sorted(shown_with_spam)


def test_staff_export_only_their_events_and_the_filters_still_apply(filled):
    office, baisha = filled
    sign_in(office, "wang", ADMIN_PASSWORD)
    page = office.get(f"/admin/forms/all-types?event={baisha}&date_from=2026-09-15").text
    counted = int(re.search(r"<strong>(\d+)</strong> 份答卷", page).group(1))
    ids = csv_ids(office.get(export_links(page)["CSV"]))
    assert counted == len(ids) == 3  # 9-15, 9-30 and 10-01
    assert csv_ids(office.get("/admin/forms/all-types/export.csv?county=海口")) == []  # none of wang's there
    assert csv_ids(office.get("/admin/forms/all-types/export.csv")) == [
        1,
        4,
        7,
        10,
        13,
    ]  # the whole form: wang's event alone


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("date_from=2026-02-30", "开始日期 '2026-02-30' 不对"),
        ("county=广州", "市县 '广州' 不是海南省的市县"),
        ("spam=yes", "疑似垃圾答卷的选项 'yes' 不对"),
        ("multi=rows", "multi 只能是 joined 或 columns"),
    ],
)
def test_a_bad_filter_on_an_export_is_a_400_in_chinese(office, query, message):
    sign_in(office, "boss", ADMIN_PASSWORD)
    answer_ = office.get(f"/admin/forms/all-types/export.csv?{query}")
    assert answer_.status_code == 400 and message in html.unescape(answer_.text)


def test_the_command_line_takes_the_same_filters(filled, tmp_path):
    office, _ = filled
    where = ("--forms", str(tmp_path / "forms"), "--db", str(office.app.state["context"].store.path))
    expected = ids_in_sql(office, BAISHA_IN_SEPTEMBER)
    done = run("export", "all-types", *where, "--county", "白沙", "--from", "2026/9/1", "--to", "2026-09-30",
               "--out", "-", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = list(csv.reader(io.StringIO(done.stdout.decode("utf-8-sig"), newline="")))
    assert [int(row[0]) for row in rows[1:]] == expected
    sign_in(office, "boss", ADMIN_PASSWORD)  # the web export with the same filters is the same file
    assert office.get(f"/admin/forms/all-types/export.csv?{SEPTEMBER}").content == done.stdout
    pivot = run("export", "all-types", *where, "--county", "白沙", "--from", "2026-09-01", "--to", "2026-09-30",
                "--multi", "columns", "--event-details", "--out", "-", cwd=tmp_path)  # fmt: skip
    assert pivot.returncode == 0, pivot.stderr
    sign_in(office, "boss", ADMIN_PASSWORD)
    assert office.get(f"/admin/forms/all-types/export.csv?{SEPTEMBER}&multi=columns&event_details=1").content == (
        pivot.stdout
    )
    header, first = pivot.stdout.decode("utf-8-sig").split("\r\n")[:2]
    assert header.startswith("编号,提交时间,活动,活动名称,活动市县,活动乡镇,场所类型,单位,")
    assert ",主题：食品,主题：电梯,主题：油品,主题：其他,主题（其他）," in header
    cells = dict(zip(header.split(","), first.split(","), strict=True))
    assert [cells[k] for k in ("活动名称", "活动市县", "活动乡镇", "场所类型")] == [
        "白沙中学质量课",
        "白沙黎族自治县",
        "",
        "学校",
    ]
    assert [cells[f"主题：{t}"] for t in ("食品", "电梯", "油品", "其他")] == ["1", "1", "0", "0"]
    bad = run("export", "all-types", *where, "--from", "2026-13-01", "--out", "-", cwd=tmp_path)
    assert bad.returncode != 0 and bad.stdout == b""
    assert bad.stderr.decode().strip().splitlines()[-1].endswith("开始日期 '2026-13-01' 不对，应写成 2022-09-15")


def test_one_parser_reads_filters_as_people_write_them():
    query = {"county": "白沙", "venue_type": "school", "date_from": "2026/9/1", "date_to": "２０２６年９月３０日",
             "spam": "include", "event": ""}  # fmt: skip
    assert parse_filters(query) == (
        Filters("", "白沙黎族自治县", "学校", "2026-09-01", "2026-09-30", "include"),
        [],
    )
    filters, problems = parse_filters({"date_from": "2026-10-01", "date_to": "2026-09-01", "venue_type": "商场"})
    assert problems == ["场所类型 '商场' 不对", "开始日期晚于结束日期"]
    assert not filters.include_spam and Filters(spam="include").include_spam
