"""Inline mode: `@bot [words]` lists the asker's own results by Telegram file id, and no one
else's; the admins hear once when BotFather has inline mode off."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bot.playground.emulator import FakeTelegram, JSONDict
from bot.userapi.simulator import Simulator
from tests.e2e.harness import BotHarness, button_data, has_keyboard, said, started_bots, until

ANN, BOB, CAROL = 1001, 1002, 1003


async def ask(tg: FakeTelegram, user: JSONDict, query: str = "", offset: str = "") -> JSONDict:
    """Type `@bot query` as a user and return the bot's answerInlineQuery."""
    query_id = tg.inline_query(user, query, offset=offset)
    await tg.wait_for(
        "answerInlineQuery", lambda c: c.ok and c.params["inline_query_id"] == query_id
    )
    answer = tg.inline_answer(query_id)
    assert answer is not None
    return answer


def file_ids(answer: JSONDict) -> list[str]:
    """The Telegram file ids an inline answer offers, in order."""
    return [str(result["photo_file_id"]) for result in answer["results"]]


def photo_id(message: dict[str, Any]) -> str:
    """The file id of the largest size of a photo message (the one the bot keeps)."""
    return str(message["photo"][-1]["file_id"])


async def test_a_users_inline_query_lists_their_own_results_by_file_id(
    harness: BotHarness,
) -> None:
    tg = harness.tg
    ann, bob, carol = tg.user(ANN, "Ann"), tg.user(BOB, "Bob"), tg.user(CAROL, "Carol")
    tg.send_message(tg.private_chat(ann), ann, "/imagine a red fox in the snow")
    grid = await harness.photo_reply(ANN, has_keyboard)
    tg.press(grid, button_data(grid, "U2"), ann)
    upscale = await harness.photo_reply(ANN, has_keyboard, count=2)
    tg.send_message(tg.private_chat(bob), bob, "/imagine a blue whale")
    whale = await harness.photo_reply(BOB, has_keyboard)
    uploads = len(tg.calls("sendPhoto"))

    # Upscales first, then grids, newest first; Telegram's copies, nothing uploaded again.
    answer = await ask(tg, ann)
    assert file_ids(answer) == [photo_id(upscale), photo_id(grid)]
    assert (answer["is_personal"], answer["cache_time"]) == (True, 10)
    assert "next_offset" not in answer and "button" not in answer
    first = answer["results"][0]
    assert first["type"] == "photo" and first["title"] == "Upscale #2"
    # The prompt as written, and no buttons: they could do nothing in someone else's chat.
    assert first["caption"].startswith("a red fox in the snow") and "parse_mode" not in first
    assert all("reply_markup" not in result for result in answer["results"])
    assert len(tg.calls("sendPhoto")) == uploads

    # Words search the prompts, in any case; a word in no prompt of hers finds nothing.
    assert file_ids(await ask(tg, ann, "FOX snow")) == [photo_id(upscale), photo_id(grid)]
    for word in ("zebra", "whale"):
        nothing = await ask(tg, ann, word)
        assert nothing["results"] == []
        assert nothing["button"]["start_parameter"] == "inline"

    # Another user's query shows their own results only, never Ann's.
    assert file_ids(await ask(tg, bob)) == [photo_id(whale)]
    assert (await ask(tg, bob, "fox"))["results"] == []
    # Someone with no results gets none, and a button that opens the bot.
    empty = await ask(tg, carol)
    assert empty["results"] == [] and empty["is_personal"] is True
    assert empty["button"] == {"text": "No images yet: make one", "start_parameter": "inline"}
    # The button opens the bot's chat with `/start inline`: the help, which tells how to share.
    tg.send_message(tg.private_chat(carol), carol, "/start inline")
    await tg.wait_for("sendMessage", said(CAROL, "type <code>@mj_test_bot</code>"))


async def test_a_result_shared_into_the_bots_own_chat_is_not_a_request(
    harness: BotHarness,
) -> None:
    tg = harness.tg
    ann = tg.user(ANN, "Ann")
    chat = tg.private_chat(ann)
    tg.send_message(chat, ann, "/imagine a paper boat")
    await harness.photo_reply(ANN, has_keyboard)
    app = harness.app
    assert app is not None

    async def shareable() -> bool:
        # Telegram's file id is stored a moment after the photo arrived.
        row = await app.db.fetch_one(
            "SELECT COUNT(*) AS n FROM tasks WHERE user_id = :user AND result_file_id IS NOT NULL",
            {"user": ANN},
        )
        return row is not None and int(row["n"]) == 1

    await until(shareable, "the grid stored with its file id")
    query_id = tg.inline_query(ann, "boat", chat_type="sender")
    answer = await tg.wait_inline_answer(query_id)
    before = len(tg.requests)
    shared = tg.choose_inline_result(chat, ann, query_id, answer["results"][0]["id"])
    assert shared["via_bot"]["id"] == tg.bot_user["id"] and shared["photo"]

    # The next message is answered; the shared photo, handled before it, asked nothing of the bot.
    tg.send_message(chat, ann, "/help")
    await tg.wait_for("sendMessage", said(ANN, "/imagine"), count=1)
    sent = [call for call in tg.requests[before:] if call.method.startswith("send")]
    assert [call.method for call in sent] == ["sendMessage"] and said(ANN, "/imagine")(sent[0])


async def test_answers_page_past_fifty_results(polling_harness: BotHarness) -> None:
    harness, tg = polling_harness, polling_harness.tg
    ann = tg.user(ANN, "Ann")
    tg.send_message(tg.private_chat(ann), ann, "/imagine lighthouse number zero")
    grid = await harness.photo_reply(ANN, has_keyboard)
    assert harness.app is not None
    # Sixty more finished results of Ann's, Telegram holding each (the same photo will do).
    for number in range(1, 61):
        await harness.app.db.insert(
            """INSERT INTO tasks (type, prompt, status, status_rank, progress, chat_id,
                   user_id, result_file_id, delivery, created_at, updated_at)
               VALUES ('imagine', :prompt, 'done', 4, 100, :user, :user, :file_id,
                   'delivered', :now, :now) RETURNING id""",
            {
                "prompt": f"lighthouse number {number}",
                "user": ANN,
                "file_id": photo_id(grid),
                "now": time.time(),
            },
        )
    first = await ask(tg, ann)
    assert len(first["results"]) == 50 and first["next_offset"] == "50"
    rest = await ask(tg, ann, offset=first["next_offset"])
    assert len(rest["results"]) == 11 and "next_offset" not in rest
    ids = [result["id"] for result in first["results"] + rest["results"]]
    assert len(set(ids)) == 61
    # Newest first: number 60 leads, the real grid comes last.
    assert first["results"][0]["caption"] == "lighthouse number 60"
    assert rest["results"][-1]["caption"].startswith("lighthouse number zero")
    # A search keeps to its matches (words match inside words, as the user types them).
    found = await ask(tg, ann, "number 5")
    numbers = [int(r["caption"].rsplit(" ", 1)[1]) for r in found["results"]]
    assert numbers == [59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 45, 35, 25, 15, 5]
    assert "next_offset" not in found


async def test_admins_are_told_once_when_inline_mode_is_off(
    tg: FakeTelegram, sim: Simulator, tmp_path: Path
) -> None:
    tg.private_chat(tg.user(ANN, "Ann"))
    told = said(ANN, "/setinline")
    tg.supports_inline_queries = False
    async with started_bots(tg, sim, tmp_path, admin_ids=[ANN]) as make:
        bot = await make()
        await tg.wait_for("sendMessage", told)
        # Off still after a restart: already told, not again.
        await bot.stop()
        await bot.start()
        tg.supports_inline_queries = True
        await bot.stop()
        await bot.start()
        # Turned off again after it was on: told again.
        tg.supports_inline_queries = False
        await bot.stop()
        await bot.start()
        await tg.wait_for("sendMessage", told, count=2)
    assert len([call for call in tg.calls("sendMessage") if told(call)]) == 2
