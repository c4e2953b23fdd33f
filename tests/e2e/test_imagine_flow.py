"""/imagine to a grid, U2 to an upscale, Zoom Out 2x to a new grid: over webhooks and polling."""

from __future__ import annotations

import json
from typing import Any

from bot.playground.emulator import ApiCall
from tests.e2e.harness import BotHarness, button_data, button_labels, has_keyboard


def shows_progress(call: ApiCall) -> bool:
    text = str(call.params.get("text") or call.params.get("caption") or "")
    media = call.params.get("media")
    if isinstance(media, dict):
        text += str(media.get("caption") or "")
    return "%" in text


def sim_bodies(harness: BotHarness, path: str) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in harness.sim.requests_to(path)]


async def test_imagine_upscale_zoom(harness: BotHarness) -> None:
    tg = harness.tg
    ann = tg.user(1001, "Ann")
    chat = tg.private_chat(ann)
    request = tg.send_message(chat, ann, "/imagine a lighthouse in a storm —ar 1:1")

    status = await tg.wait_for("sendMessage", lambda c: c.ok and "Midjourney" in c.params["text"])
    grid = await harness.photo_reply(chat["id"], has_keyboard)

    # The status message appeared at once, as a reply, then showed progress, then went away.
    assert status.params["reply_parameters"]["message_id"] == request["message_id"]
    progress = [
        c
        for c in tg.requests
        if c.ok and shows_progress(c) and c.at < tg.calls("sendPhoto")[-1].at
    ]
    assert progress, "no progress was shown before the result"
    assert tg.message(chat["id"], status.result["message_id"]) is None

    imagine = sim_bodies(harness, "/midjourney/v2/imagine")
    assert imagine[0]["prompt"] == "a lighthouse in a storm --ar 1:1"
    assert ("webhook_url" in imagine[0]) is harness.webhooks

    assert button_labels(grid)[:2] == [["U1", "U2", "U3", "U4"], ["V1", "V2", "V3", "V4"]]
    assert "🔄" in button_labels(grid)[2]
    assert grid["reply_to_message"]["message_id"] == request["message_id"]
    assert grid["photo"][-1]["width"] == 512  # the simulator's grid, re-uploaded whole

    tg.press(grid, button_data(grid, "U2"), ann)
    upscale = await harness.photo_reply(chat["id"], has_keyboard, count=2)
    grid_hash = harness.sim.requests_to("/midjourney/v2/imagine")[0]
    parent = next(t for t in harness.sim.tasks.values() if t["type"] == "imagine")
    assert grid_hash is not None
    body = sim_bodies(harness, "/midjourney/v2/upscale")[0]
    assert body["hash"] == parent["hash"]
    assert body["choice"] == 2
    labels = button_labels(upscale)
    assert ["Vary (Subtle)", "Vary (Strong)", "Vary (Region)"] in labels
    assert ["Zoom Out 2x", "Zoom Out 1.5x", "Custom Zoom"] in labels
    assert ["⬅️", "➡️", "⬆️", "⬇️"] in labels
    assert ["Upscale (Subtle)", "Upscale (Creative)"] in labels
    assert ["Animate (High motion)", "Animate (Low motion)"] in labels
    assert tg.callback_answer(tg.calls("answerCallbackQuery")[0].params["callback_query_id"])

    tg.press(upscale, button_data(upscale, "Zoom Out 2x"), ann)
    zoomed = await harness.photo_reply(chat["id"], has_keyboard, count=3)
    upscale_task = next(t for t in harness.sim.tasks.values() if t["type"] == "upscale")
    zoom = sim_bodies(harness, "/midjourney/v2/zoom")[0]
    assert zoom == {**zoom, "hash": upscale_task["hash"], "choice": 50}
    assert "prompt" not in zoom
    assert button_labels(zoomed)[0] == ["U1", "U2", "U3", "U4"]

    # Each result arrived once.
    results = [c for c in tg.calls("sendPhoto") if c.ok and has_keyboard(c)]
    assert len(results) == 3
