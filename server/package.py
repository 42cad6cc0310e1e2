"""The campaign package the province sends by 10月14日 (SPEC §5.6): one ZIP, made as it streams.

`统计表.xlsx` (the statistics table), `活动清单.xlsx` (every event with its report's figures),
`活动总结.docx` (a draft for the office to finish in WPS: the campaign's facts, the figures,
each county's highlights, problems and suggestions, and the photos marked 选入总结) and the
reports' photos as `图片/<市县>/<YYYY-MM-DD 活动名称>/<n>.jpg`.

The photos go in stored, not compressed (a JPEG does not shrink), with their size and CRC
read from disk first, so each entry is a plain local header and the file's bytes: memory
stays flat whatever the gigabytes, and the output is written as it is read. Names are UTF-8
with the language-encoding flag (bit 11) that Windows Explorer, WPS and 7-Zip read, and
are made safe for Windows folders.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import stat
import tempfile
import zlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

import msgspec
import xlsxwriter
from docx import Document
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml.ns import qn
from docx.shared import Cm, Pt
from PIL import Image
from sqlite_utils import Database
from stream_zip import NO_COMPRESSION_32, NO_COMPRESSION_64, stream_zip

from server.campaign import Campaign, read_campaign
from server.clock import now
from server.forms import Form
from server.photos import folder_for, path_of
from server.report import GRAND_TOTAL, NO_COUNTY, EventFigures, Report, build_report, report_xlsx
from server.results import Filters
from server.storage import database_path
from server.xlsx import column_width, text_width, write_text, write_whole

CHUNK_BYTES = 256 * 1024
MEMBER_MODE = stat.S_IFREG | 0o644
ZIP32_LIMIT = 0xFFFFFFFF  # past this offset an entry needs ZIP64 fields
ZIP32_MARGIN = 2 * CHUNK_BYTES  # output stream_zip may hold back, and a local header
MAX_NAME = 60  # characters of a folder name made from an event's title
FORBIDDEN = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f]')  # not allowed in Windows file names
RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{n}" for n in range(1, 10)), *(f"LPT{n}" for n in range(1, 10))}
SUMMARY_PHOTOS = 40  # chosen photos embedded in the summary at most; all are in 图片/
SUMMARY_PHOTO_SIDE = 1280  # pixels of the longest side in the summary: over 200 dpi printed 15 cm wide
EVENT_HEADERS = (
    "活动编号",
    "活动名称",
    "市县",
    "乡镇",
    "场所类型",
    "活动类别",
    "日期",
    "主办单位",
    "填报情况",
    "是否举办",
    "覆盖人数",
    "发放资料（份）",
    "海报展板（块）",
    "照片（张）",
)


class PackageFigures(msgspec.Struct, frozen=True):
    events: int
    photos: int  # photos in 图片/


def chosen_photos(db: Database) -> set[str]:
    """The photos the office marked 选入总结."""
    return {row[0] for row in db.execute("SELECT name FROM chosen_photos").fetchall()}


def write_package(
    db: Database,
    forms: Mapping[str, Form],
    forms_dir: Path,
    out: Path,
    filters: Filters,
    *,
    approved_only: bool = False,
) -> PackageFigures:
    """Build the package of the events within the filters into `out`, whole or not at all."""
    report = build_report(db, forms, filters, approved_only=approved_only)
    campaign = read_campaign(forms_dir)[0]
    folder = folder_for(database_path(db))

    def write(path: Path) -> None:
        with path.open("wb") as file:
            for chunk in package_chunks(report, folder, campaign, chosen_photos(db)):
                file.write(chunk)

    write_whole(out, write)
    return PackageFigures(len(report.events), sum(1 for _ in photo_entries(report.events, folder)))


def package_name(report: Report, at: dt.datetime) -> str:
    """The ZIP's name as the office saves it: `质量月报送材料-白沙黎族自治县-20261010-093000.zip`."""
    return "-".join(filter(None, ["质量月报送材料", report.county, f"{at:%Y%m%d-%H%M%S}"])) + ".zip"


def safe_name(text: str, limit: int = MAX_NAME) -> str:
    """A name Windows accepts for a folder or file: no `\\/:*?"<>|` or control characters, no
    trailing dot or space, not a device name (CON, NUL…), at most `limit` characters."""
    name = FORBIDDEN.sub("_", text.strip())[:limit].rstrip(". ")
    if name.split(".")[0].upper() in RESERVED:
        name = "_" + name
    return name or "_"


def photo_entries(events: Iterable[EventFigures], folder: Path) -> Iterator[tuple[str, Path]]:
    """The photos of the events held (as counted): (name in the ZIP, stored file), the name
    `图片/<市县>/<日期 活动名称>/<n>.jpg`. Made one by one: a list of 20,000 would be 10 MB.

    Two events of one county with one day and title get the second's code added to its folder.
    Photos missing on disk (deleted since) are left out.
    """
    taken: set[str] = set()
    for event in events:
        if not (event.counted and event.held and event.photos):
            continue
        county = safe_name(event.county or NO_COUNTY)
        base = safe_name(f"{event.day or '日期未定'} {event.title}")
        event_folder = base if f"{county}/{base}" not in taken else safe_name(f"{base} {event.code}", MAX_NAME + 8)
        taken.add(f"{county}/{event_folder}")
        number = 0
        for photo in event.photos:
            path = path_of(folder, photo)
            if path.is_file():
                number += 1
                yield f"图片/{county}/{event_folder}/{number}.jpg", path


def package_chunks(
    report: Report,
    photo_folder: Path,
    campaign: Campaign | None,
    chosen: set[str],
) -> Iterator[bytes]:
    """The ZIP's bytes, made as they are read: the documents first, then every photo."""
    written = 0

    def members() -> Iterator[tuple[str, dt.datetime, int, object, Iterable[bytes]]]:
        with tempfile.TemporaryDirectory(prefix="qf-package-") as scratch:
            documents = [
                ("统计表.xlsx", lambda path: report_xlsx(report, path)),
                ("活动清单.xlsx", lambda path: event_list_xlsx(report.events, path)),
                ("活动总结.docx", lambda path: summary_docx(report, campaign, photo_folder, chosen, path)),
            ]
            for name, write in documents:
                path = Path(scratch) / name
                write(path)
                yield member(name, path)
                path.unlink()
            for name, photo in photo_entries(report.events, photo_folder):
                try:
                    yield member(name, photo)
                except FileNotFoundError:  # deleted while the package was being made
                    continue

    def member(name: str, path: Path) -> tuple[str, dt.datetime, int, object, Iterable[bytes]]:
        modified = dt.datetime.fromtimestamp(path.stat().st_mtime, now().tzinfo)
        file = path.open("rb")
        size, crc = 0, 0
        while block := file.read(CHUNK_BYTES):
            size += len(block)
            crc = zlib.crc32(block, crc)
        file.seek(0)
        small = written + size + ZIP32_MARGIN < ZIP32_LIMIT
        method = NO_COMPRESSION_32(size, crc) if small else NO_COMPRESSION_64(size, crc)
        return name, modified, MEMBER_MODE, method, _chunks(file)

    for chunk in stream_zip(members(), chunk_size=CHUNK_BYTES):  # type: ignore[arg-type]
        written += len(chunk)
        yield chunk


def _chunks(file: BinaryIO) -> Iterator[bytes]:
    with file:
        while block := file.read(CHUNK_BYTES):
            yield block


def event_list_xlsx(events: Iterable[EventFigures], path: Path) -> None:
    """Every event with its report's figures, one row each; days as real dates."""
    with xlsxwriter.Workbook(str(path)) as workbook:
        sheet = workbook.add_worksheet("活动清单")
        header = workbook.add_format({"bold": True, "align": "center", "valign": "vcenter", "bottom": 1})
        day_format = workbook.add_format({"num_format": "yyyy-mm-dd"})
        sheet.write_row(0, 0, EVENT_HEADERS, header)
        widths = [text_width(title) for title in EVENT_HEADERS]
        for row, event in enumerate(events, start=1):
            held = "" if event.held is None else "已举办" if event.held else "未举办"
            texts = [
                event.code,
                event.title,
                event.county,
                event.township,
                event.venue_type,
                event.activity,
                "",
                event.organizer,
                event.status_label,
                held,
            ]
            for column, text in enumerate(texts):
                write_text(sheet, row, column, text)
                widths[column] = max(widths[column], text_width(text))
            if event.day:
                sheet.write_datetime(row, 6, dt.datetime.fromisoformat(event.day), day_format)
                widths[6] = max(widths[6], 10)
            if event.held:
                for column, number in enumerate((event.people, event.materials, event.posters, len(event.photos)), 10):
                    sheet.write_number(row, column, number)
        for column, width in enumerate(widths):
            sheet.set_column(column, column, column_width(width))
        sheet.freeze_panes(1, 2)
        sheet.autofilter(0, 0, 0, len(EVENT_HEADERS) - 1)


def summary_docx(report: Report, campaign: Campaign | None, photo_folder: Path, chosen: set[str], path: Path) -> None:
    """The draft summary: campaign facts, the figures, highlights, problems, chosen photos."""
    document = Document()
    normal = document.styles["Normal"]
    normal.font.name = "宋体"
    normal.font.size = Pt(12)
    normal.element.rPr.rFonts.set(qn("w:eastAsia"), "宋体")  # Word and WPS take Chinese text's font from here
    for style in ("Title", "Heading 1", "Heading 2"):
        document.styles[style].element.get_or_add_rPr().get_or_add_rFonts().set(qn("w:eastAsia"), "黑体")
    year = campaign.year if campaign else now().year
    document.add_heading(f"{year}年“质量月”活动总结（草稿）", level=0).alignment = WD_ALIGN_PARAGRAPH.CENTER
    document.add_paragraph(
        "本稿由系统根据各市县填报的活动开展情况自动生成，数字截至 "
        f"{report.generated_at[:16].replace('T', ' ')}，请核对、修改后报送。"
    )
    _campaign_facts(document, report, campaign)
    _figures(document, report)
    by_county = _by_county(report.events)
    document.add_heading("三、各市县活动亮点", level=1)
    for county, events in by_county.items():
        lines = [f"{e.title}（{e.day or '日期未定'}）：{e.summary}" for e in events if e.summary]
        if lines:
            document.add_heading(county, level=2)
            for line in lines:
                document.add_paragraph(line, style="List Bullet")
    document.add_heading("四、存在的问题和相关建议", level=1)
    problems = 0
    for county, events in by_county.items():
        lines = [f"{e.title}：{e.problems}" for e in events if e.problems]
        if lines:
            problems += len(lines)
            document.add_heading(county, level=2)
            for line in lines:
                document.add_paragraph(line, style="List Bullet")
    if not problems:
        document.add_paragraph("各活动未填写存在的问题和建议。")
    _photos(document, report.events, photo_folder, chosen)
    document.save(str(path))


def _by_county(events: Iterable[EventFigures]) -> dict[str, list[EventFigures]]:
    grouped: dict[str, list[EventFigures]] = {}
    for event in events:
        if event.counted and event.held:
            grouped.setdefault(event.county or NO_COUNTY, []).append(event)
    return grouped


def _campaign_facts(document, report: Report, campaign: Campaign | None) -> None:
    document.add_heading("一、活动概况", level=1)
    facts = []
    if campaign and campaign.theme:
        facts.append(f"活动主题：{campaign.theme}")
    if campaign and campaign.starts and campaign.ends:
        facts.append(f"活动时间：{_chinese_day(campaign.starts)}至{_chinese_day(campaign.ends)}")
    if campaign and campaign.organizers:
        facts.append(f"联合主办单位：{'、'.join(campaign.organizers)}，共 {len(campaign.organizers)} 家")
    if campaign and campaign.slogans:
        facts.append(f"活动口号：{'；'.join(campaign.slogans[:3])}{'等' if len(campaign.slogans) > 3 else ''}")
    span = f"{report.date_from or '开始'}至{report.date_to or '今'}"
    facts.append(
        f"统计范围：{report.county or '全省各市县'}，{span}{'，只计审核通过的活动' if report.approved_only else ''}"
    )
    for fact in facts:
        document.add_paragraph(fact)


def _chinese_day(day: dt.date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def _figures(document, report: Report) -> None:
    total = report.total
    document.add_heading("二、总体情况", level=1)
    satisfaction = (
        f"，群众满意度 {total.satisfaction:.2f} 分（5分制，{total.rated} 人评分）" if total.satisfaction else ""
    )
    document.add_paragraph(
        f"全省计划开展活动 {total.planned} 场，已举办 {total.held} 场，覆盖 {total.people} 人次；"
        f"发放宣传资料 {total.materials} 份，张贴海报、悬挂横幅、摆放展板 {total.posters} 块，"
        f"收集活动照片 {total.photos} 张、问卷答卷 {total.responses} 份{satisfaction}。"
    )
    rows = [row for row in report.rows if row.kind in ("county", "unlinked", "total")]
    headings = ("市县", "计划场次", "已举办", "覆盖人数", "宣传资料（份）", "答卷数", "满意度")
    table = document.add_table(rows=1 + len(rows), cols=len(headings))
    table.style = "Table Grid"
    for cell, text in zip(table.rows[0].cells, headings, strict=True):
        cell.text = text
        cell.paragraphs[0].runs[0].bold = True
    for line, row in zip(table.rows[1:], rows, strict=True):
        satisfaction = "" if row.satisfaction is None else f"{row.satisfaction:.2f}"
        values = (row.county, row.planned, row.held, row.people, row.materials, row.responses, satisfaction)
        for cell, value in zip(line.cells, values, strict=True):
            cell.text = str(value)
            if row.county == GRAND_TOTAL and cell.paragraphs[0].runs:
                cell.paragraphs[0].runs[0].bold = True


def _photos(document, events: Iterable[EventFigures], folder: Path, chosen: set[str]) -> None:
    """The chosen photos, each scaled down (the stored ones are up to 2560 px) with a caption."""
    picked = [
        (event, name) for event in events if event.counted and event.held for name in event.photos if name in chosen
    ]
    document.add_heading("五、活动图片", level=1)
    if not picked:
        document.add_paragraph("没有标记“选入总结”的照片；全部照片见材料包的“图片”文件夹。")
        return
    for event, name in picked[:SUMMARY_PHOTOS]:
        data = io.BytesIO()
        try:
            with Image.open(path_of(folder, name)) as image:
                # A JPEG decodes at 1/2, 1/4… of its size when asked for a box that fits in
                # both sides: a 2560 px photo then takes 4 MB instead of 15.
                factor = SUMMARY_PHOTO_SIDE / max(image.size)
                image.draft("RGB", (round(image.width * factor), round(image.height * factor)))
                image.thumbnail((SUMMARY_PHOTO_SIDE, SUMMARY_PHOTO_SIDE))
                portrait = image.height > image.width
                (image if image.mode == "RGB" else image.convert("RGB")).save(data, "JPEG", quality=82)
        except OSError:  # deleted or unreadable since it was chosen
            continue
        data.seek(0)
        document.add_picture(data, **({"height": Cm(12)} if portrait else {"width": Cm(15)}))
        document.paragraphs[-1].alignment = WD_ALIGN_PARAGRAPH.CENTER
        caption = document.add_paragraph(f"{event.county or NO_COUNTY} · {event.title} · {event.day}")
        caption.alignment = WD_ALIGN_PARAGRAPH.CENTER
    if len(picked) > SUMMARY_PHOTOS:
        document.add_paragraph(f"另有 {len(picked) - SUMMARY_PHOTOS} 张选入的照片未放入本稿，见“图片”文件夹。")
