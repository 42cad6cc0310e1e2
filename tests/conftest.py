"""One test app factory: every test gets its own temporary database."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient
from sqlite_utils import Database

from server.app import create_app
from server.clock import set_now
from server.settings import Settings
from server.storage import connect

ROOT = Path(__file__).resolve().parent.parent
TEST_FORMS = Path(__file__).parent / "forms"
BUNDLED_FORMS = ROOT / "forms"
CAMPAIGN_2022 = BUNDLED_FORMS / "_campaign-2022.toml"  # the one year whose facts we have
OFFICE_ONLY_FORMS = {"event-report"}  # filled by staff in the office, never public


@pytest.fixture
def clock() -> Iterator[Callable[[dt.datetime | None], None]]:
    """Stop the product's clock for one test: `clock(dt.datetime(2027, 9, 15, 10))` (China
    time). A command or server in a subprocess takes `env={"QF_NOW": "2027-09-15T10:00:00"}`."""
    yield set_now
    set_now(None)


def forms_folder(where: Path, campaign: Path | str, forms: Path = TEST_FORMS) -> Path:
    """A copy of a forms folder with `campaign` (a file, or TOML text) as its campaign.toml."""
    shutil.copytree(forms, where)
    text = campaign.read_text(encoding="utf-8") if isinstance(campaign, Path) else campaign
    (where / "campaign.toml").write_text(text, encoding="utf-8")
    return where


@contextlib.contextmanager
def make_app_client(tmp_path: Path, forms: Path = TEST_FORMS, **settings) -> Iterator[TestClient]:
    """A client for an app over a fresh database in tmp_path; keywords override settings."""
    forms_copy = tmp_path / "forms"
    shutil.copytree(forms, forms_copy)
    defaults = {"forms": forms_copy, "db": tmp_path / "data" / "test.db", "allowed_hosts": "*"}
    app = create_app(Settings(**defaults | settings))
    with TestClient(app, base_url="http://testserver.local") as client:
        yield client


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with make_app_client(tmp_path) as client:
        yield client


CLI = [sys.executable, "-m", "server"]


def run(*args, cwd, input=None, env=None) -> subprocess.CompletedProcess:
    """`quality-forms ARGS` as a user runs it: a subprocess in cwd."""
    return subprocess.run(
        [*CLI, *args], cwd=cwd, input=input, capture_output=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )  # fmt: skip


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A working folder with the test forms in `forms/`, as the command line expects."""
    shutil.copytree(TEST_FORMS, tmp_path / "forms")
    return tmp_path


def database(client: TestClient) -> Database:
    return connect(client.app.state["context"].store.path)


def submission_key(page_html: str) -> str:
    match = re.search(r'name="_key" value="([^"]+)"', page_html)
    assert match, "the page carries a submission key"
    return match.group(1)


def sign_in(client, username: str, password: str, **headers):
    """Open the sign-in page and post the name and password, as a person would."""
    client.cookies.clear()
    page = client.get("/admin/login")
    token = re.search(r'name="_csrf" value="([^"]+)"', page.text).group(1)
    return client.post(
        "/admin/login",
        data={"_csrf": token, "username": username, "password": password},
        headers=headers,
        follow_redirects=False,
    )


ADMIN_PASSWORD = "correct horse battery"
# What a resident at a five-into session sends, and what is stored of it.
FIVE_INTO_ANSWERS = {
    "venue_type": "school",
    "unit_name": "海口市第一中学",
    "topics": ["food", "elevator"],
    "satisfaction": "4",
    "suggestion": "多来学校讲讲电梯安全。",
}


@pytest.fixture
def office(tmp_path: Path) -> Iterator[TestClient]:
    """An app over the test forms with an admin (boss) and two staff accounts (wang, li)."""
    from server.accounts import add_user

    with make_app_client(tmp_path) as client:
        db = database(client)
        add_user(db, "boss", ADMIN_PASSWORD, "admin")
        add_user(db, "wang", ADMIN_PASSWORD, "staff")
        add_user(db, "li", ADMIN_PASSWORD, "staff")
        yield client


def signed_in_admin(client, username: str = "boss") -> None:
    """Make an admin account over the client's database and sign it in."""
    from server.accounts import add_user

    add_user(database(client), username, ADMIN_PASSWORD, "admin")
    assert sign_in(client, username, ADMIN_PASSWORD).status_code == 303


@contextlib.contextmanager
def client_with_forms(tmp_path: Path, **forms: str) -> Iterator[TestClient]:
    """An app client over a forms folder holding just these TOML texts (keyword = form id)."""
    folder = tmp_path / "source"
    folder.mkdir()
    for form_id, text in forms.items():
        (folder / f"{form_id}.toml").write_text(text, encoding="utf-8")
    with make_app_client(tmp_path, forms=folder) as client:
        yield client


def errors_on_page(page_html: str) -> dict[str, str]:
    """Field name -> error text shown next to it."""
    return dict(re.findall(r'<p class="error" id="e-([\w]+)" aria-live="polite">([^<]+)</p>', page_html))


def stored_answers(client: TestClient) -> list[dict]:
    import json

    return [json.loads(row["answers"]) for row in database(client).query("SELECT answers FROM responses ORDER BY id")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(workdir: Path, *extra: str, env: dict[str, str] | None = None) -> Iterator[int]:
    """`quality-forms serve` as a real process in workdir; yields its port once healthy."""
    port = free_port()
    log = (workdir / "server.log").open("w+b")  # a file, not a pipe: a full pipe would stall the server
    process = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--port", str(port), *extra],
        cwd=workdir,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as answer:
                    if answer.read() == b"ok":
                        break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    raise AssertionError((workdir / "server.log").read_text()) from None
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:  # a stop that hangs is a bug: say so, and clean up
            process.kill()
            process.wait()
            raise AssertionError("the server did not stop within 15 s of SIGTERM") from None
        finally:
            log.close()


def csrf_token(client: TestClient, path: str = "/admin") -> str:
    """The CSRF token an office page carries for its forms."""
    return re.search(r'name="_csrf" value="([^"]+)"', client.get(path).text).group(1)
