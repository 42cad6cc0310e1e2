"""CSV export, compared byte for byte."""

import tracemalloc
import unicodedata

import openpyxl
import pytest

from server.export import FORMULA_SIGNS, INVISIBLE_LEADERS, export_csv
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
