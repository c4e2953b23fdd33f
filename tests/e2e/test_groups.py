"""Groups over real HTTP: a forum topic, buttons that act for their requester, group switches."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.playground.emulator import ApiCall, FakeTelegram
from bot.userapi.simulator import Simulator
from tests.e2e.harness import BotHarness, answer_of, button_data

ADMIN = 9001
GROUP = -1001234567890
TOPIC = 77
UPSCALE = "/midjourney/v2/upscale"


# Faster than the shared default: these tests care about outcomes, not progress.
SIM_PACE = 0.02


@pytest.fixture
async def bot(tg: FakeTelegram, sim: Simulator, tmp_path: Path) -> AsyncIterator[BotHarness]:
    tg.private_chat(tg.user(ADMIN, "Owner"))
    runner = BotHarness(
        tg=tg,
        sim=sim,
        database_path=tmp_path / "bot.sqlite3",
        webhooks=True,
        overrides={"admin_ids": [ADMIN]},
    )
    await runner.start()
    yield runner
    await runner.stop()


def in_topic(call: ApiCall) -> bool:
    return (
        call.ok
        and int(call.params["chat_id"]) == GROUP
        and call.params.get("message_thread_id") == TOPIC
        and "reply_markup" in call.params
    )


async def test_forum_topic_buttons_act_for_requester_and_admins(bot: BotHarness) -> None:
    tg, sim = bot.tg, bot.sim
    chat = tg.group_chat(GROUP, "Artists", is_forum=True)
    ann = tg.user(1001, "Ann", username="ann")
    bob = tg.user(1002, "Bob")
    owner = tg.user(ADMIN, "Owner")

    request = tg.send_message(
        chat, ann, f"/imagine@{tg.bot_username} a castle on a hill", message_thread_id=TOPIC
    )
    grid = await bot.photo_reply(GROUP, in_topic)
    # The result stays in Ann's topic and answers her message.
    assert grid["message_thread_id"] == TOPIC
    assert grid["reply_to_message"]["message_id"] == request["message_id"]

    # Bob is neither the requester nor an admin: an alert, and nothing reaches the API.
    query = tg.press(grid, button_data(grid, "U1"), bob)
    answer = await answer_of(tg, query)
    assert answer.get("show_alert") is True
    assert "belong" in answer["text"]
    assert sim.requests_to(UPSCALE) == []

    # The bot's admin may press it for Ann; the result goes to the same topic.
    query = tg.press(grid, button_data(grid, "U1"), owner)
    assert not (await answer_of(tg, query)).get("show_alert")
    upscale = await bot.photo_reply(GROUP, in_topic, count=2)
    assert upscale["message_thread_id"] == TOPIC
    assert len(sim.requests_to(UPSCALE)) == 1


async def test_group_admin_settings(bot: BotHarness) -> None:
    tg, sim = bot.tg, bot.sim
    chat = tg.group_chat(GROUP, "Artists", is_forum=True)
    ann = tg.user(1001, "Ann")
    bob = tg.user(1002, "Bob")
    carl = tg.user(1003, "Carl")
    tg.set_admin(GROUP, carl["id"])

    tg.send_message(chat, ann, "/imagine a quiet harbor", message_thread_id=TOPIC)
    grid = await bot.photo_reply(GROUP, in_topic)

    # A group admin may press anyone's buttons.
    query = tg.press(grid, button_data(grid, "U2"), carl)
    assert not (await answer_of(tg, query)).get("show_alert")
    await bot.photo_reply(GROUP, in_topic, count=2)

    # A member can't change the group's settings; an admin lets everyone press.
    tg.send_message(chat, bob, "/group_buttons everyone", message_thread_id=TOPIC)
    await tg.wait_for("sendMessage", lambda c: "Only the bot's admins" in c.params["text"])
    tg.send_message(chat, carl, "/group_buttons everyone", message_thread_id=TOPIC)
    await tg.wait_for("sendMessage", lambda c: "Everyone here" in c.params["text"])
    query = tg.press(grid, button_data(grid, "U3"), bob)
    assert not (await answer_of(tg, query)).get("show_alert")
    await bot.photo_reply(GROUP, in_topic, count=3)
    assert len(sim.requests_to(UPSCALE)) == 2

    # Switched off, the group is ignored (buttons included) until switched back on.
    tg.send_message(chat, carl, "/bot_off", message_thread_id=TOPIC)
    await tg.wait_for("sendMessage", lambda c: "off in this group" in c.params["text"])
    query = tg.press(grid, button_data(grid, "U4"), ann)
    assert (await answer_of(tg, query)).get("show_alert") is True
    tg.send_message(chat, carl, "/bot_on", message_thread_id=TOPIC)
    await tg.wait_for("sendMessage", lambda c: "on in this group" in c.params["text"])
    query = tg.press(grid, button_data(grid, "U4"), ann)
    assert not (await answer_of(tg, query)).get("show_alert")
    await bot.photo_reply(GROUP, in_topic, count=4)
    assert len(sim.requests_to(UPSCALE)) == 3
