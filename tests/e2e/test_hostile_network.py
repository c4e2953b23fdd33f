"""The bot against a real network and hostile peers: bodies in pieces, failing file downloads,
forged webhooks, odd initData and banned users on the Mini App."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, quote, urlsplit

import aiohttp
import pytest
from aiohttp import web
from PIL import Image

from bot.playground.emulator.users import sign_init_data
from storage.access import AccessRepo, UserRule
from tests.e2e.harness import SIM_KEY, BotHarness, userapi_webhook_url, wait_in_flight
from tests.e2e.image_session import ImageUser, open_region, picture
from tests.hostile import post_in_pieces

SIM_PACE = 0.02


@pytest.fixture
def bot(webapp_bot: BotHarness) -> BotHarness:
    """The bot with the Mini App (conftest's `webapp_bot`)."""
    return webapp_bot


def small_mask() -> str:
    """A painted-canvas data URL as the page sends it (white where to repaint)."""
    out = io.BytesIO()
    Image.new("L", (64, 64), 255).save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_mask_submit_in_delayed_pieces_is_accepted(bot: BotHarness, chunked: bool) -> None:
    ann = ImageUser(bot)
    url, upscale = await open_region(ann)
    task_id = parse_qs(urlsplit(url).query)["task"][0]
    init_data = sign_init_data(bot.tg.token, {"id": ann.user["id"], "first_name": "Ann"})
    # A real page's mask is tens of KB: pad the JSON so each piece is a separate segment.
    body = json.dumps({"prompt": "a red sailboat", "mask": small_mask(), "pad": "x" * 60_000})
    status, answer = await post_in_pieces(
        bot.port,
        f"/webapp/api/region/{task_id}",
        body.encode(),
        {"Authorization": f"tma {init_data}", "Content-Type": "application/json"},
        chunked=chunked,
    )
    assert status == 200, answer
    assert json.loads(answer)["ok"] is True
    await ann.result_photo(count=3)
    assert ann.bodies("inpaint")[0]["hash"] == upscale["hash"]


@pytest.mark.parametrize("failure", [502, 0], ids=["http-502", "connection-dropped"])
async def test_a_failed_file_download_is_told_uploads_nothing_and_logs_no_secret(
    bot: BotHarness, caplog: pytest.LogCaptureFixture, failure: int
) -> None:
    caplog.set_level(logging.DEBUG)
    ann = ImageUser(bot)
    # Many: aiohttp itself retries a GET once when a kept-alive connection drops.
    bot.tg.fail_file_downloads(failure, times=100)
    ann.send(document=(picture("PNG"), "a.png", "image/png"), caption="/describe")
    await ann.text_reply("couldn't download that file")
    ann.send(photo=picture(), caption="/imagine a fox like this")
    await ann.text_reply("couldn't download that file", count=2)
    ann.send(document=(picture("WEBP"), "a.webp", "image/webp"), caption="/describe")
    await ann.text_reply("couldn't download that file", count=3)
    assert bot.tg.file_downloads >= 3
    assert ann.sim.requests_to("/midjourney/v2/upload") == []
    assert ann.sim.requests_to("/midjourney/v2/imagine") == []

    # Sent again, it works: the failures were the file server's, not the bot's state.
    bot.tg.fail_file_downloads(times=0)
    ann.send(document=(picture("PNG"), "a.png", "image/png"), caption="/describe")
    await ann.described()
    secret = bot.tg.token.split(":", 1)[1]
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "")
        assert secret not in text and quote(secret) not in text, text
        assert SIM_KEY not in text, text
    assert secret not in caplog.text and SIM_KEY not in caplog.text


class Recorder:
    """A tiny local server counting every request: what a forged URL would make the bot hit."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.image = picture("PNG", color="magenta")
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        async def any_path(request: web.Request) -> web.Response:
            self.hits.append(request.path)
            if request.path == "/redirect":
                raise web.HTTPFound(f"http://127.0.0.1:{self.port}/secret.png")
            return web.Response(body=self.image, content_type="image/png")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", any_path)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        self.port = int(server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    server = Recorder()
    await server.start()
    yield server
    await server.stop()


async def test_a_forged_webhook_pointing_at_loopback_downloads_and_sends_nothing(
    bot: BotHarness, recorder: Recorder
) -> None:
    ann = ImageUser(bot)
    ann.sim.config.hold = True
    ann.send("/imagine a harbour at dawn")
    (task_hash,) = await wait_in_flight(bot, 1)
    forged_urls = [
        f"http://127.0.0.1:{recorder.port}/grid.png",
        f"https://127.0.0.1:{recorder.port}/grid.png",
        f"https://localhost:{recorder.port}/grid.png",
        f"http://[::1]:{recorder.port}/grid.png",
        f"http://127.0.0.1:{recorder.port}/redirect",
    ]
    async with aiohttp.ClientSession() as http:
        for url in forged_urls:
            forged = {
                "hash": task_hash,
                "status": "done",
                "progress": 100,
                "type": "imagine",
                "result": {"url": url, "filename": "grid.png", "width": 64, "height": 64},
                "next_actions": [{"type": "upscale", "choices": [1, 2, 3, 4]}],
            }
            async with http.post(userapi_webhook_url(bot), json=forged) as response:
                # Taken as a hint (the sender learns nothing), then checked with the API.
                assert response.status == 200
    # The API says the task is still running: the hints change nothing.
    for _ in range(20):
        await asyncio.sleep(0.05)
    assert recorder.hits == []
    assert not [c for c in bot.tg.calls("sendPhoto") if int(c.params["chat_id"]) == ann.chat_id]
    assert not bot.tg.calls("sendDocument")
    status_calls = ann.sim.requests_to("/midjourney/v2/status")
    assert [call for call in status_calls if task_hash in call.query]  # the API was asked

    # A hint about a task the bot doesn't know costs no API call at all.
    stranger = "0f2c7c1e-0000-4000-8000-000000000000"
    async with aiohttp.ClientSession() as http:
        forged["hash"] = stranger
        async with http.post(userapi_webhook_url(bot), json=forged) as response:
            assert response.status == 200
    await asyncio.sleep(0.3)
    status_calls = ann.sim.requests_to("/midjourney/v2/status")
    assert not [call for call in status_calls if stranger in call.query]

    # The real result still arrives, from the API's own files.
    ann.sim.release()
    photo = await ann.result_photo()
    assert photo["photo"]
    assert recorder.hits == []


async def test_mini_app_refuses_non_ascii_hashes_and_banned_users(bot: BotHarness) -> None:
    ann = ImageUser(bot)
    url, upscale = await open_region(ann)
    task_id = parse_qs(urlsplit(url).query)["task"][0]
    api = f"http://127.0.0.1:{bot.port}/webapp/api/region/{task_id}"
    good = sign_init_data(bot.tg.token, {"id": ann.user["id"], "first_name": "Ann"})
    fields = parse_qs(good)
    fields["hash"] = ["хэш" + fields["hash"][0][3:]]
    odd = "&".join(f"{key}={quote(values[0])}" for key, values in fields.items())
    body = {"prompt": "a boat", "mask": small_mask()}

    async with aiohttp.ClientSession() as http:
        for init_data in (odd, good.replace("hash=", "hash=%FF")):
            headers = {"Authorization": f"tma {init_data}"}
            async with http.get(api, headers=headers) as response:
                assert response.status == 403
            async with http.post(api, json=body, headers=headers) as response:
                assert response.status == 403
        headers = {"Authorization": f"tma {good}"}
        async with http.get(api, headers=headers) as response:
            assert response.status == 200
        # The image is the stored result, fetched once and then served from the cache.
        image_path = urlsplit(str(upscale["result"]["url"])).path
        fetched_before = len(ann.sim.requests_to(image_path))
        for _ in range(3):
            async with http.get(api + "/image", headers=headers) as response:
                assert response.status == 200
                assert response.content_type == "image/png"
                assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert len(ann.sim.requests_to(image_path)) == fetched_before + 1

        assert bot.app is not None
        await AccessRepo(bot.app.db).save_user(UserRule(ann.user["id"], banned=True))
        async with http.get(api, headers=headers) as response:
            assert response.status == 403
        async with http.get(api + "/image", headers=headers) as response:
            assert response.status == 403
        async with http.post(api, json=body, headers=headers) as response:
            assert response.status == 403
    assert ann.sim.requests_to("/midjourney/v2/inpaint") == []
