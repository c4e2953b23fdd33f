"""The userapi client over real HTTP against a scripted aiohttp fake on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from PIL import Image

from bot.userapi import BlendImage, Task, TaskStatus, UserAPIClient, UserAPIError
from bot.userapi.simulator import DEFAULT_ACCOUNT, Simulator, SimulatorConfig

API_KEY = "test-key-5ecret"
TASK_HASH = "6794f6ef-866a-4bc3-b0bc-7b28ec010d1b"


@dataclass
class Reply:
    """One scripted answer: status, raw body text, content type, extra headers, a delay."""

    status: int = 200
    body: str | bytes = json.dumps({"hash": TASK_HASH})
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False


def js(payload: Any, status: int = 200, **headers: str) -> Reply:
    """A JSON reply."""
    return Reply(status=status, body=json.dumps(payload), headers=headers)


@dataclass
class Seen:
    """One request as the fake received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    content_type: str
    json: Any = None
    form: dict[str, Any] = field(default_factory=dict)


class FakeAPI:
    """A scripted userapi stand-in: records every request, answers from per-path queues."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.scripts: dict[tuple[str, str], list[Reply]] = {}
        self.release = asyncio.Event()
        self.base_url = ""
        self._runner: web.AppRunner | None = None

    def script(self, method: str, path: str, *replies: Reply) -> None:
        """Queue replies for a route; the last one repeats."""
        self.scripts[(method, path)] = list(replies)

    def calls(self, path: str) -> list[Seen]:
        """Requests seen on one path."""
        return [seen for seen in self.seen if seen.path == path]

    async def start(self) -> str:
        """Serve on a free 127.0.0.1 port; return the base url."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"
        return self.base_url

    async def stop(self) -> None:
        """Release hanging handlers and shut down."""
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        """Record the request, then answer with the next scripted reply."""
        seen = Seen(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={key.lower(): value for key, value in request.headers.items()},
            content_type=request.content_type,
        )
        if request.content_type.startswith("multipart/"):
            for name, value in (await request.post()).items():
                if isinstance(value, web.FileField):
                    seen.form[name] = (value.filename, value.content_type, value.file.read())
                else:
                    seen.form[name] = value
        else:
            raw = await request.read()
            seen.json = json.loads(raw) if raw else None
        self.seen.append(seen)
        queue = self.scripts.get((request.method, request.path), [Reply()])
        reply = queue.pop(0) if len(queue) > 1 else queue[0]
        if reply.hang:
            await asyncio.wait_for(self.release.wait(), timeout=10)
        return web.Response(
            status=reply.status,
            body=reply.body.encode() if isinstance(reply.body, str) else reply.body,
            content_type=reply.content_type,
            headers=reply.headers,
        )


@pytest.fixture
async def fake() -> AsyncIterator[FakeAPI]:
    """A running fake API."""
    server = FakeAPI()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def client(fake: FakeAPI) -> AsyncIterator[UserAPIClient]:
    """A client pointed at the fake, with fast retries."""
    async with UserAPIClient(
        base_url=fake.base_url, api_key=API_KEY, timeout=2.0, retry_backoff=0.01
    ) as api:
        yield api


async def public_resolver(host: str, port: int) -> list[str]:
    """DNS for a test without network: every name is on a public address."""
    return ["93.184.215.14"]


def _free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- request bodies, exactly as the doc writes them --------------------------------------------

WEBHOOK = "https://bot.example/userapi/webhook"

Call = Callable[[UserAPIClient], Awaitable[object]]

BODY_CASES: list[tuple[str, Call, str, dict[str, Any]]] = [
    (
        "imagine-full",
        lambda c: c.imagine(
            prompt="nice girl",
            webhook_url=WEBHOOK,
            webhook_type="progress",
            account_hash="acc-1",
            is_disable_prefilter=True,
        ),
        "/midjourney/v2/imagine",
        {
            "prompt": "nice girl",
            "webhook_url": WEBHOOK,
            "webhook_type": "progress",
            "account_hash": "acc-1",
            "is_disable_prefilter": True,
        },
    ),
    (
        "imagine-minimal",
        lambda c: c.imagine(prompt="nice girl"),
        "/midjourney/v2/imagine",
        {"prompt": "nice girl", "is_disable_prefilter": False},
    ),
    (
        "imagine-webhook-type-without-url-is-dropped",
        lambda c: c.imagine(prompt="p", webhook_type="result"),
        "/midjourney/v2/imagine",
        {"prompt": "p", "is_disable_prefilter": False},
    ),
    (
        "animate",
        lambda c: c.animate(hash="h1", choice="high", webhook_url=WEBHOOK, webhook_type="result"),
        "/midjourney/v2/animate",
        {"hash": "h1", "choice": "high", "webhook_url": WEBHOOK, "webhook_type": "result"},
    ),
    (
        "describe",
        lambda c: c.describe(url="https://example.com/image.jpg", account_hash="acc-1"),
        "/midjourney/v2/describe",
        {"url": "https://example.com/image.jpg", "account_hash": "acc-1"},
    ),
    (
        "upload-url",
        lambda c: c.upload_url(url="https://example.com/image.jpg"),
        "/midjourney/v2/upload",
        {"url": "https://example.com/image.jpg"},
    ),
    (
        "upscale",
        lambda c: c.upscale(hash="h1", choice=1, webhook_url=WEBHOOK, webhook_type="result"),
        "/midjourney/v2/upscale",
        {"hash": "h1", "choice": 1, "webhook_url": WEBHOOK, "webhook_type": "result"},
    ),
    (
        "upsample",
        lambda c: c.upsample(hash="h1", choice="v6_2x_subtle"),
        "/midjourney/v2/upsample",
        {"hash": "h1", "choice": "v6_2x_subtle"},
    ),
    (
        "variation-remix",
        lambda c: c.variation(hash="h1", choice=2, prompt="new prompt"),
        "/midjourney/v2/variation",
        {"hash": "h1", "choice": 2, "prompt": "new prompt"},
    ),
    (
        "variation-plain",
        lambda c: c.variation(hash="h1", choice=4),
        "/midjourney/v2/variation",
        {"hash": "h1", "choice": 4},
    ),
    (
        "seed",
        lambda c: c.seed(hash="h1", webhook_url=WEBHOOK),
        "/midjourney/v2/seed",
        {"hash": "h1", "is_async": True, "webhook_url": WEBHOOK},
    ),
    (
        "vary-subtle",
        lambda c: c.vary_subtle(hash="h1", prompt="remix"),
        "/midjourney/v2/vary-subtle",
        {"hash": "h1", "prompt": "remix"},
    ),
    (
        "vary-strong",
        lambda c: c.vary_strong(hash="h1", webhook_url=WEBHOOK),
        "/midjourney/v2/vary-strong",
        {"hash": "h1", "webhook_url": WEBHOOK},
    ),
    (
        "inpaint",
        lambda c: c.inpaint(hash="h1", mask_png=b"\x89PNG mask", prompt="a hat"),
        "/midjourney/v2/inpaint",
        {"hash": "h1", "mask": base64.b64encode(b"\x89PNG mask").decode(), "prompt": "a hat"},
    ),
    (
        "blend",
        lambda c: c.blend(
            urls=[
                BlendImage(url="https://example.com/image1.jpg", ext="jpg"),
                BlendImage(url="https://example.com/image2.png"),
            ],
            account_hash="acc-1",
            webhook_url=WEBHOOK,
            webhook_type="result",
        ),
        "/midjourney/v2/blend",
        {
            "urls": [
                {"url": "https://example.com/image1.jpg", "ext": "jpg"},
                {"url": "https://example.com/image2.png", "ext": "png"},
            ],
            "account_hash": "acc-1",
            "webhook_url": WEBHOOK,
            "webhook_type": "result",
        },
    ),
    (
        "reroll",
        lambda c: c.reroll(hash="h1", prompt="again"),
        "/midjourney/v2/reroll",
        {"hash": "h1", "prompt": "again"},
    ),
    (
        "zoom-choice",
        lambda c: c.zoom(hash="h1", choice=50),
        "/midjourney/v2/zoom",
        {"hash": "h1", "choice": 50},
    ),
    (
        "zoom-custom",
        lambda c: c.zoom(hash="h1", prompt="wide shot --zoom 1.8"),
        "/midjourney/v2/zoom",
        {"hash": "h1", "prompt": "wide shot --zoom 1.8"},
    ),
    (
        "pan",
        lambda c: c.pan(hash="h1", choice="left", prompt="more sea"),
        "/midjourney/v2/pan",
        {"hash": "h1", "choice": "left", "prompt": "more sea"},
    ),
    (
        "info",
        lambda c: c.info(account_hash="acc-1", webhook_url=WEBHOOK),
        "/midjourney/v2/info",
        {"account_hash": "acc-1", "webhook_url": WEBHOOK},
    ),
]


@pytest.mark.parametrize(
    ("call", "path", "expected"), [c[1:] for c in BODY_CASES], ids=[c[0] for c in BODY_CASES]
)
async def test_request_bodies_match_the_doc(
    fake: FakeAPI, client: UserAPIClient, call: Call, path: str, expected: dict[str, Any]
) -> None:
    fake.script(
        "POST",
        "/midjourney/v2/upload",
        js({"account_hash": "acc-1", "image": {"url": "https://cdn.example/x.png"}}),
    )
    await call(client)
    [seen] = fake.seen
    assert seen.method == "POST"
    assert seen.path == path
    assert seen.json == expected
    assert seen.content_type == "application/json"
    assert seen.headers["api-key"] == API_KEY


async def test_job_methods_return_the_hash(client: UserAPIClient) -> None:
    assert await client.imagine(prompt="nice girl") == TASK_HASH
    assert await client.upscale(hash="h1", choice=1) == TASK_HASH


async def test_prefer_and_speed_are_synchronous_and_unwrap_the_task(
    fake: FakeAPI, client: UserAPIClient
) -> None:
    fake.script(
        "POST",
        "/midjourney/v2/prefer",
        js(
            {
                "status": True,
                "result": {
                    "hash": "p1",
                    "type": "prefer",
                    "status": "done",
                    "result": "on",
                    "choice": "remix",
                },
            }
        ),
    )
    fake.script(
        "POST",
        "/midjourney/v2/speed",
        js(
            {
                "status": True,
                "result": {
                    "hash": "s1",
                    "type": "speed",
                    "status": "done",
                    "result": None,
                    "choice": "turbo",
                },
            }
        ),
    )
    prefer = await client.prefer(account_hash="acc-1")
    speed = await client.speed(account_hash="acc-1", choice="turbo")
    assert (prefer.hash, prefer.result) == ("p1", "on")
    assert (speed.hash, speed.result, speed.choice) == ("s1", None, "turbo")
    assert fake.calls("/midjourney/v2/prefer")[0].json == {
        "account_hash": "acc-1",
        "choice": "remix",
        "is_async": False,
    }
    assert fake.calls("/midjourney/v2/speed")[0].json == {
        "account_hash": "acc-1",
        "choice": "turbo",
        "is_async": False,
    }


async def test_status_and_discord_info_are_gets_with_query(
    fake: FakeAPI, client: UserAPIClient
) -> None:
    fake.script(
        "GET",
        "/midjourney/v2/status",
        js({"hash": TASK_HASH, "type": "imagine", "status": "progress", "progress": "40"}),
    )
    fake.script(
        "GET",
        "/discord/info",
        js({"hash": "acc-1", "token": "MTA.secret", "status": "active", "is_remix": False}),
    )
    task = await client.status(hash=TASK_HASH)
    account = await client.discord_info(account_hash="acc-1")
    assert task.progress == 40
    assert task.status is not None
    assert task.status.value == "progress"
    assert account.status == "active"
    assert "token" not in account.model_dump()
    status_call, info_call = fake.seen
    assert (status_call.method, status_call.query) == ("GET", {"hash": TASK_HASH})
    assert (info_call.method, info_call.query) == ("GET", {"account_hash": "acc-1"})
    assert info_call.path == "/discord/info"
    assert status_call.headers["api-key"] == info_call.headers["api-key"] == API_KEY


async def test_upload_is_multipart_with_an_image_field(
    fake: FakeAPI, client: UserAPIClient
) -> None:
    fake.script(
        "POST",
        "/midjourney/v2/upload",
        js(
            {
                "account_hash": "acc-9",
                "image": {"id": "1", "url": "https://cdn.example/cc.png", "ephemeral": False},
            }
        ),
    )
    result = await client.upload(
        image=b"\x89PNG fake bytes",
        filename="photo.png",
        content_type="image/png",
        account_hash="acc-9",
    )
    assert result.account_hash == "acc-9"
    assert result.image.url == "https://cdn.example/cc.png"
    [seen] = fake.seen
    assert seen.content_type == "multipart/form-data"
    assert seen.headers["api-key"] == API_KEY
    assert seen.form == {
        "image": ("photo.png", "image/png", b"\x89PNG fake bytes"),
        "account_hash": "acc-9",
    }


async def test_upload_without_account_sends_only_the_image(
    fake: FakeAPI, client: UserAPIClient
) -> None:
    fake.script(
        "POST", "/midjourney/v2/upload", js({"image": {"url": "https://cdn.example/a.jpg"}})
    )
    await client.upload(image=b"\xff\xd8\xff", filename="a.jpg", content_type="image/jpeg")
    assert set(fake.seen[0].form) == {"image"}


# --- hash extraction ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        {"hash": "abc"},
        {"status": True, "result": {"hash": "abc"}},
        {"hash": "abc", "type": "imagine", "status": "sent", "prompt": "p", "result": None},
        {"status": True, "result": {"hash": "abc", "type": "imagine", "status": "waiting"}},
    ],
    ids=["bare", "enveloped", "task", "enveloped-task"],
)
async def test_hash_is_found_in_every_answer_shape(
    fake: FakeAPI, client: UserAPIClient, payload: dict[str, Any]
) -> None:
    fake.script("POST", "/midjourney/v2/imagine", js(payload))
    assert await client.imagine(prompt="p") == "abc"


@pytest.mark.parametrize(
    "payload",
    [{}, {"hash": ""}, {"hash": 5}, ["abc"], "abc", {"status": True, "result": None}],
    ids=["empty", "blank", "number", "list", "string", "null-result"],
)
async def test_answer_without_a_hash_is_an_error(
    fake: FakeAPI, client: UserAPIClient, payload: Any
) -> None:
    fake.script("POST", "/midjourney/v2/imagine", js(payload))
    with pytest.raises(UserAPIError, match="without a task hash") as caught:
        await client.imagine(prompt="p")
    assert not caught.value.retryable


async def test_seed_returns_a_hash_or_a_task(fake: FakeAPI, client: UserAPIClient) -> None:
    fake.script(
        "POST",
        "/midjourney/v2/seed",
        js({"hash": "seed-1"}),
        js(
            {
                "status": True,
                "result": {
                    "hash": "seed-2",
                    "type": "seed",
                    "status": "done",
                    "result": {"seed": "984073766", "urls": []},
                },
            }
        ),
    )
    assert await client.seed(hash="h1") == "seed-1"
    task = await client.seed(hash="h1")
    assert isinstance(task, Task)
    assert task.seed is not None
    assert task.seed.seed == "984073766"


# --- errors -------------------------------------------------------------------------------------


async def test_error_body_gives_the_api_message(fake: FakeAPI, client: UserAPIClient) -> None:
    fake.script(
        "POST", "/midjourney/v2/upscale", js({"status": False, "error": "already upscaled"}, 400)
    )
    with pytest.raises(UserAPIError) as caught:
        await client.upscale(hash="h1", choice=1)
    assert caught.value.status == 400
    assert caught.value.message == "already upscaled"
    assert not caught.value.retryable
    assert not caught.value.is_auth_error


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"message": "queue full"}, "queue full"),
        ({"detail": "Not authenticated"}, "Not authenticated"),
        ({"error": "bad hash", "status": False}, "bad hash"),
    ],
)
async def test_other_error_keys_are_read(
    fake: FakeAPI, client: UserAPIClient, payload: dict[str, Any], message: str
) -> None:
    fake.script("POST", "/midjourney/v2/imagine", js(payload, 422))
    with pytest.raises(UserAPIError) as caught:
        await client.imagine(prompt="p")
    assert (caught.value.status, caught.value.message) == (422, message)


async def test_status_false_inside_a_200_is_an_error(fake: FakeAPI, client: UserAPIClient) -> None:
    fake.script("POST", "/midjourney/v2/prefer", js({"status": False, "error": "no account"}))
    with pytest.raises(UserAPIError) as caught:
        await client.prefer(account_hash="acc-x")
    assert (caught.value.status, caught.value.message) == (200, "no account")


@pytest.mark.parametrize("status", [401, 403])
async def test_rejected_key_is_an_auth_error_without_the_key(
    fake: FakeAPI, client: UserAPIClient, status: int
) -> None:
    # A server that echoes the key back must not get it into our messages.
    fake.script("POST", "/midjourney/v2/imagine", js({"error": f"bad key {API_KEY}"}, status))
    with pytest.raises(UserAPIError) as caught:
        await client.imagine(prompt="p")
    assert caught.value.is_auth_error
    assert API_KEY not in caught.value.message
    assert API_KEY not in str(caught.value)
    assert "bad key ***" in caught.value.message


async def test_html_502_gives_a_short_message(fake: FakeAPI, client: UserAPIClient) -> None:
    page = "<html>\n  <head><title>502 Bad Gateway</title></head>\n" + "x" * 5000 + "</html>"
    fake.script(
        "POST", "/midjourney/v2/imagine", Reply(status=502, body=page, content_type="text/html")
    )
    with pytest.raises(UserAPIError) as caught:
        await client.imagine(prompt="p")
    assert caught.value.status == 502
    assert caught.value.retryable
    assert caught.value.message.startswith("HTTP 502: <html> <head><title>502 Bad Gateway")
    assert len(caught.value.message) <= len("HTTP 502: ") + 200
    assert "\n" not in caught.value.message


async def test_empty_500_gives_a_short_message(fake: FakeAPI, client: UserAPIClient) -> None:
    fake.script(
        "GET", "/midjourney/v2/status", Reply(status=500, body="", content_type="text/plain")
    )
    with pytest.raises(UserAPIError) as caught:
        await client.status(hash="h1")
    assert (caught.value.status, caught.value.message) == (500, "HTTP 500")


async def test_non_json_200_is_an_error_not_a_crash(fake: FakeAPI, client: UserAPIClient) -> None:
    fake.script("POST", "/midjourney/v2/imagine", Reply(body="OK", content_type="text/plain"))
    with pytest.raises(UserAPIError, match="not JSON: OK") as caught:
        await client.imagine(prompt="p")
    assert caught.value.status == 200


async def test_unreadable_task_is_an_error(fake: FakeAPI, client: UserAPIClient) -> None:
    fake.script("GET", "/midjourney/v2/status", js({"status": "done"}))
    with pytest.raises(UserAPIError, match="unexpected task shape"):
        await client.status(hash="h1")


# --- retries ------------------------------------------------------------------------------------


async def test_post_that_fails_on_the_server_is_sent_exactly_once(
    fake: FakeAPI, client: UserAPIClient
) -> None:
    fake.script("POST", "/midjourney/v2/imagine", js({"error": "boom"}, 500))
    with pytest.raises(UserAPIError) as caught:
        await client.imagine(prompt="p")
    assert caught.value.status == 500
    assert len(fake.calls("/midjourney/v2/imagine")) == 1


async def test_post_429_is_not_retried(fake: FakeAPI, client: UserAPIClient) -> None:
    fake.script("POST", "/midjourney/v2/imagine", js({"error": "slow down"}, 429))
    with pytest.raises(UserAPIError) as caught:
        await client.imagine(prompt="p")
    assert caught.value.retryable
    assert len(fake.calls("/midjourney/v2/imagine")) == 1


async def test_status_retries_429_then_succeeds_honouring_retry_after(
    fake: FakeAPI, client: UserAPIClient
) -> None:
    fake.script(
        "GET",
        "/midjourney/v2/status",
        js({"error": "rate limited"}, 429, **{"Retry-After": "0.3"}),
        js({"hash": "h1", "status": "done"}),
    )
    started = time.monotonic()
    task = await client.status(hash="h1")
    assert time.monotonic() - started >= 0.3
    assert task.hash == "h1"
    assert len(fake.calls("/midjourney/v2/status")) == 2


async def test_status_gives_up_after_three_5xx(fake: FakeAPI, client: UserAPIClient) -> None:
    fake.script("GET", "/midjourney/v2/status", js({"error": "down"}, 503))
    with pytest.raises(UserAPIError) as caught:
        await client.status(hash="h1")
    assert (caught.value.status, caught.value.message) == (503, "down")
    assert len(fake.calls("/midjourney/v2/status")) == 3


async def test_status_does_not_wait_out_a_long_retry_after(
    fake: FakeAPI, client: UserAPIClient
) -> None:
    fake.script("GET", "/discord/info", js({"error": "later"}, 429, **{"Retry-After": "3600"}))
    with pytest.raises(UserAPIError) as caught:
        await client.discord_info(account_hash="acc-1")
    assert caught.value.retry_after == pytest.approx(3600)
    assert len(fake.calls("/discord/info")) == 1


async def test_status_4xx_is_not_retried(fake: FakeAPI, client: UserAPIClient) -> None:
    fake.script("GET", "/midjourney/v2/status", js({"error": "task not found"}, 404))
    with pytest.raises(UserAPIError, match="task not found"):
        await client.status(hash="nope")
    assert len(fake.calls("/midjourney/v2/status")) == 1


async def test_connection_refused_gives_status_none() -> None:
    base = f"http://127.0.0.1:{_free_port()}"
    async with UserAPIClient(base_url=base, api_key=API_KEY, retry_backoff=0.01) as api:
        with pytest.raises(UserAPIError) as caught:
            await api.imagine(prompt="p")
    assert caught.value.status is None
    assert caught.value.retryable
    assert API_KEY not in str(caught.value)


async def test_post_times_out_once_and_is_not_retried(fake: FakeAPI) -> None:
    fake.script("POST", "/midjourney/v2/imagine", Reply(hang=True))
    async with UserAPIClient(
        base_url=fake.base_url, api_key=API_KEY, timeout=0.2, retry_backoff=0.01
    ) as api:
        with pytest.raises(UserAPIError, match="timed out") as caught:
            await api.imagine(prompt="p")
    assert caught.value.status is None
    assert caught.value.retryable
    assert len(fake.calls("/midjourney/v2/imagine")) == 1


async def test_status_timeout_is_retried(fake: FakeAPI) -> None:
    fake.script(
        "GET", "/midjourney/v2/status", Reply(hang=True), js({"hash": "h1", "status": "sent"})
    )
    async with UserAPIClient(
        base_url=fake.base_url, api_key=API_KEY, timeout=0.2, retry_backoff=0.01
    ) as api:
        task = await api.status(hash="h1")
    assert task.hash == "h1"
    assert len(fake.calls("/midjourney/v2/status")) == 2


async def test_post_is_retried_only_when_the_connection_was_never_made() -> None:
    attempts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        attempts.append(request.url.path)
        if len(attempts) < 3:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json={"hash": "after-retries"})

    async with UserAPIClient(
        base_url="http://api.test",
        api_key=API_KEY,
        retry_backoff=0.0,
        transport=httpx.MockTransport(handler),
    ) as api:
        assert await api.imagine(prompt="p") == "after-retries"
    assert attempts == ["/midjourney/v2/imagine"] * 3


async def test_post_read_error_after_sending_is_not_retried() -> None:
    attempts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        attempts.append(request.url.path)
        raise httpx.ReadError("connection reset", request=request)

    async with UserAPIClient(
        base_url="http://api.test",
        api_key=API_KEY,
        retry_backoff=0.0,
        transport=httpx.MockTransport(handler),
    ) as api:
        with pytest.raises(UserAPIError) as caught:
            await api.upscale(hash="h1", choice=1)
    assert caught.value.status is None
    assert attempts == ["/midjourney/v2/upscale"]


async def test_argument_errors_are_raised_before_any_request(
    fake: FakeAPI, client: UserAPIClient
) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        await client.zoom(hash="h1")
    with pytest.raises(ValueError, match="exactly one"):
        await client.zoom(hash="h1", choice=50, prompt="p")
    with pytest.raises(ValueError, match="2 to 5"):
        await client.blend(urls=[BlendImage(url="https://example.com/a.png")])
    assert fake.seen == []


async def test_debug_log_has_method_path_status_and_no_key(
    client: UserAPIClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        await client.imagine(prompt="p")
    lines = [r.getMessage() for r in caplog.records if r.name == "bot.userapi.client"]
    assert any(
        line.startswith("POST /midjourney/v2/imagine -> 200 in ") and line.endswith(" ms")
        for line in lines
    )
    assert all(API_KEY not in r.getMessage() for r in caplog.records)


# --- fetch --------------------------------------------------------------------------------------


async def test_fetch_downloads_without_the_api_key(fake: FakeAPI, client: UserAPIClient) -> None:
    image = b"\x89PNG" + b"\0" * 1000
    fake.script("GET", "/cdn/grid.png", Reply(body=image, content_type="image/png"))
    data = await client.fetch(f"{fake.base_url}/cdn/grid.png?ex=1", max_bytes=10_000)
    assert data == image
    [seen] = fake.seen
    assert "api-key" not in seen.headers
    assert seen.query == {"ex": "1"}


async def test_fetch_refuses_a_body_over_the_limit(fake: FakeAPI, client: UserAPIClient) -> None:
    fake.script("GET", "/cdn/big.png", Reply(body="x" * 5000, content_type="image/png"))
    with pytest.raises(UserAPIError, match="byte limit") as caught:
        await client.fetch(f"{fake.base_url}/cdn/big.png", max_bytes=4999)
    assert not caught.value.retryable


async def test_fetch_refuses_a_streamed_body_over_the_limit(
    fake: FakeAPI, client: UserAPIClient
) -> None:
    chunks = [b"a" * 1000] * 6

    def handler(request: httpx.Request) -> httpx.Response:
        # No Content-Length: the limit must be enforced while streaming.
        return httpx.Response(
            200,
            stream=httpx.ByteStream(b"".join(chunks)),
            headers={"transfer-encoding": "chunked"},
        )

    async with UserAPIClient(
        base_url="http://api.test",
        api_key=API_KEY,
        transport=httpx.MockTransport(handler),
        resolve=public_resolver,
    ) as api:
        with pytest.raises(UserAPIError, match="over the 5000 byte limit"):
            await api.fetch("https://cdn.discordapp.test/a.png", max_bytes=5000)
        assert await api.fetch("https://cdn.discordapp.test/a.png", max_bytes=6000) == b"".join(
            chunks
        )


async def test_fetch_404_is_an_error(fake: FakeAPI, client: UserAPIClient) -> None:
    fake.script("GET", "/cdn/gone.png", Reply(status=404, body="", content_type="text/plain"))
    with pytest.raises(UserAPIError) as caught:
        await client.fetch(f"{fake.base_url}/cdn/gone.png", max_bytes=100)
    assert caught.value.status == 404
    assert len(fake.calls("/cdn/gone.png")) == 1


async def test_fetch_retries_a_5xx(fake: FakeAPI, client: UserAPIClient) -> None:
    fake.script(
        "GET",
        "/cdn/flaky.png",
        Reply(status=503, body="", content_type="text/plain"),
        Reply(body="img", content_type="image/png"),
    )
    assert await client.fetch(f"{fake.base_url}/cdn/flaky.png", max_bytes=100) == b"img"
    assert len(fake.calls("/cdn/flaky.png")) == 2


async def test_a_download_cut_off_midway_starts_the_file_over(tmp_path: Path) -> None:
    body = bytes(range(256)) * 40
    attempts = 0

    class CutOff(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield body[:3000]
            raise httpx.ReadError("connection reset")

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            return httpx.Response(200, stream=CutOff())
        return httpx.Response(200, content=body)

    async with UserAPIClient(
        base_url="http://api.test",
        api_key=API_KEY,
        transport=httpx.MockTransport(handler),
        retry_backoff=0.01,
        resolve=public_resolver,
    ) as api:
        target = tmp_path / "result"
        with target.open("wb") as sink:
            size = await api.download("https://cdn.discordapp.test/a.png", sink, max_bytes=10**6)
    assert attempts == 2
    assert size == len(body)
    assert target.read_bytes() == body


# --- against the built-in simulator -------------------------------------------------------------


@pytest.fixture
async def sim_client() -> AsyncIterator[tuple[Simulator, UserAPIClient]]:
    """The simulator with a key, and a client speaking to it."""
    sim = Simulator(SimulatorConfig(api_key=API_KEY, send_webhooks=False))
    base_url = await sim.start()
    try:
        async with UserAPIClient(base_url=base_url, api_key=API_KEY, retry_backoff=0.01) as api:
            yield sim, api
    finally:
        await sim.stop()


async def _until_final(api: UserAPIClient, task_hash: str) -> Task:
    """Poll /status until the task is done or failed."""
    async with asyncio.timeout(20):
        while True:
            task = await api.status(hash=task_hash)
            if task.status is not None and task.status.is_final:
                return task
            await asyncio.sleep(0.02)


async def test_imagine_then_upscale_against_the_simulator(
    sim_client: tuple[Simulator, UserAPIClient],
) -> None:
    sim, api = sim_client
    grid_hash = await api.imagine(prompt="a lighthouse at dusk --v 6")
    grid = await _until_final(api, grid_hash)
    assert grid.status is TaskStatus.DONE, grid.status_reason
    assert grid.hash == grid_hash
    assert grid.image is not None
    grid_png = await api.fetch(grid.image.url, max_bytes=20_000_000)
    assert grid_png.startswith(b"\x89PNG")
    assert grid.image.size in (None, len(grid_png))

    single_hash = await api.upscale(hash=grid_hash, choice=2)
    single = await _until_final(api, single_hash)
    assert single.status is TaskStatus.DONE, single.status_reason
    assert single.type == "upscale"
    assert single.image is not None
    assert (await api.fetch(single.image.url, max_bytes=20_000_000)).startswith(b"\x89PNG")

    [upscale_call] = sim.requests_to("/midjourney/v2/upscale")
    assert upscale_call.json() == {"hash": grid_hash, "choice": 2}
    cdn_calls = [r for r in sim.requests if r.path.startswith("/cdn/")]
    assert cdn_calls
    assert all("api-key" not in {k.lower() for k in r.headers} for r in cdn_calls)


async def test_account_calls_against_the_simulator(
    sim_client: tuple[Simulator, UserAPIClient],
) -> None:
    _, api = sim_client
    account = await api.discord_info(account_hash=DEFAULT_ACCOUNT)
    assert account.status == "active"
    assert "token" not in account.model_dump()
    before = account.is_remix
    toggled = await api.prefer(account_hash=DEFAULT_ACCOUNT)
    assert toggled.result == ("off" if before else "on")
    speed = await api.speed(account_hash=DEFAULT_ACCOUNT, choice="relax")
    assert speed.status is TaskStatus.DONE
    uploaded = await api.upload(image=_tiny_png(), filename="a.png", content_type="image/png")
    assert uploaded.image.url


async def test_simulator_rejects_a_wrong_key(sim_client: tuple[Simulator, UserAPIClient]) -> None:
    sim, _ = sim_client
    async with UserAPIClient(base_url=sim.base_url, api_key="wrong") as api:
        with pytest.raises(UserAPIError) as caught:
            await api.imagine(prompt="p")
    assert caught.value.is_auth_error
    assert caught.value.message == "Invalid api key"


def _tiny_png() -> bytes:
    """A real 8x8 PNG."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()
