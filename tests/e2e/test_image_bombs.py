"""Decompression bombs (tiny files declaring huge images): refused from the header, told
clearly, and the bot's peak memory stays bounded while several arrive at once."""

from __future__ import annotations

import asyncio
import base64
import json
from functools import cache
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from bot.playground.emulator.users import sign_init_data
from tests.e2e.harness import BotHarness
from tests.e2e.image_session import ImageUser, open_region
from tests.hostile import MB, peak_memory, png_bomb, reset_peak_memory, tiff_bomb

SIM_PACE = 0.02
# Generous: decoding any one of these bombs takes 240 MB to 1.4 GB.
PEAK_MARGIN = 250 * MB
TOO_LARGE = "too large"


@cache
def bombs() -> dict[str, bytes]:
    """12000 px (past Pillow's own limit) and 9000 px (under it: only the bot's stops it)."""
    return {
        "big.tiff": tiff_bomb(12000),
        "big.png": png_bomb(12000),
        "mid.tiff": tiff_bomb(9000),
        "mid.png": png_bomb(9000),
    }


@pytest.fixture
def bot(webapp_bot: BotHarness) -> BotHarness:
    """The bot with the Mini App (conftest's `webapp_bot`)."""
    return webapp_bot


def mime(name: str) -> str:
    return "image/tiff" if name.endswith(".tiff") else "image/png"


async def test_bombs_as_documents_and_image_prompts_are_refused_with_bounded_memory(
    bot: BotHarness,
) -> None:
    ann = ImageUser(bot)
    files = bombs()
    rest = reset_peak_memory()
    # All at once: each as a /describe document and as an image prompt.
    for name, data in files.items():
        ann.send(document=(data, name, mime(name)), caption="/describe")
        ann.send(document=(data, name, mime(name)), caption="/imagine a cat like this")
    refusals = await ann.text_reply(TOO_LARGE, count=2 * len(files), timeout=60)
    peak = peak_memory()

    assert "megapixels" in str(refusals.result["text"])
    assert peak - rest < PEAK_MARGIN, f"peak {(peak - rest) / MB:.0f} MB above rest"
    assert ann.sim.requests_to("/midjourney/v2/upload") == []
    assert ann.sim.requests_to("/midjourney/v2/describe") == []
    assert ann.sim.requests_to("/midjourney/v2/imagine") == []
    # The bot is fine afterwards: a real image still goes through.
    ann.send("/imagine a harbour")
    await ann.result_photo()


async def test_bombs_as_mini_app_masks_are_refused_with_bounded_memory(bot: BotHarness) -> None:
    ann = ImageUser(bot)
    url, _ = await open_region(ann)
    task_id = parse_qs(urlsplit(url).query)["task"][0]
    api = f"http://127.0.0.1:{bot.port}/webapp/api/region/{task_id}"
    auth = {
        "Authorization": "tma "
        + sign_init_data(bot.tg.token, {"id": ann.user["id"], "first_name": "Ann"})
    }
    masks = [
        json.dumps(
            {
                "prompt": "a boat",
                "mask": "data:image/png;base64," + base64.b64encode(data).decode(),
            }
        ).encode()
        for name, data in bombs().items()
        if name.endswith(".png")
    ]

    async with aiohttp.ClientSession() as http:

        async def submit(body: bytes) -> tuple[int, str]:
            headers = {**auth, "Content-Type": "application/json"}
            async with http.post(api, data=body, headers=headers) as response:
                return response.status, await response.text()

        rest = reset_peak_memory()
        answers = await asyncio.gather(*(submit(body) for body in masks * 2))
        peak = peak_memory()

    assert answers == [(413, "mask is too large")] * len(answers)
    assert peak - rest < PEAK_MARGIN, f"peak {(peak - rest) / MB:.0f} MB above rest"
    assert ann.sim.requests_to("/midjourney/v2/inpaint") == []
