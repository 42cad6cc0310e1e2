"""XLSX export: the CSV's table, cell by cell, with typed cells and a frozen header."""

import csv
import datetime as dt
import io
import shutil
import subprocess
import tracemalloc
import zipfile

import openpyxl
import pytest

from server.events import add_events, make_event
from server.export import export_csv, guard_formula
from server.forms import load_form
from server.results import Filters
from server.storage import connect, open_database
from server.xlsx import export_xlsx, sheet_name, text_width
from tests.conftest import ROOT, TEST_FORMS
from tests.test_export import FORM, store

ANSWERS = [
    {"unit": "海口, \"一中\"", "venue": "other", "venue_other": "农贸市场", "people": 120, "spend": 12.5,
     "held_on": "2022-09-15", "topics": ["电梯", "食品"], "satisfaction": 2, "why": "第一行\n第二行",
     "name": "张三", "mobile": "13812345678", "mail": "a@b.cn", "agree": True},
    {"unit": "=1+2", "spend": 3.0, "topics": ["other"], "topics_other": "-玩具", "name": "@sum"},
    {"unit": "𠀋𡈽𪚥👍🏽", "venue": "school", "people": 7, "spend": 0.25, "topics": ["油品", "食品", "电梯"],
     "satisfaction": 5, "elevator_issue": "+8613800000000", "agree": True},
]  # fmt: skip


SOFFICE = shutil.which("soffice") or "/usr/bin/soffice"
ARTIFACTS = ROOT / "tests" / "artifacts"


@pytest.fixture
def db_path(tmp_path):
    path = tmp_path / "export.db"
    open_database(path).conn.close()
    return path


def csv_table(path, **kwargs) -> list[list[str]]:
    text = b"".join(export_csv(connect(path), FORM, **kwargs)).decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text, newline="")))


def xlsx_sheet(path, tmp_path, form=FORM, **kwargs):
    out = tmp_path / "answers.xlsx"
    export_xlsx(connect(path), form, out, **kwargs)
    return openpyxl.load_workbook(out).active


def as_csv_cell(cell) -> str:
    """An XLSX cell as the CSV writes the same answer: numbers as plain text, texts guarded,
    dates and times (China time) in ISO 8601."""
    value = cell.value
    if value is None:
        return ""
    if cell.is_date:
        return value.isoformat() + "+08:00" if "hh" in cell.number_format else value.date().isoformat()
    if isinstance(value, int | float):
        text = repr(float(value)) if isinstance(value, float) else str(value)
        return text.removesuffix(".0")
    return guard_formula(value)


def as_csv(sheet) -> list[list[str]]:
    return [[as_csv_cell(cell) for cell in row] for row in sheet.iter_rows()]


@pytest.mark.parametrize("header", ["labels", "names"])
def test_xlsx_holds_the_csv_cell_by_cell(db_path, tmp_path, header):
    store(db_path, *ANSWERS)
    table = csv_table(db_path, header=header)
    assert len(table) == 4 and len(table[0]) == 18
    assert as_csv(xlsx_sheet(db_path, tmp_path, header=header)) == table


def test_cells_are_typed_and_a_formula_is_only_text(db_path, tmp_path):
    store(db_path, *ANSWERS)
    sheet = xlsx_sheet(db_path, tmp_path, header="names")
    columns = {cell.value: cell.column_letter for cell in sheet[1]}
    first, second, third = (sheet[n] for n in (2, 3, 4))
    by_name = [
        {name: row[ord(letter) - ord("A")] for name, letter in columns.items()} for row in (first, second, third)
    ]
    assert [r["unit"].value for r in by_name] == ['海口, "一中"', "=1+2", "𠀋𡈽𪚥👍🏽"]
    assert by_name[1]["unit"].data_type == "s"  # a string, not a formula (which openpyxl reads as "f")
    assert (by_name[1]["topics_other"].value, by_name[1]["name"].value) == ("-玩具", "@sum")  # no ' in XLSX
    assert by_name[2]["elevator_issue"].value == "+8613800000000"
    assert [r["topics"].value for r in by_name] == ["食品; 电梯", "other", "食品; 电梯; 油品"]
    assert [r["agree"].value for r in by_name] == ["yes", None, "yes"]
    numbers = [[r[name].value for name in ("id", "people", "spend", "satisfaction")] for r in by_name]
    assert numbers == [[1, 120, 12.5, 2], [2, None, 3, None], [3, 7, 0.25, 5]]
    assert {r[name].data_type for r in by_name for name in ("id", "people", "spend", "satisfaction")} == {"n"}
    assert by_name[0]["mobile"].value == "13812345678" and by_name[0]["mobile"].data_type == "s"  # a phone stays text
    assert by_name[0]["why"].value == "第一行\n第二行"


def test_labels_header_is_bold_frozen_and_columns_fit(db_path, tmp_path):
    store(db_path, *ANSWERS)
    sheet = xlsx_sheet(db_path, tmp_path)
    assert sheet.title == "全部题型"
    assert sheet.freeze_panes == "A2"
    assert all(cell.font.b for cell in sheet[1]) and not any(cell.font.b for cell in sheet[2])
    widths = {cell.value: sheet.column_dimensions[cell.column_letter].width for cell in sheet[1]}
    assert widths["提交时间"] >= len("2022-09-15 10:00:00")
    assert widths["单位"] >= text_width("𠀋𡈽𪚥👍🏽") > len("𠀋𡈽𪚥👍🏽")  # wide characters count twice
    assert widths["人数"] < widths["单位"]


def test_event_filter_and_removed_fields_match_the_csv(db_path, tmp_path):
    store(db_path, {"unit": "活动甲", "people": 30}, event="ABC234")
    store(db_path, {"unit": "无活动"})
    source = (TEST_FORMS / "all-types.toml").read_text(encoding="utf-8")
    (tmp_path / "all-types.toml").write_text(source.replace('name = "people"', 'name = "headcount"'), encoding="utf-8")
    newer = load_form(tmp_path / "all-types.toml")
    store(db_path, {"unit": "新版本", "headcount": 45}, form=newer, event="ABC234")
    text = b"".join(export_csv(connect(db_path), newer, Filters(event="ABC234"))).decode("utf-8-sig")
    table = list(csv.reader(io.StringIO(text, newline="")))
    assert [row[3] for row in table] == ["单位", "活动甲", "新版本"] and table[0][-1] == "人数"
    assert as_csv(xlsx_sheet(db_path, tmp_path, form=newer, filters=Filters(event="ABC234"))) == table


def test_empty_form_gives_the_header_alone(db_path, tmp_path):
    sheet = xlsx_sheet(db_path, tmp_path, header="names")
    assert as_csv(sheet) == csv_table(db_path, header="names")
    assert sheet.max_row == 1


def test_workbook_is_written_row_by_row_with_flat_memory(db_path, tmp_path):
    """constant_memory mode: rows go to disk as they come, texts inline (no shared-string table)."""
    answers = {"unit": "海南省海口市龙华区" * 2, "topics": ["食品", "电梯"], "satisfaction": 5, "why": "很好" * 20}
    store(db_path, *[answers] * 4000)
    out = tmp_path / "big.xlsx"
    tracemalloc.start()
    export_xlsx(connect(db_path), FORM, out)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    with zipfile.ZipFile(out) as archive:
        assert "xl/sharedStrings.xml" not in archive.namelist()
        assert b't="inlineStr"' in archive.read("xl/worksheets/sheet1.xml")
    assert peak < 2_500_000  # the rows alone would take well over that in memory
    assert openpyxl.load_workbook(out, read_only=True).active.max_row == 4001


@pytest.mark.parametrize(
    ("title", "name"),
    [
        ("全部题型", "全部题型"),
        ("问卷[2022]: 进校园/进社区?", "问卷 2022   进校园 进社区"),
        ("'引号'", "引号"),
        ("*", "答卷"),
    ],
)
def test_sheet_names_are_what_excel_accepts(title, name):
    assert sheet_name(title) == name
    assert len(sheet_name("很长的标题" * 10)) == 31


def test_dates_are_excel_dates_that_libreoffice_shows(db_path, tmp_path, clock):
    """The pivot-ready workbook (`multi=columns&event_details=1`) opened by LibreOffice: the
    times and dates are dates, shown as such; the PDF it renders is kept in tests/artifacts."""
    clock(dt.datetime(2026, 9, 15, 10, 30, 5))
    [event] = add_events(connect(db_path), [make_event({FORM.id: FORM}, {"form": FORM.id, "title": "白沙中学质量课",
                                                                        "county": "白沙", "venue_type": "学校"})])  # fmt: skip
    store(db_path, ANSWERS[0], event=event.code)
    clock(dt.datetime(2026, 9, 16, 8, 0))
    store(db_path, ANSWERS[1] | {"held_on": "2022-10-01"})
    out = tmp_path / "pivot.xlsx"
    export_xlsx(connect(db_path), FORM, out, multi="columns", event_details=True)

    sheet = openpyxl.load_workbook(out).active
    header = [cell.value for cell in sheet[1]]
    assert header[:8] == ["编号", "提交时间", "活动", "活动名称", "活动市县", "活动乡镇", "场所类型", "单位"]
    first, second = (dict(zip(header, sheet[n], strict=True)) for n in (2, 3))
    assert first["提交时间"].is_date and first["提交时间"].value == dt.datetime(2026, 9, 15, 10, 30, 5)
    assert first["提交时间"].number_format == "yyyy-mm-dd hh:mm:ss"
    assert first["日期"].is_date and first["日期"].value == dt.datetime(2022, 9, 15)
    assert first["日期"].number_format == "yyyy-mm-dd"
    assert second["日期"].value == dt.datetime(2022, 10, 1)
    assert first["活动名称"].value == "白沙中学质量课" and first["活动市县"].value == "白沙黎族自治县"
    assert [first[f"主题：{t}"].value for t in ("食品", "电梯", "油品", "其他")] == [1, 1, 0, 0]
    assert [second[f"主题：{t}"].value for t in ("食品", "电梯", "油品", "其他")] == [0, 0, 0, 1]
    assert second["主题（其他）"].value == "-玩具"
    assert sheet.freeze_panes == "A2"

    profile = tmp_path / "lo-profile"  # its own profile: another LibreOffice may be running
    done = subprocess.run(
        [SOFFICE, f"-env:UserInstallation={profile.as_uri()}", "--headless", "--convert-to", "pdf",
         "--outdir", str(tmp_path), str(out)],
        capture_output=True, timeout=120,
    )  # fmt: skip
    pdf = tmp_path / "pivot.pdf"
    assert done.returncode == 0 and pdf.exists(), done.stderr
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(pdf, ARTIFACTS / "xlsx-dates.pdf")
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, check=True).stdout.decode()
    # Shown by the date formats, not as Excel's serial numbers (46280.4375…) or ISO text with +08:00
    assert "2026-09-15 10:30:05" in text and "2026-09-16 08:00:00" in text
    assert "2022-09-15" in text and "2022-10-01" in text
    assert "+08:00" not in text and "46280" not in text
