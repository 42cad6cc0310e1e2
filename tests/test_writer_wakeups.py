"""Requests waiting on the writer are woken once per commit, not once each (issue 15)."""

from __future__ import annotations

import asyncio

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
