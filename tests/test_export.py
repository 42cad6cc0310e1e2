"""CSV export, compared byte for byte."""

import csv
import io
import tracemalloc
import unicodedata

import openpyxl
import pytest

from server.events import add_events, make_event
from server.export import FORMULA_SIGNS, INVISIBLE_LEADERS, ascii_file_stem, csv_field, export_csv, file_stem
from server.forms import load_form
from server.results import Filters
from server.storage import Submission, Writer, connect, open_database
from server.xlsx import export_xlsx
from tests.conftest import TEST_FORMS

FORM = load_form(TEST_FORMS / "all-types.toml")


@pytest.fixture
def db_path(tmp_path):
    path = tmp_path / "export.db"
    open_database(path).conn.close()
    return path


def store(path, *answer_sets, form=FORM, event=None):
    writer = Writer(path)
    writer.start()
    try:
        for n, answers in enumerate(answer_sets):
            writer.submit(Submission(form, f"key-{form.version}-{event}-{n:04d}-padding", answers, event)).result()
    finally:
        writer.close()


def export(path, form=FORM, **kwargs) -> bytes:
    return b"".join(export_csv(connect(path), form, **kwargs))


def times(path):
    return [row["submitted_at"] for row in connect(path)["responses"].rows]


def test_labels_export_is_exact(db_path):
    store(
        db_path,
        {"unit": "海口, \"一中\"", "venue": "other", "venue_other": "农贸市场", "people": 120, "spend": 12.5,
         "held_on": "2022-09-15", "topics": ["电梯", "食品"], "satisfaction": 2, "why": "第一行\n第二行",
         "name": "张三", "mobile": "13812345678", "mail": "a@b.cn", "agree": True},
        {"unit": "=1+2", "spend": 3.0, "topics": ["other"], "topics_other": "-玩具", "name": "@sum"},
    )  # fmt: skip
    t1, t2 = times(db_path)
    expected = (
        "\ufeff编号,提交时间,活动,单位,场所,场所（其他）,人数,花费,日期,主题,主题（其他）,满意度,不满意的原因,电梯问题,姓名,手机,邮箱,我同意参加回访\r\n"
        f'1,{t1},,"海口, ""一中""",其他,农贸市场,120,12.5,2022-09-15,食品; 电梯,,2,"第一行\n第二行",,张三,13812345678,a@b.cn,已同意\r\n'
        f"2,{t2},,'=1+2,,,,3,,其他,'-玩具,,,,'@sum,,,\r\n"
    )
    assert export(db_path).decode("utf-8") == expected


def test_names_export_uses_field_names_and_option_values(db_path):
    store(db_path, {"unit": "三亚", "venue": "school", "topics": ["食品", "油品"], "agree": True})
    (t1,) = times(db_path)
    assert (
        export(db_path, header="names")
        == (
            "\ufeffid,submitted_at,event,unit,venue,venue_other,people,spend,held_on,topics,topics_other,"
            "satisfaction,why,elevator_issue,name,mobile,mail,agree\r\n"
            f"1,{t1},,三亚,school,,,,,食品; 油品,,,,,,,,yes\r\n"
        ).encode()
    )


def test_cjk_extension_b_and_emoji_survive_as_utf8_with_bom(db_path):
    store(db_path, {"unit": "𠀋𡈽𪚥👍🏽"})
    data = export(db_path, header="names")
    assert data.startswith(b"\xef\xbb\xbfid,")
    assert "𠀋𡈽𪚥👍🏽".encode() in data


def test_event_filter(db_path):
    store(db_path, {"unit": "活动甲"}, event="ABC234")
    store(db_path, {"unit": "无活动"})
    lines = export(db_path, header="names", filters=Filters(event="ABC234")).decode().split("\r\n")
    assert len(lines) == 3 and ",ABC234,活动甲," in lines[1]


def test_removed_fields_with_stored_answers_follow_at_the_end(db_path, tmp_path):
    store(db_path, {"unit": "旧版本", "people": 30, "topics": ["食品"]})
    source = (TEST_FORMS / "all-types.toml").read_text(encoding="utf-8")
    source = source.replace('name = "people"', 'name = "headcount"').replace('label = "人数"', 'label = "到场人数"')
    (tmp_path / "all-types.toml").write_text(source, encoding="utf-8")
    newer = load_form(tmp_path / "all-types.toml")
    assert newer.version != FORM.version
    store(db_path, {"unit": "新版本", "headcount": 45}, form=newer)
    header, old, new, _ = export(db_path, form=newer).decode().split("\r\n")
    assert header.endswith(",我同意参加回访,人数")  # the old question keeps its old label
    assert old.endswith(",30") and new.endswith(",")
    assert ",45," in new


def test_empty_form_exports_the_header_only(db_path):
    assert export(db_path, header="names").count(b"\r\n") == 1


def test_export_streams_in_chunks_with_flat_memory(db_path):
    answers = {"unit": "海南省海口市龙华区" * 2, "topics": ["食品", "电梯"], "satisfaction": 5, "why": "很好" * 20}
    store(db_path, *[answers] * 5000)
    chunks = export_csv(connect(db_path), FORM)
    tracemalloc.start()
    count = sum(1 for _ in chunks)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count > 5  # yielded piece by piece, not as one string
    assert peak < 2_000_000  # the whole file would be ~1.4 MB; chunks stay far below


# What Excel and WPS run as a formula: = + - @ first, also after their input normalisation
# (full-width and small forms) and after leading spaces and invisible characters; tab, CR, NUL.
GUARDED = [
    "=1+2", "+86 138", "-玩具", "@sum", "\t=1", "\tabc", "\rabc", "\0abc",
    "＝1+2", "＋1", "－5", "＠sum", "﹦1", "﹢1", "﹣1", "﹫a", "⁼1", "₊1", "⩵1",
    "\ufeff=1+2", "\u200b=1+2", "\u200b\u200b＝1", "\u2060@a", "\u200e-1", "\u00ad+1",
    " =1+2", "\u3000＝1", "\u00a0@a", "\n=1",
]  # fmt: skip
LEFT_AS_IS = ["1+2", "张三=1", "a@b.cn", "\u200b张三", "\ufeffabc", " 1", "'=1", "海口", "—1", "−1"]


def test_formula_guard_is_exact(db_path):
    store(db_path, *({"unit": text} for text in GUARDED + LEFT_AS_IS))
    cells = [row.split(",")[3] for row in export(db_path, header="names").decode().split("\r\n")[1:-1]]
    # csv quotes a cell holding CR or LF: compare with what the writer makes of each text
    expected = ["'" + text for text in GUARDED] + LEFT_AS_IS
    assert cells == [f'"{cell}"' if "\r" in cell or "\n" in cell else cell for cell in expected]


def test_formula_signs_and_invisible_leaders_match_unicode():
    every = [chr(c) for c in range(0x110000)]
    signs = {c for c in every if unicodedata.normalize("NFKC", c)[:1] in ("=", "+", "-", "@")}
    assert set(FORMULA_SIGNS) == signs
    invisible = {c for c in every if c.isspace() or unicodedata.category(c) == "Cf"}
    listed = {chr(c) for first, last in INVISIBLE_LEADERS for c in range(first, last + 1)}
    assert listed == invisible


def test_xlsx_keeps_every_formula_like_text_as_a_string(db_path, tmp_path):
    # XML 1.0 has no NUL, and a CR is written as _x000D_, which openpyxl reads back as is
    texts = [text for text in GUARDED if "\0" not in text and "\r" not in text]
    store(db_path, *({"unit": text} for text in texts))
    export_xlsx(connect(db_path), FORM, tmp_path / "a.xlsx", header="names")
    sheet = openpyxl.load_workbook(tmp_path / "a.xlsx").active
    unit = [cell.value for cell in sheet[1]].index("unit")
    cells = [row[unit] for row in sheet.iter_rows(min_row=2)]
    assert [cell.data_type for cell in cells] == ["s"] * len(cells)  # never "f"
    assert [cell.value for cell in cells] == texts  # and no '


def test_multi_columns_give_one_0_or_1_per_option(db_path):
    store(
        db_path,
        {"unit": "甲", "topics": ["电梯", "食品"]},
        {"unit": "乙", "topics": ["other"], "topics_other": "-玩具"},
        {"unit": "丙"},
    )
    t1, t2, t3 = times(db_path)
    names = export(db_path, header="names", multi="columns").decode("utf-8")
    assert names == (
        "\ufeffid,submitted_at,event,unit,venue,venue_other,people,spend,held_on,"
        "topics_食品,topics_电梯,topics_油品,topics_other,topics_other_text,"
        "satisfaction,why,elevator_issue,name,mobile,mail,agree\r\n"
        f"1,{t1},,甲,,,,,,1,1,0,0,,,,,,,,\r\n"
        f"2,{t2},,乙,,,,,,0,0,0,1,'-玩具,,,,,,,\r\n"
        f"3,{t3},,丙,,,,,,,,,,,,,,,,,\r\n"  # not answered: empty, not 0
    )
    labels = export(db_path, multi="columns").decode("utf-8").split("\r\n")[0]
    assert ",主题：食品,主题：电梯,主题：油品,主题：其他,主题（其他）," in labels


def test_event_details_follow_the_event_code(db_path):
    forms = {FORM.id: FORM}
    event = make_event(forms, {"form": FORM.id, "title": "=进学校", "county": "白沙", "township": "牙叉镇",
                               "venue_type": "学校"})  # fmt: skip
    [event] = add_events(connect(db_path), [event])
    store(db_path, {"unit": "活动里"}, event=event.code)
    store(db_path, {"unit": "活动外"})
    t1, t2 = times(db_path)
    assert export(db_path, header="names", event_details=True).decode("utf-8").split("\r\n")[:3] == [
        "\ufeffid,submitted_at,event,event_title,event_county,event_township,event_venue_type,unit,venue,"
        "venue_other,people,spend,held_on,topics,topics_other,satisfaction,why,elevator_issue,name,mobile,mail,agree",
        f"1,{t1},{event.code},'=进学校,白沙黎族自治县,牙叉镇,学校,活动里,,,,,,,,,,,,,,",
        f"2,{t2},,,,,,活动外,,,,,,,,,,,,,,",
    ]
    labels = export(db_path, event_details=True).decode("utf-8").split("\r\n")[0]
    assert labels.startswith("\ufeff编号,提交时间,活动,活动名称,活动市县,活动乡镇,场所类型,单位,")


def test_csv_fields_are_quoted_exactly_as_the_csv_module_quotes_them():
    texts = ["", "a", "a,b", 'say "hi"', "line\nbreak", "cr\rx", " lead", "tab\tin", "'", "海口, 一中", '"']
    for text in texts:
        written = io.StringIO()
        csv.writer(written, lineterminator="\r\n").writerow([text, "x"])
        assert csv_field(text) + ",x\r\n" == written.getvalue(), text


@pytest.mark.parametrize(
    ("filters", "name"),
    [
        (Filters(), "consumer-survey"),
        (
            Filters(county="白沙黎族自治县", date_from="2026-09-01", date_to="2026-09-30"),
            "consumer-survey_白沙_2026-09",
        ),
        (Filters(county="海口市", date_from="2026-09-05", date_to="2026-09-05"), "consumer-survey_海口_2026-09-05"),
        (
            Filters(venue_type="学校", date_from="2026-09-01", date_to="2026-10-31"),
            "consumer-survey_学校_2026-09-01~2026-10-31",
        ),
        (Filters(event="ABC2345", date_from="2026-09-10"), "consumer-survey_ABC2345_2026-09-10~"),
        (Filters(date_to="2026-02-28", spam="include"), "consumer-survey_~2026-02-28_含疑似垃圾"),
        (Filters(date_from="2026-02-01", date_to="2026-02-28"), "consumer-survey_2026-02"),
    ],
)
def test_an_export_file_is_named_by_its_filters(filters, name):
    assert file_stem("consumer-survey", filters) == name
    assert ascii_file_stem("consumer-survey", filters) == "_".join(p for p in name.split("_") if p.isascii())
