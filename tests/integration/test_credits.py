"""The credits ledger on SQLite and PostgreSQL: atomic holds, settling once, paying once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

from storage.credits import Balance, CreditsRepo, RefundOutcome
from storage.database import Database
from storage.tasks import TaskRepo

USER = 7


@pytest.fixture
async def db(database_target: sa.URL) -> AsyncIterator[Database]:
    database = await Database.open(database_target)
    yield database
    await database.close()


async def tasks(db: Database, count: int) -> list[int]:
    repo = TaskRepo(db)
    made = [
        await repo.create(type="imagine", prompt="a cat", chat_id=USER, user_id=USER)
        for _ in range(count)
    ]
    return [record.id for record in made]


async def test_holds_at_once_never_overspend(db: Database) -> None:
    credits = CreditsRepo(db)
    await credits.grant(user_id=USER, amount=5, reason="test", actor_id=1)
    ids = await tasks(db, 12)
    held = await asyncio.gather(
        *(credits.reserve(user_id=USER, task_id=task_id, cost=2) for task_id in ids)
    )
    assert held.count(True) == 2
    assert await credits.balance(USER) == Balance(credits=1, reserved=4)


async def test_a_task_settles_once_whatever_comes_after(db: Database) -> None:
    credits = CreditsRepo(db)
    await credits.grant(user_id=USER, amount=3, reason="test", actor_id=1)
    done, failed, free = await tasks(db, 3)
    assert await credits.reserve(user_id=USER, task_id=done, cost=1)
    assert await credits.reserve(user_id=USER, task_id=failed, cost=2)
    # Asked again, a task keeps its one hold (and is not refused for lack of credits).
    assert await credits.reserve(user_id=USER, task_id=done, cost=1)
    assert await credits.balance(USER) == Balance(credits=0, reserved=3)

    for _ in range(3):
        assert await credits.settle(done, done=True)
        # A late contrary report (a stuck sweep after done) can't return a spent hold.
        assert await credits.settle(done, done=False)
    assert await credits.settle(failed, done=False)
    assert await credits.settle(failed, done=True)
    assert not await credits.settle(free, done=True)
    assert await credits.balance(USER) == Balance(credits=2, reserved=0)
    costs = await credits.job_costs([done, failed, free])
    assert {k: (v.credits, v.state) for k, v in costs.items()} == {
        done: (1, "charge"),
        failed: (2, "release"),
    }


async def test_a_payment_credits_once_and_refunds_only_unspent(db: Database) -> None:
    credits = CreditsRepo(db)

    async def buy(charge_id: str) -> bool:
        return await credits.purchase(
            user_id=USER, charge_id=charge_id, credits=10, stars=50, payload="pack:10:50"
        )

    assert await buy("c1")
    assert not await buy("c1")  # Telegram sending the same payment again
    assert await buy("c2")
    assert (await credits.balance(USER)).credits == 20

    assert await credits.refund("c1", actor_id=1) is RefundOutcome.DONE
    # Until Telegram's answer is known the refund is pending, and asking again says so.
    assert await credits.refund("c1", actor_id=1) is RefundOutcome.PENDING
    assert await credits.confirm_refund("c1")
    assert not await credits.confirm_refund("c1")
    assert await credits.refund("c1", actor_id=1) is RefundOutcome.ALREADY
    assert await credits.refund("nope", actor_id=1) is RefundOutcome.UNKNOWN
    (task_id,) = await tasks(db, 1)
    assert await credits.reserve(user_id=USER, task_id=task_id, cost=1)
    assert await credits.refund("c2", actor_id=1) is RefundOutcome.SPENT
    await credits.settle(task_id, done=False)
    assert await credits.refund("c2", actor_id=1) is RefundOutcome.DONE
    await credits.cancel_refund("c2")  # Telegram said no: the credits are back
    assert (await credits.balance(USER)).credits == 10
    assert [p.refunded for p in await credits.purchases(USER)] == [False, True]

    assert not await credits.grant(user_id=USER, amount=-11, reason="too many", actor_id=1)
    assert await credits.grant(user_id=USER, amount=-10, reason="all", actor_id=1)
    assert (await credits.balance(USER)).credits == 0

    (day,) = await credits.days(time.time() - 86400)
    assert (day.stars, day.refunded_stars, day.credits_spent) == (100, 50, 0)


async def test_a_hold_counts_only_for_its_own_user_and_only_while_unsettled(db: Database) -> None:
    credits = CreditsRepo(db)
    await credits.grant(user_id=USER, amount=1, reason="test", actor_id=1)
    (task_id,) = await tasks(db, 1)
    assert await credits.reserve(user_id=USER, task_id=task_id, cost=1)
    # Another user, penniless, asking under the same task id gets no free job from that hold.
    assert not await credits.reserve(user_id=USER + 1, task_id=task_id, cost=1)
    assert await credits.settle(task_id, done=False)
    # A released hold is no hold: asking again is refused, not waved through.
    await credits.grant(user_id=USER, amount=-1, reason="test", actor_id=1)
    assert not await credits.reserve(user_id=USER, task_id=task_id, cost=1)
