"""Two replicas' Telegram limits as one budget in Redis: together they stay under Telegram's."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from redis.asyncio import Redis

from bot.playground.emulator import LimitedTelegram
from bot.telegram.edits import Edit, EditPlan, look
from bot.telegram.rate_windows import Scope
from bot.telegram.ratelimit import Limits, Priority, RateLimiter
from bot.telegram.session import create_session
from bot.telegram.shared_budget import SharedBudget
from tests.e2e.harness import free_port

# Telegram's limits, five times faster on both sides: the same shapes, shorter waits.
SCALE = 5.0
NO_RESERVES: dict[Scope, int] = {"chat": 0, "group": 0, "global": 0}


@pytest.fixture
async def limited() -> AsyncIterator[LimitedTelegram]:
    fake = LimitedTelegram(scale=SCALE)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


_numbers = itertools.count()


async def acquire(budget: SharedBudget, chat_id: int | None, reserves: dict[Scope, int]) -> str:
    """Wait until the budget lets one request go; its id ("" when Redis is out of reach)."""
    ask = (next(_numbers), chat_id, reserves)
    while True:
        answer = await budget.take([ask])
        if answer is None:
            return ""
        (request,), wait = answer
        if request:
            return request
        await asyncio.sleep(min(0.5, max(0.005, wait)))


def replica(tg: LimitedTelegram, redis: Redis | None) -> Bot:
    """One replica's Telegram side: its own limiter, sharing the budget when given Redis."""
    limiter = RateLimiter(Limits().scaled(SCALE))
    bot = Bot(tg.token, session=create_session(tg.base_url, limiter, pace=SCALE))
    if redis is not None:
        limiter.share(SharedBudget(redis, bot.id, limiter.limits))
    return bot


async def burst(tg: LimitedTelegram, redis: Redis | None) -> int:
    """Two replicas send 45 messages each to 90 chats at once; the 429s Telegram answered."""
    bots = [replica(tg, redis), replica(tg, redis)]
    users = [tg.user(70_000 + n, f"User{n}") for n in range(90)]
    chats = [tg.private_chat(user) for user in users]
    try:
        await asyncio.gather(
            *(bots[n % 2].send_message(chat["id"], f"result {n}") for n, chat in enumerate(chats))
        )
    finally:
        for bot in bots:
            await bot.session.close()
    sent = [call for call in tg.calls("sendMessage") if call.ok]
    assert len(sent) == 90, "every message arrived (retried after a 429 if need be)"
    return len(tg.refused)


async def test_replicas_sharing_a_budget_get_no_429(
    limited: LimitedTelegram, redis: Redis
) -> None:
    assert await burst(limited, redis) == 0


async def test_replicas_each_on_their_own_break_telegrams_limit(
    limited: LimitedTelegram,
) -> None:
    # What the shared budget prevents: each replica alone keeps 30/s, together they send 60.
    assert await burst(limited, None) > 0


async def test_a_429_holds_the_chat_back_for_every_replica(redis: Redis) -> None:
    limits = Limits()
    first, second = SharedBudget(redis, 1, limits), SharedBudget(redis, 1, limits)
    await first.retry_after(5001, 30.0)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(acquire(second, 5001, NO_RESERVES), 0.3)
    # Another chat goes at once; so does the same chat of another bot.
    assert await asyncio.wait_for(acquire(second, 5002, NO_RESERVES), 0.3)
    assert await asyncio.wait_for(acquire(SharedBudget(redis, 2, limits), 5001, NO_RESERVES), 0.3)


async def test_a_group_keeps_its_twenty_a_minute_across_replicas(redis: Redis) -> None:
    limits = Limits().scaled(20)  # a 3 s "minute", so the chat's own 1/s is no bottleneck
    budgets = [SharedBudget(redis, 1, limits), SharedBudget(redis, 1, limits)]
    for n in range(20):
        request = await asyncio.wait_for(acquire(budgets[n % 2], -100_500, NO_RESERVES), 30)
        await budgets[n % 2].release(-100_500, request)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(acquire(budgets[0], -100_500, NO_RESERVES), 0.5)


async def test_without_redis_requests_go_on_under_local_limits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gone = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    try:
        budget = SharedBudget(gone, 1, Limits())
        with caplog.at_level(logging.WARNING):
            assert await asyncio.wait_for(acquire(budget, 7, NO_RESERVES), 5) == ""
            await budget.release(7, "")
            await acquire(budget, 8, NO_RESERVES)
        warnings = [r for r in caplog.records if "Redis is out of reach" in r.getMessage()]
        assert len(warnings) == 1, "one warning, not one per request"
    finally:
        await gone.aclose()


async def test_an_edit_that_waited_for_the_replicas_budget_is_dropped_if_moot(
    limited: LimitedTelegram, redis: Redis
) -> None:
    bot = replica(limited, redis)
    plan = EditPlan(bot)
    chat_id = int(limited.private_chat(limited.user(71_000, "Ann"))["id"])
    try:
        sent = await bot.send_message(chat_id, "⏳ Queued")
        plan.sent(chat_id, sent.message_id, look("⏳ Queued"))
        # Another replica got a 429 for this chat: every replica holds it back for a second.
        await SharedBudget(redis, bot.id, Limits().scaled(SCALE)).retry_after(chat_id, 1.0)
        started = asyncio.get_running_loop().time()
        edit = asyncio.create_task(plan.edit_text(chat_id, sent.message_id, "🎨 10%"))
        await asyncio.sleep(0.3)  # past this replica's own limiter, waiting for the budget
        await plan.delete(chat_id, sent.message_id)
        assert await asyncio.wait_for(edit, 5) is Edit.GONE
        assert asyncio.get_running_loop().time() - started >= 0.9, "it waited for the budget"
        assert limited.calls("editMessageText") == []
    finally:
        await bot.session.close()


async def test_results_waiting_for_the_shared_budget_go_before_the_replicas_edits(
    redis: Redis,
) -> None:
    limits = Limits()
    # The other replica has just sent Telegram's thirty for this second.
    other = SharedBudget(redis, 1, limits)
    for _ in range(limits.global_most):
        await other.release(None, await acquire(other, None, NO_RESERVES))
    limiter = RateLimiter(limits)
    limiter.share(SharedBudget(redis, 1, limits))
    order: list[Priority] = []

    async def send(level: Priority) -> None:
        async with limiter.slot(None, level):
            order.append(level)

    # Sixty progress edits wait for the shared second, then thirty results come: when the
    # second frees, every result goes before any edit (one replica's order, kept across the
    # shared wait; edits that waited first must not hold the replica's own limits meanwhile).
    edits = [asyncio.create_task(send(Priority.PROGRESS)) for _ in range(60)]
    await asyncio.sleep(0.1)
    results = [asyncio.create_task(send(Priority.RESULT)) for _ in range(30)]
    try:
        await asyncio.wait_for(asyncio.gather(*results), 5)
        assert order[:30] == [Priority.RESULT] * 30
    finally:
        for task in edits:
            task.cancel()
        await asyncio.gather(*edits, return_exceptions=True)
        await limiter.close()


async def test_one_ask_lets_through_all_the_budget_allows_skipping_a_held_chat(
    redis: Redis,
) -> None:
    budget = SharedBudget(redis, 1, Limits())
    await budget.retry_after(5001, 30.0)
    answer = await budget.take(
        [(1, 5001, NO_RESERVES), (2, 5002, NO_RESERVES), (3, None, NO_RESERVES)]
    )
    assert answer is not None
    requests, wait = answer
    assert [bool(r) for r in requests] == [False, True, True]
    assert 29 < wait <= 30, "the held chat may go when its hold ends"


async def test_a_request_given_back_never_counted(redis: Redis) -> None:
    budget = SharedBudget(redis, 1, Limits())
    # A private chat's burst of three, the last given back (its edit was moot when it came).
    taken = [await acquire(budget, 5001, NO_RESERVES) for _ in range(3)]
    await budget.give_back(5001, taken[-1])
    assert await asyncio.wait_for(acquire(budget, 5001, NO_RESERVES), 0.3)
    # The overall second full (30 with the chat's), one given back: one more goes now.
    filled = [await acquire(budget, None, NO_RESERVES) for _ in range(27)]
    await budget.give_back(None, filled[-1])
    assert await asyncio.wait_for(acquire(budget, None, NO_RESERVES), 0.3)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(acquire(budget, None, NO_RESERVES), 0.3)
