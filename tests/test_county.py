"""County and organizer accounts: a 市县's staff see every event of their 市县 (imported ones
too), a co-host's every event it hosts, and nothing else, on every office route there is
(server/scope.py)."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import re
import sqlite3
import zipfile

import msgspec
import pytest
from PIL import Image

from server import migrations, photos
from server.accounts import AccountError, add_user
from server.accounts import sign_in as account_sign_in
from server.events import add_events, make_event
from server.scope import EVERYTHING, Scope, scope_for
from server.storage import connect
from tests.conftest import ADMIN_PASSWORD, CAMPAIGN_2022, database, forms_folder, run, sign_in, submission_key

PASSWORD = ADMIN_PASSWORD
SCHEDULE = """问卷,活动名称,市县,场所类型,日期,主办单位
all-types,白沙的活动,白沙,社区,2022-09-15,省教育厅
photo-report,白沙随手拍,白沙黎族自治县,其他,2022-09-16,省教育厅
all-types,琼海的活动,琼海,学校,2022-09-15,省公安厅
photo-report,琼海随手拍,琼海市,其他,2022-09-16,省公安厅
"""
# The two kinds of scoped account, each with the condition on events that it must not reach.
ACCOUNTS = {
    "county": (("county", "白沙"), "county = '琼海市'"),
    "organizer": (("organizer", "省教育厅"), "organizer = '省公安厅'"),
}
# What a 白沙 account must never see: 琼海's events and answers, and answers sent without an event.
OTHERS = ("琼海的活动", "琼海随手拍", "琼海答卷单位", "琼海的超市", "无活动答卷单位")
SIGN_IN_ROUTES = {"/admin/login", "/admin/logout"}  # no data behind them; logout would end the walk


def jpeg(colour: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(out, "JPEG")
    return out.getvalue()


def send(client, path: str, data: dict, files: list | None = None) -> None:
    key = submission_key(client.get(path).text)
    answer = client.post(path, data=data | {"_key": key}, files=files, follow_redirects=False)
    assert answer.status_code == 303, answer.text


class Campaign(msgspec.Struct):
    """The codes and ids of one county's events and answers."""

    event: str  # all-types
    photo_event: str  # photo-report
    response: int
    photo_response: int
    photo: str


@pytest.fixture
def counties(office, tmp_path, clock):
    """白沙 (hosted by 省教育厅) and 琼海 (省公安厅), each with an all-types and a photo event
    imported from a schedule on the command line (nobody's events), an answer to each, and an
    answer without an event; the county account `baisha` is signed in."""
    clock(dt.datetime(2022, 9, 17, 10))
    context = office.app.state["context"]
    schedule = tmp_path / "schedule.csv"
    schedule.write_text(SCHEDULE, encoding="utf-8")
    imported = run(
        "event", "import", str(schedule), "--db", str(context.store.path), "--forms", str(context.settings.forms),
        cwd=tmp_path,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    codes = {line.split("\t")[2]: line.split("\t")[0] for line in imported.stdout.decode().splitlines()}
    made = {}
    for county, colour in (("白沙", "green"), ("琼海", "red")):
        event, photo_event = codes[f"{county}的活动"], codes[f"{county}随手拍"]
        unit = {"unit": f"{county}答卷单位", "venue": "school", "satisfaction": "4", "topics": ["食品"]}
        send(office, f"/e/{event}", unit)
        send(
            office,
            f"/e/{photo_event}",
            {"place": f"{county}的超市"},
            [("pictures", ("a.jpg", jpeg(colour), "image/jpeg"))],
        )
        rows = {row["event"]: row for row in database(office)["responses"].rows}
        made[county] = Campaign(
            event=event,
            photo_event=photo_event,
            response=rows[event]["id"],
            photo_response=rows[photo_event]["id"],
            photo=photos.names_in(json.loads(rows[photo_event]["answers"])["pictures"])[0],
        )
    send(office, "/f/all-types", {"unit": "无活动答卷单位", "venue": "school", "satisfaction": "3", "topics": ["食品"]})
    add_user(database(office), "baisha", PASSWORD, "county", "白沙")
    assert sign_in(office, "baisha", PASSWORD).status_code == 303
    return made


# --- the access model ---------------------------------------------------------------------


class Seen(msgspec.Struct):
    county: str = ""
    created_by: str = ""
    organizer: str = ""


def test_each_role_sees_its_own_events():
    baisha, wang = Seen("白沙黎族自治县", "wang", "省教育厅"), Seen("琼海市", "", "省公安厅")
    assert scope_for("admin", "boss") is EVERYTHING and EVERYTHING.sees(None)
    staff = scope_for("staff", "wang")
    assert staff == Scope(created_by="wang") and staff.sees(baisha) and not staff.sees(wang)
    county = scope_for("county", "bai", "白沙黎族自治县")
    assert county.sees(baisha) and not county.sees(wang)
    assert not county.sees(None) and not staff.sees(None)  # answers without an event: admins only
    assert not scope_for("county", "bai", "").sees(Seen("", ""))  # no county: nothing, not the county-less
    assert county.events_sql("e") == ("e.county = ?", ["白沙黎族自治县"])
    organizer = scope_for("organizer", "jy", organizer="省教育厅")
    assert organizer.sees(baisha) and not organizer.sees(wang) and not organizer.sees(None)
    assert not scope_for("organizer", "jy").sees(Seen())


# --- every office route ---------------------------------------------------------------------


def visible_text(answer) -> str:
    """Everything a download or page shows: a ZIP (XLSX, packages) by its members' text, gzip unpacked."""
    body = answer.content
    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    if body[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            parts = [name + "\n" + archive.read(name).decode("utf-8", "replace") for name in archive.namelist()]
        return "\n".join(parts)
    return body.decode("utf-8", "replace") + "\n" + answer.headers.get("location", "")


def admin_routes(client) -> list[tuple[str, str]]:
    return sorted(
        (method, route.path)
        for route in client.app.routes
        if route.path == "/admin" or route.path.startswith("/admin/")
        for method in getattr(route, "methods", set()) - {"HEAD", "OPTIONS"}
        if route.path not in SIGN_IN_ROUTES
    )


def targets(campaign: Campaign) -> list[dict[str, str]]:
    """Values for every path parameter an office route takes: one set per kind of thing."""
    return [
        {
            "form_id": "all-types",
            "code": campaign.event,
            "response_id": str(campaign.response),
            "field_name": "summary",
            "version_id": "1",
            "message_id": "1",
        },
        {
            "form_id": "photo-report",
            "code": campaign.photo_event,
            "response_id": str(campaign.photo_response),
            "name": campaign.photo,
        },
    ]


def filled(path: str, values: dict[str, str]) -> str | None:
    """The path with its parameters filled in, or None when `values` lacks one."""
    names = re.findall(r"\{(\w+):\w+\}", path)
    if any(name not in values for name in names):
        return None
    return re.sub(r"\{(\w+):\w+\}", lambda m: values[m.group(1)], path)


def others_state(client, campaign: Campaign, events: str = "county = '琼海市'") -> list:
    """What a 白沙 account could change of 琼海: its events, their answers, reviews and chosen photos."""
    db = database(client)
    codes = [campaign.event, campaign.photo_event]
    marks = ",".join("?" * len(codes))
    tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    state = [
        list(db.execute(f"SELECT * FROM events WHERE {events} ORDER BY code")),
        list(db.execute(f"SELECT * FROM responses WHERE event IN ({marks}) OR event IS NULL ORDER BY id", codes)),
    ]
    if "report_reviews" in tables:
        state.append(list(db.execute(f"SELECT * FROM report_reviews WHERE event IN ({marks})", codes)))
    if "chosen_photos" in tables:
        state.append(list(db.execute("SELECT * FROM chosen_photos ORDER BY name")))
    return state


@pytest.mark.parametrize("kind", ACCOUNTS)
def test_a_scoped_account_reaches_nothing_of_others_on_any_office_route(office, counties, kind):
    (role, value), elsewhere = ACCOUNTS[kind]
    add_user(database(office), "scoped", PASSWORD, role, **{role: value})
    assert sign_in(office, "scoped", PASSWORD).status_code == 303
    qionghai, baisha = counties["琼海"], counties["白沙"]
    others = [*OTHERS, qionghai.event, qionghai.photo_event, qionghai.photo]
    token = re.search(r'name="_csrf" value="([^"]+)"', office.get("/admin").text).group(1)
    routes = admin_routes(office)
    assert ("GET", "/admin/events/{code:str}") in routes and len(routes) >= 15
    before = others_state(office, qionghai, elsewhere)
    for method, path in routes:
        paths = [p for values in targets(qionghai) if (p := filled(path, values))]
        assert paths, f"{method} {path}: a parameter this test does not know; add it to targets()"
        for target in paths:
            for query in ("", f"?event={qionghai.event}&county=琼海市&form=all-types&form_id=all-types"):
                if method == "GET":
                    answer = office.get(target + query, follow_redirects=False)
                else:
                    data = {
                        "_csrf": token, "form": "all-types", "title": "县外的活动", "county": "琼海市", "organizer": "省公安厅",
                        "event": qionghai.event, "status": "approved", "comment": "越权", "name": qionghai.photo,
                    }  # fmt: skip
                    answer = office.request(method, target + query, data=data, follow_redirects=False)
                where = f"{method} {target + query}"
                assert answer.status_code < 500, where
                if answer.status_code in (403, 404):
                    continue
                text = visible_text(answer)
                shown = [o for o in others if o in text and o not in query]  # the query echoed is no leak
                assert not shown, f"{where} shows {shown}"
                assert others_state(office, qionghai, elsewhere) == before, f"{where} changed 琼海's data"
    # The same routes with 白沙's own things answer (the walk did not pass by refusing everything).
    for method, path in routes:
        for values in targets(baisha):
            if method == "GET" and (target := filled(path, values)):
                assert office.get(target, follow_redirects=False).status_code < 500, target


# --- what a county account sees ---------------------------------------------------------------


def test_a_county_account_sees_its_imported_events_and_their_answers(office, counties):
    baisha = counties["白沙"]
    wang_event = make_event({f.id: f for f in office.app.state["context"].catalog.all()},
                            {"form": "all-types", "title": "王在白沙的活动", "county": "白沙"})  # fmt: skip
    [made_by_wang] = add_events(database(office), [msgspec.structs.replace(wang_event, created_by="wang")])
    dashboard = office.get("/admin").text
    assert "白沙的活动" in dashboard and "白沙随手拍" in dashboard and "王在白沙的活动" in dashboard
    assert "（白沙黎族自治县）" in dashboard  # the header names the account's 市县
    assert f'data-count="{baisha.event}">1<' in dashboard
    assert 'data-count="all-types">1<' in dashboard  # 琼海's answer and the one without an event are not counted
    events = office.get("/admin/events").text
    assert "白沙的活动" in events and "王在白沙的活动" in events and "琼海的活动" not in events
    assert "琼海市" not in events  # nor offered for a new event
    assert office.get(f"/admin/events/{baisha.event}").status_code == 200
    assert office.get(f"/admin/events/{made_by_wang.code}").status_code == 200
    assert office.get(f"/admin/events/{counties['琼海'].event}").status_code == 403
    results = office.get("/admin/forms/all-types").text
    assert "<strong>1</strong> 份答卷" in results and "白沙答卷单位" in results
    listing = office.get("/admin/forms/all-types/responses").text
    assert "白沙答卷单位" in listing and "琼海答卷单位" not in listing and "无活动答卷单位" not in listing
    assert office.get(f"/admin/responses/{baisha.response}").status_code == 200
    photo = office.get(f"/admin/responses/{baisha.photo_response}/photos/{baisha.photo}")
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
    exported = office.get(f"/admin/forms/all-types/export.csv?event={baisha.event}")
    assert exported.status_code == 200 and "白沙答卷单位" in exported.text and "琼海" not in exported.text
    whole = office.get("/admin/forms/all-types/export.csv")  # the whole form: the county's rows only
    assert whole.status_code == 200 and "白沙答卷单位" in whole.text
    assert "琼海答卷单位" not in whole.text and "无活动答卷单位" not in whole.text
    report = office.get("/admin/report").text
    assert "白沙黎族自治县" in report  # (琼海's rows: the walk above; the rebuilt table lists every 市县)
    assert office.get("/admin/audit").status_code == 403
    deleted = office.post(f"/admin/responses/{baisha.response}/delete", data={"_csrf": _csrf(office)})
    assert deleted.status_code == 403 and database(office)["responses"].count == 5


def _csrf(client) -> str:
    return re.search(r'name="_csrf" value="([^"]+)"', client.get("/admin").text).group(1)


def test_a_county_account_adds_events_of_its_own_county_only(office, counties):
    form = {"_csrf": _csrf(office), "form": "all-types", "title": "县里新建的活动"}
    made = office.post("/admin/events", data=form, follow_redirects=False)
    assert made.status_code == 303
    code = made.headers["location"].rsplit("/", 1)[1]
    assert database(office)["events"].get(code)["county"] == "白沙黎族自治县"  # its 市县 by default
    elsewhere = office.post("/admin/events", data=form | {"county": "琼海市"})
    assert elsewhere.status_code == 422 and "只能新建本市县（白沙黎族自治县）的活动" in elsewhere.text
    assert database(office)["events"].count_where("county = '琼海市'") == 2


# --- the command line and the database --------------------------------------------------------


@pytest.mark.parametrize("given", ["白沙", "白沙黎族自治县"])
def test_user_add_takes_a_county_by_its_short_or_full_name_and_user_list_shows_it(workdir, given):
    made = run("user", "add", "bai", "--role", "county", "--county", given, input=f"{PASSWORD}\n".encode(), cwd=workdir)
    assert made.returncode == 0 and made.stderr.decode() == "user bai (county 白沙黎族自治县) added\n"
    listed = run("user", "list", cwd=workdir).stdout.decode().splitlines()
    assert listed[0].split()[:3] == ["username", "role", "county/unit"]
    assert re.fullmatch(r"bai +county +白沙黎族自治县 +active +\S+ +never", listed[1])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--role", "county", "--county", "北京"],
            "unknown county '北京': not one of Hainan's 市县 (海口市, 白沙黎族自治县, …)",
        ),
        (["--role", "county"], "a county account needs its county: --county 白沙 (one of Hainan's 市县)"),
        (["--role", "staff", "--county", "白沙"], "--county is for county accounts only (--role county), not staff"),
        (["--role", "county", "--organizer", "省教育厅"], "--organizer is for organizer accounts only (--role organizer), not county"),
        (["--role", "organizer"], "an organizer account needs its unit: --organizer 省教育厅 (as events name it)"),
        (["--role", "organizer", "--organizer", "省教委"], "unknown organizer '省教委': not one of the campaign's organizers (省市场监督管理局, …)"),
    ],
)  # fmt: skip
def test_a_wrong_county_or_unit_is_one_plain_line(tmp_path, args, message):
    forms_folder(tmp_path / "forms", CAMPAIGN_2022)
    refused = run("user", "add", "bai", *args, input=f"{PASSWORD}\n".encode(), cwd=tmp_path)
    assert refused.returncode == 2 and refused.stderr.decode() == f"quality-forms: {message}\n"
    assert "bai" not in run("user", "list", cwd=tmp_path).stdout.decode()


def test_an_organizer_account_is_one_of_the_campaign_s_co_hosts(tmp_path):
    forms_folder(tmp_path / "forms", CAMPAIGN_2022)
    made = run(
        "user",
        "add",
        "jy",
        "--role",
        "organizer",
        "--organizer",
        "省教育厅",
        input=f"{PASSWORD}\n".encode(),
        cwd=tmp_path,
    )
    assert made.returncode == 0 and made.stderr.decode() == "user jy (organizer 省教育厅) added\n"
    assert re.search(r"^jy +organizer +省教育厅 +active ", run("user", "list", cwd=tmp_path).stdout.decode(), re.M)


def test_the_upgrade_keeps_accounts_and_their_sessions(tmp_path):
    db = connect(tmp_path / "old.db")
    steps = migrations.MIGRATIONS
    index = [name for name, _ in steps].index("scoped_accounts")
    try:
        migrations.MIGRATIONS = steps[:index]  # the database as the release before this one made it
        migrations.migrate(db)
    finally:
        migrations.MIGRATIONS = steps
    db.execute(
        "INSERT INTO users (username, password_hash, role, created_at) VALUES ('wang', 'x', 'staff', '2022-09-01')"
    )
    db.execute("INSERT INTO sessions VALUES ('digest', 'wang', 'csrf', '2022-09-01', '2099-01-01')")
    assert "scoped_accounts" in migrations.migrate(db)
    assert list(db.execute("SELECT username, role, county FROM users")) == [("wang", "staff", "")]
    assert list(db.execute("SELECT token_hash, username FROM sessions")) == [("digest", "wang")]
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    db.execute("DELETE FROM users WHERE username = 'wang'")  # the sessions still follow their account
    assert db["sessions"].count == 0


def test_a_county_account_signs_in_with_its_county(tmp_path):
    db = connect(tmp_path / "db")
    migrations.migrate(db)
    with pytest.raises(AccountError):
        add_user(db, "bai", PASSWORD, "county")
    with pytest.raises(sqlite3.IntegrityError):  # the table holds the rule too
        db.execute("INSERT INTO users (username, password_hash, role, created_at) VALUES ('x', 'h', 'county', 't')")
    add_user(db, "bai", PASSWORD, "county", "白沙")
    signed = account_sign_in(db, "bai", PASSWORD, "10.0.0.1")
    assert signed is not None and signed[0].county == "白沙黎族自治县"
    assert signed[0].scope == Scope(county="白沙黎族自治县")


def test_an_organizer_account_sees_the_events_it_hosts_and_adds_them(office, counties):
    add_user(database(office), "jy", PASSWORD, "organizer", organizer="省教育厅")
    assert sign_in(office, "jy", PASSWORD).status_code == 303
    dashboard = office.get("/admin").text
    assert "白沙的活动" in dashboard and "琼海的活动" not in dashboard and "（省教育厅）" in dashboard
    assert office.get(f"/admin/events/{counties['白沙'].event}").status_code == 200
    assert office.get(f"/admin/events/{counties['琼海'].event}").status_code == 403
    made = office.post("/admin/events", data={"_csrf": _csrf(office), "form": "all-types", "title": "教育厅的活动",
                                              "county": "琼海市"}, follow_redirects=False)  # fmt: skip
    code = made.headers["location"].rsplit("/", 1)[1]
    assert database(office)["events"].get(code)["organizer"] == "省教育厅"  # a co-host's events are anywhere
    assert office.get(f"/admin/events/{code}").status_code == 200
