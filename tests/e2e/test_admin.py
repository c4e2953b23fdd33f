"""The owner's console over real HTTP against the simulator, and alerts to admins."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.playground.emulator import FakeTelegram
from bot.userapi.simulator import DEFAULT_ACCOUNT, Simulator
from tests.e2e.harness import BotHarness, button_data, has_keyboard, said

ADMIN = 9001
DISCORD_INFO = "/discord/info"


# Faster than the shared default: these tests care about outcomes, not progress.
SIM_PACE = 0.02


@pytest.fixture
async def bot(tg: FakeTelegram, sim: Simulator, tmp_path: Path) -> AsyncIterator[BotHarness]:
    tg.private_chat(tg.user(ADMIN, "Owner", username="owner"))
    runner = BotHarness(
        tg=tg,
        sim=sim,
        database_path=tmp_path / "bot.sqlite3",
        webhooks=True,
        overrides={
            "admin_ids": [ADMIN],
            "userapi_accounts": [DEFAULT_ACCOUNT],
            "account_check_interval": 0.1,
        },
    )
    await runner.start()
    yield runner
    await runner.stop()


def texts_to(tg: FakeTelegram, chat_id: int) -> list[str]:
    return [
        str(c.params.get("text"))
        for c in tg.calls("sendMessage") + tg.calls("editMessageText")
        if int(c.params["chat_id"]) == chat_id
    ]


async def more_requests(sim: Simulator, path: str, count: int, timeout: float = 15.0) -> None:
    """Wait until the simulator has received `count` more requests to `path`."""
    target = len(sim.requests_to(path)) + count
    async with asyncio.timeout(timeout):
        while True:
            if len(sim.requests_to(path)) >= target:
                return
            await asyncio.sleep(0.02)


async def command(tg: FakeTelegram, chat: dict[str, Any], user: dict[str, Any], text: str) -> str:
    """Send a command and return the text of the bot's reply to it."""
    message = tg.send_message(chat, user, text)
    call = await tg.wait_for(
        "sendMessage",
        lambda c: (
            c.ok
            and c.params.get("reply_parameters", {}).get("message_id") == message["message_id"]
            and int(c.params["chat_id"]) == chat["id"]
        ),
        timeout=20,
    )
    return str(call.params["text"])


async def test_console_commands_against_the_simulator(bot: BotHarness) -> None:
    tg, sim = bot.tg, bot.sim
    owner = tg.user(ADMIN, "Owner", username="owner")
    chat = tg.private_chat(owner)

    # Admins get the console in their command menu; everyone else doesn't.
    await tg.wait_for("setMyCommands", lambda c: c.params.get("scope", {}).get("type") == "chat")
    admin_menu = [c["command"] for c in tg.commands({"type": "chat", "chat_id": ADMIN})]
    assert {"accounts", "speed", "remix", "stats", "user", "imagine"} <= set(admin_menu)
    assert "accounts" not in [c["command"] for c in tg.commands()]

    accounts = await command(tg, chat, owner, "/accounts")
    assert DEFAULT_ACCOUNT in accounts
    assert "Discord: active" in accounts
    assert "Plan: Standard, active until 2099-01-01" in accounts
    assert "Fast time left: 14:24 of 15:00 (96%)" in accounts
    assert "0 queued, 0 running" in accounts

    assert "speed is now <b>relax</b>" in await command(tg, chat, owner, "/speed relax")
    assert sim.account_speed(DEFAULT_ACCOUNT) == "relax"
    tg.send_message(chat, owner, "/speed")
    menu = await tg.wait_for("sendMessage", said(ADMIN, "Choose a speed"))
    tg.press(menu.result, button_data(menu.result, "turbo"), owner)
    await tg.wait_for("sendMessage", said(ADMIN, "speed is now <b>turbo</b>"))
    assert sim.account_speed(DEFAULT_ACCOUNT) == "turbo"

    assert "remix is now <b>on</b>" in await command(tg, chat, owner, "/remix")
    assert "remix is now <b>off</b>" in await command(tg, chat, owner, "/remix 5f1c3a2e")

    # A user's job shows up in /stats and /user.
    ann = tg.user(1001, "Ann", username="ann")
    ann_chat = tg.private_chat(ann)
    tg.send_message(ann_chat, ann, "/imagine a stats-worthy fox")
    await bot.photo_reply(ann_chat["id"], has_keyboard)
    stats = await command(tg, chat, owner, "/stats")
    assert "<b>Today</b>: 1 jobs" in stats
    assert "done 1" in stats and "Imagine 1" in stats
    assert "Ann @ann <code>1001</code> — 1" in stats

    card = await command(tg, chat, owner, "/user @ann")
    assert "Jobs today: 1" in card and "Banned: no" in card
    sent = tg.calls("sendMessage")[-1].result
    tg.press(sent, button_data(sent, "🚫 Ban"), owner)
    await tg.wait_for("editMessageText", said(ADMIN, "Banned: yes"))
    before = len(sim.requests_to("/midjourney/v2/imagine"))
    tg.send_message(ann_chat, ann, "/imagine while banned")
    assert "is unbanned" in await command(tg, chat, owner, "/unban 1001")
    # The banned request was dropped (never queued to run later).
    tg.send_message(ann_chat, ann, "/imagine after the ban")
    await bot.photo_reply(ann_chat["id"], has_keyboard, count=2)
    prompts = [r.json()["prompt"] for r in sim.requests_to("/midjourney/v2/imagine")[before:]]
    assert prompts == ["after the ban"]


async def test_non_admin_gets_no_account_data(bot: BotHarness) -> None:
    tg, sim = bot.tg, bot.sim
    mallory = tg.user(666, "Mallory")
    chat = tg.private_chat(mallory)
    for text in ("/accounts", "/stats", "/speed fast", "/user 9001", "/ban 9001"):
        answer = await command(tg, chat, mallory, text)
        assert answer == "This command is for the bot's admins.", text
    sent = "\n".join(texts_to(tg, chat["id"]))
    assert DEFAULT_ACCOUNT not in sent
    assert "5f1c3a2e" not in sent
    assert sim.account_speed(DEFAULT_ACCOUNT) == "fast"


async def test_account_turning_tos_alerts_admins_once(bot: BotHarness) -> None:
    tg, sim = bot.tg, bot.sim
    alert = said(ADMIN, "is <b>tos</b>")

    sim.set_account(DEFAULT_ACCOUNT, status="tos", reason="Please accept the ToS")
    call = await tg.wait_for("sendMessage", alert)
    assert "Please accept the ToS" in call.params["text"]
    # Several more checks see the same state; the admin hears of it only once.
    await more_requests(sim, DISCORD_INFO, 5)
    assert len([c for c in tg.calls("sendMessage") if alert(c)]) == 1

    # Back to active ends the episode; a new one alerts again.
    sim.set_account(DEFAULT_ACCOUNT, status="active")
    await more_requests(sim, DISCORD_INFO, 2)
    sim.set_account(DEFAULT_ACCOUNT, status="tos", reason="Please accept the ToS")
    await tg.wait_for("sendMessage", alert, count=2)


async def test_low_fast_time_and_rejected_key_alert(bot: BotHarness) -> None:
    tg, sim = bot.tg, bot.sim
    sim.set_account(DEFAULT_ACCOUNT, fast_remaining_sec=1800)
    await tg.wait_for("sendMessage", said(ADMIN, "3% fast time left"))

    ann = tg.user(1001, "Ann")
    ann_chat = tg.private_chat(ann)
    sim.fail_next(
        "/midjourney/v2/imagine", status=401, body='{"error": "Invalid api key"}', times=2
    )
    tg.send_message(ann_chat, ann, "/imagine one")
    tg.send_message(ann_chat, ann, "/imagine two")
    await tg.wait_for("sendMessage", said(ADMIN, "key was rejected"))
    # Both requesters are told (their status messages turn into the failure).
    await tg.wait_for("editMessageText", said(ann_chat["id"], "key was rejected"), count=2)
    rejected = [c for c in tg.calls("sendMessage") if said(ADMIN, "key was rejected")(c)]
    assert len(rejected) == 1
