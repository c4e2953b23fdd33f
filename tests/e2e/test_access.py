"""Access over real HTTP: refusals before any cost, floods, forged buttons, who is who in
groups, waiting states across restarts, and pruning at start."""

from __future__ import annotations

import asyncio
import io
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from bot.playground.emulator import FakeTelegram
from bot.userapi.simulator import Simulator
from handlers.images.common import ImageMenu
from handlers.middlewares.throttle import BURST
from storage.database import Database
from storage.tasks import TaskRepo, TaskUpdate
from tests.e2e.harness import (
    BotHarness,
    MakeBot,
    answer_of,
    button_data,
    has_keyboard,
    said,
    started_bots,
    wait_in_flight,
)
from tests.e2e.image_session import ImageUser, picture

ADMIN = 9001
GROUP = -1001234567890
UPSCALE = "/midjourney/v2/upscale"
IMAGINE = "/midjourney/v2/imagine"
# Long enough for a wrongly started download, upload or job to show at the fakes.
SETTLE = 0.5
DAY = 24 * 3600

# Faster than the shared default: these tests care about outcomes, not progress.
SIM_PACE = 0.02


@pytest.fixture
async def make_bot(tg: FakeTelegram, sim: Simulator, tmp_path: Path) -> AsyncIterator[MakeBot]:
    tg.private_chat(tg.user(ADMIN, "Owner"))
    async with started_bots(tg, sim, tmp_path, admin_ids=[ADMIN]) as make:
        yield make


def sent_to(tg: FakeTelegram, chat_id: int) -> list[str]:
    """Every text and caption the bot sent or edited into a chat."""
    found = []
    for call in tg.requests:
        if str(call.params.get("chat_id")) == str(chat_id):
            found.append(str(call.params.get("text") or call.params.get("caption") or ""))
    return found


async def settled(tg: FakeTelegram, chat_id: int) -> list[str]:
    """What the bot sent to a chat, once nothing more has come for a while."""
    seen = sent_to(tg, chat_id)
    while True:
        await asyncio.sleep(SETTLE)
        now = sent_to(tg, chat_id)
        if now == seen:
            return now
        seen = now


# ------------------------------------------------------------------ access before cost


async def test_allowlist_outsiders_photo_costs_nothing(make_bot: Any) -> None:
    bot: BotHarness = await make_bot(access_mode="allowlist")
    tg, sim = bot.tg, bot.sim
    eve = tg.user(4001, "Eve")
    chat = tg.private_chat(eve)
    tg.send_message(chat, eve, photo=picture(), caption="/describe")
    refusal = await tg.wait_for("sendMessage", said(chat["id"], "This bot is private"))
    assert "4001" in refusal.params["text"]  # what to tell the owner
    # In a group nobody allowed, a photo for the bot is refused as early; chatter is ignored.
    group = tg.group_chat(GROUP, "Strangers")
    tg.send_message(group, eve, photo=picture(), caption=f"/describe@{tg.bot_username}")
    tg.send_message(group, eve, photo=picture(color="red"))
    tg.send_message(group, eve, "hello everyone")
    await tg.wait_for("sendMessage", said(GROUP, "This bot is private"))
    await asyncio.sleep(SETTLE)

    assert tg.calls("getFile") == []  # no file path asked for, so nothing downloaded
    assert sim.requests == []  # no upload, no job
    assert len(sent_to(tg, chat["id"])) == 1
    assert len(sent_to(tg, GROUP)) == 1

    # Allowed, the same photo goes through: the refusal above was the allowlist's.
    owner = tg.private_chat(tg.user(ADMIN, "Owner"))
    tg.send_message(owner, tg.user(ADMIN, "Owner"), "/allow 4001")
    await tg.wait_for("sendMessage", lambda c: int(c.params["chat_id"]) == ADMIN)
    tg.send_message(chat, eve, photo=picture(), caption="/describe")
    await tg.wait_for("getFile")
    await tg.wait_for("sendMessage", lambda c: int(c.params["chat_id"]) == chat["id"], count=3)


async def test_limits_refuse_a_photo_before_download(make_bot: Any) -> None:
    bot: BotHarness = await make_bot(user_concurrent_jobs=1)
    tg, sim = bot.tg, bot.sim
    sim.config.hold = True
    ann = tg.user(1001, "Ann")
    chat = tg.private_chat(ann)
    tg.send_message(chat, ann, "/imagine a held job")
    await wait_in_flight(bot, 1)
    tg.send_message(chat, ann, photo=picture(), caption="/describe")
    await tg.wait_for("sendMessage", said(chat["id"], "jobs running"))
    # The same when the photo answers a waiting /describe.
    tg.send_message(chat, ann, "/describe")
    await tg.wait_for("sendMessage", said(chat["id"], "Send me the photo"))
    tg.send_message(chat, ann, photo=picture(color="navy"))
    await tg.wait_for("sendMessage", said(chat["id"], "jobs running"), count=2)
    # And when a command answers a photo it would upload as a reference or image prompt.
    photo = tg.send_message(chat, ann, photo=picture(color="teal"))
    for command in ("/sref a fox", "/imagine a fox"):
        tg.send_message(chat, ann, command, reply_to_message_id=photo["message_id"])
    await tg.wait_for("sendMessage", said(chat["id"], "jobs running"), count=4)
    await asyncio.sleep(SETTLE)
    assert tg.calls("getFile") == []
    assert sim.requests_to("/midjourney/v2/upload") == []
    sim.release()


async def test_a_flood_gets_one_notice(make_bot: Any) -> None:
    bot: BotHarness = await make_bot()
    tg = bot.tg
    ann, bob = tg.user(1001, "Ann"), tg.user(1002, "Bob")
    chat, bob_chat = tg.private_chat(ann), tg.private_chat(bob)
    started = time.monotonic()
    for _ in range(150):
        tg.send_message(chat, ann, "/me")
    while tg.pending_updates:
        assert time.monotonic() - started < 10, "the bot stopped reading updates"
        await asyncio.sleep(0.01)
    read_in = time.monotonic() - started
    await tg.wait_for("sendMessage", said(chat["id"], "Too many messages"))
    replies = await settled(tg, chat["id"])
    assert sum("Too many messages" in text for text in replies) == 1
    answered = sum("Jobs today" in text for text in replies)
    # The burst, plus what refilled while the flood was read; far from one reply each.
    assert BURST <= answered <= BURST + 2 * read_in + 2, (answered, read_in)

    # A flood of presses: the same, and someone else is not held back by Ann's flood.
    tg.send_message(bob_chat, bob, "/me")
    menu = (await tg.wait_for("sendMessage", said(bob_chat["id"], "Jobs today"))).result
    # A press every handler answers without editing anything: Blend, with no blend started.
    data = ImageMenu(do="blend").pack()
    queries = [tg.press(menu, data, bob, check=False) for _ in range(120)]
    await tg.wait_for(
        "answerCallbackQuery", lambda c: "Too many" in str(c.params.get("text") or "")
    )
    await asyncio.sleep(SETTLE)
    answers = [tg.callback_answer(query) for query in queries]
    told = [a for a in answers if a is not None and "Too many" in str(a.get("text") or "")]
    assert len(told) == 1
    assert sum(a is not None for a in answers) < len(queries) // 2


# ------------------------------------------------------------------ buttons where shown


async def test_a_forged_press_naming_another_chats_task_runs_nothing(make_bot: Any) -> None:
    bot: BotHarness = await make_bot()
    tg, sim = bot.tg, bot.sim
    group = tg.group_chat(GROUP, "Artists")
    ann, carl, eve = tg.user(1001, "Ann"), tg.user(1003, "Carl"), tg.user(4001, "Eve")
    tg.set_admin(GROUP, carl["id"])
    tg.send_message(group, carl, "/group_buttons everyone")
    await tg.wait_for("sendMessage", said(GROUP, "Everyone here"))
    tg.send_message(group, ann, f"/imagine@{tg.bot_username} a secret garden party")
    group_grid = await bot.photo_reply(GROUP, has_keyboard)

    # Eve is no member: from her own chat she presses data naming the group's job.
    eve_chat = tg.private_chat(eve)
    tg.send_message(eve_chat, eve, "/imagine a plain wall")
    eve_grid = await bot.photo_reply(eve_chat["id"], has_keyboard)
    forged = button_data(group_grid, "U1")
    answer = await answer_of(tg, tg.press(eve_grid, forged, eve, check=False))
    assert answer.get("show_alert") is True
    assert "this message" in answer["text"]
    await asyncio.sleep(SETTLE)
    assert sim.requests_to(UPSCALE) == []
    assert not any("secret garden" in text for text in sent_to(tg, eve_chat["id"]))
    assert "secret garden" not in str(answer)
    # Message ids count per chat: one of Eve's messages has the group result's id. Pressed
    # there, the data still names a task of another chat.
    target = group_grid["message_id"]
    for _ in range(target):
        if tg.message(eve_chat["id"], target) is not None:
            break
        tg.send_message(eve_chat, eve, "/me")
        await tg.wait_for("sendMessage", said(eve_chat["id"], "Jobs today"))
    same_id = tg.message(eve_chat["id"], target)
    assert same_id is not None
    answer = await answer_of(tg, tg.press(same_id, forged, eve, check=False))
    assert answer.get("show_alert") is True
    await asyncio.sleep(SETTLE)
    assert sim.requests_to(UPSCALE) == []

    # In the group itself, the data of one result pressed under another is refused too.
    tg.send_message(group, ann, f"/imagine@{tg.bot_username} a second party")
    second = await bot.photo_reply(GROUP, has_keyboard, count=2)
    answer = await answer_of(tg, tg.press(second, forged, ann, check=False))
    assert answer.get("show_alert") is True
    await asyncio.sleep(SETTLE)
    assert sim.requests_to(UPSCALE) == []

    # The real button under the right message still works, for anyone in the group.
    answer = await answer_of(tg, tg.press(group_grid, forged, tg.user(1002, "Bob")))
    assert not answer.get("show_alert")
    await bot.photo_reply(GROUP, has_keyboard, count=3)
    assert len(sim.requests_to(UPSCALE)) == 1


# ------------------------------------------------------------------ who is who in groups


async def test_channel_and_anonymous_admin_senders_are_refused(make_bot: Any) -> None:
    bot: BotHarness = await make_bot()
    tg, sim = bot.tg, bot.sim
    group = tg.group_chat(GROUP, "Artists")
    channel = {"id": -1009876543210, "type": "channel", "title": "News"}
    # Telegram's stand-in senders: every channel and anonymous admin shares these ids.
    channel_bot = tg.user(136817688, "Channel", username="Channel_Bot")
    anonymous = tg.user(1087968824, "Group", username="GroupAnonymousBot")

    tg.send_message(group, channel_bot, f"/imagine@{tg.bot_username} a cat", sender_chat=channel)
    tg.send_message(group, anonymous, f"/imagine@{tg.bot_username} a dog", sender_chat=group)
    tg.send_message(group, anonymous, "just chatting", sender_chat=group)
    await tg.wait_for("sendMessage", said(GROUP, "write as yourself"), count=2)
    await asyncio.sleep(SETTLE)
    assert sim.requests_to(IMAGINE) == []
    assert len(sent_to(tg, GROUP)) == 2

    # A person in the same group is served as usual.
    tg.send_message(group, tg.user(1001, "Ann"), f"/imagine@{tg.bot_username} a bird")
    await bot.photo_reply(GROUP, has_keyboard)
    assert len(sim.requests_to(IMAGINE)) == 1


async def test_history_shows_only_this_chats_jobs(make_bot: Any) -> None:
    bot: BotHarness = await make_bot()
    tg, sim = bot.tg, bot.sim
    ann = tg.user(1001, "Ann")
    private = tg.private_chat(ann)
    group = tg.group_chat(GROUP, "Artists")
    tg.send_message(private, ann, "/imagine a private fox")
    await bot.photo_reply(private["id"], has_keyboard)
    tg.send_message(group, ann, f"/imagine@{tg.bot_username} a group owl")
    await bot.photo_reply(GROUP, has_keyboard)

    tg.send_message(group, ann, "/history")
    listing = (await tg.wait_for("sendMessage", said(GROUP, "Your recent jobs"))).result
    assert "a group owl" in listing["text"]
    assert "private fox" not in listing["text"]
    tg.send_message(private, ann, "/history")
    mine = (await tg.wait_for("sendMessage", said(private["id"], "Your recent jobs"))).result
    assert "a private fox" in mine["text"]
    assert "group owl" not in mine["text"]

    # The result sent again carries its buttons, and they work there.
    tg.press(listing, button_data(listing, "↩️ 1"), ann)
    again = await bot.photo_reply(GROUP, has_keyboard, count=2)
    answer = await answer_of(tg, tg.press(again, button_data(again, "U2"), ann))
    assert not answer.get("show_alert")
    await bot.photo_reply(GROUP, has_keyboard, count=3)
    assert len(sim.requests_to(UPSCALE)) == 1


# ------------------------------------------------------------------ nothing grows forever


def mask_png() -> bytes:
    mask = Image.new("L", (100, 50), 0)
    ImageDraw.Draw(mask).rectangle((0, 0, 49, 49), fill=255)
    out = io.BytesIO()
    mask.save(out, "PNG")
    return out.getvalue()


def stored_states(path: Path) -> list[tuple[str | None, str]]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT state, data FROM fsm_states")
        return [(row[0], row[1]) for row in rows]


async def test_describe_and_mask_flows_survive_restarts(make_bot: Any) -> None:
    bot: BotHarness = await make_bot()
    ann = ImageUser(bot)
    ann.send("/describe")
    await ann.text_reply("Send me the photo to describe.")
    await bot.stop()
    await bot.start()
    ann.send(photo=picture())
    await ann.described()

    ann.send("/imagine a quiet harbour at dawn")
    grid = await ann.result_photo()
    ann.press(grid, "U1")
    upscale = await ann.result_photo(count=2)
    ann.press(upscale, "Vary (Region)")
    question = await ann.text_reply("send a black-and-white mask image")
    await bot.stop()
    await bot.start()
    ann.send(
        document=(mask_png(), "mask.png", "image/png"),
        reply_to_message_id=question.result["message_id"],
    )
    ask = await ann.text_reply("reply with the prompt for the painted area")
    # What waits is a reference to Telegram's copy of the mask, never the image itself.
    states = stored_states(bot.database_path)
    assert [state for state, _ in states] == ["Flow:mask_prompt"]
    assert all(len(data) < 1000 for _, data in states), states
    await bot.stop()
    await bot.start()
    ann.send("a red sailboat", reply_to_message_id=ask.result["message_id"])
    await ann.result_photo(count=3)
    body = ann.bodies("inpaint")[0]
    assert body["prompt"] == "a red sailboat"
    assert body["mask"]


async def test_old_records_are_pruned_at_start(make_bot: Any, tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "bot.sqlite3")
    repo = TaskRepo(db)
    failed = await repo.create(type="imagine", chat_id=1001, user_id=1001, prompt="old fail")
    await repo.fail(failed.id, "banned_prompt")
    await repo.mark_delivered(failed.id, message_id=5, file_id=None)
    kept = await repo.create(type="imagine", chat_id=1001, user_id=1001, prompt="old result")
    await repo.set_hash(kept.id, "kept-hash")
    await repo.apply(TaskUpdate(hash="kept-hash", status="done"))
    await repo.mark_delivered(kept.id, message_id=6, file_id="AgACkept")
    await db.execute("UPDATE tasks SET created_at = :when", {"when": time.time() - 91 * DAY})
    await db.close()

    bot: BotHarness = await make_bot()
    assert bot.app is not None
    live = TaskRepo(bot.app.db)
    deadline = time.monotonic() + 10
    while await live.get(failed.id) is not None:
        assert time.monotonic() < deadline, "the old failed job was not pruned at start"
        await asyncio.sleep(0.05)
    assert await live.get(kept.id) is not None
