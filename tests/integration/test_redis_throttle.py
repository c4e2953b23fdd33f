"""The flood throttle in Redis: replicas on one Redis give a sender one allowance, not one each."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from handlers.middlewares.throttle import ALBUM_SIZE, RedisThrottle


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


async def test_two_replicas_share_one_allowance_and_one_notice(redis: Redis) -> None:
    # No refill: the verdicts depend on the count alone, never on how fast the test runs.
    one, two = (RedisThrottle(redis, burst=3, per_second=0.0) for _ in range(2))
    assert [await one.check("1:7"), await two.check("1:7"), await one.check("1:7")] == [
        True,
        True,
        True,
    ]
    assert await two.check("1:7") is False  # the fourth, whichever replica takes it
    assert await one.check("1:7") is None  # one notice per flood, not one per replica
    assert await two.check("1:8") is True  # someone else is not held back
    assert await one.check("2:7") is True  # nor the same user of another bot


async def test_an_album_counts_once_across_replicas(redis: Redis) -> None:
    one, two = (RedisThrottle(redis, burst=2, per_second=0.0) for _ in range(2))
    parts = [await (one, two)[n % 2].check("1:7", album="a") for n in range(ALBUM_SIZE)]
    assert all(parts)  # 1 token for the whole album, its parts on either replica
    # Parts beyond what an album can hold pay like any message: the second token, then none.
    assert await two.check("1:7", album="a") is True
    assert await one.check("1:7", album="a") is False


async def test_a_bucket_refills_on_redis_clock(redis: Redis) -> None:
    throttle = RedisThrottle(redis, burst=1, per_second=1000.0)
    key = "mjbot:throttle:1:7"
    assert await throttle.check("1:7") is True
    # Drained, as if a second ago: a thousand a second has refilled it since.
    stamp = await redis.hget(key, "at")
    assert stamp is not None
    await redis.hset(key, mapping={"tokens": "0", "at": f"{float(stamp) - 1.0:.6f}"})
    assert await throttle.check("1:7") is True
    assert await redis.pttl(key) > 0  # forgotten once full again, not kept forever
