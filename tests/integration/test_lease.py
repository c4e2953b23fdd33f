"""The leader's lease on a real Redis that stops answering: never two leaders at once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
from redis.asyncio import Redis

from bot.build import REDIS_TIMEOUT_SECONDS, build_redis
from bot.config import Settings
from bot.runtime.lease import RedisLease
from bot.telegram.rate_windows import Scope
from bot.telegram.ratelimit import Limits
from bot.telegram.shared_budget import SharedBudget
from tests.e2e.proxy import TcpRelay


@pytest.fixture
async def relay(redis_url: str) -> AsyncIterator[TcpRelay]:
    """A way to Redis that can stall: what is sent is held, neither answered nor refused."""
    target = urlsplit(redis_url)
    assert target.hostname is not None and target.port is not None
    through = TcpRelay(target.hostname, target.port)
    await through.start()
    yield through
    await through.cut()


async def test_a_leader_cut_off_from_redis_stops_leading_before_a_standby_starts(
    redis_url: str, relay: TcpRelay
) -> None:
    # The leader's client waits long for an answer: its renewal hangs past the key's expiry.
    cut_off = Redis.from_url(f"redis://127.0.0.1:{relay.port}/0", socket_timeout=30)
    direct = Redis.from_url(redis_url)
    leader, standby = (
        RedisLease(client, "stall", ttl=2.0, renew=0.4, retry=0.1, margin=0.5)
        for client in (cut_off, direct)
    )
    events: list[str] = []

    async def note(what: str, event: asyncio.Event) -> None:
        await event.wait()
        events.append(what)

    try:
        async with leader.leading() as lost:
            relay.stall()
            stopped = asyncio.create_task(note("the leader stops", lost))
            async with standby.leading():
                events.append("the standby leads")
            await asyncio.wait_for(stopped, 60)
            # Letting go of the lease fails at once instead of waiting for the stalled Redis.
            await relay.cut()
    finally:
        await cut_off.aclose()
        await direct.aclose()
    assert events == ["the leader stops", "the standby leads"]


async def test_with_redis_stalled_a_message_falls_back_to_local_limits_within_the_timeout(
    relay: TcpRelay,
) -> None:
    settings = Settings(
        _env_file=None, bot_token="1:x", redis_url=f"redis://127.0.0.1:{relay.port}/0"
    )
    async with contextlib.AsyncExitStack() as stack:
        redis = await build_redis(settings, stack)
        assert redis is not None
        budget = SharedBudget(redis, 1, Limits())
        reserves: dict[Scope, int] = {"chat": 0, "group": 0, "global": 0}
        answer = await budget.take([(1, 42, reserves)])
        assert answer is not None and answer[0][0]  # granted by Redis
        relay.stall()
        # Not redis-py's 5 s per message: a few of our timeouts at most, then local limits.
        answer = await asyncio.wait_for(
            budget.take([(2, 42, reserves)]), timeout=3 * REDIS_TIMEOUT_SECONDS
        )
        assert answer is None  # out of reach: the replica's own limits let it go
        await relay.cut()  # closing the client must not wait for the stalled Redis
