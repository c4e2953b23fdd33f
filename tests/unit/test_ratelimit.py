"""The Telegram rate limiter against a fake clock: per chat, per group, overall, priorities."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

from bot.telegram.ratelimit import Limits, Priority, RateLimiter, current_priority, priority

PRIVATE, OTHER, GROUP = 101, 102, -100500


class FakeClock:
    """Time that moves only when told; `sleep` moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def limiter(clock: FakeClock, **limits: Any) -> RateLimiter:
    # A roomy global window unless a test is about it, so per-chat rules show alone.
    values: dict[str, Any] = {"global_most": 100_000} | limits
    return RateLimiter(Limits(**values), clock=clock, sleep=clock.sleep)


def sent_within(rl: RateLimiter, clock: FakeClock, chat: int, seconds: float) -> int:
    """How many messages to `chat` the limiter lets through in `seconds`, answered at once."""
    sent, end = 0, clock.now + seconds
    while clock.now <= end:
        if rl.try_acquire(chat) == 0:
            rl.release(chat)
            sent += 1
        else:
            clock.now += 0.01
    return sent


def most_in_any_window(stamps: list[float], seconds: float) -> int:
    """The largest number of stamps inside any half-open window of this length."""
    ordered = sorted(stamps)
    return max(sum(1 for s in ordered if t <= s < t + seconds) for t in ordered)


def arrivals_with_slow_answers(
    rl: RateLimiter, clock: FakeClock, chats: Callable[[int], int], seconds: float
) -> list[float]:
    """Send as fast as allowed for `seconds`; each request takes up to 0.7 s to be answered
    and reaches Telegram at a random moment in between. Returns when each one arrived."""
    rng = random.Random(7)
    answers: list[tuple[float, int]] = []  # (answered at, chat)
    arrivals: list[float] = []
    sent, end = 0, clock.now + seconds
    while clock.now < end:
        for answer in [a for a in answers if a[0] <= clock.now]:
            answers.remove(answer)
            rl.release(answer[1])
        chat = chats(sent)
        if rl.try_acquire(chat) == 0:
            took = rng.uniform(0.0, 0.7)
            answers.append((clock.now + took, chat))
            arrivals.append(clock.now + rng.uniform(0.0, took))
            sent += 1
        else:
            clock.now += 0.001
    return arrivals


def test_a_private_chat_gets_a_short_burst_then_one_message_a_second() -> None:
    clock = FakeClock()
    rl = limiter(clock)
    assert [rl.try_acquire(PRIVATE) for _ in range(3)] == [0, 0, 0]
    wait = rl.try_acquire(PRIVATE)
    assert 0.99 < wait <= 1.0
    # Another chat is not held back by the first.
    assert rl.try_acquire(OTHER) == 0
    clock.now += wait
    assert rl.try_acquire(PRIVATE) == 0
    # Sustained: about one a second (plus nothing: the burst was spent).
    assert sent_within(rl, clock, PRIVATE, 10.0) in (10, 11)


def test_a_group_gets_at_most_20_messages_in_any_minute() -> None:
    clock = FakeClock()
    rl = limiter(clock)
    assert sent_within(rl, clock, GROUP, 60.0) <= 20
    assert sent_within(rl, clock, GROUP, 120.0) <= 2 * 20
    # A private chat has no such limit: about 60 a minute.
    assert sent_within(rl, clock, PRIVATE, 60.0) >= 55


def test_all_chats_together_stay_under_30_a_second() -> None:
    clock = FakeClock()
    rl = RateLimiter(Limits(), clock=clock, sleep=clock.sleep)
    chats = iter(range(1, 10_000))
    stamps: list[float] = []
    end = clock.now + 5.0
    while clock.now < end:
        chat = next(chats)
        if rl.try_acquire(chat, Priority.RESULT) == 0:
            rl.release(chat)
            stamps.append(clock.now)
        else:
            clock.now += 0.001
    assert most_in_any_window(stamps, 1.0) <= 30
    assert len(stamps) >= 5 * 29  # and the limit is used, not wasted


def test_no_second_at_telegram_holds_more_than_30_however_late_requests_arrive() -> None:
    clock = FakeClock()
    rl = RateLimiter(Limits(), clock=clock, sleep=clock.sleep)
    arrivals = arrivals_with_slow_answers(rl, clock, lambda n: n + 1, 20.0)
    assert most_in_any_window(arrivals, 1.0) <= 30
    # Slow answers cost throughput, as they must: a request holds its place while in flight.
    assert len(arrivals) >= 20 * 30 / 1.7


def test_no_minute_at_telegram_holds_more_than_20_for_a_group() -> None:
    clock = FakeClock()
    rl = limiter(clock, chat_rate=100.0, chat_burst=100.0)
    arrivals = arrivals_with_slow_answers(rl, clock, lambda n: GROUP, 180.0)
    assert most_in_any_window(arrivals, 60.0) <= 20
    assert len(arrivals) >= 2 * 20


def test_429_holds_the_chat_for_retry_after() -> None:
    clock = FakeClock()
    rl = limiter(clock)
    rl.retry_after(PRIVATE, 5.0)
    assert rl.try_acquire(PRIVATE) > 4.9
    assert rl.try_acquire(OTHER) == 0
    clock.now += 5.0
    assert rl.try_acquire(PRIVATE) == 0


def test_a_progress_edit_leaves_the_last_token_to_a_result() -> None:
    clock = FakeClock()
    rl = limiter(clock)
    assert rl.try_acquire(PRIVATE, Priority.PROGRESS) == 0
    assert rl.try_acquire(PRIVATE, Priority.PROGRESS) == 0
    assert rl.try_acquire(PRIVATE, Priority.PROGRESS) > 0  # one token left: not for an edit
    assert rl.try_acquire(PRIVATE, Priority.RESULT) == 0


async def test_waiting_results_go_before_waiting_edits() -> None:
    clock = FakeClock()
    rl = limiter(clock, chat_burst=1.0)
    await rl.acquire(PRIVATE)  # the chat's one token is gone
    order: list[str] = []

    async def send(name: str, level: Priority) -> None:
        await rl.acquire(PRIVATE, level)
        order.append(name)

    # All three queue up (in this order) before the limiter looks again.
    tasks = [
        asyncio.create_task(send("edit", Priority.PROGRESS)),
        asyncio.create_task(send("status", Priority.NORMAL)),
        asyncio.create_task(send("result", Priority.RESULT)),
    ]
    await asyncio.gather(*tasks)
    assert order == ["result", "status", "edit"]
    await rl.close()


def test_progress_edits_leave_overall_slots_to_results() -> None:
    clock = FakeClock()
    rl = RateLimiter(Limits(), clock=clock, sleep=clock.sleep)
    reserve = rl.limits.progress_global_reserve
    edits = 0
    while rl.try_acquire(1000 + edits, Priority.PROGRESS) == 0:
        edits += 1
    assert edits == 30 - reserve
    # A second of edits in flight holds no result back; status messages take only part.
    status = rl.limits.status_global_reserve
    assert all(rl.try_acquire(n, Priority.NORMAL) == 0 for n in range(reserve - status))
    assert rl.try_acquire(100, Priority.NORMAL) > 0
    assert [rl.try_acquire(200 + n, Priority.RESULT) for n in range(status)] == [0] * status
    assert rl.try_acquire(300, Priority.RESULT) > 0


def test_a_groups_minute_keeps_slots_for_results() -> None:
    clock = FakeClock()
    rl = limiter(clock, chat_rate=100.0, chat_burst=100.0)
    limits = rl.limits
    # Progress edits stop while only the results' and status messages' share is left ...
    for _ in range(limits.group_most - limits.progress_group_reserve):
        assert rl.try_acquire(GROUP, Priority.PROGRESS) == 0
        rl.release(GROUP)
    assert rl.try_acquire(GROUP, Priority.PROGRESS) > 0
    assert rl.try_acquire(GROUP, Priority.NOTICE) > 0
    # ... status messages stop while the results' share is left ...
    for _ in range(limits.progress_group_reserve - limits.status_group_reserve):
        assert rl.try_acquire(GROUP, Priority.NORMAL) == 0
        rl.release(GROUP)
    assert rl.try_acquire(GROUP, Priority.NORMAL) > 0
    # ... and several results finishing at once all go now.
    for _ in range(limits.status_group_reserve):
        assert rl.try_acquire(GROUP, Priority.RESULT) == 0
    # The group's minute is spent: the next slot frees when the first answer is a minute old.
    assert 59.0 < rl.try_acquire(GROUP, Priority.RESULT) <= 60.0


async def test_an_answer_wakes_the_requests_waiting_on_it() -> None:
    rl = RateLimiter(Limits(global_most=1, global_window=0.01))
    await rl.acquire(PRIVATE)
    waiting = asyncio.create_task(rl.acquire(OTHER))
    await asyncio.sleep(0.05)
    assert not waiting.done()  # the one global slot is in flight, for as long as it takes
    rl.release(PRIVATE)
    # Woken by the answer, not by the dispatcher's one-second look-again.
    await asyncio.wait_for(waiting, 0.5)
    await rl.close()


async def test_a_newcomer_to_a_free_chat_is_not_stuck_behind_a_busy_one() -> None:
    rl = RateLimiter(Limits(global_most=1000, chat_burst=1.0))
    await rl.acquire(PRIVATE)
    busy = asyncio.create_task(rl.acquire(PRIVATE))  # waits about a second of real time
    await asyncio.sleep(0)
    await asyncio.wait_for(rl.acquire(OTHER), 0.5)
    assert not busy.done()
    busy.cancel()
    await rl.close()


def test_each_priority_block_is_seen_by_the_requests_inside() -> None:
    assert current_priority() is Priority.NORMAL
    for level in Priority:
        with priority(level):
            assert current_priority() is level
    assert current_priority() is Priority.NORMAL
