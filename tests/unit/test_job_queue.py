"""The job queue as pure logic: slots per account, order, and who goes next."""

from __future__ import annotations

from bot.jobs.queue import JobQueue, Slots


def test_one_pool_first_come_first_served() -> None:
    queue = JobQueue(Slots(2))
    for task_id in (1, 2, 3, 4):
        queue.add(task_id, None)
    assert queue.grant() == [(1, None), (2, None)]
    assert queue.positions() == {3: 1, 4: 2}
    assert queue.grant() == [], "no slot is free"

    assert queue.slots.release(1)
    assert not queue.slots.release(1), "a repeated final update frees nothing more"
    assert queue.grant() == [(3, None)]
    assert queue.position(4) == 1 and queue.position(3) == 0


def test_order_is_by_id_whenever_a_job_is_added() -> None:
    queue = JobQueue(Slots(1))
    queue.slots.take(99, None)
    for task_id in (7, 5, 6):  # a restart loads in id order; a slow notice may add late
        queue.add(task_id, None)
    assert queue.positions() == {5: 1, 6: 2, 7: 3}
    assert queue.remove(6) and not queue.remove(6)
    assert queue.positions() == {5: 1, 7: 2}


def test_one_account_listed_is_one_shared_pool() -> None:
    slots = Slots(1, ["acc-a"])
    slots.take(1, "acc-a")
    assert slots.pick(None) == (False, None)
    assert slots.pick("acc-b") == (False, "acc-b")


def test_slots_per_account_and_pinned_jobs() -> None:
    queue = JobQueue(Slots(1, ["acc-a", "acc-b"]))
    queue.add(1, None)
    queue.add(2, None)
    queue.add(3, "acc-a")  # a follow-up of a job that ran on acc-a
    queue.add(4, None)
    # Two unpinned jobs run at once, one on each account; the pinned one waits for acc-a.
    assert queue.grant() == [(1, "acc-a"), (2, "acc-b")]
    assert queue.slots.full

    # acc-b frees: the pinned job can't use it, so the next unpinned job does.
    queue.slots.release(2)
    assert queue.grant() == [(4, "acc-b")]
    queue.slots.release(1)
    assert queue.grant() == [(3, "acc-a")]
    assert len(queue) == 0
