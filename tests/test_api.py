"""The read API (SPEC §5.7): bearer tokens, cursor paging, filters, masking, and the CLI and
office pages that make and revoke tokens."""

from __future__ import annotations

import json
import re
import threading

import httpx
import pytest

from server import tokens
from server.events import add_events, make_event
from server.storage import Submission, transaction
from tests.conftest import ADMIN_PASSWORD, csrf_token, database, make_app_client, run, running_server, sign_in

FORM = "all-types"
PERSONAL_ANSWERS = {"unit": "白沙中学", "name": "张三丰", "mobile": "13812345678", "topics": ["food"], "people": 30}


def context(client):
    return client.app.state["context"]


def store(client, answers: dict, key: str, form: str = FORM, event: str | None = None, spam: bool = False) -> int:
    """One response through the server's writer, as a submission is stored."""
    ctx = context(client)
    submission = Submission(ctx.catalog.get(form), key, answers, event, spam)
    return ctx.store.writer.submit(submission).result(timeout=10).response_id


def bulk(client, count: int, form: str = FORM) -> None:
    """`count` responses in one transaction (the first goes through the writer to register the form version)."""
    store(client, {"people": 0}, "bulk-first-000000000", form)
    db = database(client)
    version = context(client).catalog.get(form).version
    rows = (
        (form, version, f"bulk-{n:012d}", "2026-09-15T10:00:00+08:00", json.dumps({"people": n}))
        for n in range(1, count)
    )
    with transaction(db):
        db.conn.executemany(
            "INSERT INTO responses (form_id, form_version, submission_key, submitted_at, answers) VALUES (?, ?, ?, ?, ?)",
            rows,
        )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def new_token(client, name: str = "platform", form: str | None = None, personal: bool = False) -> str:
    return tokens.add_token(database(client), name, form, personal, "test")


def test_paging_over_100k_responses_returns_each_exactly_once_while_new_ones_arrive(tmp_path):
    with make_app_client(tmp_path) as client:
        bulk(client, 100_000)
        token = new_token(client)
        arriving: list[int] = []
        paging_done = threading.Event()

        def residents() -> None:  # submissions keep coming through the writer while the platform pages
            n = 0
            while not paging_done.is_set() and n < 2000:
                arriving.append(store(client, {"people": -n}, f"arriving-{n:010d}"))
                n += 1

        thread = threading.Thread(target=residents)
        thread.start()
        seen: list[int] = []
        after, pages = 0, 0
        while True:
            answer = client.get(f"/api/forms/{FORM}/responses?after={after}&limit=1000", headers=bearer(token))
            assert answer.status_code == 200
            assert answer.headers["content-type"] == "application/json"
            page = answer.json()
            seen += [r["id"] for r in page["responses"]]
            pages += 1
            if page["next"] is None:
                if not paging_done.is_set():  # caught up once: stop the residents, then page the rest
                    paging_done.set()
                    thread.join()
                    after = seen[-1]
                    continue
                break
            assert page["next"] == seen[-1]
            after = page["next"]
        thread.join()

    stored = [
        row[0] for row in database(client).execute(f"SELECT id FROM responses WHERE form_id = '{FORM}' ORDER BY id")
    ]
    assert len(arriving) > 10, "responses arrived while paging"
    assert seen == stored  # each exactly once, in order
    assert len(seen) == 100_000 + len(arriving)
    assert pages >= 100


def test_a_page_holds_the_response_as_stored_and_limit_is_capped(client):
    first = store(client, {"unit": "海口一中", "topics": ["food", "gas"], "people": 12}, "page-key-00000001")
    token = new_token(client, form=FORM)
    answer = client.get(f"/api/forms/{FORM}/responses", headers=bearer(token))
    [response] = answer.json()["responses"]
    assert response == {
        "id": first,
        "submitted_at": response["submitted_at"],
        "event": None,
        "answers": {"unit": "海口一中", "topics": ["food", "gas"], "people": 12},
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00", response["submitted_at"])
    assert answer.json()["next"] is None
    for bad in ("limit=0", "limit=1001", "limit=x", "after=-1", "after=²", "date_from=yesterday", "county=巴黎"):
        refused = client.get(f"/api/forms/{FORM}/responses?{bad}", headers=bearer(token))
        assert refused.status_code == 400, bad
        assert refused.json()["error"], bad
    assert client.get(f"/api/forms/{FORM}/responses?limit=1001", headers=bearer(token)).json() == {
        "error": "limit 应为 1 到 1000 之间的整数",
        "error_en": "bad query parameters (after, limit or the results page's filters)",
    }


def test_a_token_scoped_to_one_form_gets_403_for_another(client):
    store(client, {"people": 1}, "scope-key-0000001", form="photo-report")
    token = new_token(client, form=FORM)
    assert client.get(f"/api/forms/{FORM}/responses", headers=bearer(token)).status_code == 200
    other = client.get("/api/forms/photo-report/responses", headers=bearer(token))
    assert other.status_code == 403
    assert other.json() == {"error": "这个令牌不能读取该表单", "error_en": "this token does not reach that form"}
    assert client.get("/api/forms/no-such-form/responses", headers=bearer(token)).status_code == 403  # nothing told
    everything = new_token(client, "everything")
    assert client.get("/api/forms/photo-report/responses", headers=bearer(everything)).status_code == 200
    assert client.get("/api/forms/no-such-form/responses", headers=bearer(everything)).status_code == 404


def test_without_a_token_with_a_wrong_one_or_a_revoked_one_the_answer_is_401(client):
    token = new_token(client)
    url = f"/api/forms/{FORM}/responses"
    assert client.get(url, headers=bearer(token)).status_code == 200
    tokens.revoke_token(database(client), "platform")
    for headers in ({}, bearer(token), bearer(token[:-1] + "x"), {"Authorization": f"Basic {token}"}, bearer("")):
        answer = client.get(url, headers=headers)
        assert answer.status_code == 401, headers
        assert answer.headers["www-authenticate"] == 'Bearer realm="api"'
        assert answer.json() == {"error": "需要有效的访问令牌", "error_en": "a valid bearer token is required"}


def test_the_results_page_filters_apply_to_the_api(client):
    ctx = context(client)
    forms = {f.id: f for f in ctx.catalog.all()}
    baisha, haikou = add_events(
        database(client),
        [
            make_event(forms, {"form": FORM, "title": "白沙中学", "county": "白沙", "venue_type": "学校"}),
            make_event(forms, {"form": FORM, "title": "海口机关", "county": "海口", "venue_type": "机关"}),
        ],
    )
    in_baisha = store(client, {"people": 1}, "filter-key-000001", event=baisha.code)
    store(client, {"people": 2}, "filter-key-000002", event=haikou.code)
    store(client, {"people": 3}, "filter-key-000003")
    store(client, {"people": 4}, "filter-key-000004", event=baisha.code, spam=True)  # never shown
    token = new_token(client)

    def ids(query: str) -> list[int]:
        answer = client.get(f"/api/forms/{FORM}/responses?{query}", headers=bearer(token))
        assert answer.status_code == 200, answer.text
        return [r["id"] for r in answer.json()["responses"]]

    assert ids("county=白沙") == [in_baisha]
    assert ids("venue_type=学校") == [in_baisha]
    assert ids(f"event={baisha.code.lower()}") == [in_baisha]
    assert len(ids("")) == 3
    assert ids("date_from=2000-01-01&date_to=2000-01-02") == []


def test_personal_answers_are_masked_unless_the_token_carries_them(client):
    store(client, PERSONAL_ANSWERS, "personal-key-0001")
    masked = client.get(f"/api/forms/{FORM}/responses", headers=bearer(new_token(client, "masked")))
    assert masked.json()["responses"][0]["answers"] == {
        "unit": "白沙中学", "name": "张**", "mobile": "138****5678", "topics": ["food"], "people": 30
    }  # fmt: skip
    plain = client.get(f"/api/forms/{FORM}/responses", headers=bearer(new_token(client, "plain", personal=True)))
    assert plain.json()["responses"][0]["answers"] == PERSONAL_ANSWERS
    # Answers stored by other hands (spaced JSON, as Python's json writes it) are masked too.
    db = database(client)
    db.execute("UPDATE responses SET answers = ?", [json.dumps({"mobile": "13912345678", "people": 3})])
    again = client.get(f"/api/forms/{FORM}/responses", headers=bearer(new_token(client, "again")))
    assert again.json()["responses"][0]["answers"] == {"mobile": "139****5678", "people": 3}


def test_tokens_are_made_once_stored_hashed_listed_and_revoked_on_the_command_line(workdir):
    made = run("token", "add", "province", "--form", FORM, cwd=workdir)
    assert made.returncode == 0, made.stderr
    token = made.stdout.decode().strip()
    assert re.fullmatch(r"qf_[A-Za-z0-9_-]{43}", token)
    for stored in (workdir / "data").glob("quality-forms.db*"):  # the -wal too
        assert token.encode() not in stored.read_bytes()
    listed = run("token", "list", cwd=workdir).stdout.decode()
    assert re.search(rf"province\s+{FORM}\s+masked\s+\S+ \S+\s+active", listed), listed
    assert run("token", "add", "province", cwd=workdir).stderr.decode() == "quality-forms: 令牌 province 已经存在\n"
    assert (
        run("token", "add", "x", "--form", "nope", cwd=workdir).stderr.decode()
        == "quality-forms: unknown form 'nope'\n"
    )
    assert run("token", "revoke", "province", cwd=workdir).returncode == 0
    assert "revoked" in run("token", "list", cwd=workdir).stdout.decode()
    missing = run("token", "revoke", "ghost", cwd=workdir)
    assert (missing.returncode, missing.stderr.decode()) == (2, "quality-forms: 没有名为 ghost 的令牌\n")


def test_the_api_answers_through_the_trusted_proxy_and_refuses_a_foreign_host(workdir):
    made = run("token", "add", "platform", cwd=workdir)
    token = made.stdout.decode().strip()
    env = {"QF_BASE_URL": "https://forms.example.cn"}
    with running_server(workdir, "--workers", "1", env=env) as port:
        proxied = {
            "X-Forwarded-For": "203.0.113.9",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "forms.example.cn",
        }
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Host": "127.0.0.1"}) as proxy:
            answer = proxy.get(f"/api/forms/{FORM}/responses", headers=proxied | bearer(token))
            assert answer.status_code == 200
            assert answer.json() == {"responses": [], "next": None}
            assert answer.headers["x-content-type-options"] == "nosniff"  # the front door's headers
            assert answer.headers["cache-control"] == "no-store"
            assert proxy.get(f"/api/forms/{FORM}/responses", headers=proxied).status_code == 401
            foreign = proxy.get(f"/api/forms/{FORM}/responses", headers={"Host": "evil.example"} | bearer(token))
            assert foreign.status_code == 400


def test_an_admin_makes_a_token_in_the_office_sees_it_once_and_revokes_it(office):
    assert sign_in(office, "boss", ADMIN_PASSWORD).status_code == 303
    token = csrf_token(office, "/admin/tokens")
    made = office.post("/admin/tokens", data={"_csrf": token, "name": "province", "form": FORM, "personal": ""})
    assert made.status_code == 200
    shown = re.search(r'<code id="new-token">(qf_[^<]+)</code>', made.text).group(1)
    assert office.get(f"/api/forms/{FORM}/responses", headers=bearer(shown)).status_code == 200
    page = office.get("/admin/tokens").text
    assert shown not in page and "province" in page and "有效" in page
    again = office.post("/admin/tokens", data={"_csrf": token, "name": "province"})
    assert again.status_code == 422 and "令牌 province 已经存在" in again.text
    revoked = office.post("/admin/tokens/revoke", data={"_csrf": token, "name": "province"}, follow_redirects=False)
    assert revoked.status_code == 303
    assert office.get(f"/api/forms/{FORM}/responses", headers=bearer(shown)).status_code == 401
    actions = [row[0] for row in database(office).execute("SELECT action FROM audit_log ORDER BY id")]
    assert actions[-2:] == ["add-token", "revoke-token"]


@pytest.mark.parametrize("path", ["/admin/tokens", "/admin/webhooks"])
def test_staff_cannot_see_tokens_or_webhooks(office, path):
    assert sign_in(office, "wang", ADMIN_PASSWORD).status_code == 303
    assert office.get(path).status_code == 403
    token = csrf_token(office)
    assert office.post("/admin/tokens", data={"_csrf": token, "name": "mine"}).status_code == 403
