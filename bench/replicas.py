"""Two replicas of the bot on PostgreSQL and Redis, behind a round-robin proxy.

`python -m bench --only replicas`. Each replica is `python -m bot` with the same token,
database and Redis; the fake Telegram and the simulator call the proxy (webhooks for both),
which hands each request to the next replica, as a load balancer does. Measured: webhook
ingest per replica, a 300-result backlog through both (their one Telegram budget), and how
long the survivor takes to deliver the results a killed replica had claimed.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from bench.__main__ import (
    KEY,
    MB,
    Bench,
    done_body,
    failed_by_kind,
    ingest,
    pct,
    png_of_size,
    store,
)
from bot.playground.emulator import LimitedTelegram
from bot.userapi.simulator import Simulator, SimulatorConfig
from bot.web.server import USERAPI_WEBHOOK_PREFIX, derive_secret
from tests.e2e.proxy import RoundRobinProxy


@contextlib.asynccontextmanager
async def two_replicas(
    tg: LimitedTelegram, sim: Simulator, workdir: Path
) -> AsyncIterator[tuple[list[Bench], RoundRobinProxy]]:
    """Two bot processes on a throw-away PostgreSQL and redis-server, behind a proxy."""
    from tests.conftest import fresh_postgres_database
    from tests.servers import postgres_server, redis_server

    with postgres_server() as pg, redis_server() as redis:
        database = await fresh_postgres_database(pg)
        replicas = [
            Bench(tg, sim, workdir, webhooks=True, database_url=database) for _ in range(2)
        ]
        proxy = RoundRobinProxy([f"http://127.0.0.1:{r.port}" for r in replicas])
        await proxy.start()
        for replica in replicas:
            replica.env = {
                "REDIS_URL": redis,
                "PUBLIC_URL": proxy.url,
                "TELEGRAM_WEBHOOK": "true",
            }
        try:
            for replica in replicas:
                await replica.start()
            yield replicas, proxy
        finally:
            for replica in replicas:
                if replica.proc is not None and replica.proc.poll() is None:
                    replica.stop()
            await proxy.stop()


def hook_of(url: str, tg: LimitedTelegram) -> str:
    """userapi's webhook URL under a base URL (a replica's, or the proxy's)."""
    return f"{url}{USERAPI_WEBHOOK_PREFIX}{derive_secret(tg.token, 'userapi-webhook')}"


async def replicas_phases(tg: LimitedTelegram, workdir: Path) -> dict[str, Any]:
    """Ingest per replica, the backlog through both, failover after kill -9."""
    sim = Simulator(SimulatorConfig(pace=0.0, api_key=KEY, grid_size=256))
    await sim.start()
    try:
        async with two_replicas(tg, sim, workdir) as (replicas, proxy):
            sim.config.hold = True
            figures = {"ingest": await ingest_both(tg, replicas)}
            print("replicas ingest", figures["ingest"], flush=True)
            figures["backlog"] = await backlog_through(tg, replicas[0], proxy)
            print("replicas backlog", figures["backlog"], flush=True)
            figures["failover"] = await failover(tg, replicas)
            print("replicas failover", figures["failover"], flush=True)
            return figures
    finally:
        sim.release()
        await sim.stop()


async def started_and_shown(
    starter: Bench, chats: list[int], prompt: str, *, within: float
) -> list[str]:
    """One /imagine per chat, held at the API, each with its status message in its chat."""
    hashes = await starter.imagine_many(chats, prompt)
    await starter.tg.wait_for(
        "sendMessage",
        lambda c: c.ok and prompt in str(c.params.get("text")),
        count=len(chats),
        timeout=within,
    )
    return hashes


async def ingest_both(tg: LimitedTelegram, replicas: list[Bench]) -> dict[str, Any]:
    """10,000 progress webhooks to each replica at once (its own address, 20 at a time)."""
    hashes = await replicas[0].imagine_many([6_000_000 + n for n in range(200)], "ingest")
    runs = await asyncio.gather(*(ingest(replica, hashes, 10_000, 20) for replica in replicas))
    return {
        "per_replica": [run["per_second"] for run in runs],
        "combined_per_s": sum(run["per_second"] for run in runs),
        "p99_ms": max(run["p99_ms"] for run in runs),
    }


async def backlog_through(
    tg: LimitedTelegram, starter: Bench, proxy: RoundRobinProxy
) -> dict[str, Any]:
    """300 results from 100 chats (20 groups) at once, their webhooks spread over both."""
    chats = [7_000_000 + n for n in range(80)] + [-7_000_000 - n for n in range(20)]
    order = [chats[i % len(chats)] for i in range(300)]
    hashes = await started_and_shown(starter, order, "replicas backlog", within=300)
    url = store(starter.sim, "replicas.png", png_of_size(1 * MB))
    refused_before, calls_before = len(tg.refused), len(tg.requests)
    photos_before = len([c for c in tg.calls("sendPhoto") if c.ok])
    hook = hook_of(proxy.url, tg)
    posted: dict[int, float] = {}
    started = time.monotonic()
    async with aiohttp.ClientSession() as http:

        async def done(task_hash: str) -> None:
            posted[starter.chat_of[task_hash]] = time.monotonic()
            async with http.post(hook, json=done_body(task_hash, url)) as response:
                assert response.status == 200, response.status

        await asyncio.gather(*(done(h) for h in hashes))
    last = await tg.wait_for("sendPhoto", lambda c: c.ok, count=photos_before + 300, timeout=600)
    drain = last.at - started
    photos = [c for c in tg.calls("sendPhoto") if c.ok][photos_before:]
    lag = [c.at - posted[int(c.params["chat_id"])] for c in photos]
    sent = [t for t, _n, _c in tg.counted if started <= t <= last.at]
    # The status messages' removal follows each result: let it land before counting calls.
    await asyncio.sleep(1.0)
    calls = tg.requests[calls_before:]
    return {
        "results": 300,
        "drain_s": drain,
        "messages_per_s": len(sent) / drain,
        "done_to_photo_p50_ms": pct(lag, 50),
        "done_to_photo_p99_ms": pct(lag, 99),
        "429s": len(tg.refused) - refused_before,
        "telegram_calls": len(calls),
        "failed_calls": sum(1 for c in calls if not c.ok),
        "failed_by_kind": failed_by_kind(calls),
    }


async def failover(tg: LimitedTelegram, replicas: list[Bench]) -> dict[str, Any]:
    """100 results handed to one replica, which is killed (-9) while it delivers them."""
    doomed, survivor = replicas
    chats = [8_000_000 + n for n in range(100)]
    hashes = await started_and_shown(survivor, chats, "failover", within=120)
    url = store(survivor.sim, "failover.png", png_of_size(1 * MB))
    photos_before = len([c for c in tg.calls("sendPhoto") if c.ok])
    hook = hook_of(f"http://127.0.0.1:{doomed.port}", tg)
    async with aiohttp.ClientSession() as http:
        for task_hash in hashes:
            async with http.post(hook, json=done_body(task_hash, url)) as response:
                assert response.status == 200, response.status
    # Some results out, most claimed and waiting for Telegram's budget: then the kill.
    await tg.wait_for("sendPhoto", lambda c: c.ok, count=photos_before + 20, timeout=60)
    assert doomed.proc is not None
    doomed.proc.send_signal(signal.SIGKILL)
    doomed.proc.wait()
    killed = time.monotonic()
    before_kill = len([c for c in tg.calls("sendPhoto") if c.ok]) - photos_before
    # Each chat's first photo: a duplicate must not stand in for a result still on its way.
    async with asyncio.timeout(120):
        firsts = await first_photos(tg, photos_before, len(chats))
    await asyncio.sleep(2)  # a duplicate would come now
    per_chat = [int(c.params["chat_id"]) for c in tg.calls("sendPhoto") if c.ok][photos_before:]
    return {
        "results": 100,
        "delivered_before_kill": before_kill,
        "last_result_after_kill_s": max(firsts) - killed,
        "delivered": len(set(per_chat)),
        "duplicates": len(per_chat) - len(set(per_chat)),
    }


async def first_photos(tg: LimitedTelegram, skip: int, chats: int) -> list[float]:
    """When each of `chats` chats got its first photo (after the first `skip` photos)."""
    while True:
        firsts: dict[int, float] = {}
        for call in [c for c in tg.calls("sendPhoto") if c.ok][skip:]:
            firsts.setdefault(int(call.params["chat_id"]), call.at)
        if len(firsts) >= chats:
            return list(firsts.values())
        await asyncio.sleep(0.05)
