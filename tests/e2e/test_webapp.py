"""Vary (Region) in the Mini App: painted in a real headless Chromium, checked by initData."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from bot.playground.emulator.users import sign_init_data
from tests.e2e.browser import chromium
from tests.e2e.harness import BotHarness
from tests.e2e.image_session import ImageUser, mask_of, open_region

# What telegram-web-app.js would give the page inside Telegram; the test plays Telegram.
TELEGRAM_STUB = """
window.Telegram = { WebApp: {
  initData: %s,
  ready() {}, expand() {},
  close() { window.__closed = true; },
} };
"""


# Faster than the shared default: these tests care about outcomes, not progress.
SIM_PACE = 0.02


@pytest.fixture
def bot(webapp_bot: BotHarness) -> BotHarness:
    """The bot with the Mini App (conftest's `webapp_bot`)."""
    return webapp_bot


async def test_paint_a_stroke_and_submit(bot: BotHarness) -> None:
    ann = ImageUser(bot)
    url, upscale = await open_region(ann)
    width, height = upscale["result"]["width"], upscale["result"]["height"]
    init_data = sign_init_data(bot.tg.token, {"id": ann.user["id"], "first_name": "Ann"})

    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 480, "height": 900})
        await page.route(
            "https://telegram.org/**",
            lambda route: route.fulfill(
                body=TELEGRAM_STUB % json.dumps(init_data),
                content_type="application/javascript",
            ),
        )
        await page.goto(url)
        await page.wait_for_selector("body[data-ready='1']")
        assert await page.input_value("#prompt") == "a quiet harbour at dawn"

        box = await page.locator("#overlay").bounding_box()
        assert box is not None
        # One stroke across the upper left quarter.
        y = box["y"] + box["height"] * 0.25
        await page.mouse.move(box["x"] + box["width"] * 0.1, y)
        await page.mouse.down()
        await page.mouse.move(box["x"] + box["width"] * 0.4, y, steps=8)
        await page.mouse.up()
        await page.fill("#prompt", "a red sailboat")
        await page.click("#submit")
        await page.wait_for_selector("body[data-sent='1']")
        await page.wait_for_function("window.__closed === true")

    await ann.result_photo(count=3)
    body = ann.bodies("inpaint")[0]
    assert body["hash"] == upscale["hash"]
    assert body["prompt"] == "a red sailboat"
    mask = mask_of(body).convert("L")
    assert mask.size == (width, height)
    assert mask.getpixel((width // 4, height // 4)) == 255  # painted
    assert mask.getpixel((3 * width // 4, 3 * height // 4)) == 0  # untouched
    assert mask.getpixel((width // 4, 3 * height // 4)) == 0
    assert {value for _, value in mask.getcolors() or []} == {0, 255}
    ann.assert_token_never_sent()


async def test_forged_or_stale_init_data_is_refused(bot: BotHarness) -> None:
    ann = ImageUser(bot)
    url, _ = await open_region(ann)
    task_id = parse_qs(urlsplit(url).query)["task"][0]
    api = f"http://127.0.0.1:{bot.port}/webapp/api/region/{task_id}"
    user = {"id": ann.user["id"], "first_name": "Ann"}
    good = sign_init_data(bot.tg.token, user)
    forged = sign_init_data("999999:not-the-token", user)
    stale = sign_init_data(bot.tg.token, user, auth_date=int(time.time()) - 2 * 86400)
    stranger = sign_init_data(bot.tg.token, {"id": 4242, "first_name": "Eve"})
    tampered = good.replace("Ann", "Eve")
    body = {"prompt": "a boat", "mask": "data:image/png;base64,iVBORw0KGgo="}

    async with aiohttp.ClientSession() as http:
        for init_data in (forged, stale, stranger, tampered, ""):
            headers = {"Authorization": f"tma {init_data}"}
            async with http.post(api, json=body, headers=headers) as response:
                assert response.status == 403, init_data
            async with http.get(api + "/image", headers=headers) as response:
                assert response.status == 403
        async with http.get(api, headers={"Authorization": f"tma {good}"}) as response:
            assert response.status == 200
            assert (await response.json())["prompt"] == "a quiet harbour at dawn"
        async with http.get(f"http://127.0.0.1:{bot.port}/webapp/region") as response:
            assert response.status == 200
            assert "Vary (Region)" in await response.text()

    assert ann.sim.requests_to("/midjourney/v2/inpaint") == []
    assert not [t for t in ann.sim.tasks.values() if t["type"] == "inpaint"]
