"""Telegram updates by webhook, kept in the database: resends, stops, and the leader's sweep."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from aiogram import Bot, Dispatcher, Router
from aiogram.types import Message
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.owner.retention import prune_old
from bot.web import updates as updates_module
from bot.web.updates import CommittedUpdates
from storage.database import Database
from storage.replicas.claims import HANDLED_KEPT_SECONDS, UpdateInbox
from tests.e2e.harness import until

SECRET = "s" * 32
PATH = "/telegram/webhook"


class Handlers:
    """A dispatcher whose one handler notes each message's text; "boom" fails, "wait" waits."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.release = asyncio.Event()
        self.dispatcher = Dispatcher()
        router = Router()
        router.message.register(self.handle)
        self.dispatcher.include_router(router)

    async def handle(self, message: Message) -> None:
        """Note the text; fail on "boom" (a handler's bug); wait for `release` on "wait"."""
        self.seen.append(str(message.text))
        if message.text == "boom":
            raise RuntimeError("a handler's bug")
        if message.text == "wait":
            await self.release.wait()


def message(update_id: int, text: str) -> dict[str, Any]:
    """A private text message as Telegram sends it."""
    user = {"id": 5, "is_bot": False, "first_name": "Ann"}
    chat = {"id": 5, "type": "private", "first_name": "Ann"}
    return {
        "update_id": update_id,
        "message": {"message_id": update_id, "date": 0, "chat": chat, "from": user, "text": text},
    }


async def left_by_a_dead_replica(db: Database, update: dict[str, Any]) -> None:
    """Store an update as a replica that answered 200 and died before handling it does."""
    await db.execute(
        """INSERT INTO telegram_updates (update_id, body, claimed_by, claim_expires, received_at)
           VALUES (:id, :body, 'dead-replica', 0, 0)""",
        {"id": update["update_id"], "body": json.dumps(update)},
    )


@pytest.fixture
async def db(database_target: sa.URL) -> AsyncIterator[Database]:
    database = await Database.open(database_target)
    yield database
    await database.close()


@pytest.fixture
async def bot() -> AsyncIterator[Bot]:
    # The handlers here never call Telegram: the bot is only what aiogram hands them.
    telegram = Bot("123456:" + "A" * 35)
    yield telegram
    await telegram.session.close()


@pytest.fixture(autouse=True)
def quick_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(updates_module, "SWEEP_SECONDS", 0.05)


async def served(updates: CommittedUpdates) -> TestClient[Any, Any]:
    """The webhook route on a test server, as Telegram reaches it."""
    app = web.Application()
    updates.register(app, PATH)
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    return client


async def deliver(client: TestClient[Any, Any], update: dict[str, Any]) -> None:
    """POST an update as Telegram does; it must be answered 200."""
    response = await client.post(
        PATH, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}
    )
    assert response.status == 200


async def sweeping(updates: CommittedUpdates) -> asyncio.Task[None]:
    """The leader's sweep, running."""
    return asyncio.create_task(updates.sweep())


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_resend_after_the_update_was_handled_is_not_handled_again(
    db: Database, bot: Bot
) -> None:
    handlers = Handlers()
    updates = CommittedUpdates(handlers.dispatcher, bot, UpdateInbox(db, owner="a"), SECRET)
    client = await served(updates)
    try:
        await deliver(client, message(101, "/imagine a paid job"))
        await until(lambda: handlers.seen == ["/imagine a paid job"], "handled")
        await updates.drain(5)
        # Telegram never heard the 200 (lost on the way back) and sends the update again.
        await deliver(client, message(101, "/imagine a paid job"))
        await updates.drain(5)
    finally:
        await client.close()
    assert handlers.seen == ["/imagine a paid job"]


async def test_an_update_cut_off_by_a_stop_is_handled_again_by_the_leader(
    db: Database, bot: Bot
) -> None:
    stopping = Handlers()
    replica = CommittedUpdates(stopping.dispatcher, bot, UpdateInbox(db, owner="a"), SECRET)
    client = await served(replica)
    try:
        await deliver(client, message(102, "wait"))
        await until(lambda: stopping.seen == ["wait"], "the handler started")
        # The replica stops; its grace is over before the handler is.
        await replica.drain(0.01)
    finally:
        await client.close()
    leader = Handlers()
    leader.release.set()
    sweep = await sweeping(CommittedUpdates(leader.dispatcher, bot, UpdateInbox(db, "b"), SECRET))
    try:
        await until(lambda: leader.seen == ["wait"], "handled by the leader")
    finally:
        await stop(sweep)


async def test_a_failing_update_left_behind_is_logged_once_and_the_sweep_goes_on(
    db: Database, bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    handlers = Handlers()
    await left_by_a_dead_replica(db, message(201, "boom"))
    await left_by_a_dead_replica(db, message(202, "fine"))
    updates = CommittedUpdates(handlers.dispatcher, bot, UpdateInbox(db, "leader"), SECRET)
    sweep = await sweeping(updates)
    try:
        await until(lambda: handlers.seen == ["boom", "fine"], "both handled")
        # Left by a replica dying later, while the same replica leads.
        await left_by_a_dead_replica(db, message(203, "later"))
        await until(lambda: "later" in handlers.seen, "the later one handled")
    finally:
        await stop(sweep)
    # Many rounds went by: the failing update was not tried again.
    assert handlers.seen == ["boom", "fine", "later"]
    failed = [r for r in caplog.records if "Update 201 failed" in r.getMessage()]
    assert len(failed) == 1 and failed[0].exc_info is not None


async def test_the_sweep_outlives_the_database_failing(
    db: Database, bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    handlers = Handlers()
    updates = CommittedUpdates(handlers.dispatcher, bot, UpdateInbox(db, "leader"), SECRET)
    # Every query the sweep makes fails, as when the database is out of reach.
    await db.execute("ALTER TABLE telegram_updates RENAME TO telegram_updates_away")
    sweep = await sweeping(updates)
    try:
        await until(
            lambda: sweep.done() or any(r.levelno == logging.WARNING for r in caplog.records),
            "a round failed",
        )
        assert not sweep.done(), sweep.exception()
        await db.execute("ALTER TABLE telegram_updates_away RENAME TO telegram_updates")
        await left_by_a_dead_replica(db, message(301, "after the outage"))
        await until(lambda: handlers.seen == ["after the outage"], "handled after the outage")
    finally:
        await stop(sweep)


async def test_handled_updates_are_remembered_for_two_days_then_forgotten(db: Database) -> None:
    inbox = UpdateInbox(db)
    for update_id in (401, 402):
        assert await inbox.add(update_id, json.dumps({"update_id": update_id}))
        await inbox.done(update_id)
    await db.execute(
        "UPDATE telegram_updates SET handled_at = :when WHERE update_id = 401",
        {"when": time.time() - HANDLED_KEPT_SECONDS - 60},
    )
    await prune_old(db, days=90)
    rows = await db.fetch_all("SELECT update_id FROM telegram_updates")
    assert [int(row["update_id"]) for row in rows] == [402]
    # Forgotten, an update is new again; remembered, it is a resend.
    assert not await inbox.add(402, "{}")
    assert await inbox.add(401, "{}")
