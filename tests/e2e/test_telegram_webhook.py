"""Telegram updates by webhook (TELEGRAM_WEBHOOK=true) on the bot's own server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bot.playground.emulator import FakeTelegram
from bot.userapi.simulator import Simulator
from bot.web.server import MAX_WEBHOOK_BYTES
from storage.database import Database
from tests.e2e.harness import BotHarness, button_labels, until
from tests.e2e.image_session import picture
from tests.hostile import post_in_pieces


@pytest.fixture
async def webhook_bot(
    tg: FakeTelegram, sim: Simulator, tmp_path: Path
) -> AsyncIterator[BotHarness]:
    runner = BotHarness(
        tg=tg,
        sim=sim,
        database_path=tmp_path / "bot.sqlite3",
        webhooks=True,
        overrides={"telegram_webhook": True},
    )
    await runner.start()
    yield runner
    await runner.stop()


async def test_updates_arrive_by_webhook_with_the_secret(
    webhook_bot: BotHarness,
    tg: FakeTelegram,
) -> None:
    set_webhook = tg.calls("setWebhook")[-1]
    url = str(set_webhook.params["url"])
    assert url.startswith(f"http://127.0.0.1:{webhook_bot.port}/telegram/webhook/")
    assert tg.token not in url  # the path is derived from the token, never the token itself
    assert set_webhook.params["secret_token"]
    assert not tg.calls("getUpdates")

    ann = tg.user(7, "Ann")
    chat = tg.private_chat(ann)
    tg.send_message(chat, ann, "/imagine a quiet harbour")
    grid = await webhook_bot.photo_reply(chat["id"], lambda c: "reply_markup" in c.params)
    assert button_labels(grid)[0] == ["U1", "U2", "U3", "U4"]
    assert all(
        d.headers.get("X-Telegram-Bot-Api-Secret-Token") == set_webhook.params["secret_token"]
        for d in tg.webhook_deliveries
    )


async def test_a_forged_update_without_the_secret_is_refused(
    webhook_bot: BotHarness,
    tg: FakeTelegram,
) -> None:
    url = str(tg.calls("setWebhook")[-1].params["url"])
    forged = {
        "update_id": 999,
        "message": {
            "message_id": 1,
            "date": 0,
            "chat": {"id": 5, "type": "private", "first_name": "M"},
            "from": {"id": 5, "is_bot": False, "first_name": "M"},
            "text": "/imagine forged",
        },
    }
    async with httpx.AsyncClient() as client:
        missing = await client.post(url, json=forged)
        wrong = await client.post(
            url, json=forged, headers={"X-Telegram-Bot-Api-Secret-Token": "guess"}
        )
        odd = await client.post(
            url, json=forged, headers={b"X-Telegram-Bot-Api-Secret-Token": "güess".encode()}
        )
    assert missing.status_code == 401
    assert wrong.status_code == 401
    assert odd.status_code == 401
    # A real update afterwards is handled; the forged ones never were.
    ann = tg.user(8, "Bob")
    chat = tg.private_chat(ann)
    tg.send_message(chat, ann, "/help")
    await tg.wait_for("sendMessage", lambda c: c.ok and c.params["chat_id"] == chat["id"])
    assert not [c for c in tg.requests if c.params.get("chat_id") == 5]
    assert not webhook_bot.sim.requests_to("/midjourney/v2/imagine")


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_an_update_in_delayed_pieces_is_handled_and_an_oversized_one_is_413(
    webhook_bot: BotHarness, tg: FakeTelegram, chunked: bool
) -> None:
    set_webhook = tg.calls("setWebhook")[-1]
    path = "/" + str(set_webhook.params["url"]).split("/", 3)[3]
    headers = {
        "Content-Type": "application/json",
        "X-Telegram-Bot-Api-Secret-Token": str(set_webhook.params["secret_token"]),
    }
    ann = tg.user(9, "Cy")
    chat = tg.private_chat(ann)
    update = {
        "update_id": 4242,
        "message": {
            "message_id": 1,
            "date": 0,
            "chat": chat,
            "from": ann,
            "text": "/help",
            "entities": [{"type": "bot_command", "offset": 0, "length": 5}],
            "pad": "x" * 30_000,
        },
    }
    status, _ = await post_in_pieces(
        webhook_bot.port, path, json.dumps(update).encode(), headers, chunked=chunked
    )
    assert status == 200
    await tg.wait_for("sendMessage", lambda c: c.ok and c.params["chat_id"] == chat["id"])

    update["message"]["pad"] = "x" * (MAX_WEBHOOK_BYTES + 1)  # type: ignore[index]
    status, _ = await post_in_pieces(
        webhook_bot.port, path, json.dumps(update).encode(), headers, chunked=chunked, delay=0.05
    )
    assert status == 413


async def test_an_album_still_gathering_at_stop_is_handled_before_the_bot_stops(
    tg: FakeTelegram, sim: Simulator, tmp_path: Path
) -> None:
    bot = BotHarness(
        tg=tg,
        sim=sim,
        database_path=tmp_path / "bot.sqlite3",
        webhooks=True,
        overrides={"telegram_webhook": True},
    )
    await bot.start()
    ann = tg.user(11, "Di")
    chat = tg.private_chat(ann)
    delivered = len(tg.webhook_deliveries)
    for number, color in enumerate(("red", "blue")):
        caption = "/blend" if number == 0 else None
        tg.send_message(chat, ann, caption=caption, photo=picture(color=color), media_group_id="g")
    await until(lambda: len(tg.webhook_deliveries) >= delivered + 2, "both parts delivered")
    # Stop while the album waits for its quiet moment: its blend must still go out.
    await bot.stop()
    assert len(sim.requests_to("/midjourney/v2/blend")) == 1


async def test_an_update_is_stored_before_the_answer_and_one_a_dead_replica_left_is_handled(
    webhook_bot: BotHarness, tg: FakeTelegram
) -> None:
    assert webhook_bot.app is not None
    db = webhook_bot.app.db
    ann = tg.user(7, "Ann")
    chat = tg.private_chat(ann)
    tg.send_message(chat, ann, "/help")
    await until(lambda: bool(tg.webhook_deliveries), "the update delivered")

    # Handled: nothing stays waiting (the update is remembered only as handled).
    async def handled() -> bool:
        return await _stored(db) == 0 and any(c.ok for c in tg.calls("sendMessage"))

    await until(handled, "handled")

    # A replica stored this update, answered 200 and died before handling it: its claim
    # expired, and the leader handles it.
    update = {
        "update_id": 990001,
        "message": {
            "message_id": 4242,
            "from": ann,
            "chat": chat,
            "date": 1,
            "text": "/imagine left by a dead replica",
            "entities": [{"type": "bot_command", "offset": 0, "length": 8}],
        },
    }
    await db.execute(
        """INSERT INTO telegram_updates (update_id, body, claimed_by, claim_expires, received_at)
           VALUES (990001, :body, 'dead-replica', 0, 0)""",
        {"body": json.dumps(update)},
    )
    await webhook_bot.photo_reply(chat["id"], timeout=30)
    assert await _stored(db) == 0


async def _stored(db: Database) -> int:
    """Updates stored and not yet handled."""
    row = await db.fetch_one("SELECT COUNT(*) AS n FROM telegram_updates WHERE handled_at IS NULL")
    return int(row["n"]) if row else 0
