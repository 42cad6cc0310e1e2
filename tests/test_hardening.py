"""Issue 10: each attack or misuse that hurt the server, replayed against it.

Numbers no person types, paths no browser sends, dates at the end of the calendar, monitors
that ask with HEAD, caches that keep office pages, downloads held whole in memory, and
dashboards that counted every response on each poll.
"""

import datetime as dt
import html
import io
import re
import sqlite3

import msgspec
import openpyxl
import pytest

from server import migrations
from server import office as office_pages
from server.accounts import User
from server.clock import now
from server.events import add_events, make_event
from server.forms import load_form
from server.migrations import migrate
from server.storage import Store, Submission, connect, purge_personal
from tests.conftest import (
    ADMIN_PASSWORD,
    TEST_FORMS,
    csrf_token,
    database,
    errors_on_page,
    sign_in,
    submission_key,
)

PASSWORD = ADMIN_PASSWORD
GOOD = {"unit": "海口市第一中学", "venue": "school", "satisfaction": "4", "topics": ["食品", "电梯"]}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def post_answers(client, data, path="/f/all-types"):
    key = submission_key(client.get(path).text)
    return client.post(path, data=data | {"_key": key}, follow_redirects=False)


def event_of(client, owner):
    forms = {f.id: f for f in client.app.state["context"].catalog.all()}
    event = make_event(forms, {"form": "all-types", "title": "进社区", "county": "海口", "venue_type": "社区"})
    [stored] = add_events(database(client), [msgspec.structs.replace(event, created_by=owner)])
    return stored.code


# Item 14: no bad input is a 500 --------------------------------------------------------------


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("satisfaction", "9" * 5000, "请选择 1 到 5 之间的分数"),
        ("satisfaction", "0" * 4301 + "3", "请选择 1 到 5 之间的分数"),
        ("people", "9" * 4301, "数字太大了，请检查"),
        ("people", "-" + "9" * 5000, "数字太大了，请检查"),
        ("spend", "9" * 5000, "数字太大了，请检查"),
    ],
)
def test_a_number_thousands_of_digits_long_is_a_field_error(client, name, value, message):
    page = post_answers(client, GOOD | {name: value})
    assert page.status_code == 422
    assert errors_on_page(page.text)[name] == message
    check = client.post(f"/f/all-types/check/{name}", data=GOOD | {name: value})
    assert check.status_code == 200 and message in check.text
    assert database(client)["responses"].count == 0


def test_leading_zeros_do_not_make_a_number_too_large(client):
    assert post_answers(client, GOOD | {"people": "0" * 30 + "25"}).status_code == 303


@pytest.mark.parametrize("path", ["/static/x%00", "/static/app.css%00.txt", "/static/" + "a" * 5000])
def test_a_static_path_the_file_system_refuses_is_not_found(client, path):
    answer = client.get(path)
    assert answer.status_code == 404 and "找不到页面" in answer.text


@pytest.mark.parametrize("before", ["²", "１２", "9" * 5000, str(2**63), "-1", "abc"])
def test_responses_paging_takes_only_a_response_id(office, before):
    sign_in(office, "boss", PASSWORD)
    answer = office.get("/admin/forms/all-types/responses", params={"before": before})
    assert answer.status_code == 400 and "请求有误" in answer.text


def test_responses_paging_still_pages(office):
    for _ in range(3):
        post_answers(office, GOOD)
    sign_in(office, "boss", PASSWORD)
    ids = [row["id"] for row in database(office)["responses"].rows]
    page = office.get("/admin/forms/all-types/responses", params={"before": str(ids[-1])})
    assert page.status_code == 200
    assert [int(i) for i in re.findall(r'href="/admin/responses/(\d+)"', page.text)] == ids[-2::-1]


@pytest.mark.parametrize(
    "path",
    [
        "/admin/forms/all-types",
        "/admin/forms/all-types/responses",
        "/admin/report",
        "/admin/report.csv",
        "/admin/report.xlsx",
        "/admin/package.zip",
    ],
)
@pytest.mark.parametrize("query", [{"date_to": "9999-12-31"}, {"date_from": "9999-12-31"}, {"date_to": "0001-01-01"}])
def test_a_day_at_the_end_of_the_calendar_is_a_400(office, path, query):
    sign_in(office, "boss", PASSWORD)
    answer = office.get(path, params=query)
    assert answer.status_code == 400
    if not path.endswith((".csv", ".xlsx", ".zip")):
        assert "超出范围，应在 2000-01-01 到 2099-12-31 之间" in html.unescape(answer.text)


def test_the_last_day_of_the_range_still_filters(office):
    post_answers(office, GOOD)
    sign_in(office, "boss", PASSWORD)
    page = office.get("/admin/forms/all-types", params={"date_from": "2000-01-01", "date_to": "2099-12-31"})
    assert page.status_code == 200 and "<strong>1</strong> 份答卷" in page.text


@pytest.mark.parametrize("response_id", ["99999999999999999999999", str(2**63), "0"])
def test_a_response_id_beyond_sqlite_is_not_found(office, response_id):
    sign_in(office, "boss", PASSWORD)
    assert office.get(f"/admin/responses/{response_id}").status_code == 404
    deleted = office.post(f"/admin/responses/{response_id}/delete", data={"_csrf": csrf_token(office)})
    assert deleted.status_code == 404


def test_an_event_with_an_absurd_attendance_or_the_last_day_of_the_calendar_is_no_500(office):
    sign_in(office, "boss", PASSWORD)
    fields = {"form": "all-types", "title": "进社区", "_csrf": csrf_token(office)}
    refused = office.post("/admin/events", data=fields | {"expected": "9" * 5000})
    assert refused.status_code == 422 and "预计人数" in refused.text
    made = office.post("/admin/events", data=fields | {"date": "9999-12-31"}, follow_redirects=False)
    code = made.headers["location"].rsplit("/", 1)[1]
    assert office.get(f"/e/{code}").status_code == 200  # its answers are taken up to that day


# Item 15: HEAD for monitors, no caching of the office, one charset ---------------------------


def test_a_monitor_asking_with_head_gets_the_health_status_without_a_body(client):
    answer = client.head("/healthz")
    assert answer.status_code == 200 and answer.content == b""
    assert client.get("/healthz").text == "ok"


def test_every_office_answer_forbids_caching(office):
    not_signed_in = office.get("/admin", follow_redirects=False)
    assert not_signed_in.status_code == 303 and not_signed_in.headers["cache-control"] == "no-store"
    assert office.get("/admin/login").headers["cache-control"] == "no-store"
    post_answers(office, GOOD)
    sign_in(office, "boss", PASSWORD)
    response_id = next(database(office)["responses"].rows)["id"]
    paths = [
        "/admin",
        "/admin/live",
        "/admin/forms/all-types",
        "/admin/forms/all-types/responses",
        f"/admin/responses/{response_id}",
        "/admin/events",
        "/admin/report",
        "/admin/audit",
        "/admin/forms/all-types/export.csv",
        "/admin/forms/all-types/export.xlsx",
        "/admin/report.csv",
        "/admin/report.xlsx",
        "/admin/package.zip",
        "/admin/responses/999999",  # an error page too
    ]
    for path in paths:
        assert office.get(path).headers["cache-control"] == "no-store", path
    assert (
        office.get("/f/all-types").headers["cache-control"] == "private, no-cache"
    )  # public: no shared cache keeps a key


def test_content_types_are_exact(office):
    sign_in(office, "boss", PASSWORD)
    expected = {
        "/f/all-types": "text/html; charset=utf-8",  # a blank form, rendered once and reused
        "/": "text/html; charset=utf-8",
        "/admin": "text/html; charset=utf-8",
        "/admin/forms/all-types/export.csv": "text/csv; charset=utf-8",
        "/admin/forms/all-types/export.xlsx": XLSX,
        "/admin/report.csv": "text/csv; charset=utf-8",
        "/admin/report.xlsx": XLSX,
        "/admin/package.zip": "application/zip",
        "/f/all-types/qr.svg": "image/svg+xml",
        "/f/all-types/qr.png": "image/png",
        "/healthz": "text/plain; charset=utf-8",
        "/static/app.css": "text/css; charset=utf-8",  # read and gzipped once, served from memory
        "/static/form.js": "text/javascript; charset=utf-8",
        "/sw.js": "text/javascript; charset=utf-8",
    }
    assert {path: office.get(path).headers["content-type"] for path in expected} == expected
    plain = {"Accept-Encoding": "identity"}
    assert {path: office.get(path, headers=plain).headers["content-type"] for path in expected} == expected
    invalid = post_answers(office, GOOD | {"people": "x"})
    assert invalid.status_code == 422 and invalid.headers["content-type"] == "text/html; charset=utf-8"


# Item 16: the XLSX download streams from its temporary file ----------------------------------


def store_rows(client, count, submitted_at):
    """Rows written straight into the table (another day, or many at once), under the form's version."""
    db = database(client)
    version = db.execute("SELECT version FROM form_versions WHERE form_id = 'all-types'").fetchone()[0]
    answers = msgspec.json.encode({"unit": "海口市第一中学", "why": "很长的意见" * 40}).decode()
    db.execute("BEGIN")
    db.conn.executemany(
        """INSERT INTO responses (form_id, form_version, event, submission_key, submitted_at, answers)
           VALUES ('all-types', ?, NULL, ?, ?, ?)""",
        [(version, f"bulk-{submitted_at}-{n:06d}", submitted_at, answers) for n in range(count)],
    )
    db.execute("COMMIT")


def test_the_xlsx_download_is_streamed_in_chunks_and_leaves_no_file(office, tmp_path, monkeypatch):
    import tempfile

    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    post_answers(office, GOOD)
    store_rows(office, 3000, now().isoformat())
    sign_in(office, "boss", PASSWORD)
    plain = {"Accept-Encoding": "identity"}  # the chunks as the server sends them, not gzip's
    with office.stream("GET", "/admin/forms/all-types/export.xlsx", headers=plain) as download:
        assert download.status_code == 200 and "content-length" not in download.headers
        assert (
            download.headers["content-disposition"]
            == "attachment; filename=\"all-types.xlsx\"; filename*=UTF-8''all-types.xlsx"
        )
        content = download.read()
    sheet = openpyxl.load_workbook(io.BytesIO(content)).active
    assert sheet.max_row == 3002  # the header and every response
    assert list(temporary.iterdir()) == []
    with office.stream("GET", "/admin/report.xlsx") as abandoned:  # the client goes away at once
        assert abandoned.status_code == 200
    assert list(temporary.iterdir()) == []
    exports = [row["detail"] for row in database(office)["audit_log"].rows if row["action"] == "export"]
    assert exports == ["form all-types xlsx event -", "report xlsx"]


def test_the_web_csv_is_made_in_a_process_of_its_own_and_gzipped_there(office, monkeypatch):
    import gzip

    from server import export

    post_answers(office, GOOD)
    sign_in(office, "boss", PASSWORD)
    form = office.app.state["context"].catalog.get("all-types")
    expected = b"".join(export.export_csv(database(office), form))

    def not_here(*args, **kwargs):
        raise AssertionError("the CSV was made in the server's own process")

    monkeypatch.setattr(export, "export_csv", not_here)
    with office.stream("GET", "/admin/forms/all-types/export.csv", headers={"Accept-Encoding": "gzip"}) as zipped:
        assert zipped.headers["content-encoding"] == "gzip"
        assert zipped.headers["content-type"] == "text/csv; charset=utf-8"
        assert gzip.decompress(b"".join(zipped.iter_raw())) == expected
    plain = office.get("/admin/forms/all-types/export.csv", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == expected


# Item 8: the dashboard's counts are kept by the database, not counted per poll ---------------


_FORM_ROW = re.compile(r'data-count="all-types">(\d+)</td><td class="num">(\d+)</td><td class="num">(\d+)</td>')


def shown_counts(client, code):
    page = client.get("/admin/live").text
    event = re.search(rf'data-count="{code}">(\d+)</td><td class="num">(\d+)</td>', page)
    return tuple(map(int, _FORM_ROW.search(page).groups())), tuple(map(int, event.groups()))


def counted(client, code, today):
    """What the dashboard must say, counted straight from the responses."""
    db = database(client)
    form = db.execute(
        """SELECT count(*) FILTER (WHERE NOT suspected_spam),
                  count(*) FILTER (WHERE NOT suspected_spam AND substr(submitted_at, 1, 10) = ?),
                  count(*) FILTER (WHERE suspected_spam)
           FROM responses WHERE form_id = 'all-types'""",
        [today],
    ).fetchone()
    event = db.execute(
        """SELECT count(*), count(*) FILTER (WHERE substr(submitted_at, 1, 10) = ?)
           FROM responses WHERE event = ? AND NOT suspected_spam""",
        [today, code],
    ).fetchone()
    return tuple(form), tuple(event)


def assert_dashboard_counts_right(client, code):
    for _ in range(2):  # a midnight between reading the page and counting: look again
        today = now().date().isoformat()
        shown = shown_counts(client, code)
        if now().date().isoformat() == today:
            break
    assert shown == counted(client, code, today)


def test_the_dashboard_counts_equal_the_responses_through_every_change(office):
    code = event_of(office, "wang")
    for _ in range(3):
        post_answers(office, GOOD)
    post_answers(office, GOOD, f"/e/{code}")
    post_answers(office, GOOD | {"_homepage": "http://spam.example"}, f"/e/{code}")  # the honeypot
    post_answers(office, GOOD | {"name": "张三丰", "mobile": "13812345678", "_consent": "yes"}, f"/e/{code}")
    sign_in(office, "boss", PASSWORD)
    assert shown_counts(office, code)[0][0] == 5
    assert_dashboard_counts_right(office, code)

    yesterday = (now() - dt.timedelta(days=1)).isoformat()
    store_rows(office, 4, yesterday)
    db = database(office)
    db.execute("UPDATE responses SET event = ? WHERE submission_key LIKE 'bulk-%' AND id % 2 = 0", [code])
    assert_dashboard_counts_right(office, code)

    first = next(db.query("SELECT id FROM responses WHERE event = ? ORDER BY id", [code]))["id"]
    deleted = office.post(f"/admin/responses/{first}/delete", data={"_csrf": csrf_token(office)})
    assert deleted.status_code == 200
    db.execute("UPDATE responses SET suspected_spam = 1 WHERE id = (SELECT max(id) FROM responses)")
    db.execute("UPDATE responses SET submitted_at = ? WHERE id = (SELECT min(id) FROM responses)", [yesterday])
    purge_personal(db, "all-types", ["name", "mobile"], now().isoformat())
    assert_dashboard_counts_right(office, code)

    sign_in(office, "wang", PASSWORD)  # staff: the counts of their own event only
    form_row, event_row = shown_counts(office, code)
    assert form_row[0] == event_row[0] == counted(office, code, now().date().isoformat())[1][0]


def test_the_dashboard_reads_no_response_rows(office):
    code = event_of(office, "wang")
    post_answers(office, GOOD, f"/e/{code}")
    context = office.app.state["context"]
    read: set[str] = set()

    def authorizer(action, table, *_):
        if action == sqlite3.SQLITE_READ:
            read.add(table)
        return sqlite3.SQLITE_OK

    reader = context.store.reader()  # this thread's connection: the one dashboard_context uses here
    reader.conn.set_authorizer(authorizer)
    try:
        shown = office_pages.dashboard_context(context, User("boss", "admin"))
    finally:
        reader.conn.set_authorizer(None)
    assert {form.id: counts.total for form, counts in shown["forms"]} == {
        "all-types": 1, "closed": 0, "photo-report": 0, "upcoming": 0
    }  # fmt: skip
    assert [(event.code, counts.total) for event, counts in shown["events"]] == [(code, 1)]
    assert "responses" not in read and "response_counts" in read


def test_the_counts_of_an_older_database_are_filled_in_by_the_migration(office):
    code = event_of(office, "wang")
    post_answers(office, GOOD)
    post_answers(office, GOOD, f"/e/{code}")
    store_rows(office, 3, (now() - dt.timedelta(days=2)).isoformat())
    db = database(office)
    db.execute("BEGIN")  # the database as it was before the counts: no table, no triggers
    for trigger in ("responses_counted", "responses_uncounted", "responses_recounted"):
        db.execute(f"DROP TRIGGER {trigger}")
    db.execute("DROP TABLE response_counts")
    db.execute("DELETE FROM migrations WHERE name = 'count_responses'")
    db.execute("COMMIT")
    assert migrate(db) == ["count_responses"]
    sign_in(office, "boss", PASSWORD)
    assert shown_counts(office, code)[0][0] == 5
    assert_dashboard_counts_right(office, code)


def test_the_upgrade_keeps_every_response_and_its_id_and_never_gives_a_deleted_id_again(tmp_path):
    path = tmp_path / "old.db"
    db = connect(path)
    steps = migrations.MIGRATIONS
    try:
        migrations.MIGRATIONS = steps[: [name for name, _ in steps].index("response_ids_never_reused")]
        migrate(db)  # the database as the release before this one made it
    finally:
        migrations.MIGRATIONS = steps
    db.execute("INSERT INTO form_versions VALUES ('f', 'v1', '{}', '2022-09-01')")
    for n in range(1, 6):
        db.execute(
            "INSERT INTO responses (form_id, form_version, event, submission_key, submitted_at, answers)"
            " VALUES ('f', 'v1', NULL, ?, '2022-09-15T10:00:00+08:00', ?)",
            [f"old-key-{n:016d}", f'{{"n": {n}}}'],
        )
    schema = "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'responses' AND type != 'table' ORDER BY name"
    before = db.execute(schema).fetchall()
    rows = db.execute("SELECT * FROM responses ORDER BY id").fetchall()
    assert migrate(db) == ["response_ids_never_reused"]
    assert db.execute(schema).fetchall() == before and len(before) >= 7  # indexes and triggers, as they were
    assert db.execute("SELECT * FROM responses ORDER BY id").fetchall() == rows
    assert db.execute("SELECT n FROM response_counts").fetchall() == [(5,)]  # the counting trigger: kept, not run
    assert db.execute("PRAGMA foreign_key_check").fetchall() == [] and db.execute(
        "PRAGMA integrity_check"
    ).fetchone() == ("ok",)
    db.execute("DELETE FROM responses WHERE id = 5")  # a PIPL deletion of the newest response
    assert db.execute("SELECT n FROM response_counts").fetchall() == [(4,)]
    db.conn.close()
    store = Store(path)
    store.start()
    try:
        form = load_form(TEST_FORMS / "all-types.toml")
        receipt = store.writer.submit(Submission(form, "new-key-0000000000000001", {})).result(timeout=10)
    finally:
        store.close()
    assert receipt.response_id == 6  # not 5 again: a reader that saw 5 does not miss this one
    assert connect(path).execute(
        "SELECT id FROM responses WHERE submission_key = 'new-key-0000000000000001'"
    ).fetchone() == (6,)


def test_an_xlsx_file_is_read_in_chunks_from_a_file_already_gone_from_disk(tmp_path, monkeypatch):
    import os
    import tempfile

    from server.downloads import CHUNK_BYTES, _xlsx_chunks

    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    made = os.urandom(5 * CHUNK_BYTES // 2)
    chunks = _xlsx_chunks(lambda path: path.write_bytes(made))
    assert list(temporary.iterdir()) == []  # nothing left behind, however the download ends
    first = next(chunks)
    assert [len(first), *map(len, chunks)] == [CHUNK_BYTES, CHUNK_BYTES, CHUNK_BYTES // 2]
    open_files = len(os.listdir("/proc/self/fd"))
    abandoned = _xlsx_chunks(lambda path: path.write_bytes(made))
    next(abandoned)
    assert len(os.listdir("/proc/self/fd")) == open_files + 1
    abandoned.close()  # the client went away: the open file is closed with the stream
    assert len(os.listdir("/proc/self/fd")) == open_files
