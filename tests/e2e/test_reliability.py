"""Reliability over real HTTP: restarts, forged and repeated webhooks, big files, API and
Telegram failures. Each result must reach its chat exactly once, and nothing forged ever does."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from bot.playground.emulator import ApiCall
from storage.tasks import TaskRepo
from tests.e2e.harness import (
    SETTLE,
    BotHarness,
    button_data,
    edits_and_sends,
    has_keyboard,
    post,
    results,
    said,
    snapshot,
    userapi_webhook_url,
    wait_in_flight,
    wait_text,
)

IMAGINE = "/midjourney/v2/imagine"


def uploaded(call: ApiCall, field: str) -> bytes:
    """The bytes a call uploaded for a file field (sent as attach://name)."""
    return call.files[str(call.params[field]).removeprefix("attach://")].data


async def imagine_and_wait(
    harness: BotHarness, chat: dict[str, Any], user: dict[str, Any], prompt: str, count: int = 1
) -> dict[str, Any]:
    """Send /imagine and wait for the count-th result photo in that chat."""
    harness.tg.send_message(chat, user, f"/imagine {prompt}")
    return await harness.photo_reply(chat["id"], has_keyboard, count=count)


# ------------------------------------------------------------------------------ restarts


async def test_results_finished_while_stopped_are_delivered_once(harness: BotHarness) -> None:
    tg, sim = harness.tg, harness.sim
    ann, bob = tg.user(2001, "Ann"), tg.user(2002, "Bob")
    ann_chat, bob_chat = tg.private_chat(ann), tg.private_chat(bob)
    sim.config.hold = True
    tg.send_message(ann_chat, ann, "/imagine a red fox")
    tg.send_message(bob_chat, bob, "/imagine a blue whale")
    tg.send_message(ann_chat, ann, "/imagine a green owl")
    hashes = await wait_in_flight(harness, 3)

    await harness.stop()
    sim.release()
    for task_hash in hashes:
        await sim.wait_for_status(task_hash, "done")
    if harness.webhooks:
        # The done webhooks really were lost: nobody listened.
        lost = [w for w in sim.webhooks if w.task["status"] == "done"]
        assert len(lost) == 3 and all(w.status is None for w in lost)
    assert results(tg, ann_chat["id"]) == [] and results(tg, bob_chat["id"]) == []

    await harness.start()
    await harness.photo_reply(ann_chat["id"], has_keyboard, count=2)
    await harness.photo_reply(bob_chat["id"], has_keyboard, count=1)
    # A later job completing end to end, plus a settle, gives any duplicate time to show.
    await imagine_and_wait(harness, bob_chat, bob, "a yellow kite", count=2)
    await asyncio.sleep(SETTLE)
    assert len(results(tg, ann_chat["id"])) == 2
    assert len(results(tg, bob_chat["id"])) == 2
    captions = [str(c.params["caption"]) for c in results(tg, ann_chat["id"])]
    assert sorted(captions) == ["<b>Imagine</b>\na green owl", "<b>Imagine</b>\na red fox"]


async def restart_delivers_once(
    harness: BotHarness, chat: dict[str, Any], user: dict[str, Any], next_prompt: str
) -> None:
    """Stop and start the bot: the undelivered result is sent once, by the restarted bot, and
    the next /imagine works."""
    tg = harness.tg
    await harness.stop()
    stopped_at = len(tg.requests)
    assert results(tg, chat["id"]) == []

    await harness.start()
    photo = await tg.wait_for("sendPhoto", lambda c: c.ok and has_keyboard(c))
    assert tg.requests.index(photo) >= stopped_at  # sent by the restarted bot
    await imagine_and_wait(harness, chat, user, next_prompt, count=2)
    await asyncio.sleep(SETTLE)
    assert len(results(tg, chat["id"])) == 2


async def test_pending_delivery_is_sent_once_after_restart(harness: BotHarness) -> None:
    tg = harness.tg
    ann = tg.user(2101, "Ann")
    chat = tg.private_chat(ann)
    # A refusal the retry layer does not repeat: the result stays queued for a later sweep.
    tg.fail_next(
        "sendPhoto", error_code=400, description="Bad Request: try later", retry_after=None
    )
    tg.send_message(chat, ann, "/imagine a paper boat")
    await tg.wait_for("sendPhoto", lambda c: not c.ok)
    await restart_delivers_once(harness, chat, ann, "a paper plane")


async def test_delivery_cut_off_mid_retry_is_sent_once_after_restart(
    polling_harness: BotHarness,
) -> None:
    harness, tg = polling_harness, polling_harness.tg
    ann = tg.user(2201, "Ann")
    chat = tg.private_chat(ann)
    # Telegram is down: the retry layer is waiting to resend when the bot is stopped.
    tg.fail_next(
        "sendPhoto", error_code=500, description="Internal Server Error", retry_after=None, times=2
    )
    tg.send_message(chat, ann, "/imagine a glass bird")
    await tg.wait_for("sendPhoto", lambda c: not c.ok)
    await restart_delivers_once(harness, chat, ann, "a glass fish")


async def test_a_stop_while_the_status_message_goes_never_resends_the_result(
    polling_harness: BotHarness,
) -> None:
    harness, tg = polling_harness, polling_harness.tg
    ann = tg.user(2301, "Ann")
    chat = tg.private_chat(ann)
    # Telegram fails deletions for a while: the progress loop, replacing the status text with
    # the preview, retries its deletion and holds the status message's turn; the result goes
    # out and its delivery waits for that turn to remove the preview when the bot is stopped.
    tg.fail_next(
        "deleteMessage",
        error_code=500,
        description="Internal Server Error",
        retry_after=None,
        times=5,
    )
    await imagine_and_wait(harness, chat, ann, "a tin lighthouse")
    await harness.stop()
    assert len(results(tg, chat["id"])) == 1

    # Stored as delivered when Telegram took it: the restarted bot doesn't send it again.
    await harness.start()
    tg.send_message(chat, ann, "/help")
    await tg.wait_for("sendMessage", said(2301, "/imagine"))
    await imagine_and_wait(harness, chat, ann, "a tin ship", count=2)
    await asyncio.sleep(SETTLE)
    captions = [str(call.params.get("caption")) for call in results(tg, chat["id"])]
    assert len(captions) == 2 and "tin ship" in captions[1], captions


# ------------------------------------------------------------------------------ webhooks


async def finished_quietly(
    harness: BotHarness, chat: dict[str, Any], user: dict[str, Any], prompt: str
) -> str:
    """Run an /imagine to `done` at the simulator without telling the bot; return its hash."""
    harness.sim.config.send_webhooks = False
    harness.tg.send_message(chat, user, f"/imagine {prompt}")
    [task_hash] = await wait_in_flight(harness, 1)
    await harness.sim.wait_for_status(task_hash, "done")
    return task_hash


async def test_repeated_and_late_webhooks_give_one_result(webhook_harness: BotHarness) -> None:
    harness, tg, sim = webhook_harness, webhook_harness.tg, webhook_harness.sim
    ann = tg.user(2301, "Ann")
    chat = tg.private_chat(ann)
    task_hash = await finished_quietly(harness, chat, ann, "a tin robot")
    url = userapi_webhook_url(harness)

    assert await post(url, snapshot(sim, task_hash, "progress", 45)) == 200
    done = snapshot(sim, task_hash, "done")
    statuses = await asyncio.gather(*(post(url, done) for _ in range(5)))
    assert statuses == [200] * 5
    result = await harness.photo_reply(chat["id"], has_keyboard)
    assert await post(url, done) == 200
    assert await post(url, done) == 200
    after_result = len(tg.requests)
    assert await post(url, snapshot(sim, task_hash, "progress", 80)) == 200
    await asyncio.sleep(SETTLE)

    assert len(results(tg, chat["id"])) == 1
    assert edits_and_sends(tg, after_result) == []
    assert tg.message(chat["id"], result["message_id"]) is not None
    assert button_data(result, "U1")


async def test_forged_unknown_and_malformed_webhooks_reach_no_chat(
    webhook_harness: BotHarness,
) -> None:
    harness, tg, sim = webhook_harness, webhook_harness.tg, webhook_harness.sim
    ann = tg.user(2401, "Ann")
    chat = tg.private_chat(ann)
    task_hash = await finished_quietly(harness, chat, ann, "a marble statue")
    done = snapshot(sim, task_hash, "done")
    before = len(tg.requests)

    assert await post(userapi_webhook_url(harness, "0" * 40), done) == 404
    assert await post(userapi_webhook_url(harness, "x"), done) == 404
    unknown = json.loads(done) | {"hash": "2c8f1e5a-0000-4000-8000-000000000000"}
    assert await post(userapi_webhook_url(harness), json.dumps(unknown).encode()) == 200
    assert await post(userapi_webhook_url(harness), b'{"hash": "abc", "status": ') == 400
    assert await post(userapi_webhook_url(harness), b'["not", "a", "task"]') == 400
    await asyncio.sleep(SETTLE)
    assert edits_and_sends(tg, before) == []

    # The genuine webhook still works, so the forged copy consumed nothing.
    assert await post(userapi_webhook_url(harness), done) == 200
    await harness.photo_reply(chat["id"], has_keyboard)
    assert len(results(tg, chat["id"])) == 1


# ------------------------------------------------------------------------------ big files

MB = 1024 * 1024


async def test_12_mb_results_arrive_as_photos_and_the_upscale_original_as_a_document(
    polling_harness: BotHarness,
) -> None:
    harness, tg, sim = polling_harness, polling_harness.tg, polling_harness.sim
    ann = tg.user(2501, "Ann")
    chat = tg.private_chat(ann)
    grid = await imagine_and_wait(harness, chat, ann, "static on a screen sim:big")
    grid_task = next(t for t in sim.tasks.values() if t["type"] == "imagine")
    assert grid_task["result"]["size"] > 12 * MB  # the premise: too big for sendPhoto
    uploads = [uploaded(c, "photo") for c in results(tg, chat["id"])]
    assert len(uploads) == 1 and len(uploads[0]) <= 10 * MB

    tg.press(grid, button_data(grid, "U3"), ann)
    upscale = await harness.photo_reply(chat["id"], has_keyboard, count=2)
    upscale_task = next(t for t in sim.tasks.values() if t["type"] == "upscale")
    assert upscale_task["result"]["size"] > 12 * MB
    document = await tg.wait_for("sendDocument", lambda c: c.ok)
    assert document.result["reply_to_message"]["message_id"] == upscale["message_id"]
    original = sim.file(upscale_task["result"]["filename"])
    assert tg.file_bytes(document.result["document"]["file_id"]) == original
    # The grid is not an upscale: only the upscale's original is sent as a file.
    assert len(tg.calls("sendDocument")) == 1
    assert not [c for c in tg.requests if not c.ok and c.method != "getUpdates"]


async def test_an_original_telegram_refuses_is_said_and_the_photo_goes_once(
    polling_harness: BotHarness,
) -> None:
    harness, tg = polling_harness, polling_harness.tg
    bea = tg.user(2502, "Bea")
    chat = tg.private_chat(bea)
    grid = await imagine_and_wait(harness, chat, bea, "static on a screen sim:big")
    tg.fail_next(
        "sendDocument",
        error_code=400,
        description="Bad Request: failed to send the document",
        retry_after=None,
    )
    tg.press(grid, button_data(grid, "U3"), bea)
    upscale = await harness.photo_reply(chat["id"], has_keyboard, count=2)
    said = await tg.wait_for(
        "sendMessage", lambda c: c.ok and "original file couldn't" in str(c.params.get("text"))
    )
    assert said.result["reply_to_message"]["message_id"] == upscale["message_id"]
    assert [c.ok for c in tg.calls("sendDocument")] == [False]

    # The upscale's photo is stored as delivered, so no sweep sends it again.
    assert harness.app is not None
    repo = TaskRepo(harness.app.db)
    [task] = [t for t in await repo.recent_for_user(bea["id"]) if t.type == "upscale"]
    assert (task.delivery, task.result_message_id) == ("delivered", upscale["message_id"])
    await harness.app.jobs.deliver_pending()
    assert len(results(tg, chat["id"])) == 2


# ------------------------------------------------------------------------------ API failures


async def test_api_500_on_imagine_is_explained_and_the_next_imagine_works(
    harness: BotHarness,
) -> None:
    tg, sim = harness.tg, harness.sim
    ann = tg.user(2601, "Ann")
    chat = tg.private_chat(ann)
    sim.fail_next(IMAGINE, status=500)
    tg.send_message(chat, ann, "/imagine a broken clock")
    text = await wait_text(tg, chat["id"], "internal error")
    assert "Please try again" in text
    assert len(sim.requests_to(IMAGINE)) == 1  # a job-creating POST is never resent blindly

    await imagine_and_wait(harness, chat, ann, "a working clock")
    assert len(sim.requests_to(IMAGINE)) == 2


async def test_api_refusals_and_failed_tasks_are_worded(polling_harness: BotHarness) -> None:
    tg, sim = polling_harness.tg, polling_harness.sim
    ann = tg.user(2701, "Ann")
    chat = tg.private_chat(ann)
    words = "Prompt contains a banned word: kraken"
    sim.fail_next(IMAGINE, status=400, body=json.dumps({"status": False, "error": words}))
    tg.send_message(chat, ann, "/imagine a kraken")
    await wait_text(tg, chat["id"], words)

    tg.send_message(chat, ann, "/imagine a storm sim:error")
    await wait_text(tg, chat["id"], "failed: Simulated Midjourney failure")
    tg.send_message(chat, ann, "/imagine a rude joke sim:prefilter")
    refusal = await wait_text(tg, chat["id"], "content filter")
    assert "sexually explicit content" in refusal
    assert "profanity" in refusal
    assert "SEXUALLY_EXPLICIT" not in refusal
    assert results(tg, chat["id"]) == []


# ------------------------------------------------------------------------------ Telegram faults


async def test_telegram_429_on_the_result_is_waited_out(harness: BotHarness) -> None:
    tg = harness.tg
    ann = tg.user(2801, "Ann")
    chat = tg.private_chat(ann)
    tg.fail_next("sendPhoto", retry_after=1)
    await imagine_and_wait(harness, chat, ann, "a slow snail")
    refused = tg.calls("sendPhoto")[0]
    assert refused.status == 429 and refused.response["parameters"]["retry_after"] == 1
    await imagine_and_wait(harness, chat, ann, "a fast hare", count=2)
    await asyncio.sleep(SETTLE)
    assert len(results(tg, chat["id"])) == 2


async def test_dropped_connection_on_the_result_is_resent(harness: BotHarness) -> None:
    tg = harness.tg
    ann = tg.user(2901, "Ann")
    chat = tg.private_chat(ann)
    tg.drop_connection_next("sendPhoto")
    await imagine_and_wait(harness, chat, ann, "a cut cable")
    assert tg.calls("sendPhoto")[0].status == 0  # the dropped one
    await imagine_and_wait(harness, chat, ann, "a new cable", count=2)
    await asyncio.sleep(SETTLE)
    assert len(results(tg, chat["id"])) == 2
