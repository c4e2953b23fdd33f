"""The bot's own job queue under load: a freed slot serves the result first, then the next job;
notices follow in the background; slots per account."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.playground.emulator import ApiCall, FakeTelegram
from bot.userapi.simulator import Simulator
from storage.tasks import TaskRepo
from tests.e2e.harness import BotHarness, MakeBot, button_data, free_port, started_bots, until
from tests.e2e.process import API_KEY, clean_env, start_bot, wait_healthy

SIM_PACE = 0.05
IMAGINE = "/midjourney/v2/imagine"
UPSCALE = "/midjourney/v2/upscale"


@pytest.fixture
async def make_bot(tg: FakeTelegram, sim: Simulator, tmp_path: Path) -> AsyncIterator[MakeBot]:
    async with started_bots(tg, sim, tmp_path) as make:
        yield lambda **overrides: make(webhooks=True, **overrides)


def is_notice(call: ApiCall) -> bool:
    """A queue notice being posted or edited."""
    return call.ok and "in the queue" in str(call.params.get("text", ""))


def with_buttons(call: ApiCall) -> bool:
    """A grid result (a progress preview has no buttons)."""
    return "U1" in str(call.params.get("reply_markup"))


def accepted(database: Path) -> int:
    """Jobs the bot stored as accepted by the API (read from outside, as an operator would)."""
    with contextlib.closing(sqlite3.connect(database)) as db:
        row = db.execute("SELECT count(*) FROM tasks WHERE hash IS NOT NULL").fetchone()
    return int(row[0])


def result_in(chat_id: int) -> Callable[[ApiCall], bool]:
    """Matches a grid result sent to one chat."""
    return lambda call: with_buttons(call) and chat_of(call) == chat_id


def chat_of(call: ApiCall) -> int:
    return int(call.params["chat_id"])


async def test_a_freed_slot_sends_the_result_then_the_next_job_then_notices(
    make_bot: Any, caplog: pytest.LogCaptureFixture
) -> None:
    bot: BotHarness = await make_bot(max_concurrent_jobs=1)
    tg, sim = bot.tg, bot.sim
    sim.config.hold = True
    first = tg.user(5000, "First")
    first_chat = tg.private_chat(first)
    tg.send_message(first_chat, first, "/imagine the one running")
    await until(lambda: len(sim.requests_to(IMAGINE)) == 1, "the first job sent")

    waiting = [tg.user(5001 + n, f"User{n}") for n in range(40)]
    for user in waiting:
        tg.send_message(tg.private_chat(user), user, f"/imagine waiting {user['id']}")
    await tg.wait_for("sendMessage", is_notice, count=40, timeout=30)
    assert len(sim.requests_to(IMAGINE)) == 1, "the waiting jobs stay in the bot"
    # One user deletes their notice: when it moves, nothing is logged above debug.
    deleted = next(
        c for c in tg.calls("sendMessage") if is_notice(c) and "number 5 " in c.params["text"]
    )
    tg.delete_as_user(chat_of(deleted), int(deleted.result["message_id"]))

    caplog.set_level(logging.DEBUG)
    sim.release()
    result = await bot.photo_reply(first_chat["id"])
    edit = await tg.wait_for("editMessageText", is_notice, timeout=15)
    edits = [c for c in tg.calls("editMessageText") if is_notice(c)]
    photo = next(c for c in tg.calls("sendPhoto") if c.ok and chat_of(c) == first_chat["id"])
    second = sim.requests_to(IMAGINE)[1]

    assert result["chat"]["id"] == first_chat["id"]
    assert photo.at < min(c.at for c in edits), "the result goes out before any notice edit"
    assert second.at < min(c.at for c in edits), "the next job is sent before any notice edit"
    assert second.json()["prompt"] == f"waiting {waiting[0]['id']}"
    assert "number " in edit.params["text"]

    # The job that left the queue got its status in place of its notice.
    second_chat = tg.private_chat(waiting[0])["id"]
    second_notice = next(
        c for c in tg.calls("sendMessage") if is_notice(c) and chat_of(c) == second_chat
    )
    await tg.wait_for(
        "editMessageText",
        lambda c: (
            c.ok
            and chat_of(c) == second_chat
            and c.params["message_id"] == second_notice.result["message_id"]
            and not is_notice(c)
        ),
    )
    # The deleted notice's job moves up past it later; the failed edit is not an error.
    await until(
        lambda: any(
            c.method == "editMessageText" and not c.ok and chat_of(c) == chat_of(deleted)
            for c in tg.requests
        ),
        "the deleted notice's failed edit",
        timeout=20,
    )
    assert not [
        r for r in caplog.records if r.levelno >= logging.WARNING and "not found" in r.getMessage()
    ]


async def test_two_accounts_run_one_job_each_and_a_follow_up_stays_on_its_parent(
    make_bot: Any,
) -> None:
    sim_accounts = ["acc-a", "acc-b"]
    bot: BotHarness = await make_bot(max_concurrent_jobs=1, userapi_accounts=sim_accounts)
    tg, sim = bot.tg, bot.sim
    sim.config.accounts = sim_accounts
    ann, bob, cat = tg.user(6001, "Ann"), tg.user(6002, "Bob"), tg.user(6003, "Cat")
    ann_chat, bob_chat, cat_chat = (tg.private_chat(u) for u in (ann, bob, cat))

    sim.config.hold = True
    tg.send_message(ann_chat, ann, "/imagine on one account")
    tg.send_message(bob_chat, bob, "/imagine on the other")
    await until(lambda: len(sim.requests_to(IMAGINE)) == 2, "two jobs sent")
    accounts = sorted(r.json()["account_hash"] for r in sim.requests_to(IMAGINE))
    assert accounts == sim_accounts, "two jobs at once, one on each account"

    # A third job waits: both accounts are busy.
    tg.send_message(cat_chat, cat, "/imagine third")
    await tg.wait_for("sendMessage", lambda c: is_notice(c) and chat_of(c) == cat_chat["id"])
    sim.release()
    grids = {
        chat["id"]: await bot.photo_reply(chat["id"], with_buttons)
        for chat in (ann_chat, bob_chat, cat_chat)
    }

    assert bot.app is not None
    repo = TaskRepo(bot.app.db)
    grid_account = {
        chat_id: (await repo.recent_for_user(user["id"]))[0].account_hash
        for chat_id, user in ((ann_chat["id"], ann), (bob_chat["id"], bob))
    }
    assert sorted(a or "" for a in grid_account.values()) == sim_accounts

    # Cat's next job takes the first account (both are free); then a U1 under the grid made
    # on that account must wait for it, though the other account is free.
    sim.config.hold = True
    tg.send_message(cat_chat, cat, "/imagine keeps an account busy")
    await until(lambda: len(sim.requests_to(IMAGINE)) == 4, "the fourth job sent")
    busy = sim.requests_to(IMAGINE)[-1].json()["account_hash"]
    owner_chat = ann_chat if grid_account[ann_chat["id"]] == busy else bob_chat
    owner = ann if owner_chat is ann_chat else bob
    grid = grids[owner_chat["id"]]
    tg.press(grid, button_data(grid, "U1"), owner)
    await tg.wait_for("sendMessage", lambda c: is_notice(c) and chat_of(c) == owner_chat["id"])
    assert not sim.requests_to(UPSCALE), "the follow-up waits for its parent's account"

    sim.release()
    await bot.photo_reply(owner_chat["id"], lambda c: "Vary" in str(c.params.get("reply_markup")))
    assert len(sim.requests_to(UPSCALE)) == 1
    upscale = next(t for t in await repo.recent_for_user(owner["id"]) if t.type == "upscale")
    assert upscale.account_hash == busy


async def test_dropped_webhooks_are_noticed_results_polled_and_admins_told_once(
    make_bot: Any,
) -> None:
    admin_id = 7000
    bot: BotHarness = await make_bot(admin_ids=[admin_id], webhook_grace=0.5)
    tg, sim = bot.tg, bot.sim
    assert bot.settings().webhook_quiet_after >= 30, "the watchdog alone would be this late"
    admin = tg.user(admin_id, "Owner")
    tg.private_chat(admin)
    sim.config.send_webhooks = False  # a wrong proxy: userapi's calls never reach the bot

    users = [tg.user(7001, "Ann"), tg.user(7002, "Bob")]
    for user in users:
        tg.send_message(tg.private_chat(user), user, "/imagine through a broken proxy")
    for user in users:
        # Far sooner than WEBHOOK_QUIET_AFTER: polling took over.
        await bot.photo_reply(tg.private_chat(user)["id"], with_buttons, timeout=10)

    def alerts() -> list[ApiCall]:
        return [
            c
            for c in tg.calls("sendMessage")
            if chat_of(c) == admin_id and "webhooks don't reach" in c.params["text"]
        ]

    await until(lambda: len(alerts()) == 1, "one webhook alert")
    assert f"127.0.0.1:{bot.port}/userapi/webhook/" in alerts()[0].params["text"]
    assert bot.app is not None and bot.app.jobs.webhooks is not None
    assert bot.app.jobs.webhooks.broken

    # The proxy is fixed: the next webhook ends the episode, and no second alert was sent.
    sim.config.send_webhooks = True
    tg.send_message(tg.private_chat(users[0]), users[0], "/imagine after the fix")
    await bot.photo_reply(tg.private_chat(users[0])["id"], with_buttons, count=2)
    assert not bot.app.jobs.webhooks.broken
    assert len(alerts()) == 1


async def test_jobs_waiting_in_the_bot_survive_kill_9_and_each_is_delivered_once(
    tg: FakeTelegram, external_sim: Simulator, tmp_path: Path
) -> None:
    sim = external_sim
    port = free_port()
    env = clean_env(
        BOT_TOKEN=tg.token,
        TELEGRAM_API_URL=tg.base_url,
        USERAPI_KEY=API_KEY,
        USERAPI_BASE_URL=sim.base_url,
        WEB_HOST="127.0.0.1",
        WEB_PORT=str(port),
        DATABASE_PATH=str(tmp_path / "bot.sqlite3"),
        POLL_INTERVAL="0.1",
        POLL_MAX_INTERVAL="0.5",
        MAX_CONCURRENT_JOBS="2",
        LOG_LEVEL="DEBUG",
    )
    users = [tg.user(8001 + n, f"User{n}") for n in range(5)]
    chats = [tg.private_chat(user) for user in users]

    process, output = await start_bot(env, tmp_path)
    try:
        await wait_healthy(f"http://127.0.0.1:{port}/healthz")
        sim.config.hold = True
        for chat, user in zip(chats, users, strict=True):
            tg.send_message(chat, user, f"/imagine survivor {user['id']}")
        await tg.wait_for("sendMessage", is_notice, count=3, timeout=15)
        # Every update confirmed, so Telegram won't send them again.
        await until(lambda: not tg.pending_updates, "updates confirmed")
        # Killed once both running jobs are stored as accepted (a job killed between its POST
        # and storing the answer may have reached the API: that one is failed, not resent).
        await until(lambda: accepted(tmp_path / "bot.sqlite3") == 2, "two jobs accepted")
        process.kill()  # SIGKILL: no shutdown, no cleanup
        await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await output.close()

    sim.release()
    process, output = await start_bot(env, tmp_path)
    try:
        for chat in chats:
            try:
                await tg.wait_for("sendPhoto", result_in(chat["id"]), timeout=30)
            except TimeoutError as error:
                raise AssertionError(f"no result in {chat['id']}:\n{output.stderr}") from error
        await asyncio.sleep(1.0)  # a duplicate would come now
    finally:
        process.kill()
        await process.wait()
        await output.close()

    for chat in chats:
        results = [
            c for c in tg.calls("sendPhoto") if with_buttons(c) and chat_of(c) == chat["id"]
        ]
        assert len(results) == 1, f"chat {chat['id']} got {len(results)} results"
    sent = sorted(r.json()["prompt"] for r in sim.requests_to(IMAGINE))
    assert sent == sorted(f"survivor {user['id']}" for user in users), "each job sent once"
    told = [str(c.params.get("text", "")) for c in tg.requests if c.method == "sendMessage"]
    assert not [t for t in told if "restarted" in t or "failed" in t]
