"""The statistics table, checked against figures worked out by hand.

The fixture: four forms (a five-into form with a declared satisfaction on 10 points and a
second, undeclared rating; a consumer survey whose rating is not declared; a township form
declaring a 5-point rating; a sign-in without ratings) and the bundled event report. Events
in 海口, 三沙, 白沙, 三亚 and without a county; one in August, one undated but reported held
in September, one undated and never reported; reports approved, pending and returned;
responses sent from a form's own page; one suspected spam. Every response and report is
stored by the writer residents' submissions go through, at the moment the clock says.
"""

import datetime as dt
import re
from fractions import Fraction

import openpyxl
import pytest

from server.campaign import COUNTIES
from server.forms import FormError, load_form
from server.report import (
    ACTIVITIES,
    HEADERS,
    ReportError,
    activity_of,
    build_report,
    five_point,
    report_csv,
    report_filters,
    report_xlsx,
    satisfaction_field,
    write_report_files,
)
from server.scope import Scope
from server.storage import Submission, Writer, connect, open_database
from tests.conftest import BUNDLED_FORMS

SEPTEMBER = report_filters({"date_from": "2022-09-01", "date_to": "2022-09-30"})

FORMS = {
    "school-feedback": """
        title = "进校园反馈"
        kind = "five-into"
        report_satisfaction = "satisfaction"
        [[fields]]
        name = "teaching"
        type = "rating"
        label = "讲解清楚吗？"
        [[fields]]
        name = "satisfaction"
        type = "rating"
        label = "满意度"
        scale = 10
    """,
    # A rating, but none declared: it never counts as satisfaction.
    "market-survey": """
        title = "集市调查"
        kind = "consumer-survey"
        [[fields]]
        name = "score"
        type = "rating"
        label = "对 12315 处理结果满意吗"
    """,
    "township": """
        title = "乡镇行"
        kind = "township-event"
        report_satisfaction = "helpful"
        [[fields]]
        name = "helpful"
        type = "rating"
        label = "有帮助吗"
    """,
    "sign-in": """
        title = "签到"
        kind = "general"
        [[fields]]
        name = "unit"
        type = "text"
        label = "单位"
    """,
}

# code, form, venue type, county, date
EVENTS = [
    ("HKSCH22", "school-feedback", "学校", "海口市", "2022-09-05"),
    ("HKSCH33", "school-feedback", "学校", "海口市", "2022-09-12"),
    ("HKGOV22", "market-survey", "机关", "海口市", "2022-09-08"),  # a consumer survey, whatever the venue
    ("HKOLD22", "school-feedback", "企业", "海口市", "2022-08-20"),  # August
    ("SSTWN22", "township", "乡镇", "三沙市", "2022-09-10"),  # reported not held
    ("BSTWN22", "township", "乡镇", "白沙黎族自治县", "2022-09-15"),  # no report
    ("BSUND22", "school-feedback", "社区", "白沙黎族自治县", ""),  # undated, held on 09-18
    ("BSUND33", "sign-in", "学校", "白沙黎族自治县", ""),  # undated, no report: in no month
    ("SYFUT22", "school-feedback", "其他", "三亚市", "2022-09-25"),  # five-into at "其他": 其他
    ("NOCTY22", "market-survey", "其他", "", "2022-09-09"),
]

PHOTO = "{:064x}.jpg".format
# event, saved at, answers, review
REPORTS = [
    ("HKSCH22", "2022-09-05T18:00", {"people": 120, "materials": 300, "posters": 4, "photos": 3}, "approved"),
    ("HKSCH33", "2022-09-12T18:00", {"people": 80, "materials": 100, "posters": 2, "photos": 1}, None),
    ("HKGOV22", "2022-09-08T18:00", {"people": 50}, "returned"),
    ("HKOLD22", "2022-08-20T18:00", {"people": 999, "materials": 9}, "approved"),
    ("SSTWN22", "2022-09-10T18:00", {"held": "no"}, "approved"),
    ("BSUND22", "2022-09-18T18:00", {"held_on": "2022-09-18", "people": 30, "materials": 20, "posters": 1, "photos": 2},
     "approved"),
    ("NOCTY22", "2022-09-09T18:00", {"people": 10}, None),
]  # fmt: skip

# form, event, submitted at (China time), answers; 5-point values of the declared rating in comments
RESPONSES = [
    ("school-feedback", "HKSCH22", "2022-09-05T10:00", {"teaching": 2, "satisfaction": 10}),  # 5
    ("school-feedback", "HKSCH22", "2022-09-05T10:01", {"satisfaction": 7}),  # 11/3
    ("school-feedback", "HKSCH22", "2022-09-05T10:02", {"teaching": 3}),  # not answered
    ("school-feedback", "HKSCH33", "2022-09-12T09:00", {"satisfaction": 4}),  # 7/3
    ("market-survey", "HKGOV22", "2022-09-08T15:00", {"score": 4}),  # no declared question
    ("market-survey", "HKGOV22", "2022-09-08T15:05", {"score": 5}),
    ("school-feedback", "HKOLD22", "2022-08-20T11:00", {"satisfaction": 1}),  # 1, August
    ("township", "SSTWN22", "2022-09-10T10:00", {"helpful": 5}),  # 5
    ("township", "SSTWN22", "2022-09-10T10:30", {"helpful": 2}),  # 2
    ("township", "BSTWN22", "2022-09-15T16:00", {"helpful": 4}),  # 4
    ("township", "BSTWN22", "2022-09-15T16:10", {"helpful": 6}),  # off the scale: not rated
    ("school-feedback", "BSUND22", "2022-10-03T09:00", {"satisfaction": 8}),  # 37/9, counts with its event
    ("sign-in", "BSUND33", "2022-09-16T09:00", {"unit": "白沙中学"}),
    ("market-survey", "NOCTY22", "2022-09-09T10:00", {"score": 2}),
    ("school-feedback", None, "2022-09-03T20:00", {"satisfaction": 5}),  # 25/9, from the form's own page
    ("market-survey", None, "2022-09-04T20:00", {"score": 5}),
    ("school-feedback", None, "2022-08-31T23:59", {"satisfaction": 1}),  # 1, August
]
SPAM = ("school-feedback", "HKSCH22", "2022-09-05T11:00", {"satisfaction": 1})

Z = [0, 0, 0, 0, 0, 0, 0, None]  # planned, held, people, responses, materials, posters, photos, satisfaction
# Hand-computed, September, every report: the rows that are not zero.
SEPTEMBER_FIGURES = {
    ("海口市", "五进学校"): [2, 2, 200, 4, 400, 6, 4, 3.67],  # (5 + 11/3 + 7/3) / 3 = 11/3
    ("海口市", "消费者调查"): [1, 1, 50, 2, 0, 0, 0, None],
    ("海口市", "小计"): [3, 3, 250, 6, 400, 6, 4, 3.67],
    ("三亚市", "其他"): [1, 0, 0, 0, 0, 0, 0, None],
    ("三亚市", "小计"): [1, 0, 0, 0, 0, 0, 0, None],
    ("三沙市", "质量文化乡镇行"): [1, 0, 0, 2, 0, 0, 0, 3.5],  # (5 + 2) / 2
    ("三沙市", "小计"): [1, 0, 0, 2, 0, 0, 0, 3.5],
    ("白沙黎族自治县", "五进社区"): [1, 1, 30, 1, 20, 1, 2, 4.11],  # 37/9
    ("白沙黎族自治县", "质量文化乡镇行"): [1, 0, 0, 2, 0, 0, 0, 4.0],
    ("白沙黎族自治县", "小计"): [2, 1, 30, 3, 20, 1, 2, 4.06],  # (37/9 + 4) / 2 = 73/18
}
SEPTEMBER_TAIL = [
    ["未填市县", "消费者调查", 1, 1, 10, 1, 0, 0, 0, None],
    ["未填市县", "小计", 1, 1, 10, 1, 0, 0, 0, None],
    ["未关联活动", "", 0, 0, 0, 2, 0, 0, 0, 2.78],  # 25/9
    ["合计", "", 8, 5, 290, 14, 420, 7, 6, 3.61],  # (11 + 7 + 73/9 + 25/9) / 8 = 65/18
]


def full_table(figures, tail, counties=COUNTIES):
    """Every county's eight kinds and subtotal (zeros unless in `figures`), then `tail`."""
    rows = []
    for county in counties:
        for activity in (*ACTIVITIES, "小计"):
            rows.append([county, activity, *figures.get((county, activity), Z)])
    return rows + tail


def table(report):
    return [row.cells() for row in report.rows]


@pytest.fixture
def forms(tmp_path):
    folder = tmp_path / "forms"
    folder.mkdir()
    for form_id, source in FORMS.items():
        (folder / f"{form_id}.toml").write_text(re.sub(r"(?m)^ +", "", source), encoding="utf-8")
    loaded = {form_id: load_form(folder / f"{form_id}.toml") for form_id in FORMS}
    return loaded | {"event-report": load_form(BUNDLED_FORMS / "event-report.toml")}


@pytest.fixture
def db(tmp_path, forms, clock):
    db = open_database(tmp_path / "report.db")
    for code, form_id, venue_type, county, date in EVENTS:
        db.execute(
            """INSERT INTO events (code, form_id, title, venue_type, county, township, venue, date, organizer,
                                   expected, created_at)
               VALUES (?, ?, ?, ?, ?, '', '', ?, '', NULL, '2022-08-01T00:00:00+08:00')""",
            [code, form_id, f"活动 {code}", venue_type, county, date],
        )
    writer = Writer(tmp_path / "report.db")
    writer.start()
    try:
        for number, (form_id, event, at, answers) in enumerate(RESPONSES):
            store(writer, clock, Submission(forms[form_id], f"key-{number}", answers, event), at)
        store(writer, clock, Submission(forms[SPAM[0]], "spam", SPAM[3], SPAM[1], suspected_spam=True), SPAM[2])
        for event, at, figures, review in REPORTS:
            answers = report_answers(event, figures)
            store(writer, clock, Submission(forms["event-report"], f"report-{event}", answers, event), at)
            if review:
                db.execute("INSERT INTO report_reviews VALUES (?, ?, '', 'boss', ?)", [event, review, at + ":00+08:00"])
    finally:
        writer.close()
    clock(None)
    return db


def store(writer, clock, submission, at):
    clock(dt.datetime.fromisoformat(at))
    writer.submit(submission).result()


def report_answers(event, figures):
    """A report as the event-report form stores it: held unless said otherwise."""
    if figures.get("held") == "no":
        return {"held": "no", "not_held_reason": "台风"}
    date = next(d for code, _, _, _, d in EVENTS if code == event)
    answers = {"held": "yes", "held_on": figures.get("held_on", date), "summary": f"{event} 的总结"}
    answers |= {key: figures[key] for key in ("people", "materials", "posters") if key in figures}
    if figures.get("photos"):
        answers["photos"] = [
            PHOTO(EVENTS.index(next(e for e in EVENTS if e[0] == event)) * 10 + n) for n in range(figures["photos"])
        ]
    return answers


def test_satisfaction_is_only_the_declared_rating(forms):
    assert satisfaction_field(forms["school-feedback"]).name == "satisfaction"
    assert satisfaction_field(forms["township"]).name == "helpful"
    assert satisfaction_field(forms["market-survey"]) is None  # it has a rating, but declares none
    assert satisfaction_field(forms["sign-in"]) is None


def test_the_bundled_forms_declare_their_satisfaction_question():
    names = ("five-into-session", "township-event", "consumer-survey")
    declared = {name: load_form(BUNDLED_FORMS / f"{name}.toml").report_satisfaction for name in names}
    assert declared["five-into-session"] == "satisfaction"
    assert declared["township-event"] == "helpful"
    assert declared["consumer-survey"] == ""  # its one rating is about 12315, not the activity


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('report_satisfaction = "score"', "report_satisfaction = 'score': 问卷里没有字段 'score'"),
        ('report_satisfaction = "unit"', "report_satisfaction = 'unit': 字段 'unit' 是 text，必须是 rating（打分）题"),
        ("report_satisfaction = 3", "report_satisfaction 必须是一道打分题的 name"),
    ],
)
def test_a_declared_satisfaction_must_be_a_rating_of_the_form(tmp_path, line, message):
    path = tmp_path / "bad.toml"
    path.write_text(
        f'title = "表"\nkind = "general"\n{line}\n[[fields]]\nname = "unit"\ntype = "text"\nlabel = "单位"\n'
    )
    with pytest.raises(FormError, match=re.escape(message)):
        load_form(path)


def test_activity_kinds_come_from_the_form_and_the_venue():
    assert activity_of("five-into", "学校") == "五进学校"
    assert activity_of("five-into", "其他") == "其他"
    assert activity_of("township-event", "学校") == "质量文化乡镇行"
    assert activity_of("consumer-survey", "机关") == "消费者调查"
    assert activity_of("general", "机关") == activity_of(None, "学校") == "其他"


def test_ratings_are_put_on_five_points():
    assert [five_point(v, 10) for v in (1, 4, 7, 10)] == [1, Fraction(7, 3), Fraction(11, 3), 5]
    assert [five_point(v, 5) for v in range(1, 6)] == [1, 2, 3, 4, 5]


def test_september_table_matches_the_hand_computed_one(db, forms):
    report = build_report(db, forms, SEPTEMBER)
    assert table(report) == full_table(SEPTEMBER_FIGURES, SEPTEMBER_TAIL)
    assert len(report.rows) == 19 * 9 + 4
    assert report.total.rated == 8
    assert (report.date_from, report.date_to, report.county, report.approved_only) == (
        "2022-09-01",
        "2022-09-30",
        "",
        False,
    )


def test_approved_reports_only_leave_the_others_planned_but_not_held(db, forms):
    report = build_report(db, forms, SEPTEMBER, approved_only=True)
    figures = SEPTEMBER_FIGURES | {
        ("海口市", "五进学校"): [2, 1, 120, 4, 300, 4, 3, 3.67],  # HKSCH33 waits for review
        ("海口市", "消费者调查"): [1, 0, 0, 2, 0, 0, 0, None],  # HKGOV22 was returned
        ("海口市", "小计"): [3, 1, 120, 6, 300, 4, 3, 3.67],
    }
    tail = [
        ["未填市县", "消费者调查", 1, 0, 0, 1, 0, 0, 0, None],
        ["未填市县", "小计", 1, 0, 0, 1, 0, 0, 0, None],
        SEPTEMBER_TAIL[2],
        ["合计", "", 8, 2, 150, 14, 320, 5, 5, 3.61],
    ]
    assert table(report) == full_table(figures, tail)


def test_without_dates_every_dated_or_reported_event_counts(db, forms):
    report = build_report(db, forms)
    rows = {(row.county, row.activity): row.cells()[2:] for row in report.rows}
    assert rows[("海口市", "五进企业")] == [1, 1, 999, 1, 9, 0, 0, 1.0]
    assert rows[("白沙黎族自治县", "其他")] == [1, 0, 0, 1, 0, 0, 0, None]  # undated, unreported, still planned
    assert rows[("未关联活动", "")] == [0, 0, 0, 3, 0, 0, 0, 1.89]  # (25/9 + 1) / 2 = 17/9
    assert report.total.cells() == ["合计", "", 10, 6, 1289, 17, 429, 7, 6, 3.09]  # (260/9 + 1 + 1) / 10 = 139/45


def test_a_county_filter_keeps_that_county_and_no_unlinked_responses(db, forms):
    report = build_report(db, forms, report_filters({"county": "白沙", "date_from": "2022-09-01"}))
    assert table(report) == full_table(
        SEPTEMBER_FIGURES, [["合计", "", 2, 1, 30, 3, 20, 1, 2, 4.06]], counties=["白沙黎族自治县"]
    )


def test_an_account_sees_only_its_events_with_their_kinds(db, forms):
    db.execute("UPDATE events SET created_by = 'wang' WHERE code IN ('HKSCH33', 'BSTWN22', 'HKOLD22')")
    report = build_report(db, forms, SEPTEMBER, scope=Scope(created_by="wang"))
    assert table(report) == [
        ["海口市", "五进学校", 1, 1, 80, 1, 100, 2, 1, 2.33],  # HKOLD22 is in August
        ["海口市", "小计", 1, 1, 80, 1, 100, 2, 1, 2.33],
        ["白沙黎族自治县", "质量文化乡镇行", 1, 0, 0, 2, 0, 0, 0, 4.0],
        ["白沙黎族自治县", "小计", 1, 0, 0, 2, 0, 0, 0, 4.0],
        ["合计", "", 2, 1, 80, 3, 100, 2, 1, 3.17],  # (7/3 + 4) / 2 = 19/6
    ]
    assert table(build_report(db, forms, scope=Scope(created_by="li"))) == [["合计", "", 0, 0, 0, 0, 0, 0, 0, None]]
    county = build_report(db, forms, SEPTEMBER, scope=Scope(county="三沙市"))  # a county account's table
    assert [e.code for e in county.events] == ["SSTWN22"] and "未关联活动" not in [r.county for r in county.rows]


def test_the_events_behind_the_table_carry_their_reports(db, forms):
    events = {e.code: e for e in build_report(db, forms, SEPTEMBER).events}
    assert list(events) == ["HKSCH22", "HKGOV22", "HKSCH33", "SYFUT22", "SSTWN22", "BSTWN22", "BSUND22", "NOCTY22"]
    assert [events[c].status_label for c in ("HKSCH22", "HKSCH33", "HKGOV22", "BSTWN22")] == [
        "已通过",
        "待审核",
        "已退回",
        "未填报",
    ]
    assert (events["BSUND22"].day, events["BSUND22"].activity, len(events["BSUND22"].photos)) == (
        "2022-09-18",
        "五进社区",
        2,
    )
    assert events["SSTWN22"].held is False and events["BSTWN22"].held is None
    assert events["HKSCH22"].summary == "HKSCH22 的总结"


def test_averages_round_half_up_exactly(db, forms, clock, tmp_path):
    writer = Writer(tmp_path / "report.db")
    writer.start()
    for number, score in enumerate((5, 5, 4, 4, 4, 4, 4, 3)):  # 33 / 8 = 4.125, which float rounding makes 4.12
        submission = Submission(forms["township"], f"round-{number}", {"helpful": score}, "SYFUT22")
        store(writer, clock, submission, "2022-09-25T10:00")
    writer.close()
    report = build_report(db, forms, report_filters({"county": "三亚市"}))
    assert report.total.cells() == ["合计", "", 1, 0, 0, 8, 0, 0, 0, 4.13]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"date_from": "2022-13-01"}, "开始日期 '2022-13-01' 不对"),
        ({"date_to": "九月"}, "结束日期 '九月' 不对"),
        ({"date_from": "2022-09-30", "date_to": "2022-09-01"}, "开始日期晚于结束日期"),
        ({"county": "广州"}, "市县 '广州' 不是海南省的市县"),
    ],
)
def test_bad_filters_are_named_in_chinese(query, message):
    with pytest.raises(ReportError, match=message):
        report_filters(query)


def test_dates_are_read_as_people_write_them(db, forms):
    filters = report_filters({"date_from": "2022/9/1", "date_to": "2022年9月30日"})
    assert (filters.date_from, filters.date_to) == ("2022-09-01", "2022-09-30")
    assert table(build_report(db, forms, filters)) == table(build_report(db, forms, SEPTEMBER))


def test_report_csv_is_exact(db, forms):
    lines = report_csv(build_report(db, forms, SEPTEMBER)).decode("utf-8").split("\r\n")
    assert (
        lines[0]
        == "\ufeff市县,活动类别,计划场次,已举办,覆盖人数,答卷数,宣传资料（份）,海报展板（块）,照片（张）,满意度（5分制）"
    )
    assert lines[1:10] == [
        "海口市,五进机关,0,0,0,0,0,0,0,",
        "海口市,五进企业,0,0,0,0,0,0,0,",
        "海口市,五进乡镇,0,0,0,0,0,0,0,",
        "海口市,五进社区,0,0,0,0,0,0,0,",
        "海口市,五进学校,2,2,200,4,400,6,4,3.67",
        "海口市,质量文化乡镇行,0,0,0,0,0,0,0,",
        "海口市,消费者调查,1,1,50,2,0,0,0,",
        "海口市,其他,0,0,0,0,0,0,0,",
        "海口市,小计,3,3,250,6,400,6,4,3.67",
    ]
    assert lines[-5:] == [
        "未填市县,消费者调查,1,1,10,1,0,0,0,",
        "未填市县,小计,1,1,10,1,0,0,0,",
        "未关联活动,,0,0,0,2,0,0,0,2.78",
        "合计,,8,5,290,14,420,7,6,3.61",
        "",
    ]


def test_report_xlsx_cells_are_the_table_with_bold_totals_and_frozen_headings(db, forms, tmp_path):
    path = tmp_path / "report.xlsx"
    report_xlsx(build_report(db, forms, SEPTEMBER), path)
    sheet = openpyxl.load_workbook(path).active
    assert sheet.title == "统计表"
    assert sheet.freeze_panes == "C2"
    values = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert values[0] == list(HEADERS)
    expected = [[c, a or None, *rest] for c, a, *rest in full_table(SEPTEMBER_FIGURES, SEPTEMBER_TAIL)]
    assert values[1:] == expected  # openpyxl reads "" as None
    numbers = [cell for row in sheet.iter_rows(min_row=2, min_col=3, max_col=9) for cell in row]
    assert all(cell.data_type == "n" and isinstance(cell.value, int) for cell in numbers)
    assert all(cell.number_format == "0.00" for cell in sheet["J"][1:])
    bold = [sheet.cell(row, 1).font.b for row in range(2, sheet.max_row + 1)]
    assert bold == [activity in ("小计", "合计") for _, activity, *_ in expected[:-1]] + [True]
    assert sheet.column_dimensions["A"].width >= len("白沙黎族自治县") * 2  # Chinese characters are wide


def test_report_files_are_written_whole_with_a_timestamped_name(db, forms, tmp_path):
    out = tmp_path / "exports"
    paths = write_report_files(db, forms, out, SEPTEMBER)
    assert re.fullmatch(r"report-\d{8}-\d{6}\.csv", paths[0].name)
    assert paths[1].name == paths[0].name.replace(".csv", ".xlsx")
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths)  # no .partial left
    assert paths[0].read_bytes() == report_csv(build_report(connect(tmp_path / "report.db"), forms, SEPTEMBER))
    rows = list(openpyxl.load_workbook(paths[1]).active.iter_rows(values_only=True))
    assert rows[-1] == ("合计", None, 8, 5, 290, 14, 420, 7, 6, 3.61)


def test_the_report_command_writes_both_files_and_refuses_bad_filters(tmp_path):
    from tests.conftest import run

    (tmp_path / "forms").mkdir()
    result = run("report", "--from", "2022-09-01", "--county", "白沙", "--out-dir", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [xlsx] = (tmp_path / "out").glob("*.xlsx")
    rows = list(openpyxl.load_workbook(xlsx).active.iter_rows(values_only=True))
    assert [row[0] for row in rows[1:]] == ["白沙黎族自治县"] * 9 + ["合计"]
    bad = run("report", "--from", "2022-13-01", "--approved-only", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.decode().strip().endswith("开始日期 '2022-13-01' 不对，应写成 2022-09-15")


def test_reports_and_responses_still_count_when_their_form_files_are_gone(db, forms):
    report = build_report(db, {"sign-in": forms["sign-in"]}, SEPTEMBER)
    assert report.total.cells() == ["合计", "", 8, 5, 290, 14, 420, 7, 6, None]  # no declared question left
    assert {row.activity for row in report.rows if row.kind == "activity" and row.planned} == {"其他"}
