"""The office's screens in Chinese (option labels, the audit log), events edited, closed,
reopened and deleted, and the command line kept apart from the web app (issue 14)."""

from __future__ import annotations

import datetime as dt
import html
import re
import subprocess
import sys

import pytest

from server import audit
from server.accounts import add_user, log_action
from server.events import Event, Target
from tests.conftest import ADMIN_PASSWORD, ROOT, client_with_forms, csrf_token, database, sign_in, submission_key


def send(client, data: dict, path: str = "/f/all-types") -> None:
    key = submission_key(client.get(path).text)
    answer = client.post(path, data=data | {"_key": key}, follow_redirects=False)
    assert answer.status_code == 303, answer.text


def cells(page: str) -> list[list[str]]:
    """The text of each body row's cells of the first table on a page."""
    body = re.search(r"<tbody>(.*?)</tbody>", page, re.S).group(1)
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    return [
        [html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<td>(.*?)</td>", r, re.S)] for r in rows
    ]


# --- option labels on every screen ------------------------------------------------------------


def test_office_screens_show_option_labels_and_the_other_text_by_its_question(office, clock):
    clock(dt.datetime(2022, 9, 16, 9, 30))
    send(office, {"unit": "白沙中学", "venue": "other", "venue_other": "图书馆", "topics": ["油品", "食品", "other"],
                  "topics_other": "燃气", "satisfaction": "2"})  # fmt: skip
    send(office, {"unit": "琼海一中", "venue": "school", "topics": ["电梯"], "satisfaction": "5", "agree": "yes"})
    assert sign_in(office, "boss", ADMIN_PASSWORD).status_code == 303
    listing = office.get("/admin/forms/all-types/responses").text
    headers = [html.unescape(h) for h in re.findall(r'<th scope="col" title="([^"]+)"', listing)]
    assert headers[:6] == ["单位", "场所", "「场所」其他", "人数", "花费", "日期"]
    assert "「主题」其他" in headers and "topics_other" not in listing and "venue_other" not in listing
    newest, oldest = cells(listing)
    assert newest[3:5] == ["琼海一中", "学校"] and "电梯" in newest and "5 分" in newest
    assert oldest[3:6] == ["白沙中学", "其他", "图书馆"]
    assert "食品、油品、其他" in oldest and "燃气" in oldest and "2 分" in oldest  # the form's order
    for raw in ("school", "other", "食品; 油品"):
        assert all(raw not in cell for row in (newest, oldest) for cell in row), raw
    assert "spam=include" not in listing
    first_id = re.search(r'<a href="/admin/responses/(\d+)">', listing.split("<tbody>")[1]).group(1)
    one = office.get(f"/admin/responses/{int(first_id) - 1}").text
    shown = dict(re.findall(r"<dt>([^<]+)</dt>\s*<dd>([^<]*)</dd>", one))
    assert shown == {"单位": "白沙中学", "场所": "其他", "「场所」其他": "图书馆", "主题": "食品、油品、其他",
                     "「主题」其他": "燃气", "满意度": "2 分"}  # fmt: skip
    results = office.get("/admin/forms/all-types").text
    assert "其他" in results and ">school<" not in results and ">other<" not in results


# --- the audit log --------------------------------------------------------------------------------


def test_stored_audit_lines_read_in_chinese_old_ones_too():
    assert audit.describe("sign-in", "from 127.0.0.1") == "从 127.0.0.1 登录"
    assert audit.describe("export", "form all-types csv event - with suspected spam") == (
        "问卷 all-types 的答卷（全部活动，含疑似垃圾答卷），CSV"
    )
    assert (
        audit.describe("export", "form all-types xlsx event ABCDEFG")
        == "问卷 all-types 的答卷（活动 ABCDEFG），Excel 表格"
    )
    assert audit.describe("delete-response", "form all-types response 7") == "问卷 all-types 的第 7 号答卷"
    assert audit.describe("edit-event", "event ABCDEFG: title: 进社区 -> 进学校; date:  -> 2022-09-16") == (
        "活动 ABCDEFG：活动名称由“进社区”改为“进学校”；日期由“”改为“2022-09-16”"
    )
    assert audit.describe("purge", "form x: personal answers (mobile, name) removed from 3 response(s), with 2 "
                          "photo file(s) before 2022-10-01T00:00:00+08:00") == (
        "问卷 x：删除了 2022-10-01 00:00:00 之前 3 份答卷中的个人信息（mobile, name），及 2 个照片文件"
    )  # fmt: skip
    assert audit.describe("unlock", "user wang, 3 failed sign-in(s) forgotten") == "账号 wang，清除了 3 次登录失败"
    assert audit.describe("something-new", "as stored") == "as stored"  # never hidden


def test_the_audit_log_pages_and_filters_by_account_action_and_day(office, clock):
    db = database(office)
    for n in range(230):  # 2022-09-01 … over 23 days, ten a day
        clock(dt.datetime(2022, 9, 1, 8) + dt.timedelta(days=n // 10, minutes=n))
        log_action(db, "wang" if n % 2 else "li", "export" if n % 3 else "sign-in", "from 10.0.0.1" if n % 3 == 0 else
                   f"form all-types csv event - #{n}")  # fmt: skip
    clock(dt.datetime(2022, 9, 30, 8))
    assert sign_in(office, "li", ADMIN_PASSWORD).status_code == 303
    assert office.get("/admin/audit").status_code == 403  # admins only
    assert sign_in(office, "boss", ADMIN_PASSWORD).status_code == 303
    first = office.get("/admin/audit")
    rows = cells(first.text)
    assert len(rows) == audit.PAGE_SIZE and rows[0][1:] == ["boss", "登录", "从 testclient 登录"]
    assert "sign-in" not in first.text.split("<tbody>")[1]
    seen = [row[0] for row in rows]
    page = first.text
    while 'rel="next"' in page:
        link = html.unescape(re.search(r'href="(/admin/audit\?[^"]+)" rel="next"', page).group(1))
        page = office.get(link).text
        seen += [row[0] for row in cells(page)]
    assert len(seen) == 232 and seen == sorted(seen, reverse=True)  # each line once, newest first
    wang = cells(office.get("/admin/audit?username=wang&action=sign-in").text)
    assert len(wang) == len([n for n in range(230) if n % 2 and n % 3 == 0]) == 38
    assert {(row[1], row[2]) for row in wang} == {("wang", "登录")}
    days = cells(office.get("/admin/audit?date_from=2022-09-03&date_to=2022-09-04").text)
    assert len(days) == 20 and {row[0][:10] for row in days} == {"2022-09-03", "2022-09-04"}
    bad = office.get("/admin/audit?date_from=九月")
    assert bad.status_code == 400 and "开始日期 '九月' 不对，应写成 2022-09-15" in html.unescape(bad.text)
    assert office.get("/admin/audit?before=x").status_code == 400
    assert office.get("/admin/audit?action=DROP TABLE").status_code == 400


# --- events: edit, close, reopen, delete -------------------------------------------------------------

SESSION = """
title = "五进宣讲"
kind = "five-into"
[[fields]]
name = "venue_type"
type = "choice"
label = "场所类型"
options = ["机关", "企业", "乡镇", "社区", "学校", "其他"]
from_event = "venue_type"
[[fields]]
name = "unit"
type = "text"
label = "单位"
"""


def test_staff_edit_close_reopen_and_delete_their_event_each_in_the_audit_log(tmp_path, clock):
    clock(dt.datetime(2022, 9, 10, 9))
    with client_with_forms(tmp_path, session=SESSION) as client:
        add_user(database(client), "wang", ADMIN_PASSWORD, "staff")
        add_user(database(client), "li", ADMIN_PASSWORD, "staff")
        assert sign_in(client, "wang", ADMIN_PASSWORD).status_code == 303
        page = client.get("/admin/events").text
        assert '<select id="ev-venue-type" name="venue_type" ><option value="">请选择</option>' in page
        assert '<input type="date" id="ev-date" name="date"' in page
        new = {
            "_csrf": csrf_token(client),
            "form": "session",
            "title": "进社区宣讲",
            "county": "白沙",
            "date": "2022-09-15",
        }
        refused = client.post("/admin/events", data=new)
        assert refused.status_code == 422 and "请填写场所类型（问卷里的题目要用到它）" in refused.text
        made = client.post("/admin/events", data=new | {"venue_type": "社区"}, follow_redirects=False)
        code = made.headers["location"].rsplit("/", 1)[1]
        qr = client.get(f"/e/{code}/qr.svg").text

        edit = new | {"title": "进学校宣讲", "venue_type": "学校", "date": "2022-09-16", "township": "牙叉镇"}
        saved = client.post(f"/admin/events/{code}", data=edit, follow_redirects=False)
        assert saved.status_code == 303 and saved.headers["location"] == f"/admin/events/{code}?done=saved"
        row = database(client)["events"].get(code)
        assert (row["title"], row["venue_type"], row["date"], row["township"]) == (
            "进学校宣讲",
            "学校",
            "2022-09-16",
            "牙叉镇",
        )
        assert row["form_id"] == "session" and client.get(f"/e/{code}/qr.svg").text == qr  # same address, same code
        public = client.get(f"/e/{code}").text
        assert "进学校宣讲" in public and "牙叉镇" in public
        bad = client.post(f"/admin/events/{code}", data=edit | {"date": "9月16日", "venue_type": ""})
        assert (
            bad.status_code == 422 and "请填写场所类型" in bad.text and "日期 '9月16日' 不对" in html.unescape(bad.text)
        )

        assert client.post(f"/admin/events/{code}/close", data={"_csrf": csrf_token(client)}).status_code == 200
        closed = client.get(f"/e/{code}")
        assert closed.status_code == 410 and "“进学校宣讲”的问卷已停止收集" in closed.text
        assert "本问卷已经结束" not in closed.text  # the form itself goes on: only this event stopped
        assert closed.headers["cache-control"] == "no-cache"  # a browser must ask again: it may be reopened
        key = "k" * 24
        assert client.post(f"/e/{code}", data={"unit": "一中", "_key": key}).status_code == 410
        assert "已停止收集" in client.get(f"/admin/events/{code}").text
        client.post(f"/admin/events/{code}/reopen", data={"_csrf": csrf_token(client)})
        assert client.get(f"/e/{code}").status_code == 200
        send(client, {"unit": "白沙一中"}, f"/e/{code}")

        kept = client.post(f"/admin/events/{code}/delete", data={"_csrf": csrf_token(client)})
        assert kept.status_code == 409 and "这个活动已有答卷或活动开展情况，不能删除" in kept.text
        assert database(client)["events"].count == 1

        assert sign_in(client, "li", ADMIN_PASSWORD).status_code == 303  # another staff: not theirs
        token = csrf_token(client)
        for action in ("", "/close", "/reopen", "/delete"):
            assert client.post(f"/admin/events/{code}{action}", data=edit | {"_csrf": token}).status_code == 403
        spare = client.post("/admin/events", data=new | {"_csrf": token, "venue_type": "机关"}, follow_redirects=False)
        spare_code = spare.headers["location"].rsplit("/", 1)[1]
        gone = client.post(f"/admin/events/{spare_code}/delete", data={"_csrf": token}, follow_redirects=False)
        assert gone.status_code == 303 and gone.headers["location"] == "/admin/events"
        assert client.get(f"/e/{spare_code}").status_code == 404

        lines = [
            (r["username"], r["action"], r["detail"])
            for r in database(client).query("SELECT * FROM audit_log WHERE action LIKE '%event%' ORDER BY id")
        ]
    assert lines == [
        ("wang", "add-event", f"event {code} form session"),
        (
            "wang",
            "edit-event",
            f"event {code}: title: 进社区宣讲 -> 进学校宣讲; venue_type: 社区 -> 学校; township:  -> 牙叉镇; date: 2022-09-15 -> 2022-09-16",
        ),
        ("wang", "close-event", f"event {code}"),
        ("wang", "reopen-event", f"event {code}"),
        ("li", "add-event", f"event {spare_code} form session"),
        ("li", "delete-event", f"event {spare_code} form session title 进社区宣讲"),
    ]


# --- the command line never loads the web app ----------------------------------------------------

WEB_MODULES = {"api", "app", "downloads", "office", "office_crosstab", "office_data", "office_events", "office_import",
               "office_photos", "office_report", "office_reports", "office_workshop", "offline", "posters", "public", "shortcuts",
               "static", "signin"}  # fmt: skip


def test_the_command_line_and_domain_modules_never_import_litestar(workdir):
    domain = sorted(p.stem for p in (ROOT / "server").glob("*.py") if p.stem not in WEB_MODULES | {"__main__"})
    made = subprocess.run([sys.executable, "-m", "server", "event", "add", "all-types", "--title", "进社区"],
                          cwd=workdir, capture_output=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert made.returncode == 0, made.stderr
    script = f"""
import sys
from server import cli
assert cli.main(["posters", "--out", "sheet.html"]) == 0
for name in {domain!r}:
    __import__("server." + name)
print(sorted(m for m in sys.modules if m.split(".")[0] == "litestar"))
"""
    answer = subprocess.run([sys.executable, "-c", script], cwd=workdir, capture_output=True, text=True,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    sheet = (workdir / "sheet.html").read_text(encoding="utf-8")
    assert answer.stdout.splitlines() == ["sheet.html", "[]"] and "进社区" in sheet
    assert len(domain) > 20 and "crosstab" in domain and "sheets" in domain


def test_target_lives_with_events():
    assert Target.__module__ == "server.events" and "closed_at" in Event.__struct_fields__


@pytest.mark.parametrize("closed_at, state", [("", "open"), ("2022-09-15T10:00:00+08:00", "closed")])
def test_an_event_closed_early_is_closed_whatever_its_dates(office, closed_at, state):
    form = office.app.state["context"].catalog.get("all-types")
    event = Event("ABCDEFG", "all-types", "进社区", date="2099-01-01", closed_at=closed_at)
    assert Target(form, event.path, event).state() == state


SURVEY = """
title = "年龄调查"
kind = "general"
[[fields]]
name = "age"
type = "choice"
label = "年龄段"
options = [{ value = "18to39", label = "18–39 岁" }, { value = "60plus", label = "60 岁以上" }]
"""


def test_an_option_removed_from_the_file_keeps_its_label_on_every_screen(tmp_path):
    with client_with_forms(tmp_path, survey=SURVEY) as client:
        send(client, {"age": "60plus"}, "/f/survey")
        (tmp_path / "source" / "survey.toml").write_text(
            SURVEY.replace(', { value = "60plus", label = "60 岁以上" }', "")
        )
        client.app.state["context"].catalog._next_scan = 0  # as if the two seconds between looks had passed
        send(client, {"age": "18to39"}, "/f/survey")
        add_user(database(client), "boss", ADMIN_PASSWORD, "admin")
        assert sign_in(client, "boss", ADMIN_PASSWORD).status_code == 303
        results = client.get("/admin/forms/survey").text
        responses = client.get("/admin/forms/survey/responses").text
        crossed = client.get("/admin/forms/survey/crosstab?rows=age&columns=county").text
    assert 'fill="#111">60 岁以上</text>' in results and "60plus" not in results  # the chart's label
    assert [row[3] for row in cells(responses)] == ["18–39 岁", "60 岁以上"]
    assert '<th scope="row">60 岁以上</th>' in crossed and "60plus" not in crossed
