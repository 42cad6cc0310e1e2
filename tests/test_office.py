"""The office, driven over HTTP as staff would: sign-in, roles, results, masking, deletion, audit."""

import datetime as dt
import html
import re

import pytest

from server import downloads, office_crosstab, office_events, signin
from server import office as office_pages
from server.clock import now
from server.events import add_events, make_event
from server.export import export_csv
from tests import conftest
from tests.conftest import ADMIN_PASSWORD, database, submission_key
from tests.test_submit import GOOD

PASSWORD = ADMIN_PASSWORD
PERSONAL = GOOD | {"name": "张三丰", "mobile": "13812345678", "_consent": "yes"}


def sign_in(client, username, password=PASSWORD, **headers):
    return conftest.sign_in(client, username, password, **headers)


def csrf(client, path="/admin"):
    return re.search(r'name="_csrf" value="([^"]+)"', client.get(path).text).group(1)


def new_event(client, owner, **values):
    forms = {f.id: f for f in client.app.state["context"].catalog.all()}
    values = {"form": "all-types", "title": "进社区", "county": "海口", "venue_type": "社区"} | values
    event = make_event(forms, values)
    import msgspec

    [stored] = add_events(database(client), [msgspec.structs.replace(event, created_by=owner)])
    return stored.code


def answer(client, data, path="/f/all-types"):
    page = client.get(path)
    response = client.post(path, data=data | {"_key": submission_key(page.text)}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return response


def admin_paths():
    modules = (signin, office_pages, office_events, office_crosstab, downloads)
    for route in [r for module in modules for r in module.router.routes]:
        for method in route.methods - {"HEAD", "OPTIONS"}:
            path = route.path.replace("{form_id:str}", "all-types").replace("{code:str}", "ABCDEFG")
            yield method, path.replace("{response_id:int}", "1")


@pytest.mark.parametrize("method, path", sorted(set(admin_paths())))
def test_every_admin_page_requires_sign_in(office, method, path):
    if path in ("/admin/login",):
        return
    answer_ = office.request(method, path, follow_redirects=False)
    if method == "GET":
        assert answer_.status_code == 303 and answer_.headers["location"] == "/admin/login"
    else:
        assert answer_.status_code in (401, 403)


def test_cross_site_and_token_less_posts_are_refused(office):
    sign_in(office, "boss")
    token = csrf(office)
    forged = office.post("/admin/events", data={"_csrf": token, "form": "all-types", "title": "x"},
                         headers={"Origin": "https://evil.example"}, follow_redirects=False)  # fmt: skip
    assert forged.status_code == 403
    tokenless = office.post("/admin/events", data={"form": "all-types", "title": "x"}, follow_redirects=False)
    assert tokenless.status_code == 403 and "没有权限" in tokenless.text
    assert database(office)["events"].count == 0
    office.cookies.clear()
    page = office.get("/admin/login")
    assert office.post("/admin/login", data={"username": "boss", "password": PASSWORD}).status_code == 403
    assert "_csrf" in page.text


def test_staff_see_their_own_events_only_and_delete_nothing(office):
    mine = new_event(office, "wang", title="王的活动")
    theirs = new_event(office, "li", title="李的活动")
    answer(office, PERSONAL, f"/e/{theirs}")
    response_id = next(database(office)["responses"].rows)["id"]
    sign_in(office, "wang")
    dashboard = office.get("/admin").text
    assert "王的活动" in dashboard and "李的活动" not in dashboard
    assert office.get(f"/admin/events/{mine}").status_code == 200
    assert office.get(f"/admin/events/{theirs}").status_code == 403
    assert office.get(f"/admin/forms/all-types?event={theirs}").status_code == 403
    assert office.get(f"/admin/responses/{response_id}").status_code == 403
    assert office.get(f"/admin/forms/all-types/export.csv?event={theirs}").status_code == 403
    whole = office.get("/admin/forms/all-types/export.csv")  # the whole form: only wang's events' rows
    assert whole.status_code == 200 and whole.text.count("\r\n") == 1  # the header: li's answer is not there
    assert office.get(f"/admin/forms/all-types/export.csv?event={mine}").status_code == 200
    assert office.get("/admin/audit").status_code == 403
    results = office.get("/admin/forms/all-types").text
    assert "<strong>0</strong> 份答卷" in results  # li's answer is not counted for wang
    deleted = office.post(f"/admin/responses/{response_id}/delete", data={"_csrf": csrf(office)})
    assert deleted.status_code == 403 and database(office)["responses"].count == 1


def test_personal_answers_are_masked_on_every_screen(office):
    answer(office, PERSONAL)
    sign_in(office, "boss")
    response_id = next(database(office)["responses"].rows)["id"]
    for path in ("/admin/forms/all-types/responses", f"/admin/responses/{response_id}", "/admin/forms/all-types"):
        page = office.get(path).text
        assert "13812345678" not in page and "张三丰" not in page, path
    listing = office.get("/admin/forms/all-types/responses").text
    assert "138****5678" in listing and "张**" in listing


def test_the_responses_name_the_event_they_came_from_by_its_title(office):
    code = new_event(office, "wang", title="消费品安全进社区（椰林社区）")
    answer(office, GOOD, f"/e/{code}")
    answer(office, GOOD)
    sign_in(office, "boss")
    listing = office.get("/admin/forms/all-types/responses").text
    assert f'<a href="/admin/events/{code}" title="活动编号 {code}">消费品安全进社区（椰林社区）</a>' in listing
    assert listing.count("/admin/events/") == 1  # the answer from the form's own page has no event
    response_id = next(database(office)["responses"].rows)["id"]
    one = office.get(f"/admin/responses/{response_id}").text
    assert f'活动 <a href="/admin/events/{code}">消费品安全进社区（椰林社区）</a>（{code}）' in one


def test_an_admin_deletes_a_response_and_the_audit_log_says_who(office):
    answer(office, PERSONAL)
    response_id = next(database(office)["responses"].rows)["id"]
    sign_in(office, "boss")
    deleted = office.post(
        f"/admin/responses/{response_id}/delete", data={"_csrf": csrf(office)}, follow_redirects=False
    )
    assert deleted.status_code == 303
    assert database(office)["responses"].count == 0
    office.get("/admin/forms/all-types/export.csv")
    log = [(row["username"], row["action"], row["detail"]) for row in database(office)["audit_log"].rows]
    assert ("boss", "delete-response", f"form all-types response {response_id}") in log
    assert ("boss", "export", "form all-types csv event -") in log
    page = office.get("/admin/audit").text
    assert "delete-response" in page and "boss" in page


def test_the_web_csv_is_the_cli_csv(office):
    answer(office, PERSONAL)
    answer(office, GOOD | {"unit": "=1+1"})
    sign_in(office, "boss")
    download = office.get("/admin/forms/all-types/export.csv?header=names")
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    assert "attachment" in download.headers["content-disposition"]
    form = office.app.state["context"].catalog.get("all-types")
    assert download.content == b"".join(export_csv(database(office), form, header="names"))
    assert office.get("/admin/forms/all-types/export.csv?header=bogus").status_code == 400
    assert office.get("/admin/forms/all-types/export.csv?event=ZZZZZZZ").status_code == 404


def test_results_count_and_filter(office):
    school = new_event(office, "wang", county="白沙", venue_type="学校")
    answer(office, GOOD | {"venue": "school", "satisfaction": "5"}, f"/e/{school}")
    answer(office, GOOD | {"venue": "school", "satisfaction": "3"})
    answer(office, GOOD | {"venue": "community", "satisfaction": "4"})
    sign_in(office, "boss")
    page = office.get("/admin/forms/all-types").text
    assert "<strong>3</strong> 份答卷" in page
    venue = page.split('id="r-venue"')[1].split("</section>")[0]
    assert "2（66.7%）" in venue and "1（33.3%）" in venue and "<svg" in venue
    assert "平均 <strong>4.00</strong> / 5 分" in page
    topics = page.split('id="r-topics"')[1].split("</section>")[0]  # multi: each ticked option counted
    assert "3 人回答" in topics and topics.count("3（100.0%）") == 2 and "0（0.0%）" in topics
    only_baisha = office.get("/admin/forms/all-types?county=白沙").text
    assert "<strong>1</strong> 份答卷" in only_baisha
    bad = office.get("/admin/forms/all-types?date_from=2022-13-01&county=广州")
    shown = html.unescape(bad.text)
    assert bad.status_code == 400 and "开始日期 '2022-13-01' 不对" in shown and "市县 '广州'" in shown


def test_answers_with_html_are_shown_as_text(office):
    payload = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    answer(office, GOOD | {"unit": "学校", "venue": "school", "satisfaction": "1", "why": payload})
    sign_in(office, "boss")
    response_id = next(database(office)["responses"].rows)["id"]
    for path in ("/admin/forms/all-types", "/admin/forms/all-types/responses", f"/admin/responses/{response_id}"):
        page = office.get(path).text
        assert "<script>alert" not in page and "<img src=x" not in page, path
    assert "&lt;script&gt;" in office.get(f"/admin/responses/{response_id}").text


def test_staff_create_an_event_in_the_browser(office):
    sign_in(office, "wang")
    fields = {"form": "all-types", "title": "进学校", "venue_type": "学校", "county": "琼中黎族苗族自治县",
              "township": "营根镇", "venue": "琼中中学", "date": "2022-09-16", "organizer": "省教育厅", "expected": "200"}  # fmt: skip
    made = office.post("/admin/events", data=fields | {"_csrf": csrf(office)}, follow_redirects=False)
    assert made.status_code == 303
    code = made.headers["location"].rsplit("/", 1)[1]
    event = database(office)["events"].get(code)
    assert event["created_by"] == "wang"
    page = office.get(made.headers["location"]).text
    assert f"/e/{code}/poster" in page and f"/e/{code}/qr.svg" in page and "琼中中学" in page
    bad = office.post("/admin/events", data={"form": "all-types", "title": "", "date": "明天", "_csrf": csrf(office)})
    assert bad.status_code == 422 and "缺少活动名称" in bad.text and "日期 '明天' 不对" in html.unescape(bad.text)


def test_the_dashboard_updates_itself(office):
    sign_in(office, "boss")
    page = office.get("/admin").text
    assert 'hx-get="/admin/live"' in page and 'hx-trigger="every 5s"' in page
    answer(office, GOOD)
    live = office.get("/admin/live", headers={"HX-Request": "true"}).text
    assert re.search(r'data-count="all-types">1<', live)


def test_the_statistics_report_on_the_web_and_as_files(office):
    import io

    import openpyxl

    today = now().date().isoformat()  # events take answers until a week after their day
    school = new_event(office, "wang", county="白沙", venue_type="学校", date=today)
    other = new_event(office, "li", county="三沙", venue_type="机关", date=today)
    answer(office, GOOD | {"satisfaction": "5"}, f"/e/{school}")
    answer(office, GOOD | {"satisfaction": "2", "venue": "community"}, f"/e/{school}")
    answer(office, GOOD | {"satisfaction": "4"}, f"/e/{other}")
    sign_in(office, "boss")
    page = office.get("/admin/report").text
    rows = re.findall(r'<tr class="(\w+)"><td>([^<]*)</td><td>([^<]*)</td>((?:<td class="num">[^<]*</td>)+)', page)
    rows = [
        (kind, county, activity, *re.findall(r'<td class="num">([^<]*)</td>', cells))
        for kind, county, activity, cells in rows
    ]
    # all-types is a general form declaring no satisfaction question: no satisfaction, no guessing
    assert ("activity", "白沙黎族自治县", "其他", "1", "0", "0", "2", "0", "0", "0", "—") in rows
    assert ("activity", "三沙市", "其他", "1", "0", "0", "1", "0", "0", "0", "—") in rows
    assert ("activity", "海口市", "五进学校", "0", "0", "0", "0", "0", "0", "0", "—") in rows  # every county
    assert rows[-1] == ("total", "合计", "", "2", "0", "0", "3", "0", "0", "0", "—")
    sheet = openpyxl.load_workbook(io.BytesIO(office.get("/admin/report.xlsx").content)).active
    assert [c.value for c in sheet[1]][:4] == ["市县", "活动类别", "计划场次", "已举办"]
    assert [c.value for c in sheet[sheet.max_row]][2:] == [2, 0, 0, 3, 0, 0, 0, None]
    csv_text = office.get("/admin/report.csv").content.decode("utf-8-sig")
    assert csv_text.splitlines()[-1] == "合计,,2,0,0,3,0,0,0,"
    assert office.get("/admin/report?date_from=2022-02-30").status_code == 400
    yesterday = office.get(f"/admin/report?date_to={now().date() - dt.timedelta(days=1)}").text
    assert '<tr class="total"><td>合计</td><td></td><td class="num">0</td>' in yesterday
    sign_in(office, "wang")  # staff: their own events only
    mine = office.get("/admin/report").text
    assert "<td>白沙黎族自治县</td>" in mine and "<td>三沙市</td>" not in mine


def test_the_xlsx_export_matches_the_csv(office):
    import io

    import openpyxl

    answer(office, PERSONAL)
    sign_in(office, "boss")
    workbook = openpyxl.load_workbook(io.BytesIO(office.get("/admin/forms/all-types/export.xlsx").content))
    sheet = workbook.active
    csv_rows = office.get("/admin/forms/all-types/export.csv").content.decode("utf-8-sig").splitlines()
    assert [c.value for c in sheet[1]] == csv_rows[0].split(",")
    assert sheet.freeze_panes == "A2"
    assert "13812345678" in [c.value for c in sheet[2]]  # exports carry personal answers whole
    log = [row["detail"] for row in database(office)["audit_log"].rows if row["action"] == "export"]
    assert log == ["form all-types xlsx event -", "form all-types csv event -"]
