"""Personal information (PIPL): masked on every office screen by every version of the form,
and gone from the disk — database, WAL and shared-memory files — once purged or deleted."""

import json
import re
import shutil
import sqlite3
import subprocess

import pytest

from server.accounts import add_user
from server.storage import connect, empty_wal
from tests.conftest import TEST_FORMS, database, make_app_client, run, submission_key

PASSWORD = "correct horse battery"
PHONE = "13912349876"
OTHER_TEXT = "住在隔壁的王阿姨家"  # the 其他 text of a personal choice: says where someone lives
CONTACT = """title = "回访登记"
kind = "general"
privacy = "联系方式只用于回访，活动结束 90 天后删除。"

[[fields]]
name = "unit"
type = "text"
label = "单位"

[[fields]]
name = "reach"
type = "choice"
label = "怎样找到您"
options = ["电话", "微信"]
other = true
personal = true

[[fields]]
name = "name"
type = "text"
label = "姓名"
personal = true

[[fields]]
name = "mobile"
type = "phone"
label = "手机"
personal = true
"""
# The next version: the phone question removed, the name no longer marked personal.
CONTACT_V2 = CONTACT.partition('[[fields]]\nname = "mobile"')[0].replace(
    'label = "姓名"\npersonal = true', 'label = "姓名"'
)
ANSWERS = {"unit": "海口一中", "reach": "other", "reach_other": OTHER_TEXT, "name": "欧阳娜娜", "mobile": PHONE}


def forms_with(folder, source):
    """The test forms and the contact form in folder."""
    shutil.copytree(TEST_FORMS, folder)
    (folder / "contact.toml").write_text(source, encoding="utf-8")
    return folder


def submit(client, answers=ANSWERS):
    page = client.get("/f/contact").text
    data = answers | {"_consent": "yes", "_key": submission_key(page)}
    assert client.post("/f/contact", data=data, follow_redirects=False).status_code == 303


def sign_in(client):
    page = client.get("/admin/login").text
    token = re.search(r'name="_csrf" value="([^"]+)"', page).group(1)
    data = {"_csrf": token, "username": "boss", "password": PASSWORD}
    assert client.post("/admin/login", data=data, follow_redirects=False).status_code == 303


def copies_on_disk(db_path, text=PHONE):
    """How often text appears in the raw bytes of the database and its -wal and -shm files (0 if absent).

    Read by another process: closing a file this process opened would drop the POSIX locks its
    SQLite connections hold on it, and another process would then delete the WAL under them.
    """
    files = {suffix: db_path.with_name(db_path.name + suffix) for suffix in ("", "-wal", "-shm")}
    raw = {suffix: subprocess.run(["cat", path], capture_output=True).stdout for suffix, path in files.items()}
    return {suffix: data.count(text.encode()) for suffix, data in raw.items()}


@pytest.fixture
def contact_db(tmp_path):
    """A database holding 17 answers to the contact form, and the folder of its forms."""
    db_path = tmp_path / "data" / "quality-forms.db"
    forms = forms_with(tmp_path / "forms", CONTACT)
    with make_app_client(tmp_path / "web", forms=forms, db=db_path) as client:
        add_user(database(client), "boss", PASSWORD, "admin")
        for _ in range(17):
            submit(client)
    return db_path


def test_purge_removes_the_other_text_of_a_personal_choice(contact_db, tmp_path):
    purged = run("purge", "contact", "--older-than", "0", "--db", str(contact_db), cwd=tmp_path)
    assert purged.returncode == 0, purged.stderr
    assert "personal answers (mobile, name, reach, reach_other) removed from 17 response(s)" in purged.stdout.decode()
    answers = [json.loads(row[0]) for row in connect(contact_db).execute("SELECT answers FROM responses")]
    assert answers == [{"unit": "海口一中"}] * 17


def test_the_office_masks_the_other_text_of_a_personal_choice(contact_db, tmp_path):
    with make_app_client(tmp_path / "office", forms=tmp_path / "forms", db=contact_db) as client:
        sign_in(client)
        page = client.get("/admin/responses/1").text
    assert OTHER_TEXT not in page and PHONE not in page and "欧阳娜娜" not in page
    assert "住******" in page and "139****9876" in page


def test_answers_personal_in_an_earlier_version_stay_masked(contact_db, tmp_path):
    with make_app_client(tmp_path / "v2", forms=forms_with(tmp_path / "forms-v2", CONTACT_V2), db=contact_db) as client:
        form = client.app.state["context"].catalog.get("contact")
        assert form.field("mobile") is None and not form.field("name").personal
        sign_in(client)
        pages = {path: client.get(path).text for path in ("/admin/responses/1", "/admin/forms/contact/responses")}
        pages["/admin/forms/contact"] = client.get("/admin/forms/contact").text  # the recent text answers
    for path, page in pages.items():
        assert PHONE not in page and "欧阳娜娜" not in page and OTHER_TEXT not in page, path
    assert "139****9876" in pages["/admin/responses/1"] and "欧**" in pages["/admin/forms/contact/responses"]


def test_answers_stay_masked_once_the_form_file_is_gone(contact_db, tmp_path):
    forms = tmp_path / "forms-gone"
    shutil.copytree(TEST_FORMS, forms)
    with make_app_client(tmp_path / "gone", forms=forms, db=contact_db) as client:
        assert client.app.state["context"].catalog.get("contact") is None
        sign_in(client)
        page = client.get("/admin/responses/1").text
    assert "139****9876" in page and PHONE not in page and OTHER_TEXT not in page


def test_a_purged_phone_number_is_gone_from_the_database_and_wal_files(contact_db, tmp_path):
    with make_app_client(tmp_path / "web2", forms=tmp_path / "forms", db=contact_db) as client:
        submit(client)  # the server runs: its writer and readers keep the WAL in use
        assert copies_on_disk(contact_db)["-wal"] > 0
        purged = run("purge", "contact", "--older-than", "0", "--db", str(contact_db), cwd=tmp_path)
        assert purged.returncode == 0, purged.stderr
        assert "WAL" not in purged.stdout.decode()
        assert copies_on_disk(contact_db) == {"": 0, "-wal": 0, "-shm": 0}
        assert copies_on_disk(contact_db, OTHER_TEXT) == {"": 0, "-wal": 0, "-shm": 0}
        submit(client)  # and the server keeps taking answers
    assert connect(contact_db)["responses"].count == 19


def test_a_deleted_response_is_gone_from_the_database_and_wal_files(tmp_path):
    db_path = tmp_path / "data" / "quality-forms.db"
    with make_app_client(tmp_path / "web", forms=forms_with(tmp_path / "forms", CONTACT), db=db_path) as client:
        add_user(database(client), "boss", PASSWORD, "admin")
        for _ in range(3):
            submit(client, ANSWERS | {"mobile": "13800000000"})
        submit(client)
        sign_in(client)
        [response_id] = [row[0] for row in database(client).execute("SELECT id FROM responses WHERE answers LIKE ?",
                                                                    [f"%{PHONE}%"])]  # fmt: skip
        assert copies_on_disk(db_path)["-wal"] > 0
        token = re.search(r'name="_csrf" value="([^"]+)"', client.get("/admin").text).group(1)
        deleted = client.post(f"/admin/responses/{response_id}/delete", data={"_csrf": token}, follow_redirects=False)
        assert deleted.status_code == 303
        assert copies_on_disk(db_path) == {"": 0, "-wal": 0, "-shm": 0}
        assert database(client)["responses"].count == 3
        assert copies_on_disk(db_path, "13800000000")[""] > 0  # only the deleted one is gone


def test_a_busy_reader_leaves_the_wal_and_the_purge_says_so(tmp_path):
    db_path = tmp_path / "data" / "quality-forms.db"
    with make_app_client(tmp_path / "web", forms=forms_with(tmp_path / "forms", CONTACT), db=db_path) as client:
        for _ in range(17):  # the server runs on: the answers are in its WAL, not yet in the file
            submit(client)
        assert copies_on_disk(db_path)["-wal"] > 0
        reader = sqlite3.connect(db_path, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM responses").fetchone()  # an export in progress holds its snapshot
        purged = run("purge", "contact", "--older-than", "0", "--db", str(db_path), cwd=tmp_path)
        assert purged.returncode == 0, purged.stderr
        assert "; the WAL still holds " in purged.stdout.decode()  # said, not hidden
        assert copies_on_disk(db_path)["-wal"] > 0
        reader.execute("COMMIT")
        assert empty_wal(connect(db_path)) == 0
        assert copies_on_disk(db_path) == {"": 0, "-wal": 0, "-shm": 0}
        reader.close()
