"""The form workshop, driven over HTTP as the office would: drafts, checks with line numbers,
previews, publishing, history, closing early; and the catalog seeing a publish at once."""

import datetime as dt
import re
import shutil

import pytest

from server import office_workshop, workshop
from server.app import SECURITY_HEADERS
from server.forms import FormCatalog, check_text
from tests.conftest import ADMIN_PASSWORD, csrf_token, database, errors_on_page, sign_in, stored_answers, submission_key

LIFT = """\
title = "电梯安全小调查"
kind = "general"

[[fields]]
name = "building"
type = "choice"
label = "您住的楼有电梯吗？"
required = true
options = [{ value = "yes", label = "有" }, { value = "no", label = "没有" }]

[[fields]]
name = "worry"
type = "text"
label = "您最担心电梯的什么问题？"
show_if = 'building == "yes"'
"""


def signed_in(client, username="boss"):
    assert sign_in(client, username, ADMIN_PASSWORD).status_code == 303
    return csrf_token(client, "/admin/forms")


def create(client, token, form_id="lift", text=LIFT):
    answer = client.post(
        "/admin/forms/new", data={"_csrf": token, "form_id": form_id, "toml": text}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == f"/admin/forms/{form_id}/edit"
    return answer


def publish(client, token, form_id="lift", text=LIFT, **extra):
    return client.post(
        f"/admin/forms/{form_id}/publish", data={"_csrf": token, "toml": text, **extra}, follow_redirects=False
    )


def live_page(client, form_id="lift"):
    """The residents' page without its per-view submission key."""
    page = client.get(f"/f/{form_id}")
    return page.status_code, page.text.replace(submission_key(page.text), "KEY") if page.status_code == 200 else ""


def audit(client):
    return [tuple(row) for row in database(client).execute("SELECT username, action, detail FROM audit_log")]


# Checking a text, with lines -------------------------------------------------------------


def test_check_text_gives_the_line_and_field_of_each_problem():
    form, problems = check_text("lift", LIFT, None)
    assert form is not None and problems == []

    broken = LIFT.replace('title = "电梯安全小调查"', "title = “电梯安全小调查”")
    form, problems = check_text("lift", broken, None)
    assert form is None and [(p.line, p.field) for p in problems] == [(1, None)]  # the parser's line

    typo = LIFT.replace("show_if = 'building == \"yes\"'", "show_if = 'buidling == \"yes\"'")
    [problem] = check_text("lift", typo, None)[1]
    assert (problem.line, problem.field) == (15, "worry")
    assert "buidling" in problem.message

    unknown = LIFT.replace('kind = "general"', 'kind = "general"\ncolour = "red"')
    [problem] = check_text("lift", unknown, None)[1]
    assert (problem.line, problem.field) == (3, None) and problem.message.startswith("未知的设置项 'colour'")

    no_label = LIFT.replace('label = "您最担心电梯的什么问题？"\n', "")
    [problem] = check_text("lift", no_label, None)[1]
    assert (problem.line, problem.field) == (12, "worry")  # no label line: the field's name line


def test_a_field_with_a_bad_name_is_found_by_its_place():
    text = LIFT.replace('name = "worry"', "name = 5")
    problems = check_text("lift", text, None)[1]
    assert {(p.line, p.field) for p in problems} == {(12, None)}
    assert problems[0].message.startswith("第 2 个字段")


def test_lines_inside_a_multiline_string_are_not_mistaken_for_fields():
    text = LIFT.replace(
        'kind = "general"',
        'kind = "general"\ndescription = """\n说明：\n[[fields]]\nname = "worry"\n"""\ncloses = 2026-01-01',
    )
    text = text.replace("show_if = 'building == \"yes\"'", "show_if = 'building == 1'")
    [problem] = check_text("lift", text, None)[1]
    assert (problem.line, problem.field) == (21, "worry")  # the real field's show_if, not the description's lines


def test_the_check_endpoint_answers_in_chinese_at_the_line(office):
    token = signed_in(office)
    create(office, token)
    broken = LIFT.replace('type = "choice"', 'type = "chioce"')
    answer = office.post(
        "/admin/forms/lift/check", data={"_csrf": token, "toml": broken}, headers={"HX-Request": "true"}
    )
    assert answer.status_code == 200
    assert 'data-ok="no"' in answer.text and 'data-lines="6 15 "' in answer.text
    assert "第 6 行" in answer.text and "未知的类型 type = &#39;chioce&#39;" in answer.text
    clean = office.post("/admin/forms/lift/check", data={"_csrf": token, "toml": LIFT})
    assert 'data-ok="yes"' in clean.text and "检查通过" in clean.text
    assert office.post("/admin/forms/lift/check", data={"toml": LIFT}).status_code == 403  # no CSRF token


# Routes ---------------------------------------------------------------------------------


def test_workshop_routes_leave_the_results_page_where_it_was(office):
    signed_in(office)
    assert "新建表单" in office.get("/admin/forms/new").text  # not the results of a form called "new"
    results = office.get("/admin/forms/all-types")
    assert results.status_code == 200 and "/admin/forms/all-types/responses" in results.text
    editor = office.get("/admin/forms/all-types/edit")
    assert editor.status_code == 200 and 'id="toml"' in editor.text
    assert office.get("/admin/forms/nothing-here/edit").status_code == 404
    listing = office.get("/admin/forms")
    assert listing.status_code == 200 and 'id="form-all-types"' in listing.text


def workshop_routes():
    for route in office_workshop.router.routes:
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            path = route.path.replace("{form_id:str}", "all-types").replace("{version_id:int}", "1")
            yield method, path.replace("{field_name:str}", "q")


@pytest.mark.parametrize("method, path", sorted(set(workshop_routes())))
def test_every_workshop_page_requires_sign_in(office, method, path):
    answer = office.request(method, path, follow_redirects=False)
    if method == "GET":
        assert (answer.status_code, answer.headers["location"]) == (303, "/admin/login")
    else:
        assert answer.status_code in (401, 403)


# New forms and drafts -------------------------------------------------------------------


def test_a_new_form_from_a_template_is_a_draft_residents_cannot_see(office):
    token = signed_in(office)
    page = office.get("/admin/forms/new?template=quality-quiz")
    assert 'value="quality-quiz-' in page.text and "ccc_mark" in page.text  # the quiz, copied
    text = re.search(r'<textarea id="toml" name="toml"[^>]*>(.*?)</textarea>', page.text, re.S).group(1)
    import html

    create(office, token, "lift-quiz", html.unescape(text))
    assert office.get("/f/lift-quiz").status_code == 404
    listing = office.get("/admin/forms")
    assert re.search(r'id="form-lift-quiz">\s*<td><strong>质量安全知识竞答</strong>', listing.text)
    assert "草稿" in listing.text
    assert ("boss", "create-draft", "form lift-quiz") in audit(office)


@pytest.mark.parametrize(
    "form_id, problem",
    [
        ("Lift Quiz", "编号只能用小写英文字母"),
        ("new", "系统保留"),
        ("all-types", "已经有编号为 all-types 的表单"),
    ],
)
def test_a_new_form_needs_a_free_plain_id(office, form_id, problem):
    token = signed_in(office)
    answer = office.post("/admin/forms/new", data={"_csrf": token, "form_id": form_id, "toml": LIFT})
    assert answer.status_code == 422
    assert problem in answer.text and "电梯安全小调查" in answer.text  # what was pasted is kept


def test_staff_may_save_and_propose_drafts_but_not_publish(office):
    token = signed_in(office, "wang")
    create(office, token)
    saved = office.post("/admin/forms/lift/edit", data={"_csrf": token, "toml": LIFT + "\n"}, follow_redirects=False)
    assert saved.status_code == 303
    assert publish(office, token).status_code == 403
    assert office.post("/admin/forms/all-types/close", data={"_csrf": token}).status_code == 403
    assert office.get("/f/lift").status_code == 404
    listing = office.get("/admin/forms")
    assert "草稿由 wang 保存于" in listing.text and "/admin/forms/all-types/close" not in listing.text


def test_an_admin_discards_a_draft_and_the_published_form_stays(office):
    token = signed_in(office)
    create(office, token)
    publish(office, token)
    office.post("/admin/forms/lift/edit", data={"_csrf": token, "toml": LIFT.replace("小调查", "新调查")})
    assert "未发布的草稿" in office.get("/admin/forms/lift/edit").text
    discarded = office.post("/admin/forms/lift/discard", data={"_csrf": token, "toml": ""}, follow_redirects=False)
    assert discarded.status_code == 303
    assert workshop.get_draft(database(office), "lift") is None
    editor = office.get("/admin/forms/lift/edit").text
    assert "未发布的草稿" not in editor and "电梯安全小调查" in editor
    assert ("boss", "discard-draft", "form lift") in audit(office)


def test_staff_cannot_discard_a_draft(office):
    token = signed_in(office, "wang")
    create(office, token)
    assert office.post("/admin/forms/lift/discard", data={"_csrf": token}).status_code == 403
    assert workshop.get_draft(database(office), "lift") is not None


# Publishing -----------------------------------------------------------------------------


def test_publishing_writes_the_file_and_serves_it_at_once(office):
    token = signed_in(office)
    create(office, token)
    answer = publish(office, token, text=LIFT.replace("\n", "\r\n"))  # as a browser posts a textarea
    assert (answer.status_code, answer.headers["location"]) == (303, "/admin/forms?published=lift")
    folder = office.app.state["context"].settings.forms
    assert (folder / "lift.toml").read_text(encoding="utf-8") == LIFT
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == [".published"]  # no temporary file left
    assert office.get("/f/lift").status_code == 200  # no rescan period to wait for
    assert workshop.get_draft(database(office), "lift") is None  # published: the draft is done with
    [version] = workshop.history(database(office), "lift")
    assert (version.toml, version.action, version.by) == (LIFT, "publish", "boss")
    assert publish(office, token, text=LIFT + "\r\n").status_code == 303
    assert [v.action for v in workshop.history(database(office), "lift")] == ["publish", "publish"]  # no "found"
    assert any(
        action == "publish-form" and detail.startswith("form lift version ") for _, action, detail in audit(office)
    )


def test_a_broken_draft_never_changes_what_residents_see(office):
    token = signed_in(office)
    create(office, token)
    publish(office, token)
    before = live_page(office)
    assert before[0] == 200

    broken = LIFT.replace('[[fields]]\nname = "worry"', '[[fields]\nname = "worry"')
    saved = office.post("/admin/forms/lift/edit", data={"_csrf": token, "toml": broken}, follow_redirects=False)
    assert saved.status_code == 303
    assert live_page(office) == before
    refused = publish(office, token, text=broken)
    assert refused.status_code == 422
    assert "改正后才能发布" in refused.text and "第 11 行" in refused.text
    assert live_page(office) == before
    folder = office.app.state["context"].settings.forms
    assert (folder / "lift.toml").read_text(encoding="utf-8") == LIFT
    editor = office.get("/admin/forms/lift/edit")
    assert "未发布的草稿" in editor.text and '<span class="bad">11</span>' in editor.text


def test_a_folder_that_cannot_be_written_is_a_chinese_message_and_no_history(office, monkeypatch):
    token = signed_in(office)
    create(office, token)

    def full_disk(path, text):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(workshop, "write_atomically", full_disk)
    answer = publish(office, token)
    assert answer.status_code == 422 and "无法写入表单文件 lift.toml（No space left on device）" in answer.text
    assert workshop.history(database(office), "lift") == []
    assert workshop.get_draft(database(office), "lift").toml == LIFT  # the draft is kept
    assert not any(action == "publish-form" for _, action, _ in audit(office))


def test_a_file_edited_on_disk_is_kept_in_history_before_it_is_replaced(office):
    token = signed_in(office)
    folder = office.app.state["context"].settings.forms
    on_disk = (folder / "all-types.toml").read_text(encoding="utf-8")
    changed = on_disk.replace('title = "', 'title = "新版：', 1)
    assert publish(office, token, "all-types", changed).status_code == 303
    versions = workshop.history(database(office), "all-types")
    assert [(v.action, v.toml) for v in versions] == [("publish", changed), ("found", on_disk)]


def test_publishing_over_answers_says_what_happens_to_them_first(office):
    token = signed_in(office)
    create(office, token)
    publish(office, token)
    for building in ("yes", "yes", "no"):
        page = office.get("/f/lift")
        data = {"_key": submission_key(page.text), "building": building, "worry": "困人" if building == "yes" else ""}
        assert office.post("/f/lift", data=data, follow_redirects=False).status_code == 303
    changed = (
        (
            LIFT.replace('{ value = "no", label = "没有" }', '{ value = "none", label = "没有电梯" }')
            .replace('label = "有" }', 'label = "有电梯" }')
            .split('[[fields]]\nname = "worry"')[0]
        )
        + '[[fields]]\nname = "floor"\ntype = "integer"\nlabel = "您住几楼？"\n'
    )
    asked = publish(office, token, text=changed)
    assert asked.status_code == 200 and "确认发布" in asked.text
    effects = re.findall(r"<li>(.*?)</li>", asked.text.split('class="effects"')[1].split("</ul>")[0])
    assert effects == [
        "已收到的 3 份答卷都会保留，内容不会被删除或修改。",
        "题目“您住的楼有电梯吗？”的选项“有”改为“有电梯”：旧答卷在导出和结果页里显示新文字。",
        "题目“您住的楼有电梯吗？”去掉了选项“没有”（no）：选过它的 1 份答卷保留原值，导出时仍显示“没有”。",
        "删除题目“您最担心电梯的什么问题？”（worry）：2 份答卷里的这项回答保留，导出时放在表格最后几列，结果页不再统计。",
        "新增题目“您住几楼？”（floor）：以前的答卷这一项是空的。",
    ]
    folder = office.app.state["context"].settings.forms
    assert (folder / "lift.toml").read_text(encoding="utf-8") == LIFT  # nothing published before confirming
    done = publish(office, token, text=changed, confirm="yes")
    assert done.status_code == 303
    assert (folder / "lift.toml").read_text(encoding="utf-8") == changed
    assert len(stored_answers(office)) == 3
    csv = office.get("/admin/forms/lift/export.csv").text.splitlines()
    assert csv[0] == "\ufeff编号,提交时间,活动,您住的楼有电梯吗？,您住几楼？,您最担心电梯的什么问题？"
    assert [line.split(",", 3)[3] for line in csv[1:]] == ["有电梯,,困人", "有电梯,,困人", "没有,,"]


# Closing early, reopening, history ---------------------------------------------------------


def test_an_admin_closes_a_form_early_and_reopens_it(office, clock):
    clock(dt.datetime(2026, 9, 10, 9, 30))
    token = signed_in(office)
    text = LIFT.replace('kind = "general"', 'kind = "general"\ncloses = 2026-09-30T18:00:00')
    create(office, token, text=text)
    publish(office, token, text=text)
    assert office.post("/admin/forms/lift/close", data={"_csrf": token}, follow_redirects=False).status_code == 303
    assert office.get("/f/lift").status_code == 410
    folder = office.app.state["context"].settings.forms
    closed = (folder / "lift.toml").read_text(encoding="utf-8")
    assert "# 提前结束，原来的截止时间：2026-09-30T18:00:00\ncloses = 2026-09-10T09:30:00+08:00\n" in closed
    assert "已结束" in office.get("/admin/forms").text

    again = office.post("/admin/forms/lift/close", data={"_csrf": token})
    assert again.status_code == 409 and "只有正在开放的表单才能提前结束" in again.text
    assert office.post("/admin/forms/lift/reopen", data={"_csrf": token}, follow_redirects=False).status_code == 303
    assert office.get("/f/lift").status_code == 200
    assert (folder / "lift.toml").read_text(encoding="utf-8") == text  # the earlier closing time is back
    actions = [action for _, action, _ in audit(office)]
    assert actions[-3:] == ["publish-form", "close-form", "reopen-form"]
    assert [v.action for v in workshop.history(database(office), "lift")] == ["reopen", "close", "publish"]


def test_close_early_and_reopen_edit_only_the_top_level_closes():
    at = dt.datetime(2026, 9, 10, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    closed = workshop.close_early(LIFT, at)
    assert closed.splitlines()[2] == "closes = 2026-09-10T09:30:00+08:00  # 提前结束"
    assert check_text("lift", closed, None)[0].closes == at
    assert workshop.reopen(closed, at) == LIFT
    passed = LIFT.replace('kind = "general"', 'kind = "general"\ncloses = 2026-09-01')
    assert workshop.reopen(workshop.close_early(passed, at), at) == LIFT  # a past closing time stays gone


def test_history_shows_what_each_version_changed_and_restores_one_as_a_draft(office):
    token = signed_in(office)
    create(office, token)
    publish(office, token)
    second = LIFT.replace("您最担心电梯的什么问题？", "您最担心电梯的哪些问题？")
    publish(office, token, text=second)
    first, latest = sorted(v.id for v in workshop.history(database(office), "lift"))
    page = office.get("/admin/forms/lift/history")
    assert '<span class="diff-del">- label = &#34;您最担心电梯的什么问题？&#34;</span>' in page.text
    assert '<span class="diff-add">+ label = &#34;您最担心电梯的哪些问题？&#34;</span>' in page.text
    whole = office.get(f"/admin/forms/lift/history?version={first}")
    assert whole.text.count('class="diff-add"') == LIFT.count("\n")  # the first version: every line new
    restored = office.post(f"/admin/forms/lift/history/{first}/restore", data={"_csrf": token}, follow_redirects=False)
    assert (restored.status_code, restored.headers["location"]) == (303, "/admin/forms/lift/edit?saved=1")
    assert workshop.get_draft(database(office), "lift").toml == LIFT
    assert "您最担心电梯的哪些问题？" in office.get("/f/lift").text  # restoring is not publishing
    assert ("boss", "restore-form", "form lift") in audit(office)
    missing = office.post(f"/admin/forms/lift/history/{latest + 5}/restore", data={"_csrf": token})
    assert missing.status_code == 404


# Preview --------------------------------------------------------------------------------


def test_the_preview_renders_the_draft_with_the_residents_templates_and_may_be_framed(office):
    token = signed_in(office)
    create(office, token)
    preview = office.get("/admin/forms/lift/preview")
    assert preview.status_code == 200
    assert '<form class="survey" method="post" action="/admin/forms/lift/preview"' in preview.text
    assert 'name="building" value="yes"' in preview.text
    assert "frame-ancestors 'self'" in preview.headers["content-security-policy"]
    assert preview.headers["x-frame-options"] == "SAMEORIGIN"
    assert "frame-ancestors 'none'" in office.get("/admin/forms/lift/edit").headers["content-security-policy"]

    typed = LIFT.replace("电梯安全小调查", "电梯安全大调查")
    shown = office.post("/admin/forms/lift/preview", data={"_csrf": token, "toml": typed})
    assert "电梯安全大调查" in shown.text  # the text being typed, not yet saved
    broken = office.post("/admin/forms/lift/preview", data={"_csrf": token, "toml": "title = “x”"})
    assert "还不能预览" in broken.text and "第 1 行" in broken.text


def test_answers_sent_in_the_preview_are_checked_and_never_stored(office):
    token = signed_in(office)
    create(office, token)
    page = office.get("/admin/forms/lift/preview")
    key = submission_key(page.text)
    missing = office.post("/admin/forms/lift/preview", data={"_key": key})
    assert missing.status_code == 422 and set(errors_on_page(missing.text)) == {"building"}
    good = office.post("/admin/forms/lift/preview", data={"_key": key, "building": "no"})
    assert good.status_code == 200 and "预览中提交的答卷不会保存" in good.text
    inline = office.post("/admin/forms/lift/preview/check/building", data={"building": "maybe"})
    assert inline.status_code == 200 and 'id="e-building"' in inline.text and "maybe" not in inline.text
    assert stored_answers(office) == []


def test_the_preview_policy_is_the_sites_except_for_framing():
    site = SECURITY_HEADERS["Content-Security-Policy"]
    assert site.replace("frame-ancestors 'none'", "frame-ancestors 'self'") == office_workshop.PREVIEW_CSP


# The catalog sees a publish at once -------------------------------------------------------


def test_another_process_serves_a_just_published_form_without_waiting(tmp_path):
    folder = tmp_path / "forms"
    folder.mkdir()
    other = FormCatalog(folder, rescan_seconds=3600)  # as if its last look had just been
    assert other.get("lift") is None
    workshop.write_atomically(folder / "lift.toml", LIFT)
    assert other.get("lift").title == "电梯安全小调查"


def test_another_process_serves_a_changed_form_without_waiting(tmp_path):
    folder = tmp_path / "forms"
    folder.mkdir()
    (folder / "lift.toml").write_text(LIFT, encoding="utf-8")
    publisher = FormCatalog(folder, rescan_seconds=3600)
    other = FormCatalog(folder, rescan_seconds=3600)
    assert (folder / ".published").stat().st_size == 8
    for text in (LIFT.replace("小调查", "大调查"), LIFT.replace("小调查", "问卷")):
        workshop.write_atomically(folder / "lift.toml", text)
        publisher.published()
        assert publisher.get("lift").title == other.get("lift").title == check_text("lift", text, None)[0].title


def test_unknown_ids_rescan_at_most_every_so_often_and_known_ones_never(tmp_path, monkeypatch):
    folder = tmp_path / "forms"
    folder.mkdir()
    (folder / "lift.toml").write_text(LIFT, encoding="utf-8")
    catalog = FormCatalog(folder, rescan_seconds=3600, unknown_rescan_seconds=3600)
    catalog.get("made-up")  # the one look allowed
    scans = []
    original = catalog._scan
    monkeypatch.setattr(catalog, "_scan", lambda: scans.append(1) or original())
    for _ in range(100):
        assert catalog.get("lift") is not None
    assert scans == []
    for number in range(100):
        assert catalog.get(f"made-up-{number}") is None
    assert scans == []  # nothing came or went in the folder
    assert catalog.get("../etc/passwd") is None and scans == []  # not even an id: never a scan
    workshop.write_atomically(folder / "quiz.toml", LIFT)
    assert catalog.get("quiz") is not None and scans == [1]  # a new file: looked at once more


def test_both_server_processes_serve_a_publish_at_once(tmp_path):
    """A real `serve --workers 2`: right after a publish (and a close), every new connection,
    whichever process takes it, answers with the new state; no waiting for a rescan."""
    import httpx

    from tests.conftest import TEST_FORMS, run, running_server

    shutil.copytree(TEST_FORMS, tmp_path / "forms")
    assert (
        run("user", "add", "boss", "--role", "admin", input=ADMIN_PASSWORD.encode() + b"\n", cwd=tmp_path).returncode
        == 0
    )
    with running_server(tmp_path, "--workers", "2") as port:
        base = f"http://127.0.0.1:{port}"

        def statuses(path):
            return {httpx.get(base + path, headers={"Connection": "close"}).status_code for _ in range(30)}

        assert statuses("/f/lift") == {404}
        with httpx.Client(base_url=base) as office:
            page = office.get("/admin/login")
            login = re.search(r'name="_csrf" value="([^"]+)"', page.text).group(1)
            office.post("/admin/login", data={"_csrf": login, "username": "boss", "password": ADMIN_PASSWORD})
            token = re.search(r'name="_csrf" value="([^"]+)"', office.get("/admin/forms").text).group(1)
            assert (
                office.post("/admin/forms/new", data={"_csrf": token, "form_id": "lift", "toml": LIFT}).status_code
                == 303
            )
            assert office.post("/admin/forms/lift/publish", data={"_csrf": token, "toml": LIFT}).status_code == 303
            assert statuses("/f/lift") == {200}
            assert office.post("/admin/forms/lift/close", data={"_csrf": token}).status_code == 303
            assert statuses("/f/lift") == {410}
