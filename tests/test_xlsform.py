"""XLSForm in and out: a Kobo-style workbook becomes a form with a list of what stayed
behind, and every bundled form goes out to XLSForm and comes back as the same page."""

import datetime as dt
import html
import io
import re
import shutil
from pathlib import Path

import msgspec
import openpyxl
import pytest

from server.campaign import read_campaign
from server.forms import form_files, load_form, parse_form
from server.tomlfile import read_toml
from server.xlsform import XLSFormError, read_xlsform
from server.xlsform_export import write_xlsform
from server.xpath import Unmappable, constraint_keys, relevant_condition
from tests.conftest import ADMIN_PASSWORD, BUNDLED_FORMS, make_app_client, run, sign_in

SURVEY_HEADER = [
    "type", "name", "label::English (en)", "label::Chinese (zh)", "hint::Chinese (zh)", "required",
    "relevant", "constraint", "constraint_message", "appearance", "calculation", "choice_filter",
]  # fmt: skip
# A survey as a county office would get it from a KoboToolbox user: metadata, groups,
# relevance, `or_other`, a repeat and types this product does not have. Row 1 is the header.
SURVEY = [
    ["start", "start"],
    ["end", "end"],
    ["today", "today"],
    ["deviceid", "deviceid"],
    ["begin_group", "respondent", "Respondent", "受访者信息"],
    ["text", "resp_name", "Name", "姓名", "", "yes"],
    ["integer", "age", "Age", "年龄", "", "yes", "", ". >= 18 and . <= 120", "年龄不对"],
    ["select_one gender", "gender", "Gender", "性别"],
    ["select_one county", "county", "County", "所在市县", "", "yes"],
    ["select_one township", "township", "Township", "乡镇", "", "", "", "", "", "", "", "county=${county}"],
    ["geopoint", "location", "Location", "位置"],
    ["end_group"],
    ["begin_group", "building", "Building", "楼栋情况"],
    ["select_one yes_no", "has_elevator", "Elevator?", "您住的楼有电梯吗？", "", "yes"],
    ["integer", "floors", "Floors", "楼层数", "", "", "${has_elevator} = 'yes'", ". > 0 and . < 100"],
    [
        "decimal",
        "elevator_age",
        "Age of lift",
        "电梯使用年限（年）",
        "估计即可",
        "",
        "${has_elevator} = 'yes'",
        ". >= 0",
    ],
    ["date", "last_inspection", "Inspected", "最近一次检验日期", "", "", "${has_elevator} = 'yes'", ". <= today()"],
    [
        "select_multiple problems or_other",
        "elevator_problems",
        "Problems",
        "遇到过哪些问题？",
        "",
        "",
        "selected(${has_elevator}, 'yes')",
    ],
    [
        "text",
        "stuck_detail",
        "Stuck",
        "被困的经过",
        "",
        "",
        "selected(${elevator_problems}, 'stuck')",
        "",
        "",
        "multiline",
    ],
    ["calculate", "problem_count", "", "", "", "", "", "", "", "", "count-selected(${elevator_problems})"],
    ["note", "safety_note", "Note", "乘电梯时不要扒门，被困请按警铃。"],
    ["end_group"],
    ["begin group", "satisfaction_part", "Satisfaction", "满意度"],
    ["select_one rating5", "maintenance_rating", "Rating", "您对电梯维保满意吗？", "", "yes"],
    [
        "text",
        "why_unhappy",
        "Why",
        "不满意的原因",
        "",
        "",
        "${maintenance_rating} = '1' or ${maintenance_rating} = '2'",
    ],
    ["select_one yes_no", "know_96333", "96333?", "您知道电梯应急电话 96333 吗？"],
    ["text", "heard_from", "Where", "从哪里知道的？", "", "", "${know_96333} = 'yes' and ${age} >= 60"],
    ["image", "certificate", "Photo", "电梯合格证照片"],
    ["audio", "voice", "Voice", "语音建议"],
    ["end group"],
    ["begin_repeat", "family", "Family", "家庭成员"],
    ["text", "member_name", "Member", "成员姓名"],
    ["end_repeat"],
    [
        "select_one yes_no",
        "Visit-Again",
        "Visit",
        "愿意接受回访吗？",
        "",
        "",
        "${age} >= 18 and not(${has_elevator} = 'no')",
    ],
    ["text", "phone", "Phone", "电话", "", "yes", "${Visit-Again} = 'yes'", "regex(., '^1[3-9][0-9]{9}$')"],
    ["text", "remark", "Remark", "其他建议", "", "", "string-length(${phone}) > 0"],
    ["barcode", "code", "Code", "扫码"],
    ["acknowledge", "agree", "Agree", "我同意以上说明"],
    ["rank", "ranking", "Rank", "排序"],
    ["select_one missing_list", "lost", "Lost", "选项表里没有的选择题"],
]
CHOICES = [
    ["list_name", "name", "label::English (en)", "label::Chinese (zh)", "county"],
    ["gender", "male", "Male", "男"],
    ["gender", "female", "Female", "女"],
    ["county", "haikou", "Haikou", "海口市"],
    ["county", "sanya", "Sanya", "三亚市"],
    ["township", "xiuying", "Xiuying", "秀英区", "haikou"],
    ["township", "jiyang", "Jiyang", "吉阳区", "sanya"],
    ["yes_no", "yes", "Yes", "是"],
    ["yes_no", "no", "No", "否"],
    ["problems", "stuck", "Stuck", "被困"],
    ["problems", "noise", "Noise", "异响、抖动"],
    ["problems", "door", "Door", "门夹人"],
    *[["rating5", str(n), str(n), f"{n} 分"] for n in range(1, 6)],
]
NOT_CARRIED_OVER = [
    "survey 第 2 行（start）：元数据（start）：本系统自动记下提交时间，其他元数据不收集",
    "survey 第 3 行（end）：元数据（end）：本系统自动记下提交时间，其他元数据不收集",
    "survey 第 4 行（today）：元数据（today）：本系统自动记下提交时间，其他元数据不收集",
    "survey 第 5 行（deviceid）：元数据（deviceid）：本系统自动记下提交时间，其他元数据不收集",
    "survey 第 11 行（township）：选项筛选（choice_filter）不支持：显示全部选项",
    "survey 第 12 行（location）：位置题（geopoint）不支持：本系统不收集位置",
    "survey 第 18 行（last_inspection）：约束 constraint = '. <= today()' 无法转换，已忽略",
    "survey 第 21 行（problem_count）：计算题（calculate）不支持：本系统不在表单里计算",
    "survey 第 30 行（voice）：录音题（audio）不支持：只支持照片（image）",
    "survey 第 32 行（family）：重复组（repeat）不支持：组内的题目按只填一次导入",
    "survey 第 37 行（remark）：条件 relevant = 'string-length(${phone}) > 0' 无法转换（函数 string-length() 没有对应的写法）：本题总是显示",
    "survey 第 38 行（code）：扫码题（barcode）不支持",
    "survey 第 40 行（ranking）：排序题（rank）不支持",
    "survey 第 41 行（lost）：选项列表 'missing_list' 在 choices 工作表里找不到",
]


def workbook(survey=SURVEY, choices=CHOICES, settings=None, header=SURVEY_HEADER) -> bytes:
    """An .xlsx written with openpyxl, as Excel or WPS would save it."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "survey"
    sheet.append(header)
    for row in survey:
        sheet.append(row)
    choice_sheet = book.create_sheet("choices")
    for row in choices:
        choice_sheet.append(row)
    settings_sheet = book.create_sheet("settings")
    for row in settings or [
        ["form_title", "form_id", "default_language"],
        ["电梯安全调查", "elevator_survey", "Chinese (zh)"],
    ]:
        settings_sheet.append(row)
    output = io.BytesIO()
    book.save(output)
    return output.getvalue()


def test_a_kobo_workbook_imports_with_the_exact_list_of_what_was_not_carried_over():
    assert len(SURVEY) >= 30
    imported = read_xlsform(workbook(), "elevator.xlsx")
    assert [d.text for d in imported.dropped] == NOT_CARRIED_OVER
    assert imported.form_id == "elevator-survey"  # the settings' form_id, made a valid id
    form = parse_form(imported.form_id, imported.toml)
    assert form.title == "电梯安全调查"
    assert [(f.name, f.type) for f in form.fields] == [
        ("respondent", "section"), ("resp_name", "text"), ("age", "integer"), ("gender", "choice"),
        ("county", "choice"), ("township", "choice"), ("building", "section"), ("has_elevator", "choice"),
        ("floors", "integer"), ("elevator_age", "number"), ("last_inspection", "date"),
        ("elevator_problems", "multi"), ("stuck_detail", "textarea"), ("safety_note", "note"),
        ("satisfaction_part", "section"), ("maintenance_rating", "choice"), ("why_unhappy", "text"),
        ("know_96333", "choice"), ("heard_from", "text"), ("certificate", "photo"), ("member_name", "text"),
        ("visit_again", "choice"), ("phone", "phone"), ("remark", "text"), ("agree", "consent"),
    ]  # fmt: skip
    field = form.field
    assert field("respondent").title == "受访者信息"  # the Chinese column, not the English one
    assert (field("resp_name").label, field("resp_name").required) == ("姓名", True)
    assert (field("age").min, field("age").max) == (18, 120)
    assert (field("floors").min, field("floors").max) == (1, 99)  # `. > 0 and . < 100`
    assert (field("elevator_age").min, field("elevator_age").hint) == (0, "估计即可")
    assert [(o.value, o.label) for o in field("elevator_problems").choices] == [
        ("stuck", "被困"), ("noise", "异响、抖动"), ("door", "门夹人"), ("other", "其他"),
    ]  # fmt: skip
    assert {name: field(name).show_if for name in ("floors", "elevator_problems", "stuck_detail", "why_unhappy")} == {
        "floors": 'has_elevator == "yes"',
        "elevator_problems": 'has_elevator == "yes"',
        "stuck_detail": '"stuck" in elevator_problems',
        "why_unhappy": 'maintenance_rating == "1" or maintenance_rating == "2"',
    }
    assert field("heard_from").show_if == 'know_96333 == "yes" and age >= 60'
    assert field("visit_again").show_if == 'age >= 18 and not has_elevator == "no"'
    assert field("phone").show_if == 'visit_again == "yes"'  # the renamed question, renamed here too
    assert field("remark").show_if is None
    assert field("certificate").max_photos == 1
    assert imported.toml.startswith("# 从 XLSForm elevator.xlsx 导入。\n# 没有导入（或没有原样导入）的行：\n")


def test_an_imported_form_is_served_as_a_page(tmp_path, clock):
    clock(dt.datetime(2026, 9, 15, 10))
    imported = read_xlsform(workbook(), "elevator.xlsx")
    folder = tmp_path / "source"
    folder.mkdir()
    (folder / f"{imported.form_id}.toml").write_text(imported.toml, encoding="utf-8")
    with make_app_client(tmp_path, forms=folder) as client:
        page = client.get("/f/elevator-survey")
    assert page.status_code == 200
    assert "您住的楼有电梯吗？" in page.text and 'name="elevator_problems_other"' in page.text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${a} = 'x'", 'a == "x"'),
        ("${a} != 'x' and ${n} < 3", 'a != "x" and n < 3'),
        ("'x' = ${a}", 'a == "x"'),
        ("18 <= ${n}", "n >= 18"),
        ("selected(${m}, 'x') or not(selected(${a}, 'y'))", '"x" in m or not a == "y"'),
        ("(${n} > 1 or ${n} < -1) and ${d} >= date('2022-09-01')", '(n > 1 or n < -1) and d >= "2022-09-01"'),
    ],
)
def test_relevant_expressions_that_map(text, expected):
    from server.expressions import to_text

    names = {"a": "a", "m": "m", "n": "n", "d": "d"}
    kinds = {"a": "choice", "m": "multi", "n": "integer", "d": "date"}
    assert to_text(relevant_condition(text, names, kinds)) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("${m} = 'x'", "多选题 ${m} 请用 selected() 判断"),
        ("${later} = 'x'", "引用的题目 'later' 不在本题前面，或没有导入"),
        ("${n} > today()", "只能和固定的值比较，'today' 不是"),
        ("count-selected(${m}) > 1", "函数 count-selected() 没有对应的写法"),
        ("${a} = 'x' ||", "看不懂 '||'"),
    ],
)
def test_relevant_expressions_that_do_not_map_say_why(text, why):
    with pytest.raises(Unmappable, match=re.escape(why)):
        relevant_condition(text, {"a": "a", "m": "m", "n": "n"}, {"a": "choice", "m": "multi", "n": "integer"})


def test_constraints_become_bounds_and_the_rest_is_returned():
    assert constraint_keys(". >= 0 and . <= 120", "integer") == ({"min": 0, "max": 120}, [])
    assert constraint_keys("string-length(.) <= 50", "text") == ({"max_length": 50}, [])
    assert constraint_keys("count-selected(.) <= 3", "multi") == ({"max_choices": 3}, [])
    assert constraint_keys(". >= date('2022-09-01')", "date") == ({"min": "2022-09-01"}, [])
    assert constraint_keys(". > 0.5", "decimal") == ({}, [". > 0.5"])
    assert constraint_keys(". < 5 or . > 10", "integer") == ({}, [". < 5 or . > 10"])


def test_a_file_that_is_not_a_workbook_or_has_no_survey_is_one_chinese_error():
    with pytest.raises(XLSFormError) as caught:
        read_xlsform(b"name,age\n", "people.xlsx")
    assert caught.value.messages == ["文件不是 Excel 工作簿（.xlsx）：请在 Excel 或 WPS 里另存为 .xlsx 再导入"]
    book = openpyxl.Workbook()
    book.active.title = "问卷"
    output = io.BytesIO()
    book.save(output)
    with pytest.raises(XLSFormError) as caught:
        read_xlsform(output.getvalue(), "x.xlsx")
    assert caught.value.messages == ["工作簿里没有 survey 工作表：XLSForm 的题目写在名为 survey 的工作表里"]


def test_a_question_the_checker_refuses_is_left_out_and_listed():
    survey = [
        ["select_one yes_no", "q", "Q", "问题"],
        ["integer", "n", "N", "数量", "", "", "${q} = 'maybe'"],  # not an option of q
        ["select_one yes_no", "q_other", "Q2", "与 q 的“其他”同名"],
    ]
    survey[0][0] += " or_other"
    imported = read_xlsform(workbook(survey=survey), "x.xlsx")
    assert [d.text for d in imported.dropped] == [
        "survey 第 3 行（n）：条件无法使用：show_if 'q == \"maybe\"'：'maybe' 不是 'q' 的选项（可用：yes（是）、no（否）、other（其他））：本题总是显示",
        "survey 第 4 行（q_other）：答案名 'q_other' 与字段 'q' 重复，请换一个 name 或 key",
    ]
    assert [f.name for f in parse_form(imported.form_id, imported.toml).fields] == ["q", "n"]


@pytest.mark.parametrize(
    ("cell", "why"),
    [("1", "应是花括号 { } 里的设置项，已忽略"), ("{ kind = ", "写错了，已忽略：")],
)
def test_a_form_setting_that_is_not_a_table_is_listed_as_a_question_setting_is(cell, why):
    settings = [["form_title", "form_id", "qf_form"], ["电梯安全调查", "elevator_survey", cell]]
    survey = [["text", "q", "问题", cell]]
    imported = read_xlsform(workbook(survey, settings=settings, header=["type", "name", "label", "qf_field"]), "x.xlsx")
    texts = [d.text for d in imported.dropped]
    assert len(texts) == 2, texts
    assert texts[0].startswith(f"survey 第 2 行（q）：qf_field {why}")
    assert texts[1].startswith(f"settings 第 2 行：qf_form {why}")  # said, not silently ignored


def _bundled() -> list[Path]:
    return list(form_files(BUNDLED_FORMS))


def _page(client, form_id: str) -> str:
    page = client.get(f"/f/{form_id}")
    assert page.status_code == 200, form_id
    return re.sub(r'name="_key" value="[^"]+"', 'name="_key" value=""', page.text)


def test_every_bundled_form_goes_to_xlsform_and_back_to_the_same_page(tmp_path, clock):
    clock(dt.datetime(2026, 9, 15, 10))
    campaign, _ = read_campaign(BUNDLED_FORMS)
    back = tmp_path / "back"
    back.mkdir()
    shutil.copy(BUNDLED_FORMS / "campaign.toml", back / "campaign.toml")
    public = []
    for path in _bundled():
        form = load_form(path)
        data, _notes = write_xlsform(form, read_toml(path))
        choices = openpyxl.load_workbook(io.BytesIO(data)).worksheets[1]
        names = [row[1] for row in choices.iter_rows(min_row=2, values_only=True)]
        assert all(re.fullmatch(r"[^\s'\"]+", name) for name in names), names  # pyxform refuses spaces
        imported = read_xlsform(data, f"{form.id}.xlsx", campaign=campaign)
        assert (imported.form_id, imported.dropped) == (form.id, [])
        again = parse_form(form.id, imported.toml, campaign)  # checks clean
        same = [msgspec.structs.replace(f, show_if=None) for f in again.fields]
        assert same == [msgspec.structs.replace(f, show_if=None) for f in form.fields]
        assert msgspec.structs.replace(again, fields=(), version="") == msgspec.structs.replace(
            form, fields=(), version=""
        )
        (back / path.name).write_text(imported.toml, encoding="utf-8")
        if form.is_public:
            public.append(form.id)
    assert len(public) >= 4
    with make_app_client(tmp_path / "a", forms=BUNDLED_FORMS) as original:
        pages = {form_id: _page(original, form_id) for form_id in public}
    with make_app_client(tmp_path / "b", forms=back) as reimported:
        assert {form_id: _page(reimported, form_id) for form_id in public} == pages


def test_export_keeps_campaign_days_and_says_what_kobo_sees_differently():
    path = BUNDLED_FORMS / "township-event.toml"
    data, notes = write_xlsform(load_form(path), read_toml(path))
    survey = openpyxl.load_workbook(io.BytesIO(data)).worksheets[0]
    header = [cell.value for cell in survey[1]]
    assert header == [
        "type", "name", "label", "hint", "required", "relevant", "constraint", "appearance", "parameters", "qf_field",
    ]  # fmt: skip
    assert "region 题 'township' 在 Kobo/ODK 里是文字题（没有海南市县乡镇列表）" in notes
    assert any("from_event" in note for note in notes)


def test_import_and_xlsform_commands(workdir):
    (workdir / "elevator.xlsx").write_bytes(workbook())
    done = run("import", "elevator.xlsx", cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().strip() == "forms/elevator-survey.toml"
    lines = done.stderr.decode().splitlines()
    assert lines == [f"elevator.xlsx: {text}" for text in NOT_CARRIED_OVER] + [
        "elevator.xlsx: 14 row(s) not carried over"
    ]
    assert run("check", cwd=workdir).returncode == 0

    again = run("import", "elevator.xlsx", cwd=workdir)
    assert (again.returncode, again.stderr.decode()) == (
        2,
        "quality-forms: forms/elevator-survey.toml exists: choose another --id, or add --force to replace it\n",
    )
    assert run("import", "elevator.xlsx", "--force", cwd=workdir).returncode == 0
    assert run("import", "elevator.xlsx", "--id", "lift", cwd=workdir).stdout.decode().strip() == "forms/lift.toml"

    exported = run("xlsform", "all-types", cwd=workdir)
    assert (exported.returncode, exported.stdout.decode().strip()) == (0, "exports/all-types.xlsx")
    back = run("import", "exports/all-types.xlsx", "--id", "all-types-copy", cwd=workdir)
    assert back.returncode == 0 and back.stderr.decode() == "exports/all-types.xlsx: 0 row(s) not carried over\n"
    assert (
        load_form(workdir / "forms" / "all-types-copy.toml").fields
        == load_form(workdir / "forms" / "all-types.toml").fields
    )

    (workdir / "notes.xlsx").write_text("not a workbook")
    bad = run("import", "notes.xlsx", cwd=workdir)
    assert (bad.returncode, bad.stderr.decode()) == (
        2,
        "quality-forms: notes.xlsx: 文件不是 Excel 工作簿（.xlsx）：请在 Excel 或 WPS 里另存为 .xlsx 再导入\n",
    )
    unknown = run("xlsform", "nope", cwd=workdir)
    assert (unknown.returncode, unknown.stderr.decode()) == (2, "quality-forms: unknown form 'nope'\n")


def _csrf(page_html: str) -> str:
    return re.search(r'name="_csrf" value="([^"]+)"', page_html).group(1)


def test_an_admin_uploads_a_workbook_and_sees_the_form_and_what_stayed_behind(office):
    sign_in(office, "boss", ADMIN_PASSWORD)
    page = office.get("/admin/forms/import")
    assert page.status_code == 200 and 'type="file"' in page.text and 'enctype="multipart/form-data"' in page.text
    answer = office.post(
        "/admin/forms/import",
        data={"_csrf": _csrf(page.text), "form_id": ""},
        files={"workbook": ("elevator.xlsx", workbook(), "application/octet-stream")},
    )
    assert answer.status_code == 200
    rows = re.findall(
        r"<tr><td>(\w+)</td><td class=\"num\">(\d+)</td><td><code>([^<]*)</code></td><td>([^<]+)</td></tr>", answer.text
    )
    assert [
        f"{sheet} 第 {row} 行（{name}）：{html.unescape(why)}" for sheet, row, name, why in rows
    ] == NOT_CARRIED_OVER
    # the button hands the TOML to the workshop's draft endpoint, as it was shown
    draft = answer.text.split('id="to-workshop"', 1)[1]
    assert 'action="/admin/forms/new"' in answer.text.split('id="to-workshop"', 1)[0][-80:]
    assert 'name="form_id" value="elevator-survey"' in draft
    toml = html.unescape(re.search(r'<textarea[^>]*name="toml"[^>]*>(.*?)</textarea>', draft, re.DOTALL).group(1))
    assert toml == read_xlsform(workbook(), "elevator.xlsx").toml
    assert "已经有编号为" not in draft


def test_the_upload_page_names_a_bad_file_and_a_taken_id(office):
    sign_in(office, "boss", ADMIN_PASSWORD)
    token = _csrf(office.get("/admin/forms/import").text)
    bad = office.post(
        "/admin/forms/import", data={"_csrf": token}, files={"workbook": ("list.xlsx", b"a,b\n", "text/csv")}
    )
    assert bad.status_code == 422 and "文件不是 Excel 工作簿（.xlsx）" in bad.text
    empty = office.post(
        "/admin/forms/import", data={"_csrf": token}, files={"workbook": ("", b"", "application/octet-stream")}
    )
    assert empty.status_code == 422 and "请选择一个 Excel 文件（.xlsx）" in empty.text
    taken = office.post(
        "/admin/forms/import",
        data={"_csrf": token, "form_id": "all-types"},
        files={"workbook": ("x.xlsx", workbook(), "application/octet-stream")},
    )
    assert taken.status_code == 200 and "已经有编号为 <code>all-types</code> 的表单" in taken.text
    forged = office.post(
        "/admin/forms/import",
        data={"_csrf": "nope"},
        files={"workbook": ("x.xlsx", workbook(), "application/octet-stream")},
    )
    assert forged.status_code == 403


def test_only_admins_import_and_the_results_page_keeps_its_address(office):
    assert office.get("/admin/forms/import", follow_redirects=False).status_code == 303  # to the sign-in page
    sign_in(office, "wang", ADMIN_PASSWORD)
    assert office.get("/admin/forms/import").status_code == 403
    assert "导入表单" not in office.get("/admin").text
    sign_in(office, "boss", ADMIN_PASSWORD)
    assert 'href="/admin/forms/import"' in office.get("/admin").text
    assert office.get("/admin/forms/all-types").status_code == 200  # /admin/forms/{id} is still the results page


@pytest.mark.browser
def test_in_chromium_an_admin_uploads_a_workbook_and_reads_what_stayed_behind(workdir):
    """The upload as an office worker does it: choose the file, press 读取, read the list."""
    import os
    import shutil as which

    sync_api = pytest.importorskip("playwright.sync_api")
    from tests.conftest import ROOT, running_server

    chromium = which.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        if os.environ.get("CI"):
            pytest.fail("CI must run the browser tests: .ci/run installs Debian's chromium")
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    assert (
        run("user", "add", "boss", "--role", "admin", input=f"{ADMIN_PASSWORD}\n".encode(), cwd=workdir).returncode == 0
    )
    with running_server(workdir) as port, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN").new_page()
        base = f"http://127.0.0.1:{port}"
        page.goto(f"{base}/admin/login")
        page.fill("#username", "boss")
        page.fill("#password", ADMIN_PASSWORD)
        page.click("button.submit")
        page.click("text=导入表单")
        assert page.url == f"{base}/admin/forms/import"
        page.set_input_files(
            "#workbook", {"name": "电梯安全调查.xlsx", "mimeType": "application/octet-stream", "buffer": workbook()}
        )
        page.click("#upload button.submit")
        page.wait_for_selector("#dropped")
        assert page.locator("#dropped tbody tr").count() == len(NOT_CARRIED_OVER)
        assert page.locator("#draft-id").input_value() == "elevator-survey"
        assert page.locator("#draft-toml").input_value() == read_xlsform(workbook(), "电梯安全调查.xlsx").toml
        (ROOT / "tests" / "artifacts").mkdir(exist_ok=True)
        page.screenshot(path=str(ROOT / "tests" / "artifacts" / "office-import.png"), full_page=True)
        page.evaluate((ROOT / "node_modules" / "axe-core" / "axe.min.js").read_text(encoding="utf-8"))
        results = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
        serious = [v["id"] for v in results["violations"] if v["impact"] in ("serious", "critical")]
        assert serious == [], serious
        browser.close()


def test_rows_without_a_type_and_piped_labels_are_listed_and_huge_sheets_refused():
    survey = [
        ["text", "name_q", "Name", "姓名"],
        ["", "orphan", "", "没写题型的一行"],
        ["text", "greet", "Hi", "${name_q}，您好！您今年多大？"],
    ]
    imported = read_xlsform(workbook(survey=survey), "x.xlsx")
    assert [d.text for d in imported.dropped] == [
        "survey 第 3 行（orphan）：没有写题型（type），已跳过",
        "survey 第 4 行（greet）：题目文字里引用别的回答（${…}）不支持：照原样显示",
    ]
    with pytest.raises(XLSFormError) as caught:
        read_xlsform(workbook(survey=[["note", f"n{i}", "", "说明"] for i in range(5000)]), "big.xlsx")
    assert caught.value.messages == ["survey 工作表超过 5000 行：一份问卷用不了这么多行"]


@pytest.mark.parametrize(
    ("columns", "label"),
    [
        (["label::中文", "label::English"], "中文题目"),
        (["label::English", "label"], "普通题目"),
        (["Label::Chinese", "label::English"], "中文题目"),
        (["label::English"], "English"),
    ],
)
def test_the_chinese_label_column_is_chosen(columns, label):
    texts = {"label::中文": "中文题目", "label": "普通题目", "label::chinese": "中文题目", "label::english": "English"}
    header = ["type", "name", *columns]
    row = ["text", "q", *(texts[c.lower()] for c in columns)]
    settings = [["form_title"], ["T"]]
    imported = read_xlsform(workbook(survey=[row], settings=settings, header=header), "q.xlsx")
    assert parse_form(imported.form_id, imported.toml).field("q").label == label


def test_a_workbook_past_the_usual_1_mb_is_read_and_one_past_5_mb_refused(office):
    import secrets

    book = openpyxl.Workbook()
    book.active.title = "survey"
    book.active.append(["type", "name", "label"])
    book.active.append(["text", "q", "问题"])
    pictures = book.create_sheet("说明")  # what makes real workbooks large: sheets the import does not read
    for _ in range(3000):
        pictures.append([secrets.token_hex(300)])
    output = io.BytesIO()
    book.save(output)
    data = output.getvalue()
    assert 1024 * 1024 < len(data) < 2 * 1024 * 1024
    sign_in(office, "boss", ADMIN_PASSWORD)
    token = _csrf(office.get("/admin/forms/import").text)
    read = office.post("/admin/forms/import", data={"_csrf": token}, files={"workbook": ("big.xlsx", data, "x/y")})
    assert read.status_code == 200 and 'value="big"' in read.text
    refused = office.post(
        "/admin/forms/import", data={"_csrf": token}, files={"workbook": ("big.xlsx", data * 5, "x/y")}
    )
    assert refused.status_code == 413


def test_an_imported_workbook_goes_through_the_workshop_to_residents(office):
    """The upload page's button, then the workshop: a draft, published, a page residents open."""
    sign_in(office, "boss", ADMIN_PASSWORD)
    token = _csrf(office.get("/admin/forms/import").text)
    shown = office.post(
        "/admin/forms/import",
        data={"_csrf": token},
        files={"workbook": ("elevator.xlsx", workbook(), "application/octet-stream")},
    ).text.split('id="to-workshop"', 1)[1]
    toml = html.unescape(re.search(r'<textarea[^>]*name="toml"[^>]*>(.*?)</textarea>', shown, re.DOTALL).group(1))
    assert office.get("/f/elevator-survey").status_code == 404  # a draft is not live
    made = office.post(
        "/admin/forms/new", data={"_csrf": token, "form_id": "elevator-survey", "toml": toml}, follow_redirects=False
    )
    assert made.status_code == 303 and made.headers["location"] == "/admin/forms/elevator-survey/edit"
    assert office.get("/f/elevator-survey").status_code == 404
    published = office.post(
        "/admin/forms/elevator-survey/publish", data={"_csrf": token, "toml": toml}, follow_redirects=False
    )
    assert published.status_code == 303, published.text
    page = office.get("/f/elevator-survey")
    assert page.status_code == 200 and parse_form("elevator-survey", toml).title in html.unescape(page.text)
