"""userapi faults over real HTTP: timeouts, a rejected key, an unreachable API, 429 while
polling, and tasks that stop moving. Each ends in words for the user, or in the result."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.playground.emulator import FakeTelegram
from bot.userapi.simulator import Simulator
from tests.e2e.harness import free_port, has_keyboard, make_harness, results, wait_text

IMAGINE = "/midjourney/v2/imagine"
STATUS = "/midjourney/v2/status"


@pytest.fixture(params=["webhooks", "polling"])
def webhooks(request: pytest.FixtureRequest) -> bool:
    return bool(request.param == "webhooks")


async def test_a_timed_out_imagine_is_explained_and_not_resent(
    tg: FakeTelegram, sim: Simulator, tmp_path: Path
) -> None:
    async for harness in make_harness(tg, sim, tmp_path, webhooks=False, userapi_timeout=0.5):
        ann = tg.user(3001, "Ann")
        chat = tg.private_chat(ann)
        # The API takes the request and answers too late: it may have started the job.
        sim.fail_next(IMAGINE, status=200, body='{"hash": "late"}', delay=5.0)
        tg.send_message(chat, ann, "/imagine a slow tide")
        text = await wait_text(tg, chat["id"], "can't be reached")
        assert "try again" in text
        assert len(sim.requests_to(IMAGINE)) == 1  # a paid POST is not repeated after a timeout

        tg.send_message(chat, ann, "/imagine a quick tide")
        await harness.photo_reply(chat["id"], has_keyboard)


async def test_an_unreachable_api_is_explained(
    tg: FakeTelegram, sim: Simulator, tmp_path: Path
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    async for _harness in make_harness(tg, sim, tmp_path, webhooks=False, userapi_base_url=nobody):
        ann = tg.user(3101, "Ann")
        chat = tg.private_chat(ann)
        tg.send_message(chat, ann, "/imagine a lost signal")
        await wait_text(tg, chat["id"], "can't be reached")
        assert results(tg, chat["id"]) == []


async def test_a_rejected_key_is_explained(
    tg: FakeTelegram, sim: Simulator, tmp_path: Path
) -> None:
    async for _harness in make_harness(tg, sim, tmp_path, webhooks=False, userapi_key="wrong-key"):
        ann = tg.user(3201, "Ann")
        chat = tg.private_chat(ann)
        tg.send_message(chat, ann, "/imagine a locked door")
        await wait_text(tg, chat["id"], "key was rejected")
        assert [r.headers.get("api-key") for r in sim.requests_to(IMAGINE)] == ["wrong-key"]


async def test_status_429s_are_backed_off_and_the_result_still_arrives(
    tg: FakeTelegram, sim: Simulator, tmp_path: Path
) -> None:
    async for harness in make_harness(tg, sim, tmp_path, webhooks=False):
        ann = tg.user(3301, "Ann")
        chat = tg.private_chat(ann)
        sim.fail_next(
            STATUS,
            status=429,
            body='{"status": false, "error": "Too many requests"}',
            times=6,
        )
        tg.send_message(chat, ann, "/imagine a crowded room")
        await harness.photo_reply(chat["id"], has_keyboard)
        statuses = sim.requests_to(STATUS)
        assert len(statuses) > 6  # the 429s were all used up, then polling went on
        assert results(tg, chat["id"]) != []


async def test_a_task_with_no_updates_is_polled_then_given_up_with_a_message(
    tg: FakeTelegram, sim: Simulator, tmp_path: Path, webhooks: bool
) -> None:
    async for harness in make_harness(
        tg, sim, tmp_path, webhooks=webhooks, webhook_quiet_after=0.3, stuck_after=1.5
    ):
        ann = tg.user(3401, "Ann")
        chat = tg.private_chat(ann)
        tg.send_message(chat, ann, "/imagine a frozen clock sim:stuck")
        text = await wait_text(tg, chat["id"], "stopped reporting", timeout=15.0)
        assert "try again" in text
        # The watchdog asked before giving up, in either mode.
        assert sim.requests_to(STATUS)
        # And a healthy job right after is not caught by it.
        tg.send_message(chat, ann, "/imagine a running clock")
        await harness.photo_reply(chat["id"], has_keyboard)
        await asyncio.sleep(0.3)
        assert "stopped reporting" not in str(tg.bot_messages(chat["id"])[-1].get("caption"))
