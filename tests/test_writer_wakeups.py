"""Requests waiting on the writer are woken once per commit, not once each (issue 15)."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from server.forms import load_form
from server.storage import StorageError, Store, Submission
from tests.conftest import TEST_FORMS


def waiting_requests(store: Store, answers: list[dict]) -> tuple[list, int]:
    """Store the answers as that many requests on one event loop; their outcomes and the loop's wake-ups."""
    form = load_form(TEST_FORMS / "all-types.toml")

    async def main() -> tuple[list, int]:
        loop = asyncio.get_running_loop()
        wakeups = 0
        original = loop.call_soon_threadsafe

        def counted(*args, **kwargs):
            nonlocal wakeups
            wakeups += 1
            return original(*args, **kwargs)

        loop.call_soon_threadsafe = counted  # type: ignore[method-assign]
        requests = [store.writer.store(Submission(form, f"wakeup-{n:020d}", a)) for n, a in enumerate(answers)]
        return await asyncio.gather(*requests, return_exceptions=True), wakeups

    return asyncio.run(main())


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "t.db")
    store.start()
    yield store
    store.close()


def test_each_waiting_request_gets_its_own_receipt_with_one_wakeup_per_commit(store):
    outcomes, wakeups = waiting_requests(store, [{"unit": f"单位{n}"} for n in range(200)])
    assert sorted(r.response_id for r in outcomes) == list(range(1, 201))
    assert not any(r.duplicate for r in outcomes)
    assert wakeups == store.writer.commits < 200


def test_a_batch_that_cannot_be_stored_fails_each_of_its_requests_and_the_next_is_stored(store):
    outcomes, _ = waiting_requests(store, [{"unit": "\ud800"}])  # a lone surrogate cannot be UTF-8 JSON
    assert isinstance(outcomes[0], StorageError)
    outcomes, _ = waiting_requests(store, [{"unit": "琼海"}])
    assert outcomes[0].response_id == 1


def stored_requests(store: Store, keys: list[str]) -> list:
    """Each key's answer sent at once as a request of its own; the receipts, in order."""
    form = load_form(TEST_FORMS / "all-types.toml")

    async def main() -> list:
        return await asyncio.gather(*(store.writer.store(Submission(form, k, {"unit": k[-4:]})) for k in keys))

    return asyncio.run(main())


def test_each_receipt_names_the_row_stored_under_its_key_in_batches_with_keys_seen_before(store):
    first = stored_requests(store, [f"receipt-key-{n:08d}" for n in range(50)])
    again = [f"receipt-key-{n:08d}" for n in (7, 60, 61, 7, 62, 49)]  # seen, new, new, twice in one batch…
    second = stored_requests(store, again)
    with sqlite3.connect(store.path) as db:
        ids = dict(db.execute("SELECT submission_key, id FROM responses"))
        db.execute("DELETE FROM responses WHERE id = (SELECT max(id) FROM responses)")  # the newest goes
    deleted = max(ids.values())
    third = stored_requests(store, ["receipt-key-00000070", "receipt-key-00000071"])
    with sqlite3.connect(store.path) as db:
        ids |= dict(db.execute("SELECT submission_key, id FROM responses"))
    assert [r.response_id for r in first] == [ids[f"receipt-key-{n:08d}"] for n in range(50)]
    assert [(r.response_id, r.duplicate) for r in second] == [
        (ids[k], k in {"receipt-key-00000007", "receipt-key-00000049"} or n == 3) for n, k in enumerate(again)
    ]
    assert [r.response_id for r in third] == [ids["receipt-key-00000070"], ids["receipt-key-00000071"]]
    assert third[0].response_id > deleted  # the deleted newest id is never given again
    assert not any(r.duplicate for r in first + third)
