"""The playground in Chromium: `python -m bot.playground`, its chat page, the bot behind it."""

from __future__ import annotations

import asyncio
import io
import re
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from PIL import Image, ImageDraw

from bot.playground.play import BOT_USERNAME
from tests.e2e.browser import chromium
from tests.e2e.harness import free_port
from tests.e2e.process import Output, clean_env, start_bot

if TYPE_CHECKING:
    from playwright.async_api import Browser, FilePayload, Locator, Page

# Seconds per simulated Midjourney step: slow enough to see the progress, quick enough to wait.
PACE = "0.3"
WAIT_MS = 45_000


@dataclass
class Playground:
    """A running `python -m bot.playground` and where its page is."""

    url: str
    output: Output


async def start_playground(tmp_path: Path, **settings: str) -> AsyncIterator[Playground]:
    """Run the playground as `make run` does without a token; stop it as Ctrl-C would."""
    port = free_port()
    env = clean_env(
        BOT_TOKEN="",
        PLAYGROUND_PORT=str(port),
        WEB_HOST="127.0.0.1",
        WEB_PORT=str(free_port()),
        SIMULATOR_PACE=PACE,
        POLL_INTERVAL="0.1",
        POLL_MAX_INTERVAL="0.3",
        PROGRESS_EDIT_INTERVAL="0.2",
        **settings,
    )
    process, output = await start_bot(env, tmp_path, "bot.playground")
    try:
        await output.wait_for("Playground ready", timeout=30)
        yield Playground(f"http://127.0.0.1:{port}/", output)
        process.send_signal(signal.SIGINT)
        returncode = await asyncio.wait_for(process.wait(), timeout=15)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await output.close()
    assert returncode == 0, output.stderr
    assert "Traceback" not in output.stdout + output.stderr


@pytest.fixture
async def playground(tmp_path: Path) -> AsyncIterator[Playground]:
    async for running in start_playground(tmp_path):
        yield running


async def open_page(browser: Browser, url: str) -> Page:
    """The chat page, loaded and live; Telegram's own script is out of reach, as offline."""
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.route("https://telegram.org/**", lambda route: route.abort())
    await page.goto(url)
    await page.wait_for_selector("body[data-ready='1']")
    assert errors == []
    return page


def photo_bytes() -> bytes:
    image = Image.new("RGB", (320, 240), "teal")
    ImageDraw.Draw(image).ellipse((20, 20, 300, 220), fill="orange")
    out = io.BytesIO()
    image.save(out, "JPEG")
    return out.getvalue()


async def send(page: Page, text: str) -> None:
    """Type into the text box and press Enter."""
    await page.fill("#input", text)
    await page.press("#input", "Enter")


def bot_message_with(page: Page, button: str) -> Locator:
    """The bot's messages that carry a button with exactly this label."""
    return page.locator(".row.in").filter(has=page.get_by_role("button", name=button, exact=True))


async def labels(message: Locator) -> list[list[str]]:
    rows = message.locator(".keyboard .krow")
    return [
        [label.strip() for label in await rows.nth(n).locator("button").all_inner_texts()]
        for n in range(await rows.count())
    ]


async def shown(image: Locator) -> None:
    """Wait until an image has loaded and has pixels."""
    await image.wait_for(timeout=WAIT_MS)
    handle = await image.element_handle()
    await image.page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=handle)


async def imagine_and_upscale(page: Page, prompt: str) -> Locator:
    """/imagine, the grid, U1: the upscale's message."""
    await send(page, f"/imagine {prompt}")
    grid = bot_message_with(page, "U1").last
    await shown(grid.locator(".media img"))
    await grid.get_by_role("button", name="U1", exact=True).click()
    upscale = bot_message_with(page, "Vary (Region)").last
    await shown(upscale.locator(".media img"))
    return upscale


async def test_imagine_shows_progress_then_the_grid_and_u1_the_upscale(
    playground: Playground,
) -> None:
    async with chromium() as browser:
        page = await open_page(browser, playground.url)
        await send(page, "/imagine a red fox in the snow")

        mine = page.locator(".row.out .text", has_text="/imagine a red fox in the snow")
        await mine.wait_for()
        # The status message, edited in place as Midjourney draws.
        progress = page.locator(".row.in .text", has_text=re.compile(r"Drawing… \d+%"))
        await progress.first.wait_for(timeout=WAIT_MS)

        grid = bot_message_with(page, "U1")
        await shown(grid.locator(".media img"))
        assert (await labels(grid))[:2] == [["U1", "U2", "U3", "U4"], ["V1", "V2", "V3", "V4"]]
        assert "a red fox in the snow" in await grid.locator(".text").inner_text()
        # The reply names what it answers, and the status message is gone.
        assert "/imagine a red fox" in await grid.locator(".reply-quote").inner_text()
        await progress.first.wait_for(state="detached", timeout=WAIT_MS)

        await grid.get_by_role("button", name="U1", exact=True).click()
        upscale = bot_message_with(page, "Vary (Region)")
        await shown(upscale.locator(".media img"))
        assert "Upscale #1" in await upscale.locator(".text").inner_text()
        buttons = [label for row in await labels(upscale) for label in row]
        assert {"Vary (Subtle)", "Vary (Strong)", "Zoom Out 2x", "Upscale (Creative)"} <= set(
            buttons
        )


async def test_describe_a_photo_gives_four_prompts(playground: Playground) -> None:
    async with chromium() as browser:
        page = await open_page(browser, playground.url)
        photo: FilePayload = {"name": "fox.jpg", "mimeType": "image/jpeg", "buffer": photo_bytes()}
        await page.set_input_files("#file", files=[photo])
        await page.locator("#attach-previews img").wait_for()
        await send(page, "/describe")

        mine = page.locator(".row.out").filter(has_text="/describe")
        await shown(mine.locator(".media img"))
        result = bot_message_with(page, "4")
        await result.wait_for(timeout=WAIT_MS)
        text = await result.locator(".text").inner_text()
        prompts = re.findall(r"^[1-4]\. (.+)$", text, re.MULTILINE)
        assert len(prompts) == 4 and all(prompt.strip() for prompt in prompts)
        assert (await labels(result))[0] == ["1", "2", "3", "4"]


async def test_a_message_telegram_refuses_gives_the_draft_back(playground: Playground) -> None:
    async with chromium() as browser:
        page = await open_page(browser, playground.url)
        broken: FilePayload = {"name": "fox.jpg", "mimeType": "image/jpeg", "buffer": b"no jpeg"}
        await page.set_input_files("#file", files=[broken])
        await page.locator("#attach-previews img").wait_for()
        await send(page, "a caption worth keeping")

        alert = page.locator("dialog#alert")
        await alert.wait_for()
        assert "IMAGE_PROCESS_FAILED" in await alert.inner_text()
        await alert.get_by_role("button", name="OK").click()
        # Nothing typed or attached is lost: the text and the photo wait in the composer.
        assert await page.input_value("#input") == "a caption worth keeping"
        assert await page.locator("#attach-previews img").count() == 1
        assert await page.locator(".row.out").filter(has_text="a caption worth").count() == 0


async def test_vary_region_opens_the_mini_app_beside_the_chat(playground: Playground) -> None:
    async with chromium() as browser:
        page = await open_page(browser, playground.url)
        upscale = await imagine_and_upscale(page, "a quiet harbour at dawn")
        await upscale.get_by_role("button", name="Vary (Region)").click()
        paint = page.get_by_role("button", name=re.compile("Paint the region"))
        await paint.click(timeout=WAIT_MS)

        await page.locator("#webapp").wait_for(state="visible")
        app = page.frame_locator("#webapp-frame")
        # Ready only once the bot checked the initData the playground signed for it.
        await app.locator("body[data-ready='1']").wait_for(timeout=WAIT_MS)
        assert await app.locator("#prompt").input_value() == "a quiet harbour at dawn"
        box = await app.locator("#overlay").bounding_box()
        assert box is not None
        y = box["y"] + box["height"] * 0.3
        await page.mouse.move(box["x"] + box["width"] * 0.2, y)
        await page.mouse.down()
        await page.mouse.move(box["x"] + box["width"] * 0.5, y, steps=8)
        await page.mouse.up()
        await app.locator("#prompt").fill("a red sailboat")
        await app.locator("#submit").click()
        await app.locator("body[data-sent='1']").wait_for()

        result = page.locator(".row.in").filter(has_text="a red sailboat")
        await shown(result.locator(".media img").last)
        await page.click("#webapp-close")
        assert not await page.locator("#webapp").is_visible()


async def test_a_group_of_two_and_buttons_that_belong_to_their_requester(
    playground: Playground,
) -> None:
    async with chromium() as browser:
        page = await open_page(browser, playground.url)
        await page.locator(".chat-item", has_text="Playground group").click()
        await page.locator("#sender").get_by_role("button", name="You").click()
        await send(page, "/imagine a lighthouse in a storm")
        grid = bot_message_with(page, "U2")
        await shown(grid.locator(".media img"))
        # Alex may not press what You started: Telegram shows the bot's answer as an alert.
        await page.locator("#sender").get_by_role("button", name="Alex").click()
        await grid.get_by_role("button", name="U2", exact=True).click()
        alert = page.locator("dialog#alert")
        await alert.wait_for()
        assert "belong to the person who started" in await alert.inner_text()
        await alert.get_by_role("button", name="OK").click()
        # And what Alex writes is Alex's: the bot names the requester in groups.
        await send(page, "/imagine a windmill")
        theirs = (
            page.locator(".row.in")
            .filter(has_text="a windmill")
            .filter(has=page.get_by_role("button", name="U1", exact=True))
        )
        await shown(theirs.locator(".media img"))
        assert "Alex" in await theirs.locator(".text").inner_text()


async def test_stars_invoice_pay_runs_the_checkout(tmp_path: Path) -> None:
    async for playground in start_playground(tmp_path, PAYMENTS="stars", STARS_PACKS="10:50"):
        async with chromium() as browser:
            page = await open_page(browser, playground.url)
            # Alex is no admin: Alex buys.
            await page.locator(".chat-item", has_text="Alex").click()
            await send(page, "/buy")
            pack = page.locator(".row.in .keyboard button").filter(has_text="10")
            await pack.first.click(timeout=WAIT_MS)
            pay = page.get_by_role("button", name=re.compile(r"Pay ⭐ 50"))
            await pay.click(timeout=WAIT_MS)
            await page.locator(".row.service", has_text="Alex paid ⭐ 50").wait_for()
            thanks = page.locator(".row.in .text", has_text="Thank you! +10 credits")
            await thanks.wait_for(timeout=WAIT_MS)
            assert "Your balance: 10" in await thanks.inner_text()
            async with httpx.AsyncClient() as http:
                state: dict[str, Any] = (await http.get(f"{playground.url}api/state")).json()
            alex = next(chat for chat in state["chats"] if chat["title"].startswith("Alex"))
            paid = [m for m in alex["messages"] if "successful_payment" in m]
            assert paid[0]["successful_payment"]["total_amount"] == 50


async def test_the_command_menu_a_reply_and_the_dark_theme(playground: Playground) -> None:
    async with chromium() as browser:
        page = await open_page(browser, playground.url)
        # The menu the bot set with setMyCommands; You are an admin, so the console is there.
        await page.click("#menu-button")
        commands = await page.locator("#menu .command-item b").all_inner_texts()
        assert {"/imagine", "/settings", "/help", "/accounts"} <= set(commands)
        await page.locator("#menu .command-item", has_text="/help").click()
        await page.locator(".row.out .text", has_text="/help").wait_for()
        answer = page.locator(".row.in").last
        await answer.wait_for(timeout=WAIT_MS)
        first_line = (await answer.locator(".text").inner_text()).splitlines()[0]

        await answer.hover()
        await answer.get_by_role("button", name="Reply").click()
        assert first_line in await page.locator("#reply-bar").inner_text()
        await send(page, "thanks")
        mine = page.locator(".row.out").filter(has_text="thanks")
        assert first_line in await mine.locator(".reply-quote").inner_text()
        assert await page.locator("#reply-bar").is_hidden()

        assert await page.evaluate("document.documentElement.dataset.theme") == "light"
        await page.click("#theme")
        assert await page.evaluate("document.documentElement.dataset.theme") == "dark"
        await page.reload()
        await page.wait_for_selector("body[data-ready='1']")
        assert await page.evaluate("document.documentElement.dataset.theme") == "dark"
        # The chat is still there after the reload: the emulator keeps it.
        await page.locator(".row.out").filter(has_text="thanks").wait_for()


async def test_an_album_blends_and_an_animation_plays_as_video(playground: Playground) -> None:
    async with chromium() as browser:
        page = await open_page(browser, playground.url)
        photos: list[FilePayload] = [
            {"name": f"{n}.jpg", "mimeType": "image/jpeg", "buffer": photo_bytes()} for n in (1, 2)
        ]
        await page.set_input_files("#file", files=photos)
        assert await page.locator("#attach-previews img").count() == 2
        await send(page, "/blend")
        album = page.locator(".row.out .media img")
        await album.nth(1).wait_for()
        assert await album.count() == 2

        grid = bot_message_with(page, "U1")
        await shown(grid.locator(".media img"))
        assert "Blend" in await grid.locator(".text").inner_text()
        await grid.get_by_role("button", name="U1", exact=True).click()
        upscale = bot_message_with(page, "Vary (Region)")
        await shown(upscale.locator(".media img"))
        await upscale.get_by_role("button", name=re.compile(r"Animate \(Low")).click()
        video = page.locator(".row.in .media video")
        await video.wait_for(timeout=WAIT_MS)
        source = await video.get_attribute("src")
        assert source is not None
        async with httpx.AsyncClient() as http:
            response = await http.get(f"{playground.url}{source.lstrip('/')}")
        assert response.headers["content-type"] == "video/mp4"
        assert response.content[4:8] == b"ftyp"


async def test_inline_mode_lists_your_results_and_sends_one_via_the_bot(
    playground: Playground,
) -> None:
    mention = f"@{BOT_USERNAME}"
    async with chromium() as browser:
        page = await open_page(browser, playground.url)
        assert await page.locator(".inline-hint").inner_text() == mention
        await imagine_and_upscale(page, "a copper kettle on a stove")

        # As in Telegram: `@bot words` asks the bot, and its answer shows above the text box.
        await page.fill("#input", f"{mention} kettle")
        results = page.locator("#inline .inline-result img")
        await shown(results.first)
        assert await results.count() == 2  # the upscale, then the grid
        await results.first.click()
        sent = page.locator(".row.out").filter(has=page.locator(".via", has_text=f"via {mention}"))
        await shown(sent.locator(".media img"))
        assert "a copper kettle on a stove" in await sent.locator(".text").inner_text()
        assert await sent.locator(".keyboard").count() == 0
        assert await page.input_value("#input") == ""
        assert await page.locator("#inline").is_hidden()

        # A word in no prompt: no results, and the bot's button, which opens its chat.
        await page.fill("#input", f"{mention} zebra")
        button = page.locator("#inline-button")
        await button.wait_for()
        assert await button.inner_text() == "Nothing matches: open the bot"
        assert await page.locator("#inline .inline-result").count() == 0
        await page.press("#input", "Escape")
        await page.locator("#inline").wait_for(state="hidden")
        await page.fill("#input", f"{mention} zebras")
        await button.click()
        await page.locator(".row.out .text", has_text="/start inline").wait_for()
        assert await page.locator("#inline").is_hidden()
