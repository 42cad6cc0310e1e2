"""Event reports: staff file one report per event, edit it in place (audit-logged), the province
returns or approves it, chooses photos for the summary, and the dashboard counts per 市县."""

import asyncio
import datetime as dt
import io
import json
import re
import shutil
import tracemalloc
from pathlib import Path

import pytest

from server import event_reports
from server.accounts import add_user
from server.campaign import COUNTIES
from server.forms import FormError, load_form
from server.scope import Scope
from tests.conftest import (
    ADMIN_PASSWORD,
    ROOT,
    TEST_FORMS,
    csrf_token,
    database,
    errors_on_page,
    make_app_client,
    sign_in,
)

REPORT_FORM = (ROOT / "forms" / "event-report.toml").read_text(encoding="utf-8")
HELD = {"held": "yes", "held_on": "2026-09-10", "people": "120", "materials": "300", "summary": "进校园讲电梯安全"}
MP4_HEAD = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2mp41"


def report_site(tmp_path: Path, report_form: str = REPORT_FORM):
    """An app over the test forms and an event-report form, with boss (admin), wang and li (staff)."""
    folder = tmp_path / "source"
    shutil.copytree(TEST_FORMS, folder)
    (folder / "event-report.toml").write_text(report_form, encoding="utf-8")
    return make_app_client(tmp_path, forms=folder)


@pytest.fixture
def site(tmp_path, clock):
    clock(dt.datetime(2026, 9, 20, 10))
    with report_site(tmp_path) as client:
        db = database(client)
        for name, role in (("boss", "admin"), ("wang", "staff"), ("li", "staff")):
            add_user(db, name, ADMIN_PASSWORD, role)
        yield client


def as_user(client, name: str) -> str:
    """Sign in; the session's CSRF token."""
    assert sign_in(client, name, ADMIN_PASSWORD).status_code == 303
    return csrf_token(client)


def new_event(client, county="白沙黎族自治县", date="2026-09-10", title="消费品安全进校园") -> str:
    token = as_user(client, "wang")
    data = {"_csrf": token, "form": "photo-report", "title": title, "county": county, "date": date}
    answer = client.post("/admin/events", data=data, follow_redirects=False)
    return answer.headers["location"].rsplit("/", 1)[1]


def page_key(html: str) -> str:
    return re.search(r'name="_key" value="([^"]+)"', html).group(1)


def post_report(client, code, answers, *, files=None, key=None, token=None, headers=None):
    path = f"/admin/events/{code}/report"
    key = key or page_key(client.get(path).text)
    token = token if token is not None else csrf_token(client, path)
    data = {"_csrf": token, "_key": key, **answers}
    return client.post(path, data=data, files=files, headers=headers or {}, follow_redirects=False)


def jpeg(color=(200, 30, 30)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(out, "JPEG")
    return out.getvalue()


def stored(client, code):
    return event_reports.get_report(database(client), "event-report", code)


def audit(client, action=None):
    rows = database(client).execute("SELECT username, action, detail FROM audit_log ORDER BY id").fetchall()
    return [row for row in rows if action is None or row[1] == action]


# Filing and editing ---------------------------------------------------------------------------


def test_without_a_report_form_the_page_says_so_in_chinese_with_a_404(office):
    assert sign_in(office, "wang", ADMIN_PASSWORD).status_code == 303
    token = csrf_token(office)
    answer = office.post("/admin/events", data={"_csrf": token, "form": "photo-report", "title": "进社区"})
    code = answer.url.path.rsplit("/", 1)[1]
    page = office.get(f"/admin/events/{code}/report")
    assert page.status_code == 404
    assert "没有“活动开展情况”表" in page.text and 'kind = "event-report"' in page.text


def test_the_report_page_draws_the_residents_form_with_the_token_and_the_video_limit(site):
    code = new_event(site)
    page = site.get(f"/admin/events/{code}/report")
    assert page.status_code == 200
    assert 'class="survey" method="post" action="/admin/events/' + code + '/report"' in page.text
    assert 'enctype="multipart/form-data"' in page.text
    assert re.search(r'name="_csrf" value="[^"]+"', page.text.split('class="survey"', 1)[1])
    assert "最多 1 段，每段不超过 50 MB（MP4、MOV 或 WebM）。" in page.text
    assert "photo.js" in page.text and "还没有填报" in page.text
    assert page.headers["cache-control"] == "no-store"


def test_the_first_save_inserts_and_a_later_save_replaces_the_answers_in_place_audit_logged(site):
    code = new_event(site)
    first = post_report(site, code, HELD)
    assert first.status_code == 303 and first.headers["location"] == f"/admin/events/{code}/report?saved=1"
    assert '<p class="notice" role="status">已保存。省质量强省办审核后' in site.get(first.headers["location"]).text
    report = stored(site, code)
    assert report.answers == {
        "held": "yes", "held_on": "2026-09-10", "people": 120, "materials": 300, "summary": "进校园讲电梯安全",
    }  # fmt: skip
    second = post_report(site, code, HELD | {"people": "150", "summary": "进校园讲电梯安全，" + "学生" * 20})
    assert second.status_code == 303
    again = stored(site, code)
    assert again.id == report.id and again.answers["people"] == 150
    assert database(site).execute("SELECT count(*) FROM responses WHERE event = ?", [code]).fetchone()[0] == 1
    assert audit(site, "add-report") == [("wang", "add-report", f"event {code} response {report.id}")]
    assert audit(site, "edit-report") == [
        (
            "wang",
            "edit-report",
            f"event {code} response {report.id}: 覆盖人数（现场参加的人数）：120 → 150；"
            "活动简要总结：进校园讲电梯安全 → 进校园讲电梯安全，学生学生学生学生学生…",
        )
    ]


def test_an_htmx_save_answers_with_the_saved_fragment_naming_the_changes(site):
    code = new_event(site)
    post_report(site, code, HELD)
    answer = post_report(site, code, HELD | {"posters": "6"}, headers={"HX-Request": "true"})
    assert answer.status_code == 200
    assert '<section class="thanks" id="thanks">' in answer.text
    assert "这次修改了：张贴海报、悬挂横幅、摆放展板（块）：（空） → 6" in answer.text


def test_a_wrong_answer_is_a_422_with_the_typed_values_kept(site):
    code = new_event(site)
    answer = post_report(site, code, {"held": "yes", "people": "很多", "summary": "讲了电梯安全"})
    assert answer.status_code == 422
    assert errors_on_page(answer.text) == {"held_on": "此项为必填", "people": "请填写整数，如 25"}
    assert 'value="很多"' in answer.text and "讲了电梯安全</textarea>" in answer.text
    assert stored(site, code) is None


def test_the_same_submission_key_sent_twice_saves_once(site):
    code = new_event(site)
    post_report(site, code, HELD)
    key = page_key(site.get(f"/admin/events/{code}/report").text)
    for _ in range(2):  # the phone never heard the first answer and sends it again
        assert post_report(site, code, HELD | {"people": "99"}, key=key).status_code == 303
    post_report(site, code, HELD | {"people": "100"})
    assert post_report(site, code, HELD | {"people": "99"}, key=key).status_code == 303  # an old copy, late
    assert stored(site, code).answers["people"] == 100
    assert len(audit(site, "edit-report")) == 2


def test_photos_stay_unless_unticked_and_a_removed_photo_file_goes(site):
    code = new_event(site)
    files = [
        ("photos", ("a.jpg", jpeg((200, 0, 0)), "image/jpeg")),
        ("photos", ("b.jpg", jpeg((0, 0, 200)), "image/jpeg")),
    ]
    assert post_report(site, code, HELD, files=files).status_code == 303
    red, blue = stored(site, code).answers["photos"]
    folder = Path(site.app.state["context"].store.path).parent / "photos"
    assert (folder / red[:2] / red).exists()
    page = site.get(f"/admin/events/{code}/report")
    assert f'name="_keep_photos" value="{red}" checked' in page.text
    assert page.text.count('name="photos" accept="image/*"') == 7  # nine, less the two kept
    green = [("photos", ("c.jpg", jpeg((0, 200, 0)), "image/jpeg"))]
    assert post_report(site, code, HELD | {"_keep_photos": blue}, files=green).status_code == 303
    photos = stored(site, code).answers["photos"]
    assert photos[0] == blue and len(photos) == 2 and red not in photos
    assert not (folder / red[:2] / red).exists() and (folder / blue[:2] / blue).exists()
    assert audit(site, "edit-report")[-1][2].endswith("活动照片：2 张照片 → 2 张照片")


def test_office_posts_need_the_sessions_token_and_a_sign_in(site):
    code = new_event(site)
    assert post_report(site, code, HELD, token="forged").status_code == 403
    key = page_key(site.get(f"/admin/events/{code}/report").text)
    token = csrf_token(site)
    site.post("/admin/logout", data={"_csrf": token})
    answer = post_report(site, code, HELD, key=key, token=token, headers={"HX-Request": "true"})
    assert answer.status_code == 401
    assert stored(site, code) is None


def test_staff_reach_only_their_own_events_reports(site):
    code = new_event(site)
    post_report(site, code, HELD)
    as_user(site, "li")
    assert site.get(f"/admin/events/{code}/report").status_code == 403
    assert post_report(site, code, HELD, key="k" * 24, token=csrf_token(site)).status_code == 403
    assert site.get("/admin/reports").status_code == 403


# Review -------------------------------------------------------------------------------------------


def review(client, code, decision, comment=""):
    token = csrf_token(client)
    data = {"_csrf": token, "decision": decision, "comment": comment}
    return client.post(f"/admin/events/{code}/report/review", data=data, follow_redirects=False)


def test_a_returned_report_shows_why_and_an_edit_sends_it_back_to_the_queue(site):
    code = new_event(site)
    post_report(site, code, HELD)
    assert review(site, code, "returned", "x").status_code == 403  # staff do not review
    as_user(site, "boss")
    refused = review(site, code, "returned", "  ")
    assert refused.status_code == 422 and "退回时请写明需要修改的地方" in refused.text
    assert review(site, code, "returned", "请补充活动照片").status_code == 303
    assert stored(site, code).status == "returned"
    as_user(site, "wang")
    for path in (f"/admin/events/{code}", f"/admin/events/{code}/report"):
        assert "省质量强省办退回了这份活动开展情况" in site.get(path).text
        assert "请补充活动照片" in site.get(path).text
    post_report(site, code, HELD | {"posters": "4"})
    assert stored(site, code).status == "pending"
    as_user(site, "boss")
    assert review(site, code, "approved").status_code == 303
    assert stored(site, code).status == "approved"
    as_user(site, "wang")
    post_report(site, code, HELD | {"posters": "5"})  # an approved report edited: back to 待审核
    assert stored(site, code).status == "pending"
    actions = [(user, action) for user, action, _ in audit(site) if "report" in action]
    assert actions == [
        ("wang", "add-report"), ("boss", "return-report"), ("wang", "edit-report"), ("boss", "approve-report"),
        ("wang", "edit-report"),
    ]  # fmt: skip
    assert audit(site, "return-report")[0][2].endswith("：请补充活动照片")


def test_a_report_cannot_be_reviewed_before_it_is_filed(site):
    code = new_event(site)
    as_user(site, "boss")
    answer = review(site, code, "approved")
    assert answer.status_code == 422 and "还没有填报开展情况" in answer.text


def test_the_review_list_filters_by_county_and_status(site):
    baisha = new_event(site, title="白沙进校园")
    qionghai = new_event(site, county="琼海市", title="琼海进社区")
    post_report(site, baisha, HELD)
    post_report(site, qionghai, HELD)
    as_user(site, "boss")
    review(site, qionghai, "returned", "人数对不上")

    def titles(query):
        return re.findall(r'/report">([^<]+)</a>', site.get("/admin/reports" + query).text)

    assert sorted(titles("")) == ["琼海进社区", "白沙进校园"]
    assert titles("?county=琼海市") == ["琼海进社区"]
    assert titles("?status=pending") == ["白沙进校园"]
    assert titles("?status=returned") == ["琼海进社区"]
    assert titles("?status=approved") == []


def test_an_admin_marks_and_unmarks_photos_for_the_summary(site):
    code = new_event(site)
    post_report(site, code, HELD, files=[("photos", ("a.jpg", jpeg(), "image/jpeg"))])
    [name] = stored(site, code).answers["photos"]
    path = f"/admin/events/{code}/report/photos/{name}/choose"
    assert site.post(path, data={"_csrf": csrf_token(site), "chosen": "1"}).status_code == 403  # staff
    as_user(site, "boss")
    assert site.post(path, data={"_csrf": csrf_token(site), "chosen": "1"}, follow_redirects=False).status_code == 303
    assert database(site).execute("SELECT name, chosen_by FROM chosen_photos").fetchall() == [(name, "boss")]
    assert "已选入总结" in site.get(f"/admin/events/{code}/report").text
    site.post(path, data={"_csrf": csrf_token(site), "chosen": "0"})
    assert database(site).execute("SELECT count(*) FROM chosen_photos").fetchone()[0] == 0
    assert [a for _, a, _ in audit(site) if "photo" in a] == ["choose-photo", "unchoose-photo"]
    other = f"/admin/events/{code}/report/photos/{'0' * 64}.jpg/choose"
    assert site.post(other, data={"_csrf": csrf_token(site), "chosen": "1"}).status_code == 404


# The dashboard's progress per 市县 -----------------------------------------------------------------


def test_progress_lists_every_county_with_planned_held_reported_approved_returned_and_missing(site):
    db = database(site)
    done = new_event(site, date="2026-09-10")
    returned = new_event(site, date="2026-09-12")
    not_held = new_event(site, date="2026-09-15")
    new_event(site, date="2026-09-18")  # past, nothing filed: missing
    new_event(site, date="2026-09-25")  # still to come: not missing
    new_event(site, county="琼海市", date="2026-09-01")  # missing
    new_event(site, county="", date="")  # no county, no day
    post_report(site, done, HELD)
    post_report(site, returned, HELD)
    post_report(site, not_held, {"held": "no", "not_held_reason": "台风，改到十月"})
    as_user(site, "boss")
    review(site, done, "approved")
    review(site, returned, "returned", "补照片")
    rows = event_reports.progress(db, "event-report", dt.date(2026, 9, 20))
    assert [row.county for row in rows] == [*COUNTIES, "（未填市县）"]
    by_county = {row.county: row for row in rows}
    assert by_county["白沙黎族自治县"] == event_reports.Progress("白沙黎族自治县", 5, 2, 3, 1, 1, 1)
    assert by_county["琼海市"] == event_reports.Progress("琼海市", 1, 0, 0, 0, 0, 1)
    assert by_county["（未填市县）"] == event_reports.Progress("（未填市县）", 1, 0, 0, 0, 0, 0)
    assert by_county["海口市"] == event_reports.Progress("海口市")
    table = event_reports.progress_table(db, [load_form(ROOT / "forms" / "event-report.toml")], dt.date(2026, 9, 20))
    assert table.total == event_reports.Progress("合计", 7, 2, 3, 1, 1, 2)
    assert event_reports.progress(db, "event-report", dt.date(2026, 9, 20), scope=Scope(county="海口市")) == [
        event_reports.Progress("海口市")
    ]

    page = site.get("/admin").text
    assert page.count("<tr") - page.split("各市县活动开展情况")[0].count("<tr") == 2 + len(COUNTIES) + 1
    assert '<a href="/admin/reports?county=%E7%90%BC%E6%B5%B7%E5%B8%82">琼海市</a>' in page


def test_staff_see_only_the_rows_of_their_own_events(site):
    new_event(site, county="琼海市")
    as_user(site, "li")
    add = {
        "_csrf": csrf_token(site),
        "form": "photo-report",
        "title": "li 的活动",
        "county": "三亚市",
        "date": "2026-09-01",
    }
    site.post("/admin/events", data=add)
    page = site.get("/admin").text.split("各市县活动开展情况", 1)[1]
    assert "三亚市" in page and "琼海市" not in page and "合计" not in page


# Videos -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "extra", "message"),
    [
        ("general", "", 'video 只能用在 kind = "event-report"（活动开展情况）的表里'),
        ("event-report", "max_videos = 4", "max_videos 应在 1 到 3 之间"),
        ("event-report", "max_mb = 201", "max_mb 应在 1 到 200 之间"),
    ],
)
def test_the_checker_refuses_a_wrong_video_question(tmp_path, kind, extra, message):
    path = tmp_path / "x.toml"
    path.write_text(f'title = "x"\nkind = "{kind}"\n[[fields]]\nname = "v"\ntype = "video"\nlabel = "视频"\n{extra}\n')
    with pytest.raises(FormError) as error:
        load_form(path)
    assert error.value.messages == [f"{path}: 字段 'v': {message}"]


def videos_on_disk(client) -> list[str]:
    folder = Path(client.app.state["context"].store.path).parent / "videos"
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_a_video_is_stored_by_its_content_and_played_from_the_office(site):
    code = new_event(site)
    clip = MP4_HEAD + bytes(range(256)) * 400
    answer = post_report(site, code, HELD, files=[("videos", ("VID_1.mp4", clip, "video/mp4"))])
    assert answer.status_code == 303
    [name] = stored(site, code).answers["videos"]
    assert re.fullmatch(r"[0-9a-f]{64}\.mp4", name)
    assert videos_on_disk(site) == [name]  # no temporary file left beside it
    played = site.get(f"/admin/events/{code}/report/videos/{name}")
    assert played.status_code == 200 and played.content == clip
    assert played.headers["content-type"] == "video/mp4"
    page = site.get(f"/admin/events/{code}/report").text
    assert f'<video controls preload="none" src="/admin/events/{code}/report/videos/{name}"' in page
    assert f'name="_keep_videos" value="{name}" checked' in page
    as_user(site, "li")
    assert site.get(f"/admin/events/{code}/report/videos/{name}").status_code == 403
    as_user(site, "wang")
    assert post_report(site, code, HELD | {"_keep_videos": name, "people": "130"}).status_code == 303
    assert stored(site, code).answers["videos"] == [name] and videos_on_disk(site) == [name]
    assert post_report(site, code, HELD).status_code == 303  # its 保留 box unticked
    assert "videos" not in stored(site, code).answers and videos_on_disk(site) == []


def test_a_file_that_is_not_a_video_is_refused_in_chinese_and_nothing_stays(site):
    code = new_event(site)
    answer = post_report(site, code, HELD, files=[("videos", ("notes.mp4", b"just some text " * 100, "video/mp4"))])
    assert answer.status_code == 422
    assert errors_on_page(answer.text)["videos"] == "这不是能播放的视频文件，请选择手机拍的 MP4、MOV 或 WebM 视频"
    assert 'value="120"' in answer.text  # the typed answers stay
    assert videos_on_disk(site) == [] and stored(site, code) is None


def test_a_video_over_the_limit_is_a_422_naming_it_and_leaves_nothing_on_disk(site):
    code = new_event(site)
    clip = MP4_HEAD + bytes(60 * 1024 * 1024)
    answer = post_report(site, code, HELD, files=[("videos", ("VID_2.mp4", clip, "video/mp4"))])
    assert answer.status_code == 422
    assert errors_on_page(answer.text)["videos"] == "每段视频不能超过 50 MB（这段约 61 MB），请剪短后再选"
    assert videos_on_disk(site) == [] and stored(site, code) is None


def test_a_sixty_megabyte_video_is_streamed_to_disk_in_little_memory(tmp_path, clock):
    """The whole upload goes through the app while tracemalloc watches: its peak stays far below
    the clip's size (the test client is left out: it would hold the body itself)."""
    clock(dt.datetime(2026, 9, 20, 10))
    with report_site(tmp_path, REPORT_FORM.replace("max_mb = 50", "max_mb = 100")) as client:
        add_user(database(client), "wang", ADMIN_PASSWORD, "staff")
        code = new_event(client)
        key = page_key(client.get(f"/admin/events/{code}/report").text)
        fields = {"_csrf": csrf_token(client), "_key": key, **HELD}
        session = client.cookies["qf_session"]
        size = 60 * 1024 * 1024
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            status = asyncio.run(stream_post(client.app, f"/admin/events/{code}/report", session, fields, size))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert status == 303
        [name] = stored(client, code).answers["videos"]
        assert videos_on_disk(client) == [name]
        assert (Path(client.app.state["context"].store.path).parent / "videos" / name[:2] / name).stat().st_size == size
        assert peak < 6 * 1024 * 1024, f"peak {peak / 2**20:.1f} MB for a 60 MB upload"


def video_post(fields: dict[str, str], boundary: str) -> tuple[bytes, bytes]:
    """A report's multipart body around one MP4 clip: what comes before the clip's bytes (its
    first bytes included, `MP4_HEAD`), and what comes after them."""
    head = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    )
    head += f'--{boundary}\r\nContent-Disposition: form-data; name="videos"; filename="VID.mp4"\r\n'.encode()
    head += b"Content-Type: video/mp4\r\n\r\n" + MP4_HEAD
    return head, f"\r\n--{boundary}--\r\n".encode()


async def stream_post(app, path: str, session: str, fields: dict[str, str], size: int) -> int:
    """POST a multipart body with one `size`-byte MP4 to the ASGI app, 64 KB at a time."""
    boundary = "qfboundary7MA4YWxkTrZu0gW"
    head, tail = video_post(fields, boundary)
    chunk = bytes(64 * 1024)
    body_size = len(head) + size - len(MP4_HEAD) + len(tail)
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [
            (b"host", b"testserver.local"),
            (b"content-type", f"multipart/form-data; boundary={boundary}".encode()),
            (b"content-length", str(body_size).encode()),
            (b"cookie", f"qf_session={session}".encode()),
        ],
        "client": ("127.0.0.1", 50000), "server": ("testserver.local", 80), "state": {},
    }  # fmt: skip

    def parts():
        yield head
        left = size - len(MP4_HEAD)
        while left > 0:
            yield chunk[: min(left, len(chunk))]
            left -= len(chunk)
        yield tail

    pieces = parts()
    sent = {"status": 0}

    async def receive():
        piece = next(pieces, None)
        if piece is None:
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": piece, "more_body": piece is not tail}

    async def send(message):
        if message["type"] == "http.response.start":
            sent["status"] = message["status"]

    await app(scope, receive, send)
    return sent["status"]


def test_a_report_export_joins_video_names(site):
    code = new_event(site)
    post_report(site, code, HELD, files=[("videos", ("V.mp4", MP4_HEAD + b"x" * 100, "video/mp4"))])
    [name] = stored(site, code).answers["videos"]
    as_user(site, "boss")
    csv = site.get("/admin/forms/event-report/export.csv")
    assert csv.status_code == 200 and name in csv.text and "['" not in csv.text
    assert json.loads(database(site).execute("SELECT answers FROM responses").fetchone()[0])["videos"] == [name]


def test_a_question_is_checked_inline_with_the_sessions_token(site):
    code = new_event(site)
    path = f"/admin/events/{code}/report/check/people"
    data = {"held": "yes", "people": "很多"}
    assert site.post(path, data=data).status_code == 403  # without the token
    answer = site.post(path, data=data | {"_csrf": csrf_token(site)}, headers={"HX-Request": "true"})
    assert answer.status_code == 200
    assert errors_on_page(answer.text) == {"people": "请填写整数，如 25"}


def test_a_save_the_database_refuses_is_a_503_that_keeps_the_answers_and_no_files(site, monkeypatch):
    import sqlite3

    code = new_event(site)

    def locked(*args, **kwargs):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(event_reports, "save_report", locked)
    answer = post_report(site, code, HELD, files=[("photos", ("a.jpg", jpeg(), "image/jpeg"))])
    assert answer.status_code == 503
    assert "这次没有保存成功" in answer.text and 'value="120"' in answer.text
    folder = Path(site.app.state["context"].store.path).parent / "photos"
    assert list(folder.rglob("*.jpg")) == []  # the picture written for it went again


def test_the_results_and_responses_pages_of_the_report_form_show_a_video_answer(site):
    code = new_event(site)
    post_report(site, code, HELD, files=[("videos", ("V.mp4", MP4_HEAD + b"x" * 100, "video/mp4"))])
    as_user(site, "boss")
    assert site.get("/admin/forms/event-report").status_code == 200
    assert site.get("/admin/forms/event-report/responses").status_code == 200
    report = stored(site, code)
    assert site.get(f"/admin/responses/{report.id}").status_code == 200
