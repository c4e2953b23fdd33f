"""The bot against a fake Telegram that answers 429 whenever Telegram's limits are broken."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.playground.emulator import LimitedTelegram
from bot.userapi.simulator import Simulator
from tests.e2e.harness import BotHarness

# The harness runs the bot's limiter 20x faster; the fake's windows shrink the same way.
SCALE = 20.0
GROUP = -1001700000000
PRIVATE = range(700_001, 700_011)


@pytest.fixture
async def limited_tg() -> AsyncIterator[LimitedTelegram]:
    fake = LimitedTelegram(scale=SCALE)
    await fake.start()
    yield fake
    await fake.stop()


async def run_burst(tg: LimitedTelegram, sim: Simulator, db: Path, rate_scale: float) -> int:
    """Eight jobs in one group and three in each of ten private chats, at once; the 429 count."""
    harness = BotHarness(
        tg=tg,
        sim=sim,
        database_path=db,
        webhooks=True,
        overrides={"telegram_rate_scale": rate_scale, "progress_edit_interval": 0.01},
    )
    await harness.start()
    try:
        group = tg.group_chat(GROUP, "Busy group")
        for n in range(8):
            tg.send_message(group, tg.user(800_000 + n, f"G{n}"), f"/imagine group cat {n}")
        for user_id in PRIVATE:
            user = tg.user(user_id, f"P{user_id}")
            for n in range(3):
                tg.send_message(tg.private_chat(user), user, f"/imagine private cat {n}")
        results = await tg.wait_for(
            "sendPhoto", lambda c: c.ok and "reply_markup" in c.params, count=8 + 30, timeout=60
        )
        assert results is not None
        # Every job got exactly one result, in its own chat.
        photos = [c for c in tg.calls("sendPhoto") if c.ok and "reply_markup" in c.params]
        per_chat = {chat: 0 for chat in [GROUP, *PRIVATE]}
        for call in photos:
            per_chat[int(call.params["chat_id"])] += 1
        assert per_chat == {GROUP: 8} | {chat: 3 for chat in PRIVATE}
        await asyncio.sleep(0.1)  # late edits, if any, reach the fake too
        return len(tg.refused)
    finally:
        await harness.stop()


async def test_a_burst_in_a_group_and_private_chats_draws_no_429(
    limited_tg: LimitedTelegram, sim: Simulator, tmp_path: Path
) -> None:
    refused = await run_burst(limited_tg, sim, tmp_path / "bot.sqlite3", SCALE)
    assert refused == 0, [(c.method, c.params.get("chat_id")) for c in limited_tg.refused]
    # The group's 8 statuses and 8 results alone need most of its 20-a-minute allowance.
    group_sent = [chat for _t, _m, chat in limited_tg.counted if chat == GROUP]
    assert len(group_sent) >= 16
