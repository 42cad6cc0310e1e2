"""Webhooks (SPEC §5.7): the outbox written with each response, signed deliveries, retries on
the product clock, leases between senders, the 企业微信 daily summary, the office's log and
「重新发送」, and a server killed mid-load with a receiver that fails half the time."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from server import webhooks, wecom
from server.events import add_events, make_event
from server.forms import FormCatalog
from server.sender import Sender
from server.storage import StorageError, Store, Submission, connect
from tests.conftest import (
    ADMIN_PASSWORD,
    BUNDLED_FORMS,
    FIVE_INTO_ANSWERS,
    ROOT,
    TEST_FORMS,
    csrf_token,
    database,
    free_port,
    run,
    sign_in,
)

FORM = "all-types"
SECRET = "s3cret-for-the-platform"
START = dt.datetime(2026, 9, 15, 10, 0, 0)


class Backlogged(ThreadingHTTPServer):
    request_queue_size = 128  # a sender opens 16 connections at once; the default backlog is 5
    daemon_threads = True


class Receiver:
    """A local webhook receiver. `behaviour(delivery)` picks each answer: "ok", an HTTP status,
    "timeout" (no answer in time) or "reset" (the connection dropped). Duplicates of an
    accepted delivery are answered 200 and not counted again (the idempotency key)."""

    def __init__(self, behaviour: Callable[[str], str | int] = lambda _: "ok", hold: float = 1.5) -> None:
        self.behaviour, self.hold = behaviour, hold
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.accepted: dict[str, bytes] = {}
        self.duplicates = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if len(body) < int(self.headers["Content-Length"]):  # the sender died mid-request
                    self.close_connection = True
                    return
                headers = {k.lower(): v for k, v in self.headers.items()}
                delivery = headers.get("x-qf-delivery", "")
                with receiver.lock:
                    receiver.requests.append((headers, body))
                    answer = "ok" if delivery in receiver.accepted else receiver.behaviour(delivery)
                if answer == "timeout":
                    time.sleep(receiver.hold)
                    self.close_connection = True
                    return
                if answer == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    return
                status = 200 if answer == "ok" else int(answer)
                if status == 200:
                    with receiver.lock:
                        if delivery in receiver.accepted:
                            receiver.duplicates += 1
                        else:
                            receiver.accepted[delivery] = body
                reply = receiver.reply if status == 200 else b"no"
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self.reply = b"ok"
        self.server = Backlogged(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook?x=1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class Site:
    """The database, forms and writer of a server without its web app (so without the app's own
    sender): each test drives `Sender.run_once` itself, on the product clock."""

    def __init__(self, folder: Path) -> None:
        self.catalog = FormCatalog(TEST_FORMS)
        self.store = Store(folder / "data" / "test.db")
        self.store.start()
        self.db = connect(self.store.path)

    def close(self) -> None:
        self.store.close()
        self.db.conn.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    opened = Site(tmp_path)
    yield opened
    opened.close()


def store(site, answers: dict, key: str, form: str = FORM, spam: bool = False, event: str | None = None) -> int:
    """One response through the writer, as a submission is stored."""
    submission = Submission(site.catalog.get(form), key, answers, event, spam)
    return site.store.writer.submit(submission).result(timeout=10).response_id


def add_hook(site, url: str, **options) -> webhooks.Webhook:
    defaults = {"form_id": FORM, "secret": SECRET, "created_by": "test"}
    return webhooks.add_webhook(site.db, url, **defaults | options)


def sender(site, timeout: float = 0.5) -> Sender:
    return Sender(site.store.path, first_retry=10, timeout=timeout)


def messages(site) -> list[dict]:
    rows = site.db.execute("SELECT delivery, status, attempts, next_at, last_error FROM webhook_messages ORDER BY id")
    return [dict(zip(("delivery", "status", "attempts", "next_at", "last_error"), row, strict=True)) for row in rows]


def test_each_accepted_response_is_posted_once_signed_with_its_delivery_key(site, clock):
    clock(START)
    with Receiver() as receiver:
        hook = add_hook(site, receiver.url)
        other = add_hook(site, receiver.url, form_id="photo-report")
        first = store(site, {"unit": "白沙中学", "name": "张三丰", "mobile": "13812345678"}, "hook-key-00000001")
        second = store(site, {"people": 7}, "hook-key-00000002")
        store(site, {"people": 8}, "hook-key-00000003", spam=True)  # suspected spam goes nowhere
        keys = [f"{hook.id}-{first}-20260915100000", f"{hook.id}-{second}-20260915100000"]
        assert [m["delivery"] for m in messages(site)] == keys
        assert sender(site).run_once() == 2
        assert sender(site).run_once() == 0
    assert other.id != hook.id
    by_delivery = {headers["x-qf-delivery"]: (headers, body) for headers, body in receiver.requests}
    assert len(receiver.requests) == 2 and sorted(by_delivery) == keys
    headers, body = by_delivery[keys[0]]
    assert headers["x-qf-signature"] == "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {
        "form_id": FORM,
        "response": {
            "id": first,
            "submitted_at": "2026-09-15T10:00:00+08:00",
            "event": None,
            "answers": {"unit": "白沙中学", "name": "张**", "mobile": "138****5678"},  # masked: no --personal
        },
    }
    assert {m["status"] for m in messages(site)} == {"sent"}


def test_the_message_is_written_in_the_transaction_that_stores_the_response(site):
    """They stand or fall together: when the message cannot be written, the response is not stored."""
    add_hook(site, "http://127.0.0.1:9/x")
    store(site, {"people": 1}, "same-txn-key-00001")
    site.db.execute(  # the outbox's disk is full, say
        "CREATE TRIGGER outbox_full BEFORE INSERT ON webhook_messages BEGIN SELECT RAISE(ABORT, 'disk full'); END"
    )
    with pytest.raises(StorageError):
        store(site, {"people": 2}, "same-txn-key-00002")
    assert [row[0] for row in site.db.execute("SELECT submission_key FROM responses")] == ["same-txn-key-00001"]
    assert len(messages(site)) == 1


def test_deleting_the_newest_response_neither_sends_it_nor_hides_the_next(site, clock):
    from server.storage import delete_response

    clock(START)
    with Receiver() as receiver:
        hook = add_hook(site, receiver.url)
        sent = store(site, {"people": 1}, "deleted-key-00001")
        assert sender(site).run_once() == 1
        pending = store(site, {"people": 2}, "deleted-key-00002")
        delete_response(site.db, pending)  # a PIPL request, before it was sent
        delete_response(site.db, sent)  # and one after
        clock(START + dt.timedelta(seconds=1))
        later = store(site, {"people": 3}, "deleted-key-00003")
        assert later > pending > sent  # a deleted response's id is never given again
        assert sender(site).run_once() == 1
    assert sorted(receiver.accepted) == [f"{hook.id}-{sent}-20260915100000", f"{hook.id}-{later}-20260915100001"]
    assert json.loads(receiver.accepted[f"{hook.id}-{later}-20260915100001"])["response"]["answers"] == {"people": 3}


@pytest.mark.parametrize("failure", [500, 404, 302, "timeout", "reset", "refused"])
def test_any_failure_is_retried_with_a_doubling_delay_on_the_product_clock_then_given_up_after_three_days(
    site, clock, failure
):
    clock(START)
    with Receiver(lambda _: failure, hold=1.0) as receiver:
        url = f"http://127.0.0.1:{free_port()}/gone" if failure == "refused" else receiver.url
        add_hook(site, url)
        store(site, {"people": 1}, "retry-key-0000001")
        send = sender(site)
        waits = []
        moment = START
        for _ in range(5):
            clock(moment)
            assert send.run_once() == 1
            clock(moment + dt.timedelta(seconds=1))
            assert send.run_once() == 0  # not due yet
            [message] = messages(site)
            assert message["status"] == "pending" and message["last_error"]
            due = dt.datetime.fromisoformat(message["next_at"]).replace(tzinfo=None)
            waits.append((due - moment).total_seconds())
            moment = due
        assert waits == [10, 20, 40, 80, 160]
        clock(START + dt.timedelta(days=3) - dt.timedelta(seconds=1))
        assert send.run_once() == 1
        assert messages(site)[0]["status"] == "pending"
        assert messages(site)[0]["next_at"] == "2026-09-18T10:00:00+08:00"  # one last try at the end
        clock(START + dt.timedelta(days=3))
        assert send.run_once() == 1
        [message] = messages(site)
    assert (message["status"], message["attempts"]) == ("failed", 7)
    expected = {500: "对方回应 HTTP 500", 404: "对方回应 HTTP 404", 302: "对方回应 HTTP 302"}
    expected |= {"timeout": "超时（0.5 秒未回应）", "reset": "连接被对方断开", "refused": "连接被拒绝"}
    assert message["last_error"] == expected[failure]


def test_the_delay_is_capped_at_an_hour():
    assert [webhooks.retry_delay(n) for n in (1, 2, 9, 10, 40)] == [10, 20, 2560, 3600, 3600]


def test_two_senders_never_send_the_same_message(site, clock):
    clock(START)
    with Receiver() as receiver:
        add_hook(site, receiver.url)
        for n in range(120):
            store(site, {"people": n}, f"two-senders-{n:06d}")
        first, second = sender(site, timeout=5), sender(site, timeout=5)
        threads = [threading.Thread(target=lambda s=s: [s.run_once() for _ in range(6)]) for s in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    deliveries = [headers["x-qf-delivery"] for headers, _ in receiver.requests]
    assert len(deliveries) == len(set(deliveries)) == 120
    assert {m["status"] for m in messages(site)} == {"sent"}


def test_the_wecom_summary_goes_out_once_a_day_at_its_hour(site, clock):
    clock(START)
    forms = {f.id: f for f in site.catalog.all()}
    values = {"form": FORM, "county": "白沙", "venue_type": "学校", "date": "2026-09-15"}
    events = add_events(site.db, [make_event(forms, values | {"title": f"白沙第{n}场宣讲"}) for n in range(300)])
    for n, event in enumerate(events[:3]):
        store(site, {"people": n}, f"wecom-key-{n:07d}", event=event.code)
    with Receiver() as receiver:
        receiver.reply = b'{"errcode": 0, "errmsg": "ok"}'
        hook = add_hook(site, receiver.url, form_id=None, secret="", format="wecom", county="白沙", hour=20)
        send = sender(site)
        clock(START.replace(hour=19, minute=59, second=59))
        assert send.run_once() == 0
        clock(START.replace(hour=20))
        assert send.run_once() == 1
        clock(START.replace(hour=23))
        assert send.run_once() == 0  # once a day
        clock(START.replace(hour=20) + dt.timedelta(days=1))
        assert send.run_once() == 1
    [(headers, body), _] = receiver.requests
    assert headers["x-qf-delivery"] == f"{hook.id}-2026-09-15"
    message = json.loads(body)
    assert list(message) == ["msgtype", "markdown"] and message["msgtype"] == "markdown"
    content = message["markdown"]["content"]
    assert len(content.encode()) <= 4096
    assert content.startswith("### 质量月每日汇总 · 2026年9月15日\n**白沙黎族自治县**\n")
    assert '今日新增回答 <font color="info">3</font> 份，累计 3 份\n今日活动 300 场\n> 白沙第0场宣讲' in content
    assert content.endswith("\n……（其余从略）")
    assert {m["status"] for m in messages(site)} == {"sent"}


def test_a_wecom_error_code_is_a_failure():
    assert wecom.answer_error(b'{"errcode": 0, "errmsg": "ok"}') == ""
    assert wecom.answer_error(b'{"errcode": 93000, "errmsg": "invalid webhook url"}') == (
        "企业微信拒收：errcode 93000 invalid webhook url"
    )
    assert wecom.answer_error(b"<html>") == "企业微信回应的不是 JSON"


def test_the_office_shows_the_delivery_log_and_sends_again(office, clock):
    # The app's own sender runs here too: whichever sender gets a message first sends it.
    clock(START)
    ctx = office.app.state["context"]
    with Receiver(lambda _: 503) as receiver:
        webhooks.add_webhook(database(office), receiver.url, form_id=FORM, secret=SECRET, created_by="test")
        submission = Submission(ctx.catalog.get(FORM), "office-key-000001", {"people": 1})
        ctx.store.writer.submit(submission).result(timeout=10)
        until(lambda: messages_at(office)[0]["attempts"] == 1)
        assert sign_in(office, "boss", ADMIN_PASSWORD).status_code == 303
        page = office.get("/admin/webhooks?status=pending").text
        assert "对方回应 HTTP 503" in page and "待发送" in page and "重新发送" in page
        message_id = database(office).execute("SELECT id FROM webhook_messages").fetchone()[0]
        receiver.behaviour = lambda _: "ok"
        token = csrf_token(office, "/admin/webhooks")
        resent = office.post(
            f"/admin/webhooks/messages/{message_id}/resend", data={"_csrf": token}, follow_redirects=False
        )
        assert resent.status_code == 303  # due at once, though the retry was 10 s away on a stopped clock
        until(lambda: messages_at(office)[0]["status"] == "sent")
    assert [h["x-qf-attempt"] for h, _ in receiver.requests] == ["1", "2"]
    assert "已送达" in office.get("/admin/webhooks").text
    assert database(office).execute("SELECT action FROM audit_log ORDER BY id DESC").fetchone()[0] == "resend-webhook"
    assert office.post("/admin/webhooks/messages/999/resend", data={"_csrf": token}).status_code == 404


def test_webhook_commands_add_list_and_remove(workdir):
    added = run("webhook", "add", "https://platform.example.cn/in", "--form", FORM, "--secret", SECRET, cwd=workdir)
    assert added.returncode == 0, added.stderr
    assert added.stdout.decode() == "1 https://platform.example.cn/in\n"
    robot = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc"
    assert (
        run("webhook", "add", robot, "--format", "wecom", "--county", "白沙", "--hour", "18", cwd=workdir).returncode
        == 0
    )
    listed = run("webhook", "list", cwd=workdir).stdout.decode().splitlines()
    assert listed[1].split() == ["1", "json", FORM, "0", "0", "0", "https://platform.example.cn/in"]
    assert listed[2].split() == ["2", "wecom", "18h", "白沙黎族自治县", "*", "0", "0", "0", robot]
    for args, message in [
        (("ftp://x", "--form", FORM, "--secret", SECRET), "地址 'ftp://x' 不对，应以 http:// 或 https:// 开头"),
        (("https://x.cn", "--form", FORM), "json 格式需要表单（--form）和签名密钥（--secret）"),
        (("https://x.cn", "--form", FORM, "--secret", "short"), "签名密钥至少 16 个字符"),
        (("https://x.cn", "--format", "wecom", "--hour", "24"), "发送时间应为 0 到 23 点"),
    ]:
        refused = run("webhook", "add", *args, cwd=workdir)
        assert (refused.returncode, refused.stderr.decode()) == (2, f"quality-forms: {message}\n")
    from_stdin = run(
        "webhook", "add", "https://y.cn", "--form", FORM, "--secret", "-", cwd=workdir, input=f"{SECRET}\n".encode()
    )
    assert from_stdin.stdout.decode() == "3 https://y.cn\n"
    with contextlib.closing(connect(workdir / "data" / "quality-forms.db")) as db:
        assert db.execute("SELECT secret FROM webhooks WHERE id = 3").fetchone()[0] == SECRET
    assert run("webhook", "remove", "1", cwd=workdir).returncode == 0
    assert run("webhook", "remove", "1", cwd=workdir).stderr.decode() == "quality-forms: 没有编号为 1 的推送地址\n"


def messages_at(client) -> list[dict]:
    rows = database(client).execute("SELECT status, attempts FROM webhook_messages ORDER BY id")
    return [{"status": status, "attempts": attempts} for status, attempts in rows]


def until(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# A real server, killed ------------------------------------------------------------------


@contextlib.contextmanager
def serving(workdir: Path, env: dict[str, str]) -> Iterator[tuple[int, subprocess.Popen]]:
    """`quality-forms serve` in its own session (so SIGKILL reaches every worker); up once healthy."""
    port = free_port()
    with (workdir / "server.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "server", "serve", "--port", str(port)],
            cwd=workdir, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while post(port, "/healthz", None) != 200:
                assert process.poll() is None and time.monotonic() < deadline, (workdir / "server.log").read_text()
                time.sleep(0.1)
            yield port, process
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def post(port: int, path: str, answers: dict | None, timeout: float = 5) -> int | None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        if answers is None:
            connection.request("GET", path)
        else:
            body = urllib.parse.urlencode(answers, doseq=True).encode()
            connection.request("POST", path, body, {"Content-Type": "application/x-www-form-urlencoded"})
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


def test_kill_9_mid_load_with_a_receiver_failing_half_the_time_ends_with_one_signed_delivery_each(tmp_path):
    workdir = tmp_path
    shutil.copytree(BUNDLED_FORMS, workdir / "forms")
    chance = random.Random(14)
    failures = ["reset", 500, 503, "timeout", 404]
    failed: dict[str, int] = {}

    def flaky(delivery: str) -> str | int:
        """Half the answers fail, any way a receiver can; a delivery fails at most 3 times running
        (so a few unlucky ones do not wait out the doubling delay for minutes)."""
        if chance.random() < 0.5 or failed.get(delivery, 0) >= 3:
            return "ok"
        failed[delivery] = failed.get(delivery, 0) + 1
        return chance.choice(failures)

    env = {"QF_RATE_LIMIT": "0", "QF_WEBHOOK_RETRY": "1", "QF_WEBHOOK_TIMEOUT": "1"}
    with Receiver(flaky, hold=1.5) as receiver:
        hook = run("webhook", "add", receiver.url, "--form", "five-into-session", "--secret", SECRET, cwd=workdir)
        assert hook.returncode == 0, hook.stderr
        hook_id = hook.stdout.decode().split()[0]
        accepted: list[str] = []
        stop = threading.Event()

        def resident(thread: int, port: int) -> None:
            for n in range(10_000):
                key = f"kill-nine-{thread:03d}-{n:06d}"
                status = post(port, "/f/five-into-session", FIVE_INTO_ANSWERS | {"_key": key})
                if status == 303:
                    accepted.append(key)
                if stop.is_set() or status is None:
                    return

        with serving(workdir, env) as (port, process):
            threads = [threading.Thread(target=resident, args=(t, port)) for t in range(6)]
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + 20
            while (len(accepted) < 80 or len(receiver.accepted) < 20) and time.monotonic() < deadline:
                time.sleep(0.02)
            os.killpg(process.pid, signal.SIGKILL)  # mid-load: submissions and deliveries in flight
            process.wait(timeout=10)
            stop.set()
            for thread in threads:
                thread.join(timeout=10)
        sent_before_restart = len(receiver.accepted)

        with serving(workdir, env):
            db = database_at(workdir)
            rows = db.execute("SELECT submission_key, id, submitted_at FROM responses").fetchall()
            stored = {k for k, _, _ in rows}
            expected = {f"{hook_id}-{i}-{re.sub(r'[^0-9]', '', at[:19])}" for _, i, at in rows}
            deadline = time.monotonic() + 180  # a loaded CI machine: the sender yields to residents
            while set(receiver.accepted) != expected and time.monotonic() < deadline:
                time.sleep(0.2)
            statuses = dict(db.execute("SELECT status, count(*) FROM webhook_messages GROUP BY status").fetchall())
            missing = sorted(expected - set(receiver.accepted))
            stuck = db.execute(
                f"SELECT * FROM webhook_messages WHERE delivery IN ({', '.join('?' * len(missing))})", missing
            ).fetchall()

    assert set(accepted) <= set(stored), "every 303 was stored"
    assert len(accepted) >= 50 and 0 < sent_before_restart < len(expected)
    assert set(receiver.accepted) == expected, ("exactly one accepted delivery per stored response", stuck)
    for delivery, body in receiver.accepted.items():
        response = json.loads(body)["response"]
        assert delivery == f"{hook_id}-{response['id']}-{re.sub(r'[^0-9]', '', response['submitted_at'][:19])}"
    for headers, body in receiver.requests:  # every copy, failed ones too, is signed
        assert headers["x-qf-signature"] == "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert len(receiver.requests) > len(expected), "the receiver did fail some"
    assert statuses.get("sent", 0) >= len(expected) - 32  # the last round may still be recording


def database_at(workdir: Path):
    from server.storage import connect

    return connect(workdir / "data" / "quality-forms.db")
