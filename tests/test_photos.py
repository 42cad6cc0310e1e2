"""Photo questions over HTTP: what a phone uploads, what is stored, who may see it, what leaves.

The pictures are made here by Pillow, with the EXIF a phone camera writes (orientation, GPS).
"""

import hashlib
import io
import re
import stat

import msgspec
import openpyxl
import pytest
from PIL import Image

from server.events import add_events, make_event
from server.forms import FormError, form_files, load_form
from tests import conftest
from tests.conftest import (
    ADMIN_PASSWORD,
    BUNDLED_FORMS,
    OFFICE_ONLY_FORMS,
    database,
    errors_on_page,
    make_app_client,
    run,
    stored_answers,
    submission_key,
)

PASSWORD = ADMIN_PASSWORD
FORM = "/f/photo-report"
GPS_IFD, ORIENTATION, MAKE = 0x8825, 0x0112, 0x010F


def camera_jpeg(width=400, height=200, orientation=6, size_hint=0) -> bytes:
    """A JPEG as a phone camera writes it: left half red, right half blue, sideways (orientation 6:
    turn 90° clockwise to view), with the camera's make and a GPS position in its EXIF."""
    image = Image.new("RGB", (width, height), "blue")
    image.paste("red", (0, 0, width // 2, height))
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[MAKE] = "PhoneCam"
    exif[GPS_IFD] = {1: "N", 2: (20.0, 1.0, 30.0), 3: "E", 4: (110.0, 20.0, 5.0)}
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, quality=95)
    return out.getvalue()


def photo_path(client, name):
    return client.app.state["context"].store.path.parent / "photos" / name[:2] / name


def send(client, files, data=None, path=FORM, key=None):
    key = key or submission_key(client.get(path).text)
    fields = {"_key": key, "place": "万宁市兴隆超市"} | (data or {})
    return client.post(path, data=fields, files=files, follow_redirects=False)


def jpeg_file(content, name="IMG_0001.jpg", field="pictures"):
    return (field, (name, content, "image/jpeg"))


@pytest.fixture
def client(office):
    return office


def sign_in(client, username):
    assert conftest.sign_in(client, username, PASSWORD).status_code == 303


# --- the form file -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ("max_photos = 0", "字段 'p': max_photos 应在 1 到 9 之间"),
        ("max_photos = 10", "字段 'p': max_photos 应在 1 到 9 之间"),
        ('max_photos = "3"', "字段 'p': max_photos 应为整数"),
        ("max_length = 3", "字段 'p': photo 类型没有 'max_length' 这个设置项（text、textarea、hidden 才有）"),
    ],
)
def test_the_checker_names_file_and_field_for_a_wrong_photo_question(tmp_path, lines, message):
    path = tmp_path / "pics.toml"
    path.write_text(f'title = "t"\nkind = "general"\n[[fields]]\nname = "p"\ntype = "photo"\nlabel = "照片"\n{lines}\n')
    with pytest.raises(FormError) as error:
        load_form(path)
    assert error.value.messages == [f"{path}: {message}"]


def test_a_condition_cannot_depend_on_a_photo_question(tmp_path):
    path = tmp_path / "pics.toml"
    path.write_text(
        'title = "t"\nkind = "general"\n[[fields]]\nname = "p"\ntype = "photo"\nlabel = "照片"\n'
        '[[fields]]\nname = "q"\ntype = "text"\nlabel = "说明"\nshow_if = "p == \'x\'"\n'
    )
    with pytest.raises(FormError) as error:
        load_form(path)
    assert error.value.messages == [f"{path}: 字段 'q': show_if \"p == 'x'\"：'p' 是 photo，不能用于条件"]


def test_max_photos_defaults_to_three(tmp_path):
    path = tmp_path / "pics.toml"
    path.write_text('title = "t"\nkind = "general"\n[[fields]]\nname = "p"\ntype = "photo"\nlabel = "照片"\n')
    assert load_form(path).field("p").max_photos == 3


# --- the page ------------------------------------------------------------------------------


def test_the_page_posts_multipart_with_one_wide_picker_per_photo(client):
    page = client.get(FORM).text
    assert (
        '<form class="survey" method="post" action="/f/photo-report" novalidate enctype="multipart/form-data"' in page
    )
    pickers = re.findall(r'<input type="file" name="pictures"[^>]*>', page)
    assert pickers == ['<input type="file" name="pictures" accept="image/*">'] * 3  # no `multiple`: WeChat
    assert "最多 3 张，每张不超过 10 MB。" in page
    assert re.search(r'<script src="/static/photo\.js\?v=[0-9a-f]{10}" defer></script>', page)


def test_the_photo_script_and_styles_load_only_on_forms_with_photo_questions(client, tmp_path):
    assert "photo.js" in client.get(FORM).text and "photo.css" in client.get(FORM).text
    page = client.get("/f/all-types").text
    assert "photo.js" not in page and "photo.css" not in page and "multipart" not in page
    with make_app_client(tmp_path / "bundled", forms=BUNDLED_FORMS) as bundled:
        for path in form_files(BUNDLED_FORMS):  # residents' forms ask for no photos; the event report is not theirs
            page = bundled.get(f"/f/{path.stem}")
            if path.stem in OFFICE_ONLY_FORMS:
                assert page.status_code == 404
            else:
                assert page.status_code == 200 and "photo." not in page.text, path.stem


# --- storing -------------------------------------------------------------------------------


def test_a_camera_photo_is_stored_upright_without_metadata_named_by_its_content(client):
    original = camera_jpeg()
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(GPS_IFD)  # the upload carries a position
    answer = send(client, [jpeg_file(original), ("faces", ("", b"", "application/octet-stream"))])
    assert answer.status_code == 303 and answer.headers["location"] == "/f/photo-report/thanks"
    [answers] = stored_answers(client)
    [name] = answers["pictures"]
    assert answers == {"place": "万宁市兴隆超市", "pictures": [name]}
    path = photo_path(client, name)
    stored = path.read_bytes()
    assert name == hashlib.sha256(stored).hexdigest() + ".jpg"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with Image.open(path) as image:
        assert image.format == "JPEG" and image.size == (200, 400)  # turned upright
        assert not image.getexif() and "exif" not in image.info  # no GPS, no camera, no orientation
        assert image.getpixel((100, 20))[0] > 200 and image.getpixel((100, 380))[2] > 200  # red on top
    assert b"PhoneCam" not in stored and b"Exif" not in stored
    assert not list(path.parent.glob(".*.tmp"))


def test_a_large_photo_is_kept_at_2560_pixels_on_its_longest_side(client):
    big = io.BytesIO()
    Image.new("RGB", (4000, 3000), "green").save(big, "JPEG")
    assert send(client, [jpeg_file(big.getvalue())]).status_code == 303
    [answers] = stored_answers(client)
    assert Image.open(photo_path(client, answers["pictures"][0])).size == (2560, 1920)


def test_the_same_key_twice_stores_one_response_and_one_set_of_files(client):
    key = submission_key(client.get(FORM).text)
    files = [jpeg_file(camera_jpeg()), jpeg_file(camera_jpeg(orientation=1), "IMG_0002.jpg")]
    assert send(client, files, key=key).status_code == 303
    assert send(client, files, key=key).status_code == 303
    [answers] = stored_answers(client)
    assert len(answers["pictures"]) == 2
    folder = client.app.state["context"].store.path.parent / "photos"
    assert sorted(p.name for p in folder.rglob("*.jpg")) == sorted(answers["pictures"])


def test_names_posted_as_text_are_never_taken_as_photos(client):
    assert send(client, [jpeg_file(camera_jpeg())]).status_code == 303
    [earlier] = stored_answers(client)
    key = submission_key(client.get(FORM).text)
    answer = client.post(FORM, data={"_key": key, "place": "x", "pictures": earlier["pictures"][0]})
    assert answer.status_code == 422
    assert errors_on_page(answer.text) == {"pictures": "请上传照片"}


# --- hostile and mistaken uploads ----------------------------------------------------------


def test_a_file_that_is_not_a_picture_is_refused_in_chinese_and_the_typed_answer_stays(client):
    answer = send(client, [jpeg_file(b"%PDF-1.4 not a picture", "report.jpg")])
    assert answer.status_code == 422
    assert errors_on_page(answer.text) == {"pictures": "这不是一张能打开的照片，请重新选择"}
    assert 'value="万宁市兴隆超市"' in answer.text
    assert "照片没有保存，请重新选择照片后再点“提交”。" in answer.text
    assert stored_answers(client) == []
    assert not (client.app.state["context"].store.path.parent / "photos").exists()


def test_a_broken_second_photo_names_its_number(client):
    truncated = camera_jpeg()[:600]
    answer = send(client, [jpeg_file(camera_jpeg()), jpeg_file(truncated, "b.jpg")])
    assert errors_on_page(answer.text) == {"pictures": "第 2 张：这不是一张能打开的照片，请重新选择"}
    assert not (client.app.state["context"].store.path.parent / "photos").exists()  # nothing kept of a refusal


def test_a_decompression_bomb_is_refused(client):
    bomb = io.BytesIO()
    Image.new("1", (12000, 12000)).save(bomb, "PNG")  # a few KB that would decode to 144 million pixels
    assert len(bomb.getvalue()) < 100_000
    answer = send(client, [("pictures", ("bomb.png", bomb.getvalue(), "image/png"))])
    assert answer.status_code == 422
    assert errors_on_page(answer.text) == {"pictures": "图片太大了（像素太多），请换一张照片"}


def test_a_photo_over_ten_megabytes_is_a_413_that_names_the_limit_and_keeps_the_answers(client):
    huge = camera_jpeg() + b"\0" * (40 * 1024 * 1024)  # 40 MB: a picture with a lot after it
    answer = send(client, [jpeg_file(huge)])
    assert answer.status_code == 413
    assert errors_on_page(answer.text) == {
        "pictures": "每张照片不能超过 10 MB（这张约 40 MB），请换一张或用手机自带的编辑功能缩小后再选"
    }
    assert 'value="万宁市兴隆超市"' in answer.text
    assert stored_answers(client) == []


def test_more_photos_than_max_photos_are_refused_naming_the_number(client):
    answer = send(client, [jpeg_file(camera_jpeg())] * 4)
    assert answer.status_code == 422
    assert errors_on_page(answer.text) == {"pictures": "最多上传 3 张照片（现在是 4 张）"}


def test_a_required_photo_question_asks_for_a_photo(client):
    answer = send(client, [("pictures", ("", b"", "application/octet-stream"))])
    assert answer.status_code == 422
    assert errors_on_page(answer.text) == {"pictures": "请上传照片"}


def test_a_file_under_a_question_that_takes_none_is_a_400(client):
    answer = send(client, [("place", ("a.jpg", camera_jpeg(), "image/jpeg"))], data={"place": None})
    assert answer.status_code == 400
    assert "提交的内容格式不对" in answer.text


def test_a_form_without_photo_questions_still_takes_one_megabyte(client):
    key = submission_key(client.get("/f/all-types").text)
    answer = client.post("/f/all-types", data={"_key": key, "name": "x" * (1024 * 1024)})
    assert answer.status_code == 413
    assert "提交的内容太大了：文字最多 1 MB，照片每张最多 10 MB。" in answer.text


# --- the office ----------------------------------------------------------------------------


def photo_event(client, owner):
    forms = {f.id: f for f in client.app.state["context"].catalog.all()}
    event = make_event(forms, {"form": "photo-report", "title": "随手拍", "county": "万宁", "venue_type": "企业"})
    [stored] = add_events(database(client), [msgspec.structs.replace(event, created_by=owner)])
    return stored.code


def test_office_photos_need_sign_in_and_the_responses_scope(client):
    code = photo_event(client, "wang")
    assert send(client, [jpeg_file(camera_jpeg())], path=f"/e/{code}").status_code == 303
    [answers] = stored_answers(client)
    [name] = answers["pictures"]
    full, thumb = f"/admin/responses/1/photos/{name}", f"/admin/responses/1/photos/{name}/thumb"
    client.cookies.clear()
    for path in (full, thumb):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "/admin/login"
    sign_in(client, "li")  # staff, not their event
    assert client.get(full).status_code == 403 and client.get(thumb).status_code == 403
    sign_in(client, "wang")
    answer = client.get(full)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/jpeg"
    assert answer.headers["cache-control"] == "private, max-age=86400"
    assert answer.content == photo_path(client, name).read_bytes()
    small = client.get(thumb)
    assert small.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(small.content)).size == (160, 320)
    page = client.get("/admin/responses/1").text
    assert f'<a href="{full}"><img src="{thumb}" alt="第 1 张照片" loading="lazy"></a>' in page
    assert client.get(f"/admin/responses/1/photos/{'0' * 64}.jpg").status_code == 404
    assert client.get("/admin/responses/1/photos/..%2F..%2Ftest.db").status_code == 404


def test_personal_photos_are_shown_to_admins_only(client):
    code = photo_event(client, "wang")
    files = [jpeg_file(camera_jpeg()), jpeg_file(camera_jpeg(orientation=1), "face.jpg", field="faces")]
    assert send(client, files, path=f"/e/{code}", data={"_consent": "yes"}).status_code == 303
    [answers] = stored_answers(client)
    [face] = answers["faces"]
    sign_in(client, "wang")
    assert client.get(f"/admin/responses/1/photos/{face}").status_code == 404
    assert "照片（个人信息，只有管理员可以查看）" in client.get("/admin/responses/1").text
    sign_in(client, "boss")
    assert client.get(f"/admin/responses/1/photos/{face}").status_code == 200
    assert f"/admin/responses/1/photos/{face}/thumb" in client.get("/admin/responses/1").text


def test_deleting_a_response_removes_its_files_unless_another_shows_them(client):
    shared = camera_jpeg()
    assert send(client, [jpeg_file(shared), jpeg_file(camera_jpeg(orientation=1), "own.jpg")]).status_code == 303
    assert send(client, [jpeg_file(shared)]).status_code == 303
    first, second = stored_answers(client)
    common, own = first["pictures"]
    assert second["pictures"] == [common]
    sign_in(client, "boss")
    client.get(f"/admin/responses/1/photos/{own}/thumb")  # a thumbnail made on the disk
    token = re.search(r'name="_csrf" value="([^"]+)"', client.get("/admin/responses/1").text).group(1)
    assert client.post("/admin/responses/1/delete", data={"_csrf": token}, follow_redirects=False).status_code == 303
    folder = client.app.state["context"].store.path.parent / "photos"
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.jpg")) == [f"{common[:2]}/{common}"]
    assert client.post("/admin/responses/2/delete", data={"_csrf": token}, follow_redirects=False).status_code == 303
    assert list(folder.rglob("*.jpg")) == []


def test_purge_removes_personal_photo_files_and_keeps_the_others(client, tmp_path):
    files = [jpeg_file(camera_jpeg()), jpeg_file(camera_jpeg(orientation=1), "face.jpg", field="faces")]
    assert send(client, files, data={"_consent": "yes"}).status_code == 303
    [answers] = stored_answers(client)
    db = client.app.state["context"].store.path
    purged = run("purge", "photo-report", "--older-than", "0", "--db", str(db), cwd=tmp_path)
    assert purged.returncode == 0, purged.stderr
    assert "personal answers (faces) removed from 1 response(s), with 1 photo file(s)" in purged.stdout.decode()
    assert stored_answers(client) == [{"place": "万宁市兴隆超市", "pictures": answers["pictures"]}]
    assert photo_path(client, answers["pictures"][0]).exists()
    assert not photo_path(client, answers["faces"][0]).exists()


def test_the_csv_lists_the_stored_file_names(client):
    assert send(client, [jpeg_file(camera_jpeg()), jpeg_file(camera_jpeg(orientation=1), "b.jpg")]).status_code == 303
    [answers] = stored_answers(client)
    first, second = answers["pictures"]
    at = database(client).execute("SELECT submitted_at FROM responses").fetchone()[0]
    sign_in(client, "boss")
    answer = client.get("/admin/forms/photo-report/export.csv?header=names")
    # (its Content-Type says charset twice: downloads.py's, left for its owner)
    assert (
        answer.content
        == (
            f"\ufeffid,submitted_at,event,place,pictures,faces\r\n1,{at},,万宁市兴隆超市,{first}; {second},\r\n"
        ).encode()
    )
    sheet = openpyxl.load_workbook(io.BytesIO(client.get("/admin/forms/photo-report/export.xlsx").content)).active
    assert [cell.value for cell in sheet[1]][3:6] == ["在哪里看到的", "产品照片", "现场照片"]
    assert [cell.value for cell in sheet[2]][3:6] == ["万宁市兴隆超市", f"{first}; {second}", None]


def test_results_count_responses_with_photos_and_the_photos(client):
    assert send(client, [jpeg_file(camera_jpeg()), jpeg_file(camera_jpeg(orientation=1), "b.jpg")]).status_code == 303
    assert send(client, [jpeg_file(camera_jpeg(orientation=3))]).status_code == 303
    sign_in(client, "boss")
    page = client.get("/admin/forms/photo-report").text
    section = page.split('id="r-pictures"', 1)[1].split("</section>", 1)[0]
    assert "2 人回答" in section
    assert "共 <strong>3</strong> 张照片" in section
    listing = client.get("/admin/forms/photo-report/responses").text
    assert listing.count("<td>有照片</td>") == 2 and ".jpg" not in listing


def test_a_photo_for_a_hidden_question_is_not_kept(tmp_path):
    forms = tmp_path / "conditional"
    forms.mkdir()
    (forms / "found.toml").write_text(
        'title = "t"\nkind = "general"\n'
        '[[fields]]\nname = "found"\ntype = "choice"\nlabel = "发现问题了吗"\noptions = ["是", "否"]\n'
        '[[fields]]\nname = "pics"\ntype = "photo"\nlabel = "照片"\nshow_if = \'found == "是"\'\n',
        encoding="utf-8",
    )
    with make_app_client(tmp_path / "app", forms=forms) as client:
        key = submission_key(client.get("/f/found").text)
        answer = client.post(
            "/f/found",
            data={"_key": key, "found": "否"},
            files=[jpeg_file(camera_jpeg(), field="pics")],
            follow_redirects=False,
        )
        assert answer.status_code == 303
        assert stored_answers(client) == [{"found": "否"}]
        assert not (client.app.state["context"].store.path.parent / "photos").exists()


def test_a_40_mb_upload_is_read_without_holding_it_in_memory():
    import tracemalloc

    import anyio

    from server.uploads import read_multipart

    head = (
        b'--b\r\nContent-Disposition: form-data; name="place"\r\n\r\n\xe8\xb6\x85\xe5\xb8\x82\r\n'
        b'--b\r\nContent-Disposition: form-data; name="pictures"; filename="big.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n"
    )

    async def body():
        yield head
        for _ in range(640):  # 40 MB in 64 KB chunks, as a server receives them
            yield b"\xff" * 65536
        yield b"\r\n--b--\r\n"
        yield b""

    tracemalloc.start()
    try:
        posted = anyio.run(lambda: read_multipart(body(), "b", {"pictures"}, max_text=1024, max_parts=10))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    try:
        [upload] = posted.uploads["pictures"]
        assert posted.data == {"place": ["超市"]}
        assert upload.size == 40 * 1024 * 1024 and upload.too_big
        assert upload.file.seek(0, 2) <= 10 * 1024 * 1024  # past the limit, bytes are counted, not kept
    finally:
        posted.close()
    assert peak < 4 * 1024 * 1024, peak  # a 1 MB spool and a chunk or two, never the 40 MB
