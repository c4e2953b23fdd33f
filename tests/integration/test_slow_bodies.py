"""The userapi webhook over a real network: a body in delayed pieces or chunked is read whole."""

from __future__ import annotations

import json

import pytest

from bot.web.server import MAX_WEBHOOK_BYTES
from tests.hostile import post_in_pieces
from tests.integration.conftest import KNOWN, PATH, Endpoint

DONE = {
    "hash": KNOWN,
    "status": "done",
    "progress": 100,
    "type": "imagine",
    "prompt": "a known task",
    "result": {"url": "https://cdn.example.com/grid.png", "width": 1024, "height": 1024},
}


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_done_webhook_in_three_delayed_pieces_is_accepted(
    endpoint: Endpoint, chunked: bool
) -> None:
    port = endpoint.client.server.port
    assert port is not None
    body = json.dumps(DONE).encode()
    status, answer = await post_in_pieces(
        port, PATH, body, {"Content-Type": "application/json"}, chunked=chunked
    )
    assert (status, json.loads(answer)) == (200, {"ok": True})
    await endpoint.jobs.drain()
    assert [call[0] for call in endpoint.view.calls] == ["finished"]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_an_oversized_body_is_413_however_it_arrives(
    endpoint: Endpoint, chunked: bool
) -> None:
    port = endpoint.client.server.port
    assert port is not None
    body = json.dumps({**DONE, "pad": "x" * MAX_WEBHOOK_BYTES}).encode()
    status, _ = await post_in_pieces(
        port, PATH, body, {"Content-Type": "application/json"}, chunked=chunked, delay=0.05
    )
    assert status == 413
    await endpoint.jobs.drain()
    assert endpoint.view.calls == []


async def test_a_webhook_whose_host_resolves_privately_is_not_taken(endpoint: Endpoint) -> None:
    inside = {**DONE, "result": {"url": "https://inside.example.com/grid.png"}}
    response = await endpoint.client.post(PATH, json=inside)
    assert response.status == 200  # a hint; the API is asked instead (unreachable here)
    await endpoint.jobs.drain()
    assert endpoint.view.calls == []
    response = await endpoint.client.post(PATH, json=DONE)
    assert response.status == 200
    await endpoint.jobs.drain()
    assert [call[0] for call in endpoint.view.calls] == ["finished"]
