"""Take the README's screenshot of the playground: docs/img/playground.png.

Starts `python -m bot.playground` on free ports, plays `/imagine a red fox in the snow`, `U1`
and Vary (Region) in Debian's Chromium, and saves the page with the Mini App open.
Run: `python -m scripts.playground_screenshot` (needs /usr/bin/chromium and Playwright).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

from playwright.async_api import Page, async_playwright

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "img" / "playground.png"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
WAIT_MS = 60_000


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def play(page: Page) -> None:
    """The scene: a grid, its upscale, and Vary (Region) open beside the chat."""
    await page.fill("#input", "/imagine a red fox in the snow")
    await page.press("#input", "Enter")
    grid = page.locator(".row.in").filter(has=page.get_by_role("button", name="U1", exact=True))
    await grid.locator(".media img").wait_for(timeout=WAIT_MS)
    await grid.get_by_role("button", name="U1", exact=True).click()
    upscale = page.locator(".row.in").filter(has=page.get_by_role("button", name="Vary (Region)"))
    await upscale.locator(".media img").wait_for(timeout=WAIT_MS)
    await upscale.get_by_role("button", name="Vary (Region)").click()
    await page.get_by_role("button", name="🖌 Paint the region").click(timeout=WAIT_MS)
    await page.frame_locator("#webapp-frame").locator("body[data-ready='1']").wait_for()
    # Scrolled to show the prompt, the grid with its buttons and the upscale's start.
    await page.evaluate(
        "document.querySelector('#messages .row.out').scrollIntoView({block: 'start'})"
    )
    await page.wait_for_timeout(500)


async def main() -> None:
    """Run the playground, take the picture, stop the playground."""
    port = free_port()
    env = {**os.environ, "BOT_TOKEN": "", "PLAYGROUND_PORT": str(port)}
    env.update(WEB_PORT=str(free_port()), SIMULATOR_PACE="0.2", PROGRESS_EDIT_INTERVAL="0.5")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.playground", cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    try:
        async for line in process.stdout:
            if b"Playground ready" in line:
                break
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=ARGS
            )
            page = await browser.new_page(viewport={"width": 1440, "height": 900})
            await page.emulate_media(color_scheme="light")
            await page.route("https://telegram.org/**", lambda route: route.abort())
            await page.goto(f"http://127.0.0.1:{port}/")
            await page.wait_for_selector("body[data-ready='1']")
            await play(page)
            OUT.parent.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(OUT))
            await browser.close()
    finally:
        process.send_signal(signal.SIGINT)
        await process.wait()
    print(f"Wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    asyncio.run(main())
