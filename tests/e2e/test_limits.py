"""Spending limits over real HTTP: daily limits charged on `done`, the global queue, and /me."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.playground.emulator import FakeTelegram
from bot.userapi.simulator import Simulator
from tests.e2e.harness import BotHarness, MakeBot, button_data, keyboard_in, said, started_bots

IMAGINE = "/midjourney/v2/imagine"


# Faster than the shared default: these tests care about outcomes, not progress.
SIM_PACE = 0.02


@pytest.fixture
async def make_bot(tg: FakeTelegram, sim: Simulator, tmp_path: Path) -> AsyncIterator[MakeBot]:
    async with started_bots(tg, sim, tmp_path) as make:
        yield make


async def test_daily_limit_charges_done_jobs_only(make_bot: Any) -> None:
    bot: BotHarness = await make_bot(daily_limit=2)
    tg = bot.tg
    ann = tg.user(1001, "Ann")
    chat = tg.private_chat(ann)

    # A job that fails at Midjourney costs nothing.
    tg.send_message(chat, ann, "/imagine a broken dream sim:error")
    # The failure replaces the status message's text.
    await tg.wait_for("editMessageText", said(chat["id"], "failed"), timeout=15)
    tg.send_message(chat, ann, "/me")
    await tg.wait_for("sendMessage", said(chat["id"], "Jobs today: 0 of 2."))

    tg.send_message(chat, ann, "/imagine first light")
    grid = await bot.photo_reply(chat["id"], keyboard_in(chat["id"]))
    tg.send_message(chat, ann, "/imagine second light")
    await bot.photo_reply(chat["id"], keyboard_in(chat["id"]), count=2)
    imagines = len(bot.sim.requests_to(IMAGINE))
    assert imagines == 3

    # The third of the day is refused with the reset time, and never reaches the API.
    tg.send_message(chat, ann, "/imagine third light")
    refusal = await tg.wait_for("sendMessage", said(chat["id"], "used your 2 jobs"))
    assert "00:00 UTC" in refusal.params["text"]
    assert len(bot.sim.requests_to(IMAGINE)) == imagines

    # Upscales don't count by default: U1 still works.
    tg.press(grid, button_data(grid, "U1"), ann)
    await bot.photo_reply(chat["id"], keyboard_in(chat["id"]), count=3)

    tg.send_message(chat, ann, "/me")
    me = await tg.wait_for("sendMessage", said(chat["id"], "Jobs today: 2 of 2."))
    assert "Running now: 0 of 10." in me.params["text"]
    assert "resets at 00:00 UTC" in me.params["text"]

    # Another user has their own count.
    bob = tg.user(1002, "Bob")
    bob_chat = tg.private_chat(bob)
    tg.send_message(bob_chat, bob, "/imagine bob's turn")
    await bot.photo_reply(bob_chat["id"], keyboard_in(bob_chat["id"]))


async def test_concurrency_cap_queues_and_runs_later(make_bot: Any) -> None:
    bot: BotHarness = await make_bot(max_concurrent_jobs=1)
    tg, sim = bot.tg, bot.sim
    ann, bob = tg.user(1001, "Ann"), tg.user(1002, "Bob")
    ann_chat, bob_chat = tg.private_chat(ann), tg.private_chat(bob)

    sim.config.hold = True
    tg.send_message(ann_chat, ann, "/imagine the first in line")
    await tg.wait_for("sendMessage", said(ann_chat["id"], "Sending to Midjourney"))
    tg.send_message(bob_chat, bob, "/imagine the second in line")
    queued = await tg.wait_for("sendMessage", said(bob_chat["id"], "number 1 in the queue"))

    # Bob's job waits in the bot, not at the API, while Ann's holds the only slot.
    assert [r.json()["prompt"] for r in sim.requests_to(IMAGINE)] == ["the first in line"]
    tg.send_message(bob_chat, bob, "/me")
    me = await tg.wait_for("sendMessage", said(bob_chat["id"], "Running now: 1"))
    assert "Jobs today: 0" in me.params["text"]

    sim.release()
    await bot.photo_reply(ann_chat["id"], keyboard_in(ann_chat["id"]))
    await bot.photo_reply(bob_chat["id"], keyboard_in(bob_chat["id"]))
    assert [r.json()["prompt"] for r in sim.requests_to(IMAGINE)] == [
        "the first in line",
        "the second in line",
    ]
    # The queue message became the job's own status, which made way for the result.
    notice = (bob_chat["id"], queued.result["message_id"])
    assert any(
        (c.params["chat_id"], c.params["message_id"]) == notice
        and "in the queue" not in c.params["text"]
        for c in tg.calls("editMessageText")
    )
    await tg.wait_for(
        "deleteMessage", lambda c: c.ok and (c.params["chat_id"], c.params["message_id"]) == notice
    )
    notice_id = notice[1]
    assert tg.message(bob_chat["id"], notice_id) is None
