"""What an operator watches: /metrics after real jobs, /readyz as services come and go."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from bot.playground.emulator import FakeTelegram
from bot.userapi.simulator import Simulator
from bot.web.server import Readiness, build_web_app, metrics_allowed
from tests.conftest import fresh_postgres_database
from tests.e2e.harness import (
    SIM_KEY,
    BotHarness,
    button_data,
    free_port,
    has_keyboard,
    make_harness,
)
from tests.e2e.process import API_KEY, clean_env, start_bot, wait_healthy
from tests.e2e.proxy import TcpRelay

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
METRICS_TOKEN = "scrape-token-for-tests-0042"


def parse(text: str) -> Samples:
    """Every sample of an exposition, by name and labels (parsed as Prometheus would)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when the series does not exist (yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(
    harness: BotHarness, headers: Mapping[str, str] | Mapping[bytes, bytes] | None = None
) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.get(f"http://127.0.0.1:{harness.port}/metrics", headers=headers)


async def test_metrics_count_an_imagine_and_an_upscale(webhook_harness: BotHarness) -> None:
    harness, tg = webhook_harness, webhook_harness.tg
    before = parse((await scrape(harness)).text)
    ann = tg.user(4242, "Ann")
    chat = tg.private_chat(ann)
    prompt = "zanzibar lighthouse under aurora"
    tg.send_message(chat, ann, f"/imagine {prompt}")
    grid = await harness.photo_reply(chat["id"], has_keyboard)
    tg.press(grid, button_data(grid, "U1"), ann)
    await harness.photo_reply(chat["id"], has_keyboard, count=2)

    # The job is counted once Telegram's answer is stored, a moment after the photo arrived.
    async with asyncio.timeout(10):
        while True:
            response = await scrape(harness)
            after = parse(response.text)
            if (
                value(after, "mjbot_delivery_seconds_count")
                > value(before, "mjbot_delivery_seconds_count") + 1
            ):
                break
            await asyncio.sleep(0.05)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("mjbot_jobs_total", type="imagine", status="done") == 1
    assert grew("mjbot_jobs_total", type="upscale", status="done") == 1
    assert grew("mjbot_job_seconds_count", type="imagine") == 1
    assert grew("mjbot_job_seconds_count", type="upscale") == 1
    assert grew("mjbot_delivery_seconds_count") == 2
    assert grew("mjbot_updates_total", kind="message") >= 1
    assert grew("mjbot_updates_total", kind="callback_query") == 1
    assert grew("mjbot_telegram_requests_total", method="sendPhoto", outcome="ok") >= 2
    assert grew("mjbot_telegram_request_seconds_count", method="sendPhoto") >= 2
    assert grew("mjbot_userapi_requests_total", endpoint="imagine", status="200") == 1
    assert grew("mjbot_userapi_requests_total", endpoint="upscale", status="200") == 1
    assert grew("mjbot_userapi_request_seconds_count", endpoint="imagine") == 1
    # The two results were fetched from the image host: one series for every file, not one each.
    assert grew("mjbot_userapi_requests_total", endpoint="download", status="200") >= 2
    endpoints = {
        dict(labels)["endpoint"]
        for name, labels in after
        if name == "mjbot_userapi_requests_total"
    }
    assert not [endpoint for endpoint in endpoints if "." in endpoint], endpoints
    # The simulator calls back at each step of both jobs: at least a start and a done each.
    assert grew("mjbot_webhooks_total", source="userapi", outcome="accepted") >= 4
    assert value(after, "mjbot_webhooks_configured", source="userapi") == 1
    assert value(after, "mjbot_webhooks_configured", source="telegram") == 0
    # Both jobs are over: nothing waits and no slot is held.
    assert value(after, "mjbot_jobs_queued") == 0
    assert value(after, "mjbot_jobs_in_flight", account="any") == 0
    assert value(after, "process_resident_memory_bytes") > 0

    label_values = {text for _, labels in after for _, text in labels}
    for secret in (*prompt.split(), str(ann["id"]), tg.token, SIM_KEY, str(chat["id"])):
        assert not [text for text in label_values if secret in text], secret


async def test_metrics_answer_only_the_owner(
    tg: FakeTelegram, sim: Simulator, tmp_path: Path
) -> None:
    async for harness in make_harness(
        tg, sim, tmp_path, webhooks=True, metrics_token=METRICS_TOKEN
    ):
        # Through a reverse proxy (it says so in a header) the address proves nothing.
        forwarded = {"X-Forwarded-For": "203.0.113.7"}
        assert (await scrape(harness, forwarded)).status_code == 403
        wrong = {**forwarded, "Authorization": "Bearer not-the-token"}
        assert (await scrape(harness, wrong)).status_code == 403
        # Any bytes at all in the header: refused, not a server error.
        odd = {b"X-Forwarded-For": b"203.0.113.7", b"Authorization": "Bearer tökén".encode()}
        assert (await scrape(harness, odd)).status_code == 403
        right = {**forwarded, "Authorization": f"Bearer {METRICS_TOKEN}"}
        assert "mjbot_jobs_queued" in (await scrape(harness, right)).text
        # Loopback, directly: Prometheus next to the bot.
        assert (await scrape(harness)).status_code == 200


def test_metrics_refuse_public_addresses() -> None:
    assert not metrics_allowed("203.0.113.7", {}, None)
    assert not metrics_allowed("2001:db8::1", {}, None)
    assert not metrics_allowed("8.8.8.8", {}, "token-of-the-owner")
    assert not metrics_allowed("8.8.8.8", {"Authorization": "Bearer tökén"}, "token-of-the-owner")
    assert metrics_allowed(
        "8.8.8.8", {"Authorization": "Bearer token-of-the-owner"}, "token-of-the-owner"
    )
    assert metrics_allowed("10.0.3.7", {}, None)
    assert metrics_allowed("::1", {}, None)
    assert metrics_allowed("::ffff:172.18.0.5", {}, None)  # a container network, dual-stack
    assert not metrics_allowed("::ffff:8.8.8.8", {}, None)
    assert not metrics_allowed("10.0.3.7", {"X-Real-IP": "8.8.8.8"}, None)


async def readiness_of(harness: BotHarness) -> tuple[int, dict[str, object]]:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"http://127.0.0.1:{harness.port}/readyz")
    return response.status_code, response.json()


async def until_ready_is(
    harness: BotHarness, status: int, timeout: float = 20.0
) -> dict[str, object]:
    """Poll /readyz until it answers `status`; its body."""
    async with asyncio.timeout(timeout):
        while True:
            code, body = await readiness_of(harness)
            if code == status:
                return body
            await asyncio.sleep(0.2)


async def test_readyz_follows_the_database_and_redis(
    tg: FakeTelegram, sim: Simulator, tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    database = await fresh_postgres_database(postgres_url)
    pg, rd = urlsplit(database), urlsplit(redis_url)
    assert pg.hostname and pg.port and rd.hostname and rd.port
    pg_relay, redis_relay = TcpRelay(pg.hostname, pg.port), TcpRelay(rd.hostname, rd.port)
    await pg_relay.start()
    await redis_relay.start()
    overrides = {
        "database_url": database.replace(f":{pg.port}/", f":{pg_relay.port}/"),
        "redis_url": redis_url.replace(f":{rd.port}", f":{redis_relay.port}"),
    }
    try:
        async for harness in make_harness(tg, sim, tmp_path, webhooks=True, **overrides):
            assert await readiness_of(harness) == (200, {"status": "ready"})

            await pg_relay.cut()
            body = await until_ready_is(harness, 503)
            assert body == {"status": "unavailable", "down": ["database"]}
            async with httpx.AsyncClient() as http:  # alive all the same: no restart wanted
                health = await http.get(f"http://127.0.0.1:{harness.port}/healthz")
            assert health.status_code == 200
            await pg_relay.start()
            await until_ready_is(harness, 200)

            await redis_relay.cut()
            body = await until_ready_is(harness, 503)
            assert body == {"status": "unavailable", "down": ["redis"]}
            await redis_relay.start()
            await until_ready_is(harness, 200)
    finally:
        await pg_relay.cut()
        await redis_relay.cut()


async def test_readyz_says_starting_and_stopping() -> None:
    readiness = Readiness()
    app = build_web_app(
        jobs=None,  # type: ignore[arg-type]  # the readiness routes use none of these
        client=None,  # type: ignore[arg-type]
        tasks=None,  # type: ignore[arg-type]
        webhook_secret="unused-secret",
        readiness=readiness,
    )
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/readyz")
        assert (response.status, await response.json()) == (503, {"status": "starting"})
        readiness.started = True
        assert (await client.get("/readyz")).status == 200
        readiness.stopping = True
        response = await client.get("/readyz")
        assert (response.status, await response.json()) == (503, {"status": "stopping"})
        # Liveness is another question: a stopping bot is still alive.
        assert (await client.get("/healthz")).status == 200


async def test_json_logs_of_a_whole_run_carry_the_job(
    tg: FakeTelegram, external_sim: Simulator, tmp_path: Path
) -> None:
    port = free_port()
    env = clean_env(
        BOT_TOKEN=tg.token,
        TELEGRAM_API_URL=tg.base_url,
        USERAPI_KEY=API_KEY,
        USERAPI_BASE_URL=external_sim.base_url,
        WEB_HOST="127.0.0.1",
        WEB_PORT=str(port),
        DATABASE_PATH=str(tmp_path / "bot.sqlite3"),
        POLL_INTERVAL="0.1",
        PROGRESS_EDIT_INTERVAL="0.1",
        LOG_LEVEL="DEBUG",
        LOG_FORMAT="JSON",
    )
    process, output = await start_bot(env, tmp_path)
    try:
        await wait_healthy(f"http://127.0.0.1:{port}/healthz")
        ann = tg.user(3001, "Ann")
        tg.send_message(tg.private_chat(ann), ann, "/imagine a harbour at dawn")
        await tg.wait_for("sendPhoto", lambda c: c.ok and "reply_markup" in c.params, timeout=20)
        # Its "delivered" line comes once Telegram's answer is stored.
        await output.wait_for("its chat has the outcome")
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await output.close()

    lines = [json.loads(line) for line in (output.stderr + output.stdout).splitlines()]
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    task = next(iter(external_sim.tasks.values()))
    about_job = [line for line in lines if task["hash"] in line["message"]]
    assert about_job, "no line about the job"
    unmarked = [line for line in about_job if line.get("task_hash") != task["hash"]]
    assert not unmarked
    delivered = [line for line in lines if "its chat has the outcome" in line["message"]]
    assert delivered[0]["task_hash"] == task["hash"]
    assert delivered[0]["chat_id"] == ann["id"]
    # The update that asked for it is logged with its user.
    assert any(line.get("user_id") == ann["id"] and "update_id" in line for line in lines)
