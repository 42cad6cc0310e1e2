"""Events: made from the command line or a schedule file, filled at /e/{code}, counted, exported."""

import csv
import datetime as dt
import io
import time

import png
import pytest
import zxingcpp

from server.campaign import COUNTIES, load_campaign
from server.clock import now
from server.events import CODE_ALPHABET, GRACE_DAYS, EventError, add_events, make_event
from server.forms import load_form
from server.qr import qr_png
from tests.conftest import (
    CAMPAIGN_2022,
    TEST_FORMS,
    database,
    forms_folder,
    make_app_client,
    run,
    stored_answers,
    submission_key,
)
from tests.test_submit import GOOD

ORGANIZERS = load_campaign(CAMPAIGN_2022).organizers
FORMS = {"all-types": load_form(TEST_FORMS / "all-types.toml"), "closed": load_form(TEST_FORMS / "closed.toml")}
SCHOOL = {
    "form": "all-types",
    "title": "消费品安全进校园",
    "venue_type": "学校",
    "county": "白沙",
    "township": "牙叉镇",
    "venue": "白沙中学",
    "date": "2022/9/15",
    "organizer": "省教育厅",
    "expected": "300",
}


def decode_png(data: bytes) -> str:
    """The text of the QR code in a PNG, read by ZXing as a phone's scanner would."""
    width, height, rows, _ = png.Reader(bytes=data).asRGBA8()
    grey = b"".join(bytes(row[0::4]) for row in rows)  # the red channel of black and white is grey
    found = zxingcpp.read_barcode(memoryview(grey).cast("B", (height, width)))
    assert found is not None, "no QR code found in the image"
    return found.text


def new_event(client, **values) -> str:
    forms = {f.id: f for f in client.app.state["context"].catalog.all()}
    [event] = add_events(database(client), [make_event(forms, SCHOOL | values)])
    return event.code


def test_an_event_is_made_from_what_people_type():
    event = make_event(FORMS, SCHOOL)
    assert (event.county, event.venue_type, event.date, event.expected) == ("白沙黎族自治县", "学校", "2022-09-15", 300)
    assert make_event(FORMS, SCHOOL | {"venue_type": "school", "county": "海口"}).county == "海口市"
    assert make_event(FORMS, SCHOOL | {"form": "全部题型"}).form_id == "all-types"  # by title too
    assert make_event(FORMS, SCHOOL | {"organizer": "某某村委会"}).organizer == "某某村委会"  # free text
    bare = make_event(FORMS, {"form": "all-types", "title": "集市调查"})
    assert (bare.venue_type, bare.county, bare.date, bare.expected) == ("其他", "", "", None)


def test_every_county_of_hainan_is_known():
    assert len(COUNTIES) == 19 and "三沙市" in COUNTIES and "琼中黎族苗族自治县" in COUNTIES
    for county in COUNTIES:
        assert make_event(FORMS, SCHOOL | {"county": county}).county == county


def test_each_problem_of_an_event_is_named():
    with pytest.raises(EventError) as caught:
        make_event(FORMS, SCHOOL | {"form": "nope", "date": "2022-13-01", "venue_type": "医院", "county": "广州"})
    assert [m.split(" ")[0] for m in caught.value.messages] == ["没有问卷", "场所类型", "市县", "日期"]
    with pytest.raises(EventError, match="缺少活动名称"):
        make_event(FORMS, SCHOOL | {"title": "  "})
    with pytest.raises(EventError, match="预计人数"):
        make_event(FORMS, SCHOOL | {"expected": "很多"})


def test_codes_are_short_unambiguous_and_distinct(tmp_path):
    with make_app_client(tmp_path) as client:
        codes = [new_event(client) for _ in range(50)]
    assert len(set(codes)) == 50
    assert all(len(code) == 7 and set(code) <= set(CODE_ALPHABET) for code in codes)
    assert not set("01ILO") & set(CODE_ALPHABET)


def test_event_page_shows_the_event_and_stores_its_code(client):
    code = new_event(client, date=now().date().isoformat())
    page = client.get(f"/e/{code.lower()}")  # typed from a poster in lower case
    assert page.status_code == 200
    assert "消费品安全进校园" in page.text and "白沙黎族自治县 牙叉镇 白沙中学" in page.text
    assert f'action="/e/{code}"' in page.text
    answer = client.post(f"/e/{code}", data=GOOD | {"_key": submission_key(page.text)}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == f"/e/{code}/thanks"
    assert client.get(f"/e/{code}/thanks").status_code == 200
    assert [row["event"] for row in database(client)["responses"].rows] == [code]


def test_htmx_checks_and_submits_work_on_event_pages(client):
    code = new_event(client, date="")
    check = client.post(f"/e/{code}/check/unit", data={"unit": "x"}, headers={"HX-Request": "true"})
    assert check.status_code == 200 and "至少" in check.text
    answer = client.post(f"/e/{code}", data=GOOD, headers={"HX-Request": "true"})
    assert answer.status_code == 200 and "提交成功" in answer.text


@pytest.mark.parametrize("code", ["ZZZZZZZ", "0000000", "abc", "%E4%B8%AD"])
def test_unknown_event_codes_are_404_and_store_nothing(client, code):
    assert client.get(f"/e/{code}").status_code == 404
    assert client.post(f"/e/{code}", data=GOOD, follow_redirects=False).status_code == 404
    assert client.get(f"/e/{code}/qr.png").status_code == 404
    assert stored_answers(client) == []


def test_an_event_takes_answers_for_its_grace_days_then_is_closed(client):
    today = now().date()
    last_open = new_event(client, date=(today - dt.timedelta(days=GRACE_DAYS)).isoformat())
    ended = new_event(client, date=(today - dt.timedelta(days=GRACE_DAYS + 1)).isoformat())
    assert client.get(f"/e/{last_open}").status_code == 200
    page = client.get(f"/e/{ended}")
    assert page.status_code == 410 and "结束" in page.text and "消费品安全进校园" in page.text
    assert client.post(f"/e/{ended}", data=GOOD, follow_redirects=False).status_code == 410
    assert stored_answers(client) == []


def test_an_event_of_a_closed_form_is_closed(client):
    code = new_event(client, form="closed", date="")
    assert client.get(f"/e/{code}").status_code == 410
    assert client.post(f"/e/{code}", data={"x": "1"}, follow_redirects=False).status_code == 410


@pytest.mark.parametrize("base_url", ["", "https://zlj.hainan.example.cn"])
def test_qr_codes_carry_the_public_url(tmp_path, base_url):
    with make_app_client(tmp_path, base_url=base_url) as client:
        code = new_event(client)
        expected_base = base_url or "http://testserver.local"
        for path in ("/f/all-types", f"/e/{code}"):
            image = client.get(f"{path}/qr.png")
            assert image.status_code == 200 and image.headers["content-type"] == "image/png"
            assert decode_png(image.content) == expected_base + path
            svg = client.get(f"{path}/qr.svg")
            assert svg.headers["content-type"].startswith("image/svg+xml") and svg.text.startswith("<svg")


def test_qr_codes_survive_a_dirty_poster():
    """Error correction H: a blot over a fifth of the code's width still scans."""
    url = "https://zlj.hainan.example.cn/e/7KQ3MZP"
    width, height, rows, _ = png.Reader(bytes=qr_png(url)).asRGBA8()
    image = [list(row[0::4]) for row in rows]
    for y in range(height // 2 - height // 10, height // 2 + height // 10):
        for x in range(width // 3, width // 3 + width // 5):
            image[y][x] = 0  # a black blot in the middle
    buffer = io.BytesIO()
    png.Writer(width, height, greyscale=True).write(buffer, image)
    assert decode_png(buffer.getvalue()) == url


def test_poster_has_theme_slogan_title_place_date_qr_and_short_url(tmp_path):
    forms = forms_folder(tmp_path / "source", CAMPAIGN_2022)
    with make_app_client(tmp_path, forms=forms, base_url="https://zlj.hainan.example.cn") as client:
        code = new_event(client)
        page = client.get(f"/e/{code}/poster").text
    assert "2022年“质量月”活动" in page and "推动质量变革创新 促进质量强国建设" in page
    assert any(f'<p class="poster-slogan">{slogan}</p>' in page for slogan in load_campaign(CAMPAIGN_2022).slogans)
    for text in ("消费品安全进校园", "2022年9月15日", "白沙黎族自治县 牙叉镇 白沙中学", "主办单位：省教育厅"):
        assert text in page
    assert f"zlj.hainan.example.cn/e/{code}" in page and "<svg" in page


def test_event_add_and_list_from_the_command_line(workdir):
    added = run("event", "add", "all-types", "--title", "进社区宣传", "--venue-type", "社区", "--county", "三沙",
                "--date", "2022-09-20", "--organizer", "省商务厅", cwd=workdir, env={"QF_BASE_URL": "https://q.example"})  # fmt: skip
    assert added.returncode == 0, added.stderr
    code, url = added.stdout.decode().split()
    assert url == f"https://q.example/e/{code}"
    listing = run("event", "list", cwd=workdir)
    line = listing.stdout.decode().splitlines()[1].split()
    assert line == [code, "2022-09-20", "三沙市", "社区", "0", "all-types", "进社区宣传"]


@pytest.mark.parametrize(
    "args, problem",
    [
        (["nope", "--title", "x"], "没有问卷 'nope'"),
        (["all-types", "--title", "x", "--date", "2022-02-30"], "日期 '2022-02-30' 不对"),
        (["all-types", "--title", "x", "--venue-type", "医院"], "场所类型 '医院' 不对"),
        (["all-types"], "the following arguments are required: --title"),
    ],
)
def test_event_add_with_bad_arguments_is_one_line(workdir, args, problem):
    result = run("event", "add", *args, cwd=workdir)
    assert result.returncode == 2
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and problem in lines[0]
    assert b"Traceback" not in result.stderr


def schedule(rows, header=("问卷", "活动名称", "场所类型", "市县", "乡镇", "场所", "日期", "主办单位", "预计人数")):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def test_a_500_row_schedule_imports_at_once(workdir):
    counties = [c.removesuffix("市").removesuffix("县") for c in COUNTIES]
    rows = [
        ["all-types", f"五进宣传第{i}场", "机关企业乡镇社区学校"[i % 5 * 2 : i % 5 * 2 + 2], counties[i % 19], "某镇",
         f"第{i}小学", f"2022/9/{i % 30 + 1}", ORGANIZERS[i % 21], str(i)]
        for i in range(500)
    ]  # fmt: skip
    path = workdir / "schedule.csv"
    path.write_text(schedule(rows), encoding="utf-8-sig")  # what Excel's "CSV UTF-8" writes
    started = time.perf_counter()
    result = run("event", "import", str(path), cwd=workdir)
    elapsed = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    assert "imported 500 event(s)" in result.stderr.decode()
    events = list(database_at(workdir)["events"].rows)
    assert len(events) == 500 and len({e["code"] for e in events}) == 500
    assert {e["venue_type"] for e in events} == {"机关", "企业", "乡镇", "社区", "学校"}
    assert {e["county"] for e in events} == set(COUNTIES)
    print(f"500-row import, whole command: {elapsed:.2f} s")


def database_at(workdir):
    from server.storage import connect

    return connect(workdir / "data" / "quality-forms.db")


def test_a_gbk_schedule_from_wps_imports(workdir):
    path = workdir / "schedule.csv"
    path.write_bytes(
        schedule([["all-types", "质量文化乡镇行", "乡镇", "琼中", "湾岭镇", "镇政府", "2022-09-08", "", ""]]).encode(
            "gbk"
        )
    )
    result = run("event", "import", str(path), cwd=workdir)
    assert result.returncode == 0, result.stderr
    [event] = database_at(workdir)["events"].rows
    assert (event["title"], event["county"], event["township"]) == ("质量文化乡镇行", "琼中黎族苗族自治县", "湾岭镇")


@pytest.mark.parametrize(
    "content, problems",
    [
        (schedule([["all-types", "好的一行", "学校", "", "", "", "2022-09-01", "", ""],
                   ["all-types", "", "学校", "", "", "", "", "", ""],
                   ["nope", "坏日期", "医院", "", "", "", "9月1日", "", ""]]),
         ["第 3 行：缺少活动名称", "第 4 行：没有问卷 'nope'", "第 4 行：场所类型 '医院' 不对", "第 4 行：日期 '9月1日' 不对"]),
        (schedule([["all-types", "x"]], header=("问卷", "名字")), ["第 1 行：不认识的列 '名字'", "第 1 行：缺少列 活动名称"]),
        (schedule([["all-types", "x", "学校", "海口", "a", "b", "2022-09-01", "c", "1", "多出来的"]]), ["第 2 行：比表头多了 1 列"]),
        ("", ["文件是空的"]),
    ],
)  # fmt: skip
def test_a_bad_schedule_names_each_bad_line_and_imports_nothing(workdir, content, problems):
    path = workdir / "schedule.csv"
    path.write_text(content, encoding="utf-8")
    result = run("event", "import", str(path), cwd=workdir)
    assert result.returncode == 1
    printed = result.stderr.decode()
    for problem in problems:
        assert problem in printed
    assert "nothing imported" in printed and "Traceback" not in printed
    assert database_at(workdir)["events"].count == 0 if (workdir / "data").exists() else True


def test_a_schedule_in_neither_utf8_nor_gbk_is_refused(workdir):
    path = workdir / "schedule.csv"
    path.write_bytes(b"\xff\xfe\x00\x00" + "问卷,活动名称".encode("utf-32-le"))
    result = run("event", "import", str(path), cwd=workdir)
    assert result.returncode == 1 and "编码" in result.stderr.decode()


def test_export_filters_by_event_and_qr_writes_what_the_web_serves(workdir):
    env = {"QF_BASE_URL": "https://q.example"}
    code = run("event", "add", "all-types", "--title", "进企业", cwd=workdir, env=env).stdout.decode().split()[0]
    (workdir / "web").mkdir()
    settings = {"db": workdir / "data" / "quality-forms.db", "base_url": "https://q.example"}
    with make_app_client(workdir / "web", forms=workdir / "forms", **settings) as client:
        for path in (f"/e/{code}", "/f/all-types"):
            page = client.get(path)
            client.post(path, data=GOOD | {"_key": submission_key(page.text)}, follow_redirects=False)
        web_png = client.get(f"/e/{code}/qr.png").content
    everything = run("export", "all-types", "--out", "-", cwd=workdir).stdout.decode("utf-8-sig").splitlines()
    only_event = run("export", "all-types", "--event", code.lower(), "--out", "-", cwd=workdir).stdout.decode(
        "utf-8-sig"
    )
    assert len(everything) == 3
    assert [line.split(",")[2] for line in only_event.splitlines()] == ["活动", code]
    assert run("export", "all-types", "--event", "ZZZZZZZ", cwd=workdir).stderr.decode().strip() == (
        "quality-forms: unknown event 'ZZZZZZZ'"
    )
    listing = run("event", "list", cwd=workdir).stdout.decode()
    assert listing.splitlines()[1].split()[4] == "1"  # its one response
    out = workdir / "qr.png"
    assert run("qr", "--event", code, "--format", "png", "--out", str(out), cwd=workdir, env=env).returncode == 0
    assert out.read_bytes() == web_png and decode_png(web_png) == f"https://q.example/e/{code}"


def test_report_command_writes_csv_and_xlsx(workdir):
    today = now().date().isoformat()
    code = run("event", "add", "all-types", "--title", "进学校", "--county", "五指山", "--venue-type", "学校",
               "--date", today, cwd=workdir).stdout.decode().split()[0]  # fmt: skip
    (workdir / "web").mkdir()
    with make_app_client(workdir / "web", forms=workdir / "forms", db=workdir / "data" / "quality-forms.db") as client:
        page = client.get(f"/e/{code}")
        client.post(f"/e/{code}", data=GOOD | {"_key": submission_key(page.text)}, follow_redirects=False)
    result = run("report", "--from", today, "--to", today, cwd=workdir)
    assert result.returncode == 0, result.stderr
    paths = result.stdout.decode().split()
    assert [p.rsplit(".", 1)[1] for p in paths] == ["csv", "xlsx"]
    lines = (workdir / paths[0]).read_bytes().decode("utf-8-sig").splitlines()
    # all-types is a general form (其他) that declares no satisfaction question; no report filed yet
    assert "五指山市,其他,1,0,0,1,0,0,0," in lines
    bad = run("report", "--from", "2022-09-31", cwd=workdir)
    assert bad.returncode == 2 and len(bad.stderr.decode().splitlines()) == 1
