"""Abuse without losing people: the honeypot, allowed hosts, purging personal answers, quiet logs."""

import json

from server.export import export_csv
from server.results import Filters
from tests.conftest import database, make_app_client, run, running_server, submission_key
from tests.test_cli import post_status
from tests.test_office import PASSWORD, sign_in
from tests.test_submit import GOOD

PERSONAL = GOOD | {"name": "张三丰", "mobile": "13812345678", "_consent": "yes"}


def test_a_filled_honeypot_is_stored_flagged_and_left_out_of_results_and_exports(client):
    page = client.get("/f/all-types").text
    assert 'name="_homepage"' in page and 'tabindex="-1"' in page and "请勿填写此项" in page
    bot = client.post("/f/all-types", data=GOOD | {"_key": submission_key(page), "_homepage": "http://spam.example"},
                      follow_redirects=False)  # fmt: skip
    assert bot.status_code == 303  # the same answer as a person: a bot learns nothing
    person = client.post("/f/all-types", data=GOOD | {"_key": submission_key(client.get("/f/all-types").text)},
                         follow_redirects=False)  # fmt: skip
    assert person.status_code == 303
    rows = list(database(client).query("SELECT suspected_spam FROM responses ORDER BY id"))
    assert [r["suspected_spam"] for r in rows] == [1, 0]  # kept, never dropped
    form = client.app.state["context"].catalog.get("all-types")
    assert len(b"".join(export_csv(database(client), form)).splitlines()) == 2  # header + the person
    assert len(b"".join(export_csv(database(client), form, Filters(spam="include"))).splitlines()) == 3


def test_the_office_sees_suspected_spam_but_does_not_count_it(client):
    from server.accounts import add_user

    add_user(database(client), "boss", PASSWORD, "admin")
    page = client.get("/f/all-types").text
    client.post("/f/all-types", data=GOOD | {"_key": submission_key(page), "_homepage": "x"}, follow_redirects=False)
    sign_in(client, "boss")
    assert "<strong>0</strong> 份答卷" in client.get("/admin/forms/all-types").text
    assert "疑似垃圾" in client.get("/admin/forms/all-types/responses").text
    spam_csv = client.get("/admin/forms/all-types/export.csv?spam=include").content
    assert len(spam_csv.splitlines()) == 2
    assert len(client.get("/admin/forms/all-types/export.csv").content.splitlines()) == 1


def test_only_allowed_hosts_are_answered(tmp_path):
    with make_app_client(tmp_path, base_url="https://q.example.cn", allowed_hosts="") as client:
        refused = client.get("/f/all-types")
        assert refused.status_code == 400 and "请求有误" in refused.text
        client.base_url = "https://q.example.cn"
        assert client.get("/f/all-types").status_code == 200
    with make_app_client(tmp_path / "b", allowed_hosts="*.example.cn") as client:
        client.base_url = "http://zlj.example.cn"
        assert client.get("/").status_code == 200
        client.base_url = "http://example.com"
        assert client.get("/").status_code == 400


def test_purge_removes_personal_answers_after_the_retention_period(workdir):
    (workdir / "web").mkdir()
    settings = {"db": workdir / "data" / "quality-forms.db"}
    with make_app_client(workdir / "web", forms=workdir / "forms", **settings) as client:
        for data in (PERSONAL, GOOD):
            page = client.get("/f/all-types").text
            client.post("/f/all-types", data=data | {"_key": submission_key(page)}, follow_redirects=False)
    kept = run("purge", "all-types", "--older-than", "30", cwd=workdir)  # nothing is that old yet
    assert kept.returncode == 0 and "from 0 response(s)" in kept.stdout.decode()
    purged = run("purge", "all-types", "--older-than", "0", cwd=workdir)
    assert purged.returncode == 0, purged.stderr
    assert "personal answers (mobile, name) removed from 1 response(s)" in purged.stdout.decode()
    db = database_at(workdir)
    answers = [json.loads(row["answers"]) for row in db.query("SELECT answers FROM responses ORDER BY id")]
    assert "name" not in answers[0] and "mobile" not in answers[0] and answers[0]["unit"] == GOOD["unit"]
    assert [row["action"] for row in db["audit_log"].rows] == ["purge", "purge"]
    assert run("purge", "all-types", "--older-than", "-1", cwd=workdir).returncode == 2
    assert (
        run("purge", "closed", "--older-than", "1", cwd=workdir)
        .stderr.decode()
        .strip()
        .endswith("has no personal questions")
    )


def database_at(workdir):
    from server.storage import connect

    return connect(workdir / "data" / "quality-forms.db")


def test_nothing_personal_reaches_the_server_log(workdir):
    with running_server(workdir) as port:
        page = run_get(port, "/f/all-types")
        assert post_status(port, "/f/all-types", PERSONAL | {"_key": submission_key(page)}) == 303
        assert post_status(port, "/f/all-types", {"unit": "x", "mobile": "13999999999"}) == 422
    log = (workdir / "server.log").read_text()
    assert "13812345678" not in log and "张三丰" not in log and "13999999999" not in log


def run_get(port, path):
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
        return answer.read().decode()


def test_suspected_spam_is_not_counted_in_the_report(client):
    from server.report import build_report

    page = client.get("/f/all-types").text
    client.post("/f/all-types", data=GOOD | {"_key": submission_key(page), "_homepage": "x"}, follow_redirects=False)
    forms = {f.id: f for f in client.app.state["context"].catalog.all()}
    assert build_report(database(client), forms).total.responses == 0
