"""A burst of webhooks for one task: coalesced to the most advanced, never losing the end."""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.conftest import KNOWN, PATH, Endpoint


async def test_a_burst_of_progress_is_shown_as_a_few_edits_ending_at_the_latest(
    endpoint: Endpoint,
) -> None:
    bodies = [{"hash": KNOWN, "status": "progress", "progress": p} for p in range(1, 101)]
    answers = await asyncio.gather(*(endpoint.client.post(PATH, json=b) for b in bodies))
    assert [a.status for a in answers] == [200] * 100
    await endpoint.jobs.drain()
    shown = [call for call in endpoint.view.calls if call[0] == "progress"]
    # Each handled update reaches the database and the chat; most of the burst never needs to.
    assert 1 <= len(shown) < 50, len(shown)
    record = await endpoint.repo.get_by_hash(KNOWN)
    assert record is not None and record.progress == 100


async def test_a_late_progress_never_displaces_a_queued_result(endpoint: Endpoint) -> None:
    progress = [{"hash": KNOWN, "status": "progress", "progress": p} for p in range(1, 30)]
    done = {"hash": KNOWN, "status": "done", "progress": 100, "result": {"url": "https://x/a.png"}}
    late = {"hash": KNOWN, "status": "progress", "progress": 99}
    await asyncio.gather(
        *(endpoint.client.post(PATH, json=b) for b in [*progress, done, late, late])
    )
    await endpoint.jobs.drain()
    assert [call[0] for call in endpoint.view.calls].count("finished") == 1
    record = await endpoint.repo.get_by_hash(KNOWN)
    assert record is not None and record.status == "done"


async def test_a_result_is_stored_before_its_webhook_is_answered(
    endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A replica killed right after answering: what it would handle in the background never runs.
    monkeypatch.setattr(endpoint.jobs.inbox, "_spawn", lambda coro: coro.close())
    done = {"hash": KNOWN, "status": "done", "progress": 100, "result": {"url": "https://x/a.png"}}
    answer = await endpoint.client.post(PATH, json=done)
    assert answer.status == 200
    record = await endpoint.repo.get_by_hash(KNOWN)
    assert record is not None and record.status == "done"
    # What another replica's sweep does with it: the result is delivered, once.
    assert await endpoint.jobs.deliver_pending() == 1
    assert [call[0] for call in endpoint.view.calls] == ["finished"]
