"""One test app factory: every test gets its own temporary database."""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient
from sqlite_utils import Database

from server.app import create_app
from server.settings import Settings
from server.storage import connect

ROOT = Path(__file__).resolve().parent.parent
TEST_FORMS = Path(__file__).parent / "forms"
BUNDLED_FORMS = ROOT / "forms"


@contextlib.contextmanager
def make_app_client(tmp_path: Path, forms: Path = TEST_FORMS, **settings) -> Iterator[TestClient]:
    """A client for an app over a fresh database in tmp_path; keywords override settings."""
    forms_copy = tmp_path / "forms"
    shutil.copytree(forms, forms_copy)
    app = create_app(Settings(forms=forms_copy, db=tmp_path / "data" / "test.db", **settings))
    with TestClient(app, base_url="http://testserver.local") as client:
        yield client


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with make_app_client(tmp_path) as client:
        yield client


def database(client: TestClient) -> Database:
    return connect(client.app.state["context"].store.path)


def submission_key(page_html: str) -> str:
    match = re.search(r'name="_key" value="([^"]+)"', page_html)
    assert match, "the page carries a submission key"
    return match.group(1)


def errors_on_page(page_html: str) -> dict[str, str]:
    """Field name -> error text shown next to it."""
    return dict(re.findall(r'<p class="error" id="e-([\w]+)" aria-live="polite">([^<]+)</p>', page_html))


def stored_answers(client: TestClient) -> list[dict]:
    import json

    return [json.loads(row["answers"]) for row in database(client).query("SELECT answers FROM responses ORDER BY id")]
