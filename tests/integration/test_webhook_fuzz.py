"""The userapi webhook under random and malformed requests: never a 500, nothing reaches a chat."""

from __future__ import annotations

import json
import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.web.server import MAX_WEBHOOK_BYTES, USERAPI_WEBHOOK_PREFIX
from tests.integration.conftest import KNOWN, PATH, Endpoint

STATUSES = ["created", "sent", "waiting", "progress", "done", "error", "weird", None, 5]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
# Shaped like a task object, with an unknown hash (or none, or the wrong type) and junk fields.
task_like = st.fixed_dictionaries(
    {
        "hash": st.one_of(st.uuids().map(str), st.integers(), st.none(), st.text(max_size=80)),
        "status": st.sampled_from(STATUSES),
    },
    optional={
        "progress": json_values,
        "result": json_values,
        "next_actions": json_values,
        "prefilter_result": json_values,
        "status_reason": json_values,
        "type": json_values,
        "choice": json_values,
    },
)
bodies = st.one_of(
    st.binary(max_size=2048),
    json_values.map(lambda v: json.dumps(v).encode()),
    task_like.map(lambda v: json.dumps(v).encode()),
    # Nested deeper than any parser's recursion limit.
    st.integers(min_value=500, max_value=5000).map(lambda n: b"[" * n + b"]" * n),
    st.text(max_size=200).map(str.encode),
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "multipart/form-data",
        "application/x-www-form-urlencoded",
        "image/png",
        "",
        "application/json; charset=koi8-r",
    ]
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies, content_type=content_types, secret_ok=st.booleans())
async def test_random_webhooks_never_fail_and_never_reach_a_chat(
    endpoint: Endpoint, body: bytes, content_type: str, secret_ok: bool
) -> None:
    path = PATH if secret_ok else USERAPI_WEBHOOK_PREFIX + "f" * 40
    headers = {"Content-Type": content_type} if content_type else {}
    response = await endpoint.client.post(path, data=body, headers=headers)
    text = await response.text()
    assert response.status in (200, 400, 404, 413, 415), (response.status, text)
    assert "Traceback" not in text
    await endpoint.jobs.drain()
    assert endpoint.view.calls == []


async def test_oversized_and_wrongly_typed_bodies_are_refused(
    endpoint: Endpoint, caplog: pytest.LogCaptureFixture
) -> None:
    big = json.dumps({"hash": "x", "status": "done", "pad": "x" * MAX_WEBHOOK_BYTES}).encode()
    response = await endpoint.client.post(
        PATH, data=big, headers={"Content-Type": "application/json"}
    )
    assert response.status == 413
    form = await endpoint.client.post(PATH, data={"hash": KNOWN, "status": "done"})
    assert form.status == 415
    with caplog.at_level(logging.INFO):
        deep = await endpoint.client.post(
            PATH, data=b"[" * 100_000, headers={"Content-Type": "application/json"}
        )
    assert deep.status == 400
    await endpoint.jobs.drain()
    assert endpoint.view.calls == []
    # The genuine article still gets through: the endpoint is alive and the task known.
    done = {"hash": KNOWN, "status": "done", "progress": 100, "result": {"url": "https://x/a.png"}}
    ok = await endpoint.client.post(PATH, json=done)
    assert ok.status == 200
    await endpoint.jobs.drain()
    assert [call[0] for call in endpoint.view.calls] == ["finished"]
