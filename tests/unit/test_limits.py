"""The global job queue and the daily reset, as pure logic."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.jobs import Slots
from bot.limits import next_reset, today


async def test_slots_queue_first_come_first_served() -> None:
    slots = Slots(2)
    assert slots.try_take(1) and slots.try_take(2)
    assert not slots.try_take(3)
    third, fourth = slots.enqueue(3), slots.enqueue(4)
    assert (slots.position(3), slots.position(4)) == (1, 2)

    assert slots.release(1) == [3]
    assert third.done() and not fourth.done()
    assert slots.position(4) == 1
    # Releasing twice (a repeated final update) frees nothing more.
    assert slots.release(1) == []
    assert not slots.try_take(5), "a newcomer must not jump the queue"
    assert slots.release(2) == [4]
    assert slots.busy == {3, 4}


async def test_cancelled_waiter_is_skipped() -> None:
    slots = Slots(1)
    assert slots.try_take(1)
    gone, waiting = slots.enqueue(2), slots.enqueue(3)
    gone.cancel()
    assert slots.release(1) == [3]
    assert waiting.done()


def test_day_and_reset_are_utc() -> None:
    late = datetime(2025, 3, 1, 23, 30, tzinfo=UTC)
    assert today(late) == "2025-03-01"
    assert next_reset(late) == datetime(2025, 3, 2, tzinfo=UTC)
