"""The per-user flood throttle and the bounded tables behind the access checks."""

from __future__ import annotations

from handlers.middlewares.throttle import ALBUM_SIZE, LRU, Throttle


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_flood_is_cut_and_told_once() -> None:
    clock = Clock()
    throttle = Throttle(burst=3, per_second=1.0, clock=clock)
    verdicts = [await throttle.check(1) for _ in range(6)]
    assert verdicts == [True, True, True, False, None, None]
    assert await throttle.check(2) is True  # someone else is not held back
    clock.now += 1.0
    assert await throttle.check(1) is True  # one refilled
    assert await throttle.check(1) is None  # still the same flood: no second notice
    clock.now += 3.0  # quiet until full: a later flood is told again
    assert [await throttle.check(1) for _ in range(4)] == [True, True, True, False]


async def test_an_album_counts_once() -> None:
    throttle = Throttle(burst=4, per_second=0.0, clock=Clock())
    assert all([await throttle.check(1, album="a") for _ in range(ALBUM_SIZE)])  # 1 token
    assert await throttle.check(1) is True  # 2
    assert all([await throttle.check(1, album="b") for _ in range(ALBUM_SIZE)])  # 3
    # Parts beyond what an album can hold pay like any message.
    assert await throttle.check(1, album="b") is True  # 4
    assert await throttle.check(1, album="b") is False


async def test_memory_is_bounded() -> None:
    throttle = Throttle(tracked=100, clock=Clock())
    for user_id in range(10_000):
        await throttle.check(user_id)
    assert len(throttle) == 100
    table: LRU[int, int] = LRU(3)
    for key in range(5):
        table.put(key, key)
    assert table.get(0) is None and table.get(4) == 4
    table.get(2)
    table.put(9, 9)  # 3 was the least recently used
    assert table.get(3) is None and table.get(2) == 2 and len(table) == 3
