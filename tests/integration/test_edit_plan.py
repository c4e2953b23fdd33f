"""Edits that would be wasted never reach Telegram: the EditPlan and the status messages on it,
over real HTTP against the Telegram emulator, through the bot's own rate limiter.

To make an edit wait for its slot, a test holds one of the three overall slots: results may
still go (they need one), status messages and edits must leave two free, so they wait until
the test lets go. That is the moment the plan decides whether the edit is still worth sending.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.enums import ParseMode
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.delivery.notices import TelegramQueueNotices
from bot.delivery.results import TelegramView
from bot.playground.emulator import NOT_MODIFIED, ApiCall, FakeTelegram
from bot.runtime.metrics import REGISTRY
from bot.telegram.edits import Edit, EditPlan, Gone, look
from bot.telegram.i18n import build_i18n
from bot.telegram.ratelimit import Limits, Priority, RateLimiter, priority
from bot.telegram.session import create_session
from bot.userapi import UserAPIClient
from storage.database import Database
from storage.tasks import TaskRecord, TaskRepo, status_rank
from tests.factories import stored, task_record

USER_ID = 2001
EDITS = ("editMessageText", "editMessageCaption", "editMessageMedia", "editMessageReplyMarkup")


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    """The Telegram emulator, with Ann's private chat."""
    server = FakeTelegram()
    await server.start()
    server.private_chat(server.user(USER_ID, "Ann"))
    yield server
    await server.stop()


@pytest.fixture
async def limiter() -> AsyncIterator[RateLimiter]:
    """Three overall slots; anything but a result leaves two of them free. 20x faster."""
    limits = Limits(
        global_most=3,
        status_global_reserve=2,
        progress_global_reserve=2,
        notice_global_reserve=2,
    )
    rate_limiter = RateLimiter(limits.scaled(20.0))
    yield rate_limiter
    await rate_limiter.close()


@pytest.fixture
async def bot(fake: FakeTelegram, limiter: RateLimiter) -> AsyncIterator[Bot]:
    """The bot's own session (limiter, retries) aimed at the emulator."""
    session = create_session(fake.base_url, limiter, pace=20.0)
    real_bot = Bot(
        fake.token, session=session, default=DefaultBotProperties(parse_mode=ParseMode.HTML)
    )
    yield real_bot
    await session.close()


def edit_calls(fake: FakeTelegram) -> list[ApiCall]:
    """Every edit the emulator received, in order."""
    return [call for call in fake.requests if call.method in EDITS]


def refused(fake: FakeTelegram) -> list[ApiCall]:
    """Every call the emulator refused."""
    return [call for call in fake.requests if not call.ok]


async def waiting_for_a_slot(limiter: RateLimiter, count: int = 1) -> None:
    """Wait until `count` requests wait in the limiter."""
    for _ in range(500):
        if limiter.waiting >= count:
            return
        await asyncio.sleep(0.01)
    raise TimeoutError(f"{limiter.waiting} requests waiting, not {count}")


class HeldSlot:
    """One overall slot taken from the limiter, as a request in flight would."""

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter
        assert limiter.try_acquire(None, Priority.RESULT) == 0

    def release(self) -> None:
        """The request in flight is answered: waiting ones may go."""
        self.limiter.release(None)


async def sent_text(bot: Bot, plan: EditPlan, text: str) -> int:
    """Send a text to Ann as the bot and note it in the plan; its message id."""
    message = await bot.send_message(USER_ID, text)
    plan.sent(USER_ID, message.message_id, look(text))
    return message.message_id


def edits(outcome: str) -> float:
    """How many edits the metrics counted with this outcome so far."""
    value = REGISTRY.get_sample_value("mjbot_telegram_edits_total", {"outcome": outcome})
    return value or 0.0


def keyboard() -> InlineKeyboardMarkup:
    """One button."""
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="U1", url="https://x.y")]]
    )


async def test_an_edit_that_would_change_nothing_is_not_sent(fake: FakeTelegram, bot: Bot) -> None:
    plan = EditPlan(bot)
    message_id = await sent_text(bot, plan, "⏳ Queued")
    unchanged, shown = edits("unchanged"), edits("shown")

    assert await plan.edit_text(USER_ID, message_id, "⏳ Queued") is Edit.UNCHANGED
    assert await plan.edit_text(USER_ID, message_id, "🎨 10%") is Edit.SHOWN
    # What became of each edit is counted for Prometheus (mjbot_telegram_edits_total).
    assert (edits("unchanged") - unchanged, edits("shown") - shown) == (1, 1)
    assert await plan.edit_text(USER_ID, message_id, "🎨 10%") is Edit.UNCHANGED
    # Buttons are part of what a message shows: adding them, or taking them away, is a change.
    assert await plan.edit_text(USER_ID, message_id, "🎨 10%", keyboard()) is Edit.SHOWN
    assert await plan.edit_text(USER_ID, message_id, "🎨 10%", keyboard()) is Edit.UNCHANGED
    assert await plan.edit_text(USER_ID, message_id, "🎨 10%") is Edit.SHOWN

    assert [call.ok for call in edit_calls(fake)] == [True, True, True]
    assert refused(fake) == []
    assert (fake.message(USER_ID, message_id) or {}).get("text") == "🎨 10%"


async def test_a_message_sent_before_a_restart_learns_from_telegram_once(
    fake: FakeTelegram, bot: Bot
) -> None:
    plan = EditPlan(bot)
    old = await bot.send_message(USER_ID, "⏳ Queued")

    # Not known here: Telegram is asked, and its "not modified" is remembered.
    assert await plan.edit_text(USER_ID, old.message_id, "⏳ Queued") is Edit.UNCHANGED
    assert await plan.edit_text(USER_ID, old.message_id, "⏳ Queued") is Edit.UNCHANGED
    assert [call.response.get("description") for call in edit_calls(fake)] == [NOT_MODIFIED]

    # The user deletes it: the next edit learns so from Telegram, and none follows.
    fake.delete_as_user(USER_ID, old.message_id)
    assert await plan.edit_text(USER_ID, old.message_id, "🎨 10%") is Edit.GONE
    assert plan.gone(USER_ID, old.message_id) is Gone.MISSING
    assert await plan.edit_text(USER_ID, old.message_id, "🎨 20%") is Edit.GONE
    assert len(edit_calls(fake)) == 2


async def test_an_edit_waiting_for_its_slot_is_dropped_when_its_message_is_deleted(
    fake: FakeTelegram, bot: Bot, limiter: RateLimiter
) -> None:
    plan = EditPlan(bot)
    message_id = await sent_text(bot, plan, "⏳ Queued")
    held = HeldSlot(limiter)
    with priority(Priority.PROGRESS):
        edit = asyncio.create_task(plan.edit_text(USER_ID, message_id, "🎨 10%"))
    await waiting_for_a_slot(limiter)

    # The result replaced it meanwhile (results go first), and the bot deleted it.
    await plan.delete(USER_ID, message_id)
    held.release()
    assert await asyncio.wait_for(edit, 5) is Edit.GONE
    assert plan.gone(USER_ID, message_id) is Gone.REMOVED
    assert edit_calls(fake) == []
    assert refused(fake) == []
    # No slot was spent on it: three requests may go at once again.
    assert limiter.try_acquire(None, Priority.NORMAL) == 0


async def test_a_newer_edit_makes_an_older_waiting_one_moot(
    fake: FakeTelegram, bot: Bot, limiter: RateLimiter
) -> None:
    plan = EditPlan(bot)
    message_id = await sent_text(bot, plan, "⏳ Queued")
    held = HeldSlot(limiter)
    older = asyncio.create_task(plan.edit_text(USER_ID, message_id, "🎨 10%"))
    await waiting_for_a_slot(limiter)
    newer = asyncio.create_task(plan.edit_text(USER_ID, message_id, "🎨 40%"))
    await waiting_for_a_slot(limiter, 2)

    held.release()
    assert await asyncio.wait_for(older, 5) is Edit.MOOT
    assert await asyncio.wait_for(newer, 5) is Edit.SHOWN
    assert [call.params["text"] for call in edit_calls(fake)] == ["🎨 40%"]


async def test_the_callers_check_is_asked_when_the_slot_comes(
    fake: FakeTelegram, bot: Bot, limiter: RateLimiter
) -> None:
    plan = EditPlan(bot)
    message_id = await sent_text(bot, plan, "number 3 in the queue")
    held = HeldSlot(limiter)
    waits_there = True
    edit = asyncio.create_task(
        plan.edit_text(USER_ID, message_id, "number 2 in the queue", still=lambda: waits_there)
    )
    await waiting_for_a_slot(limiter)

    waits_there = False  # the job started while the edit waited
    held.release()
    assert await asyncio.wait_for(edit, 5) is Edit.MOOT
    assert edit_calls(fake) == []


# ---------------------------------------------------------------- status messages of jobs


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """The bot's database, where the view reads which message shows a job."""
    database = await Database.open(tmp_path / "bot.sqlite3")
    yield database
    await database.close()


@pytest.fixture
async def view(bot: Bot, db: Database) -> AsyncIterator[TelegramView]:
    """The bot's Telegram view of jobs, edits unthrottled."""
    client = UserAPIClient(base_url="http://127.0.0.1:9", api_key="k")
    telegram_view = TelegramView(bot, TaskRepo(db), client, build_i18n(), edit_interval=0.0)
    yield telegram_view
    await telegram_view.close()
    await client.aclose()


def job(**fields: Any) -> TaskRecord:
    """Ann's imagine, as stored at some point of its life."""
    return task_record(id=7, chat_id=USER_ID, user_id=USER_ID, prompt="a red kite", **fields)


async def queue_notice(fake: FakeTelegram, bot: Bot, view: TelegramView, db: Database) -> int:
    """Store the job and post its "number 1 in the queue" notice as the bot does; its id."""
    queued = await stored(db, job(status="queued", progress=0))
    notices = TelegramQueueNotices(bot, build_i18n(), TaskRepo(db), view.edits)
    await notices.queued(queued, 1)
    [notice] = fake.bot_messages(USER_ID)
    return int(notice["message_id"])


async def as_stored(db: Database, record: TaskRecord) -> TaskRecord:
    """The job's new state, stored as an update from the API is before the view hears of it."""
    await db.execute(
        "UPDATE tasks SET status = :status, status_rank = :rank, result = :result WHERE id = :id",
        {
            "status": record.status,
            "rank": status_rank(record.status),
            "result": json.dumps(record.result) if record.result is not None else None,
            "id": record.id,
        },
    )
    return record


async def settled(check: Callable[[], bool], what: str) -> None:
    """Wait until a check holds."""
    for _ in range(500):
        if check():
            return
        await asyncio.sleep(0.01)
    raise TimeoutError(what)


async def no_more_calls(fake: FakeTelegram) -> None:
    """Wait until the bot has sent nothing for a while (edits run in the background)."""
    seen = -1
    while seen != len(fake.requests):
        seen = len(fake.requests)
        await asyncio.sleep(0.2)


async def test_a_start_that_progress_already_showed_costs_no_edit(
    fake: FakeTelegram, bot: Bot, view: TelegramView, db: Database
) -> None:
    notice_id = await queue_notice(fake, bot, view, db)
    waiting = await as_stored(db, job(status="waiting", progress=0, status_message_id=notice_id))

    # The API said "waiting" before the bot got round to saying the job started.
    await view.job_progress(waiting)
    await settled(lambda: len(edit_calls(fake)) == 1, "the progress edit")
    await view.job_started(waiting)
    await no_more_calls(fake)

    [edit] = edit_calls(fake)
    assert edit.ok and "Queued at Midjourney" in str(edit.params["text"])
    assert refused(fake) == []


async def test_a_start_noticed_after_the_result_leaves_nothing_behind(
    fake: FakeTelegram, bot: Bot, view: TelegramView, limiter: RateLimiter, db: Database
) -> None:
    notice_id = await queue_notice(fake, bot, view, db)
    held = HeldSlot(limiter)
    # The job left the queue; the edit that says so waits for its slot...
    waiting = await as_stored(db, job(status="waiting", progress=0, status_message_id=notice_id))
    started = asyncio.create_task(view.job_started(waiting))
    await waiting_for_a_slot(limiter)
    # ...and the job ends meanwhile: its result goes first, and the notice is removed.
    done = await as_stored(
        db, job(status="done", result={"seed": 42}, status_message_id=notice_id)
    )
    delivered = await view.job_finished(done)
    held.release()
    await asyncio.wait_for(started, 5)
    await no_more_calls(fake)

    # No edit of the removed notice, and no status message posted after the result.
    assert edit_calls(fake) == []
    assert refused(fake) == []
    assert [m["message_id"] for m in fake.bot_messages(USER_ID)] == [delivered.message_id]


async def test_one_process_edits_progress_without_reading_the_task(
    fake: FakeTelegram, bot: Bot, db: Database
) -> None:
    client = UserAPIClient(base_url="http://127.0.0.1:9", api_key="k")
    # No Redis: this process is the only one changing the job's status message.
    view = TelegramView(bot, TaskRepo(db), client, build_i18n(), edit_interval=0.0, shared=False)
    try:
        notice_id = await queue_notice(fake, bot, view, db)
        waiting = await as_stored(
            db, job(status="waiting", progress=0, status_message_id=notice_id)
        )
        await view.job_started(waiting)
        await settled(lambda: len(edit_calls(fake)) == 1, "the start's edit")
        # Every statement reaching SQLite from now on (on PostgreSQL, each a round trip).
        statements: list[str] = []
        assert db._sqlite is not None
        await db._sqlite.set_trace_callback(statements.append)

        # The state in hand (stored by the webhook that brought it) goes to the message
        # this process last stored, with nothing read again.
        await view.job_progress(job(status="progress", progress=40, status_message_id=notice_id))
        await settled(lambda: len(edit_calls(fake)) == 2, "the progress edit")
    finally:
        await view.close()
        await client.aclose()

    edit = edit_calls(fake)[-1]
    assert edit.ok and edit.params["message_id"] == notice_id
    assert "Drawing… 40%" in str(edit.params["text"])
    assert statements == []
