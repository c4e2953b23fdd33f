"""Status messages meeting Telegram's edit errors: deleted by the user, "not modified",
replaced by a preview photo. Each job still ends in one result (or one failure) in its chat.

Webhooks from the simulator are held back and posted by the tests, snapshot by snapshot, so
every step lands at a known moment; delivery does not depend on how updates arrive.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from bot.playground.emulator import NOT_MODIFIED, ApiCall, FakeTelegram
from bot.userapi.simulator import Simulator
from storage.tasks import TaskRepo
from tests.e2e.harness import (
    SETTLE,
    BotHarness,
    edits_and_sends,
    has_keyboard,
    make_harness,
    post,
    results,
    snapshot,
    texts,
    until,
    userapi_webhook_url,
    wait_in_flight,
    wait_text,
)

FAILED = "failed: Simulated Midjourney failure"
EDIT_GONE = "Bad Request: message to edit not found"
DELETE_GONE = "Bad Request: message to delete not found"


def shown(call: ApiCall) -> str:
    """The text or caption a send or edit call puts in the chat."""
    media = call.params.get("media")
    caption = media.get("caption") if isinstance(media, dict) else None
    return str(call.params.get("text") or call.params.get("caption") or caption or "")


def in_chat(call: ApiCall, chat_id: int) -> bool:
    """Whether a call went to this chat."""
    return int(call.params.get("chat_id", 0)) == chat_id


def errors(tg: FakeTelegram, method: str, description: str) -> list[ApiCall]:
    """Calls of a method that Telegram refused with this description."""
    return [c for c in tg.calls(method) if c.response.get("description") == description]


async def run_quietly(
    harness: BotHarness, chat: dict[str, Any], user: dict[str, Any], prompt: str, until: str
) -> tuple[str, int]:
    """Run an /imagine to `until` at the simulator, telling the bot nothing.

    Returns the task's hash and the bot's status message, which still says "Sending".
    """
    harness.sim.config.send_webhooks = False
    harness.tg.send_message(chat, user, f"/imagine {prompt}")
    [task_hash] = await wait_in_flight(harness, 1)
    status = await harness.tg.wait_for(
        "sendMessage", lambda c: c.ok and in_chat(c, chat["id"]) and "Sending" in shown(c)
    )
    await harness.sim.wait_for_status(task_hash, until)
    return task_hash, int(status.result["message_id"])


class QuietJob(NamedTuple):
    """A job run at the simulator with the bot told nothing, and where the bot shows it."""

    chat: dict[str, Any]
    user: dict[str, Any]
    chat_id: int
    task_hash: str
    status_id: int


async def quiet_job(harness: BotHarness, user_id: int, prompt: str, until: str) -> QuietJob:
    """A private chat with a new user whose /imagine runs to `until`, untold (`run_quietly`)."""
    user = harness.tg.user(user_id, "Ann")
    chat = harness.tg.private_chat(user)
    task_hash, status_id = await run_quietly(harness, chat, user, prompt, until)
    return QuietJob(chat, user, int(chat["id"]), task_hash, status_id)


async def tell(
    harness: BotHarness, task_hash: str, status: str, progress: int | None = None
) -> None:
    """Post the bot the simulator's webhook of a task at a status (and progress)."""
    body = snapshot(harness.sim, task_hash, status, progress)
    assert await post(userapi_webhook_url(harness), body) == 200


async def requested(sim: Simulator, path: str, timeout: float = 5.0) -> None:
    """Wait until the simulator has received a request for `path`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not sim.requests_to(path):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"no request to {path} after {timeout}s")
        await asyncio.sleep(0.01)


async def first_preview(harness: BotHarness, task_hash: str, chat_id: int, status_id: int) -> int:
    """Post progress 10: the status becomes a preview photo; return that photo's id."""
    tg = harness.tg
    await tell(harness, task_hash, "progress", 10)
    photo = await tg.wait_for("sendPhoto", lambda c: c.ok and "10%" in shown(c))
    # The text status it replaces is deleted: the preview is the status message now.
    await tg.wait_for("deleteMessage", lambda c: c.ok and c.params["message_id"] == status_id)
    assert in_chat(photo, chat_id) and not has_keyboard(photo)
    return int(photo.result["message_id"])


async def test_status_message_deleted_mid_job_is_posted_anew(
    webhook_harness: BotHarness,
) -> None:
    harness, tg, sim = webhook_harness, webhook_harness.tg, webhook_harness.sim
    chat, ann, chat_id, task_hash, status_id = await quiet_job(
        harness, 4001, "a lighthouse at dusk", "done"
    )
    preview_id = await first_preview(harness, task_hash, chat_id, status_id)

    tg.delete_as_user(chat_id, preview_id)
    await tell(harness, task_hash, "progress", 45)
    # The edit finds no message; a fresh status message takes over, at the current progress.
    fresh = await tg.wait_for("sendMessage", lambda c: c.ok and "45%" in shown(c))
    fresh_id = int(fresh.result["message_id"])
    [refused] = errors(tg, "editMessageMedia", EDIT_GONE)
    assert refused.params["message_id"] == preview_id
    assert refused.at < fresh.at
    assert "45%" in str((tg.message(chat_id, fresh_id) or {}).get("text"))

    # Progress goes on from the fresh message (it becomes the next preview, as any text does).
    await tell(harness, task_hash, "progress", 80)
    photo = await tg.wait_for("sendPhoto", lambda c: c.ok and "80%" in shown(c))
    await tg.wait_for("deleteMessage", lambda c: c.ok and c.params["message_id"] == fresh_id)
    assert [m["message_id"] for m in tg.bot_messages(chat_id)] == [photo.result["message_id"]]

    await tell(harness, task_hash, "done")
    result = await harness.photo_reply(chat_id, has_keyboard)
    await asyncio.sleep(SETTLE)
    assert len(results(tg, chat_id)) == 1
    # Nothing of the progress is left behind: the chat holds the result alone.
    assert [m["message_id"] for m in tg.bot_messages(chat_id)] == [result["message_id"]]

    sim.config.send_webhooks = True
    tg.send_message(chat, ann, "/imagine a second lighthouse")
    await harness.photo_reply(chat_id, has_keyboard, count=2)


async def test_failure_after_the_status_message_was_deleted_is_sent_anew(
    webhook_harness: BotHarness,
) -> None:
    harness, tg = webhook_harness, webhook_harness.tg
    *_, chat_id, task_hash, status_id = await quiet_job(
        harness, 4101, "a storm sim:error", "error"
    )

    tg.delete_as_user(chat_id, status_id)
    await tell(harness, task_hash, "error")
    failure = await wait_text(tg, chat_id, FAILED)
    [refused] = errors(tg, "editMessageText", EDIT_GONE)
    assert refused.params["message_id"] == status_id
    await asyncio.sleep(SETTLE)
    said = [c for c in tg.calls("sendMessage") if c.ok and FAILED in shown(c)]
    assert len(said) == 1
    assert texts(tg, chat_id) == [failure]
    # Marked delivered: a restart (which resends whatever is pending) says nothing more.
    await harness.stop()
    await harness.start()
    await asyncio.sleep(SETTLE)
    assert len([c for c in tg.calls("sendMessage") if FAILED in shown(c)]) == 1


async def test_repeated_progress_webhooks_cause_no_redundant_edits(
    webhook_harness: BotHarness,
) -> None:
    harness, tg = webhook_harness, webhook_harness.tg
    *_, chat_id, task_hash, status_id = await quiet_job(harness, 4201, "a quiet harbour", "done")
    preview_id = await first_preview(harness, task_hash, chat_id, status_id)
    await tell(harness, task_hash, "progress", 45)
    await tg.wait_for("editMessageMedia", lambda c: c.ok and "45%" in shown(c))

    # The same progress again (a resent webhook, racing copies) and a late, older one.
    since = len(tg.requests)
    await asyncio.gather(*(tell(harness, task_hash, "progress", 45) for _ in range(3)))
    await tell(harness, task_hash, "progress", 10)
    await asyncio.sleep(SETTLE)
    # The bot never asks Telegram for an edit that would change nothing.
    assert edits_and_sends(tg, since) == []
    assert [c for c in tg.requests if c.response.get("description") == NOT_MODIFIED] == []
    assert "45%" in str((tg.message(chat_id, preview_id) or {}).get("caption"))

    await tell(harness, task_hash, "done")
    result = await harness.photo_reply(chat_id, has_keyboard)
    await asyncio.sleep(SETTLE)
    assert len(results(tg, chat_id)) == 1
    assert [m["message_id"] for m in tg.bot_messages(chat_id)] == [result["message_id"]]


async def test_a_failure_edit_whose_answer_was_lost_is_not_said_twice(
    webhook_harness: BotHarness,
) -> None:
    harness, tg = webhook_harness, webhook_harness.tg
    *_, chat_id, task_hash, status_id = await quiet_job(
        harness, 4301, "a torn sail sim:error", "error"
    )

    # Telegram makes the edit, but its answer never arrives: the bot sends the edit again.
    tg.lose_answer_next("editMessageText")
    await tell(harness, task_hash, "error")
    again = await tg.wait_for("editMessageText", lambda c: not c.ok)
    assert again.response["description"] == NOT_MODIFIED
    await asyncio.sleep(SETTLE)
    # "Not modified" means it is already shown: the status message is the one failure notice.
    assert [c for c in tg.calls("sendMessage") if FAILED in shown(c)] == []
    status = str((tg.message(chat_id, status_id) or {}).get("text"))
    assert FAILED in status
    assert texts(tg, chat_id) == [status]


async def test_a_failure_while_a_preview_shows_replaces_the_preview(
    webhook_harness: BotHarness,
) -> None:
    harness, tg = webhook_harness, webhook_harness.tg
    *_, chat_id, task_hash, status_id = await quiet_job(
        harness, 4401, "a falling star sim:error", "error"
    )
    preview_id = await first_preview(harness, task_hash, chat_id, status_id)

    await tell(harness, task_hash, "error")
    failure = await wait_text(tg, chat_id, FAILED)
    await tg.wait_for("deleteMessage", lambda c: c.ok and c.params["message_id"] == preview_id)
    await asyncio.sleep(SETTLE)
    # A photo has no text to edit: the failure is a new message, and the preview goes away.
    assert texts(tg, chat_id) == [failure]
    said = [c for c in tg.calls("sendMessage") if c.ok and FAILED in shown(c)]
    assert len(said) == 1
    # ...without first trying an edit Telegram would refuse.
    assert [c for c in tg.requests if not c.ok] == []


async def test_a_result_after_the_status_message_was_deleted_arrives_once(
    webhook_harness: BotHarness,
) -> None:
    harness, tg = webhook_harness, webhook_harness.tg
    *_, chat_id, task_hash, status_id = await quiet_job(harness, 4501, "a paper moon", "done")
    preview_id = await first_preview(harness, task_hash, chat_id, status_id)

    tg.delete_as_user(chat_id, preview_id)
    await tell(harness, task_hash, "done")
    result = await harness.photo_reply(chat_id, has_keyboard)
    # Removing the status message finds it gone; that is no reason to send the result again.
    refused = await tg.wait_for("deleteMessage", lambda c: not c.ok)
    assert refused.response["description"] == DELETE_GONE
    assert refused.params["message_id"] == preview_id
    await harness.stop()
    await harness.start()
    await asyncio.sleep(SETTLE)
    assert len(results(tg, chat_id)) == 1
    assert [m["message_id"] for m in tg.bot_messages(chat_id)] == [result["message_id"]]


# How long the simulator's CDN takes to hand over a preview in the test below: far longer than
# delivering a result takes (~0.1 s), so the job ends while a progress edit is under way.
SLOW_PREVIEW = 1.0


@pytest.mark.parametrize("percent", [10, 45], ids=["first-preview", "preview-edit"])
async def test_a_progress_edit_under_way_when_the_job_ends_leaves_nothing_behind(
    webhook_harness: BotHarness, percent: int
) -> None:
    harness, tg, sim = webhook_harness, webhook_harness.tg, webhook_harness.sim
    loop = asyncio.get_running_loop()
    *_, chat_id, task_hash, status_id = await quiet_job(harness, 4601, "a late ferry", "done")
    if percent > 10:
        status_id = await first_preview(harness, task_hash, chat_id, status_id)

    name = f"{task_hash}_p{percent}.png"
    preview = sim.file(name)
    if preview is None:
        pytest.fail(f"the simulator has no {name}")
    sim.fail_next(
        f"/cdn/{name}", status=200, body=preview, content_type="image/png", delay=SLOW_PREVIEW
    )
    await tell(harness, task_hash, "progress", percent)
    await requested(sim, f"/cdn/{name}")
    fetching_since = loop.time()
    await tell(harness, task_hash, "done")
    result = await harness.photo_reply(chat_id, has_keyboard)
    await tg.wait_for("deleteMessage", lambda c: c.ok and c.params["message_id"] == status_id)
    if loop.time() - fetching_since >= SLOW_PREVIEW:
        pytest.fail("premise lost: the result came after the preview (machine too slow?)")

    await asyncio.sleep(SLOW_PREVIEW + SETTLE)
    left = [m for m in tg.bot_messages(chat_id) if m["message_id"] != result["message_id"]]
    assert not left, f"left in the chat after the result: {left}"


async def test_a_result_whose_image_is_gone_is_told_once_with_its_buttons(
    webhook_harness: BotHarness,
) -> None:
    harness, tg, sim = webhook_harness, webhook_harness.tg, webhook_harness.sim
    ann = tg.user(4009, "Ann")
    chat = tg.private_chat(ann)
    sim.config.hold = True
    tg.send_message(chat, ann, "/imagine an image that expires")
    [task_hash] = await wait_in_flight(harness, 1)
    # Done, with a link on the API's own host that no longer exists (an expired upload).
    done = {
        **sim.tasks[task_hash],
        "status": "done",
        "progress": 100,
        "result": {"url": f"{sim.base_url}/cdn/expired.png", "filename": "expired.png"},
    }
    assert await post(userapi_webhook_url(harness), json.dumps(done).encode()) == 200

    def told(call: ApiCall) -> bool:
        return in_chat(call, chat["id"]) and "couldn't be fetched" in shown(call)

    notice = await tg.wait_for("sendMessage", told)
    assert "U1" in str(notice.params.get("reply_markup")), "the buttons still work"
    # Recorded as delivered, so later sweeps don't try (and tell) again.
    assert harness.app is not None
    repo = TaskRepo(harness.app.db)
    for _ in range(100):
        if not await repo.undelivered():
            break
        await asyncio.sleep(0.02)
    assert await harness.app.jobs.deliver_pending() == 0
    assert len([c for c in tg.calls("sendMessage") if told(c)]) == 1
    assert not tg.calls("sendPhoto")


class QueuedBehind(NamedTuple):
    """A job that waited in the bot's queue, started, and said "waiting" at the API."""

    chat_id: int
    task_hash: str
    notice_id: int


async def start_behind_a_slow_result(harness: BotHarness, delete_notice: bool) -> QueuedBehind:
    """One slot: Ann's job runs, Bea's waits with a notice; Ann's ends, Bea's is sent, and the
    API says Bea's waits, all before Ann's result is out (Telegram holds it a second with a
    429), so Bea's chat hears that her job started only after progress has shown it."""
    tg, sim = harness.tg, harness.sim
    ann_job = await quiet_job(harness, 4701, "a first kite", "done")
    bea = tg.user(4702, "Bea")
    bea_chat = tg.private_chat(bea)
    chat_id = int(bea_chat["id"])
    tg.send_message(bea_chat, bea, "/imagine a second kite")
    notice = await tg.wait_for(
        "sendMessage", lambda c: c.ok and in_chat(c, chat_id) and "in the queue" in shown(c)
    )
    notice_id = int(notice.result["message_id"])
    if delete_notice:
        tg.delete_as_user(chat_id, notice_id)

    tg.fail_next("sendPhoto", retry_after=1)
    await tell(harness, ann_job.task_hash, "done")
    await until(lambda: len(sim.tasks) == 2, "Bea's job sent")
    [task_hash] = [h for h in sim.tasks if h != ann_job.task_hash]
    await sim.wait_for_status(task_hash, "waiting")
    await tell(harness, task_hash, "waiting")
    await wait_text(tg, chat_id, "Queued at Midjourney")
    assert not results(tg, ann_job.chat_id), "premise lost: Ann's result came first"
    await harness.photo_reply(ann_job.chat_id, has_keyboard)
    await asyncio.sleep(SETTLE)
    return QueuedBehind(chat_id, task_hash, notice_id)


def at(call: ApiCall, chat_id: int, message_id: int) -> bool:
    """Whether a call was about one message."""
    return in_chat(call, chat_id) and call.params.get("message_id") == message_id


def refused_but_the_429(tg: FakeTelegram) -> list[ApiCall]:
    """Calls Telegram refused, but for the 429 the test asked for."""
    return [c for c in tg.requests if not c.ok and c.status != 429]


@pytest.fixture
async def one_slot(tg: FakeTelegram, sim: Simulator, tmp_path: Path) -> AsyncIterator[BotHarness]:
    """The bot with webhooks and one slot at Midjourney."""
    async for runner in make_harness(tg, sim, tmp_path, webhooks=True, max_concurrent_jobs=1):
        yield runner


async def test_a_start_progress_already_showed_costs_no_edit(one_slot: BotHarness) -> None:
    harness, tg = one_slot, one_slot.tg
    bea = await start_behind_a_slow_result(harness, delete_notice=False)

    # The notice became the status once, by progress; the late start changes nothing shown.
    edits = [c for c in tg.calls("editMessageText") if in_chat(c, bea.chat_id)]
    assert [c.params["message_id"] for c in edits] == [bea.notice_id]
    assert "Queued at Midjourney" in shown(edits[0])
    assert refused_but_the_429(tg) == []

    await tell(harness, bea.task_hash, "done")
    result = await harness.photo_reply(bea.chat_id, has_keyboard)
    await asyncio.sleep(SETTLE)
    assert [m["message_id"] for m in tg.bot_messages(bea.chat_id)] == [result["message_id"]]
    assert refused_but_the_429(tg) == []


async def test_a_notice_the_user_deleted_is_tried_once_and_the_result_still_comes(
    one_slot: BotHarness,
) -> None:
    harness, tg = one_slot, one_slot.tg
    bea = await start_behind_a_slow_result(harness, delete_notice=True)

    # One edit learns the notice is gone; a new status message takes over, and is not
    # edited again to say what it already says.
    to_notice = [c for c in tg.requests if at(c, bea.chat_id, bea.notice_id)]
    assert [c.response.get("description") for c in to_notice] == [EDIT_GONE]
    assert [c.response.get("description") for c in refused_but_the_429(tg)] == [EDIT_GONE]
    [status] = tg.bot_messages(bea.chat_id)
    assert "Queued at Midjourney" in str(status.get("text"))

    await tell(harness, bea.task_hash, "done")
    result = await harness.photo_reply(bea.chat_id, has_keyboard)
    await asyncio.sleep(SETTLE)
    assert [m["message_id"] for m in tg.bot_messages(bea.chat_id)] == [result["message_id"]]
    assert len(refused_but_the_429(tg)) == 1
    assert [c for c in tg.requests if at(c, bea.chat_id, bea.notice_id)] == to_notice
