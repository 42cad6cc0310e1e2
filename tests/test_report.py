"""The statistics report, checked against numbers worked out by hand.

The fixture: three forms (satisfaction on 10 points, on 5 points, none), events in 海口,
三沙, 白沙 (an autonomous county) and without a county, one event in the future, one
undated event without responses, responses outside the days and responses sent from a
form's own page. "Today" is 2022-09-20 unless a test says otherwise.
"""

import datetime as dt
import re
from fractions import Fraction

import msgspec
import openpyxl
import pytest

from server.forms import load_form
from server.report import (
    HEADERS,
    ReportError,
    build_report,
    five_point,
    report_csv,
    report_xlsx,
    satisfaction_field,
    write_report_files,
)
from server.storage import connect, open_database

TODAY = dt.date(2022, 9, 20)
SEPTEMBER = {"date_from": "2022-09-01", "date_to": "2022-09-30", "today": TODAY}

FORMS = {
    # The rating named `satisfaction` is used, not the first rating.
    "school-feedback": """
        title = "进校园反馈"
        kind = "five-into"
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
    # No rating named `satisfaction`: the first rating is used.
    "market-survey": """
        title = "集市调查"
        kind = "consumer-survey"
        [[fields]]
        name = "score"
        type = "rating"
        label = "评分"
        [[fields]]
        name = "extra"
        type = "rating"
        label = "附加评分"
        scale = 3
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
    ("HKGOV22", "market-survey", "机关", "海口市", "2022-09-08"),
    ("HKOLD22", "market-survey", "企业", "海口市", "2022-08-20"),
    ("SSCOM22", "market-survey", "社区", "三沙市", "2022-09-10"),
    ("BSTWN22", "school-feedback", "乡镇", "白沙黎族自治县", "2022-09-15"),
    ("BSTWN33", "sign-in", "乡镇", "白沙黎族自治县", ""),  # undated, with responses: held
    ("BSUND22", "school-feedback", "学校", "白沙黎族自治县", ""),  # undated, no responses: not held
    ("SYFUT22", "school-feedback", "学校", "三亚市", "2022-09-25"),  # after today: not held yet
    ("NOCTY22", "market-survey", "其他", "", "2022-09-09"),
]

# form, event, submitted at (+08:00), answers; 5-point values in the comments
RESPONSES = [
    ("school-feedback", "HKSCH22", "2022-09-05T10:00:00", {"teaching": 2, "satisfaction": 10}),  # 5
    ("school-feedback", "HKSCH22", "2022-09-05T10:01:00", {"satisfaction": 7}),  # 11/3
    ("school-feedback", "HKSCH22", "2022-09-05T10:02:00", {"teaching": 3}),  # not answered
    ("school-feedback", "HKSCH33", "2022-09-12T09:00:00", {"satisfaction": 4}),  # 7/3
    ("market-survey", "HKGOV22", "2022-09-08T15:00:00", {"score": 4}),  # 4
    ("market-survey", "HKGOV22", "2022-09-08T15:05:00", {"score": 5, "extra": 1}),  # 5
    ("market-survey", "HKGOV22", "2022-09-09T08:00:00", {"score": 9}),  # off the scale: not rated
    ("market-survey", "HKOLD22", "2022-08-20T11:00:00", {"score": 1}),  # before September
    ("market-survey", "HKOLD22", "2022-09-02T11:00:00", {"score": 3}),  # 3
    ("market-survey", "SSCOM22", "2022-09-10T10:00:00", {"score": 5}),  # 5
    ("market-survey", "SSCOM22", "2022-09-10T10:30:00", {"score": 2}),  # 2
    ("market-survey", "SSCOM22", "2022-10-01T00:00:00", {"score": 1}),  # after September
    ("market-survey", "SSCOM22", "2022-09-30T23:59:59", {"score": 3}),  # 3
    ("school-feedback", "BSTWN22", "2022-09-15T16:00:00", {"satisfaction": 8}),  # 37/9
    ("school-feedback", "BSTWN22", "2022-09-15T16:10:00", {"satisfaction": 1}),  # 1
    ("sign-in", "BSTWN33", "2022-09-16T09:00:00", {"unit": "牙叉镇政府"}),
    ("sign-in", "BSTWN33", "2022-09-16T09:05:00", {"unit": "白沙中学"}),
    ("market-survey", "NOCTY22", "2022-09-09T10:00:00", {"score": 2}),  # 2
    ("school-feedback", None, "2022-09-03T20:00:00", {"satisfaction": 5}),  # 25/9
    ("market-survey", None, "2022-09-04T20:00:00", {"score": 5}),  # 5
    ("sign-in", None, "2022-09-06T20:00:00", {"unit": "海口市场监管局"}),
    ("market-survey", None, "2022-08-31T23:59:59", {"score": 1}),  # before September
]

# 市县, 场所类型, 活动场次, 答卷数, 平均满意度 for September
SEPTEMBER_ROWS = [
    ["海口市", "机关", 1, 3, 4.5],  # (4 + 5) / 2
    ["海口市", "企业", 0, 1, 3.0],  # the event was in August, one response in September
    ["海口市", "学校", 2, 4, 3.67],  # (5 + 11/3 + 7/3) / 3 = 11/3
    ["海口市", "小计", 3, 8, 3.83],  # 23 / 6
    ["三沙市", "社区", 1, 3, 3.33],  # (5 + 2 + 3) / 3
    ["三沙市", "小计", 1, 3, 3.33],
    ["白沙黎族自治县", "乡镇", 2, 4, 2.56],  # (37/9 + 1) / 2 = 23/9
    ["白沙黎族自治县", "小计", 2, 4, 2.56],
    ["未填市县", "其他", 1, 1, 2.0],
    ["未填市县", "小计", 1, 1, 2.0],
    ["未关联活动", "", 0, 3, 3.89],  # (25/9 + 5) / 2 = 35/9
    ["合计", "", 7, 19, 3.42],  # (23 + 10 + 46/9 + 2 + 70/9) / 14 = 431/126
]


@pytest.fixture
def forms(tmp_path):
    folder = tmp_path / "forms"
    folder.mkdir()
    for form_id, source in FORMS.items():
        (folder / f"{form_id}.toml").write_text(re.sub(r"(?m)^ +", "", source), encoding="utf-8")
    return {form_id: load_form(folder / f"{form_id}.toml") for form_id in FORMS}


@pytest.fixture
def db(tmp_path, forms):
    db = open_database(tmp_path / "report.db")
    for form in forms.values():
        db.execute(
            "INSERT INTO form_versions VALUES (?, ?, ?, ?)",
            [form.id, form.version, msgspec.json.encode(form).decode(), "2022-08-01T00:00:00+08:00"],
        )
    for code, form_id, venue_type, county, date in EVENTS:
        add_event(db, code, form_id, venue_type, county, date)
    for form_id, event, submitted_at, answers in RESPONSES:
        add_response(db, forms[form_id], event, submitted_at, answers)
    return db


def add_event(db, code, form_id, venue_type, county, date):
    db.execute(
        """INSERT INTO events (code, form_id, title, venue_type, county, township, venue, date, organizer,
                               expected, created_at)
           VALUES (?, ?, ?, ?, ?, '', '', ?, '', NULL, '2022-08-01T00:00:00+08:00')""",
        [code, form_id, f"活动 {code}", venue_type, county, date],
    )


def add_response(db, form, event, submitted_at, answers):
    number = db.execute("SELECT count(*) FROM responses").fetchone()[0]
    db.execute(
        """INSERT INTO responses (form_id, form_version, event, submission_key, submitted_at, answers)
           VALUES (?, ?, ?, ?, ?, ?)""",
        [
            form.id,
            form.version,
            event,
            f"key-{number:04d}",
            submitted_at + "+08:00",
            msgspec.json.encode(answers).decode(),
        ],
    )


def table(report):
    return [row.cells() for row in report.rows]


def test_satisfaction_is_the_rating_named_satisfaction_else_the_first_rating(forms):
    assert satisfaction_field(forms["school-feedback"]).name == "satisfaction"
    assert satisfaction_field(forms["market-survey"]).name == "score"
    assert satisfaction_field(forms["sign-in"]) is None


def test_ratings_are_put_on_five_points():
    assert [five_point(v, 10) for v in (1, 4, 7, 10)] == [1, Fraction(7, 3), Fraction(11, 3), 5]
    assert [five_point(v, 5) for v in range(1, 6)] == [1, 2, 3, 4, 5]
    assert [five_point(v, 2) for v in (1, 2)] == [1, 5]


def test_september_report_matches_the_hand_computed_table(db, forms):
    report = build_report(db, forms, **SEPTEMBER)
    assert table(report) == SEPTEMBER_ROWS
    kinds = "venue venue venue county venue county venue county venue county unlinked total"
    assert [row.kind for row in report.rows] == kinds.split()
    assert [row.rated for row in report.rows] == [2, 1, 3, 6, 3, 3, 2, 2, 1, 1, 2, 14]
    assert (report.date_from, report.date_to, report.today) == ("2022-09-01", "2022-09-30", "2022-09-20")
    assert report.total is report.rows[-1]


def test_without_dates_every_event_up_to_today_and_every_response_counts(db, forms):
    report = build_report(db, forms, today=TODAY)
    assert table(report) == [
        ["海口市", "机关", 1, 3, 4.5],
        ["海口市", "企业", 1, 2, 2.0],  # (1 + 3) / 2
        ["海口市", "学校", 2, 4, 3.67],
        ["海口市", "小计", 4, 9, 3.43],  # 24 / 7
        ["三沙市", "社区", 1, 4, 2.75],  # (5 + 2 + 1 + 3) / 4
        ["三沙市", "小计", 1, 4, 2.75],
        ["白沙黎族自治县", "乡镇", 2, 4, 2.56],
        ["白沙黎族自治县", "小计", 2, 4, 2.56],
        ["未填市县", "其他", 1, 1, 2.0],
        ["未填市县", "小计", 1, 1, 2.0],
        ["未关联活动", "", 0, 4, 2.93],  # (25/9 + 5 + 1) / 3 = 79/27
        ["合计", "", 8, 22, 2.99],  # 458/9 / 17
    ]


def test_an_event_counts_once_its_day_has_come_and_may_have_no_satisfaction(db, forms):
    report = build_report(db, forms, **SEPTEMBER | {"today": dt.date(2022, 9, 25)})
    assert ["三亚市", "学校", 1, 0, None] in table(report)
    assert ["三亚市", "小计", 1, 0, None] in table(report)
    assert report.total.cells() == ["合计", "", 8, 19, 3.42]
    early = build_report(db, forms, **SEPTEMBER | {"today": dt.date(2022, 9, 11)})
    assert ["海口市", "学校", 1, 4, 3.67] in table(early)  # HKSCH33 (9-12) not held yet, its answers count
    assert ["白沙黎族自治县", "乡镇", 1, 4, 2.56] in table(early)  # only the undated event with answers


def test_undated_events_count_only_with_responses_within_the_days(db, forms):
    report = build_report(db, forms, date_from="2022-10-01", today=dt.date(2022, 10, 5))
    assert table(report) == [
        ["三沙市", "社区", 0, 1, 1.0],  # submitted at 2022-10-01 00:00:00
        ["三沙市", "小计", 0, 1, 1.0],
        ["合计", "", 0, 1, 1.0],
    ]


def test_a_staff_report_holds_only_their_events(db, forms):
    report = build_report(db, forms, codes={"HKSCH22", "BSTWN33", "BSUND22"}, **SEPTEMBER)
    assert table(report) == [
        ["海口市", "学校", 1, 3, 4.33],  # (5 + 11/3) / 2
        ["海口市", "小计", 1, 3, 4.33],
        ["白沙黎族自治县", "乡镇", 1, 2, None],  # sign-in asks no satisfaction
        ["白沙黎族自治县", "小计", 1, 2, None],
        ["合计", "", 2, 5, 4.33],
    ]
    assert table(build_report(db, forms, codes=[], today=TODAY)) == [["合计", "", 0, 0, None]]


def test_averages_round_half_up_exactly(db, forms):
    for score in (5, 5, 4, 4, 4, 4, 4, 3):  # 33 / 8 = 4.125, which float rounding makes 4.12
        add_response(db, forms["market-survey"], "NOCTY22", "2022-10-02T10:00:00", {"score": score})
    report = build_report(db, forms, date_from="2022-10-02", date_to="2022-10-02", today=TODAY)
    assert report.total.cells() == ["合计", "", 0, 8, 4.13]


def test_a_form_no_longer_in_the_catalog_still_counts_its_responses(db, forms):
    report = build_report(db, {"sign-in": forms["sign-in"]}, **SEPTEMBER)
    assert report.total.cells() == ["合计", "", 7, 19, None]


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"date_from": "2022-13-01"}, "开始日期 '2022-13-01' 不对"),
        ({"date_to": "九月"}, "结束日期 '九月' 不对"),
        ({"date_from": "2022-09-30", "date_to": "2022-09-01"}, "开始日期 2022-09-30 晚于结束日期 2022-09-01"),
    ],
)
def test_bad_dates_are_named_in_chinese(db, forms, filters, message):
    with pytest.raises(ReportError, match=message):
        build_report(db, forms, **filters)


def test_dates_are_read_as_people_write_them(db, forms):
    report = build_report(db, forms, date_from="2022/9/1", date_to="2022年9月30日", today=TODAY)
    assert (report.date_from, report.date_to) == ("2022-09-01", "2022-09-30")
    assert table(report) == SEPTEMBER_ROWS
    assert table(build_report(db, forms, date_from="", date_to=" ", today=TODAY))[-1] == ["合计", "", 8, 22, 2.99]


def test_report_csv_is_exact(db, forms):
    assert (
        report_csv(build_report(db, forms, **SEPTEMBER))
        == (
            "\ufeff市县,场所类型,活动场次,答卷数,平均满意度（5分制）\r\n"
            "海口市,机关,1,3,4.50\r\n"
            "海口市,企业,0,1,3.00\r\n"
            "海口市,学校,2,4,3.67\r\n"
            "海口市,小计,3,8,3.83\r\n"
            "三沙市,社区,1,3,3.33\r\n"
            "三沙市,小计,1,3,3.33\r\n"
            "白沙黎族自治县,乡镇,2,4,2.56\r\n"
            "白沙黎族自治县,小计,2,4,2.56\r\n"
            "未填市县,其他,1,1,2.00\r\n"
            "未填市县,小计,1,1,2.00\r\n"
            "未关联活动,,0,3,3.89\r\n"
            "合计,,7,19,3.42\r\n"
        ).encode()
    )
    staff = report_csv(build_report(db, forms, codes=["BSTWN33"], today=TODAY)).decode("utf-8-sig")
    assert staff.split("\r\n")[1:] == ["白沙黎族自治县,乡镇,1,2,", "白沙黎族自治县,小计,1,2,", "合计,,1,2,", ""]


def test_report_xlsx_cells_are_the_table_with_bold_totals_and_a_frozen_header(db, forms, tmp_path):
    path = tmp_path / "report.xlsx"
    report_xlsx(build_report(db, forms, **SEPTEMBER), path)
    sheet = openpyxl.load_workbook(path).active
    assert sheet.title == "统计表"
    assert sheet.freeze_panes == "A2"
    values = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert values[0] == list(HEADERS)
    expected = [[c, v or None, e, r, s] for c, v, e, r, s in SEPTEMBER_ROWS]  # openpyxl reads "" as None
    assert values[1:] == expected
    numbers = [cell for row in sheet.iter_rows(min_row=2, min_col=3) for cell in row]
    assert all(cell.data_type == "n" and isinstance(cell.value, int | float) for cell in numbers)
    assert all(cell.number_format == "0.00" for cell in sheet["E"][1:])
    bold = [sheet.cell(row, 1).font.b for row in range(1, sheet.max_row + 1)]
    assert bold == [True, False, False, False, True, False, True, False, True, False, True, False, True]
    assert sheet.column_dimensions["A"].width >= len("白沙黎族自治县") * 2  # Chinese characters are wide
    assert sheet.column_dimensions["E"].width >= len("平均满意度") * 2


def test_report_xlsx_leaves_missing_satisfaction_blank(db, forms, tmp_path):
    path = tmp_path / "staff.xlsx"
    report_xlsx(build_report(db, forms, codes=["BSTWN33"], today=TODAY), path)
    values = list(openpyxl.load_workbook(path).active.iter_rows(min_row=2, values_only=True))
    assert values == [
        ("白沙黎族自治县", "乡镇", 1, 2, None),
        ("白沙黎族自治县", "小计", 1, 2, None),
        ("合计", None, 1, 2, None),
    ]


def test_report_files_are_written_whole_with_a_timestamped_name(db, forms, tmp_path):
    out = tmp_path / "exports"
    paths = write_report_files(db, forms, out, **SEPTEMBER)
    assert [p.parent for p in paths] == [out, out]
    assert re.fullmatch(r"report-\d{8}-\d{6}\.csv", paths[0].name)
    assert paths[1].name == paths[0].name.replace(".csv", ".xlsx")
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths)  # no .partial left
    assert paths[0].read_bytes() == report_csv(build_report(connect(tmp_path / "report.db"), forms, **SEPTEMBER))
    rows = list(openpyxl.load_workbook(paths[1]).active.iter_rows(values_only=True))
    assert rows[-1] == ("合计", None, 7, 19, 3.42)


def test_report_files_refuse_bad_filters_and_write_nothing(db, forms, tmp_path):
    with pytest.raises(ReportError):
        write_report_files(db, forms, tmp_path / "exports", date_from="2022-02-30")
    assert not (tmp_path / "exports").exists()
