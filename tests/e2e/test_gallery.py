"""The gallery Mini App: a user's results in a real headless Chromium, checked by initData."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import aiohttp
import pytest
from PIL import Image

from bot.playground.emulator.users import sign_init_data
from tests.e2e.browser import chromium
from tests.e2e.harness import BotHarness, until
from tests.e2e.image_session import ImageUser

# What telegram-web-app.js would give the page inside Telegram; the test plays Telegram and
# records what the page asks of it (buttons shown, haptics, inline query switches).
TELEGRAM_STUB = """
window.__tg = { haptics: [], inline: [], main: {visible: false}, back: {visible: false} };
const rec = window.__tg;
window.Telegram = { WebApp: {
  initData: %s, colorScheme: "dark", themeParams: {},
  ready() {}, expand() {}, close() { rec.closed = true; },
  MainButton: {
    setText(t) { rec.main.text = t; }, show() { rec.main.visible = true; },
    hide() { rec.main.visible = false; }, onClick(f) { rec.main.click = f; },
    showProgress() {}, hideProgress() {},
  },
  BackButton: {
    show() { rec.back.visible = true; }, hide() { rec.back.visible = false; },
    onClick(f) { rec.back.click = f; },
  },
  HapticFeedback: {
    impactOccurred(s) { rec.haptics.push("impact:" + s); },
    notificationOccurred(s) { rec.haptics.push(s); },
    selectionChanged() { rec.haptics.push("select"); },
  },
  switchInlineQuery(q, types) { rec.inline.push([q, types]); },
  showConfirm(text, done) { rec.confirmed = text; done(true); },
} };
"""
SIM_PACE = 0.02
HARBOUR = "a quiet harbour at dawn"
FOX = "a red fox in the snow"


@pytest.fixture
def bot(webapp_bot: BotHarness) -> BotHarness:
    """The bot with the Mini Apps (conftest's `webapp_bot`)."""
    return webapp_bot


def api(bot: BotHarness, path: str = "") -> str:
    return f"http://127.0.0.1:{bot.port}/webapp/api/gallery{path}"


def signed(bot: BotHarness, user: ImageUser | dict[str, Any]) -> dict[str, str]:
    who = user.user if isinstance(user, ImageUser) else user
    init_data = sign_init_data(bot.tg.token, {"id": who["id"], "first_name": who["first_name"]})
    return {"Authorization": f"tma {init_data}"}


async def imagine(user: ImageUser, prompt: str, count: int) -> dict[str, Any]:
    """Send a prompt and wait for its grid (the count-th result photo in the chat)."""
    user.send(f"/imagine {prompt}")
    photo = await user.result_photo(count=count)
    # The gallery lists a result once its delivery is stored, a moment after the photo.
    app = user.bot.app
    assert app is not None

    async def stored() -> bool:
        row = await app.db.fetch_one(
            "SELECT COUNT(*) AS n FROM tasks WHERE delivery = 'delivered' AND user_id = :user",
            {"user": user.user["id"]},
        )
        return row is not None and int(row["n"]) >= count

    await until(stored, f"{count} results stored as delivered")
    return photo


async def listing(
    http: aiohttp.ClientSession, bot: BotHarness, user: ImageUser, **query: str
) -> dict[str, Any]:
    async with http.get(api(bot), params=query, headers=signed(bot, user)) as response:
        assert response.status == 200, await response.text()
        assert response.headers["Cache-Control"] == "no-store"
        return dict(await response.json())


async def test_browse_open_rerun_act_share_and_remove(bot: BotHarness) -> None:
    ann = ImageUser(bot)
    bob_user = bot.tg.user(2002, "Bob")
    bob_chat = bot.tg.private_chat(bob_user)
    await imagine(ann, HARBOUR, 1)
    await imagine(ann, FOX, 2)
    bot.tg.send_message(bob_chat, bob_user, "/imagine a secret lighthouse")
    await bot.photo_reply(int(bob_chat["id"]), count=1, timeout=20)

    # The chat menu button and /gallery both open the Mini App.
    menu = bot.tg.menu_buttons[None]
    assert menu["type"] == "web_app" and menu["web_app"]["url"].endswith("/webapp/gallery")
    ann.send("/gallery")
    call = await ann.text_reply("newest first")
    url = call.params["reply_markup"]["inline_keyboard"][0][0]["web_app"]["url"]
    assert url == menu["web_app"]["url"] and url.startswith("https://")
    async with aiohttp.ClientSession() as http:
        items = (await listing(http, bot, ann))["items"]
    assert [item["prompt"].split(" --")[0] for item in items] == [FOX, HARBOUR]
    init_data = signed(bot, ann)["Authorization"].removeprefix("tma ")
    imagines_before = len(ann.bodies("imagine"))

    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 420, "height": 860})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.route(
            "https://telegram.org/**",
            lambda route: route.fulfill(
                body=TELEGRAM_STUB % json.dumps(init_data), content_type="application/javascript"
            ),
        )
        await page.goto("http://" + url.removeprefix("https://"))
        await page.wait_for_selector("body[data-ready='1']")
        cells = page.locator("#grid .cell")
        assert await cells.count() == 2
        assert [await cells.nth(n).get_attribute("title") for n in range(2)] == [
            item["prompt"] for item in items
        ]
        # Thumbnails: real pixels, made small by the bot.
        await page.wait_for_function(
            "[...document.querySelectorAll('#grid img')]"
            ".every(img => img.complete && img.naturalWidth > 0)"
        )
        widths = await page.eval_on_selector_all(
            "#grid img", "imgs => imgs.map(img => Math.max(img.naturalWidth, img.naturalHeight))"
        )
        assert all(0 < width <= 360 for width in widths), widths

        # The detail view: prompt, parameters, the full image, Telegram's buttons.
        await cells.nth(0).click()
        await page.wait_for_selector("body[data-view='detail'][data-detail]")
        assert await page.inner_text("#prompt") == FOX
        await page.wait_for_function("document.getElementById('picture').naturalWidth > 360")
        state = await page.evaluate("window.__tg")
        assert state["main"]["visible"] and state["back"]["visible"]
        assert "impact:light" in state["haptics"]
        labels = await page.locator("#actions .action").all_inner_texts()
        assert "U1" in labels and "V2" in labels

        # Re-run (Telegram's MainButton) starts a new /imagine of the same prompt.
        await page.evaluate("window.__tg.main.click()")
        await page.wait_for_selector("body[data-started]")
        assert "success" in await page.evaluate("window.__tg.haptics")
        await ann.result_photo(count=3)
        rerun = ann.bodies("imagine")[imagines_before:]
        assert len(rerun) == 1 and rerun[0]["prompt"].startswith(FOX)

        # U1 from the gallery is the chat's U1: an upscale of the fox grid, into the chat.
        fox_hash = next(t["hash"] for t in ann.sim.tasks.values() if FOX in t["prompt"])
        await page.click("#actions .action[data-key='upscale:1']")
        await ann.result_photo(count=4)
        upscales = ann.bodies("upscale")
        assert [(b["hash"], b["choice"]) for b in upscales] == [(fox_hash, 1)]

        await page.click("#share")
        assert (await page.evaluate("window.__tg.inline"))[0] == [
            FOX,
            ["users", "groups", "channels"],
        ]

        # Someone else's task id: refused, however the page asks.
        assert bot.app is not None
        bob_task = next(t for t in await bot.app.tasks.recent_for_user(2002) if t.result_file_id)
        for path in ("", "/thumb", "/image"):
            status = await page.evaluate(
                "async (path) => (await fetch(path, {headers: {Authorization: "
                "'tma ' + window.Telegram.WebApp.initData}})).status",
                f"/webapp/api/gallery/{bob_task.id}{path}",
            )
            assert status == 403

        # Back to the grid, search, remove.
        await page.evaluate("window.__tg.back.click()")
        await page.wait_for_selector("body[data-view='grid']")
        await page.fill("#search", "harbour")
        await page.wait_for_function("document.querySelectorAll('#grid .cell').length === 1")
        await cells.nth(0).click()
        await page.wait_for_selector("body[data-view='detail'][data-detail]")
        await page.click("#remove")
        await page.wait_for_selector("body[data-view='grid']")
        assert await cells.count() == 0
        assert errors == []

    async with aiohttp.ClientSession() as http:
        left = [item["prompt"] for item in (await listing(http, bot, ann))["items"]]
    assert not any(HARBOUR in prompt for prompt in left) and any(FOX in p for p in left)
    ann.send("/history")
    history = await ann.text_reply("Your recent jobs")
    assert HARBOUR not in str(history.params["text"]) and FOX in str(history.params["text"])
    ann.assert_token_never_sent()


async def test_forged_stale_or_foreign_init_data_is_refused(bot: BotHarness) -> None:
    ann = ImageUser(bot)
    await imagine(ann, HARBOUR, 1)
    async with aiohttp.ClientSession() as http:
        task_id = (await listing(http, bot, ann))["items"][0]["id"]
        user = {"id": ann.user["id"], "first_name": "Ann"}
        good = sign_init_data(bot.tg.token, user)
        forged = sign_init_data("999999:not-the-token", user)
        stale = sign_init_data(bot.tg.token, user, auth_date=int(time.time()) - 2 * 86400)
        stranger = sign_init_data(bot.tg.token, {"id": 4242, "first_name": "Eve"})
        tampered = good.replace("Ann", "Eve")
        requests_before = len(ann.sim.requests)
        for init_data in (forged, stale, tampered, "", None):
            headers = {} if init_data is None else {"Authorization": f"tma {init_data}"}
            async with http.get(api(bot), headers=headers) as response:
                assert response.status == 403, init_data
            for path in ("", "/thumb", "/image"):
                async with http.get(api(bot, f"/{task_id}{path}"), headers=headers) as response:
                    assert response.status == 403
        for init_data in (forged, stale, stranger, tampered):
            headers = {"Authorization": f"tma {init_data}"}
            for path in ("/rerun", "/action", "/hide"):
                body = {"key": "upscale:1"}
                async with http.post(
                    api(bot, f"/{task_id}{path}"), json=body, headers=headers
                ) as response:
                    assert response.status == 403, (init_data, path)
            for path in ("", "/thumb", "/image"):
                async with http.get(api(bot, f"/{task_id}{path}"), headers=headers) as response:
                    assert response.status == 403
        # Eve, signed in properly, sees an empty gallery; an id that doesn't exist is a 403 too.
        eve = {"Authorization": f"tma {stranger}"}
        async with http.get(api(bot), headers=eve) as response:
            assert (await response.json())["items"] == []
        async with http.get(api(bot, "/999999/thumb"), headers=signed(bot, ann)) as response:
            assert response.status == 403
        assert (await listing(http, bot, ann))["items"][0]["id"] == task_id
    assert len(ann.sim.requests) == requests_before  # nothing reached the API
    assert bot.app is not None
    task = await bot.app.tasks.get(task_id)
    assert task is not None and task.hidden_at is None


async def test_pages_search_and_cached_images(bot: BotHarness) -> None:
    ann = ImageUser(bot)
    prompts = [HARBOUR, FOX, "a harbour cat 100% cute", "neon city at night", "Harbour lights"]
    for count, prompt in enumerate(prompts, 1):
        await imagine(ann, prompt, count)
    async with aiohttp.ClientSession() as http:
        everything = (await listing(http, bot, ann, limit="50"))["items"]
        ids = [item["id"] for item in everything]
        assert len(ids) == 5 and ids == sorted(ids, reverse=True)
        paged: list[int] = []
        offset: int | None = 0
        while offset is not None:
            page = await listing(http, bot, ann, limit="2", offset=str(offset))
            assert len(page["items"]) <= 2
            paged += [item["id"] for item in page["items"]]
            offset = page["next_offset"]
        assert paged == ids

        def found(page: dict[str, Any]) -> list[str]:
            return [item["prompt"].split(" --")[0] for item in page["items"]]

        assert found(await listing(http, bot, ann, q="HARBOUR")) == [
            "Harbour lights",
            "a harbour cat 100% cute",
            HARBOUR,
        ]
        assert found(await listing(http, bot, ann, q="harbour cat")) == ["a harbour cat 100% cute"]
        assert found(await listing(http, bot, ann, q="100%")) == ["a harbour cat 100% cute"]
        assert found(await listing(http, bot, ann, q="1_0")) == []  # `_` is no wildcard
        assert found(await listing(http, bot, ann, q="zebra")) == []
        texts = (await listing(http, bot, ann))["texts"]
        assert texts["search"] == "Search your prompts"

        # Images: private to the browser, revalidated by ETag without sending them again.
        thumb = api(bot, f"/{ids[0]}/thumb")
        async with http.get(thumb, headers=signed(bot, ann)) as response:
            assert response.status == 200 and response.content_type == "image/jpeg"
            assert response.headers["Cache-Control"].startswith("private")
            assert response.headers["Vary"] == "Authorization"
            tag = response.headers["ETag"]
            small = await response.read()
        again = signed(bot, ann) | {"If-None-Match": tag}
        async with http.get(thumb, headers=again) as response:
            assert response.status == 304 and await response.read() == b""
        # Once the API's link has expired, Telegram's copy still serves the full image.
        bot.sim._files.clear()
        downloads = bot.tg.file_downloads
        async with http.get(api(bot, f"/{ids[1]}/image"), headers=signed(bot, ann)) as response:
            assert response.status == 200
            assert len(await response.read()) > len(small)
        assert bot.tg.file_downloads == downloads + 1
        bad = {"offset": "x"}
        async with http.get(api(bot), params=bad, headers=signed(bot, ann)) as response:
            assert response.status == 400


async def test_without_https_or_in_a_group_the_gallery_says_where_it_opens(
    webhook_harness: BotHarness,
) -> None:
    # PUBLIC_URL is plain HTTP here: Telegram would refuse a Mini App button.
    bot = webhook_harness
    ann = ImageUser(bot)
    assert bot.tg.menu_buttons[None] == {"type": "default"}
    ann.send("/gallery")
    reply = await ann.text_reply("HTTPS")
    assert "reply_markup" not in reply.params
    ann.send("/help")
    assert "/gallery" not in str((await ann.text_reply("/imagine")).params["text"])
    group = bot.tg.group_chat(-100777, "Friends")
    bot.overrides["webapp_url"] = f"https://127.0.0.1:{bot.port}"
    await bot.stop()
    await bot.start()
    assert bot.tg.menu_buttons[None]["type"] == "web_app"
    bot.tg.send_message(group, ann.user, "/gallery")
    said = await bot.tg.wait_for(
        "sendMessage", lambda c: c.ok and int(c.params["chat_id"]) == -100777, timeout=10
    )
    assert "private chat" in str(said.params["text"]) and "reply_markup" not in said.params
    # With HTTPS, /help names the gallery.
    ann.send("/help")
    assert "/gallery" in str((await ann.text_reply("Your gallery")).params["text"])


async def test_the_menu_button_speaks_the_users_language(bot: BotHarness) -> None:
    tg = bot.tg
    ivan = tg.user(2501, "Иван", language_code="ru")
    ivan_chat = tg.private_chat(ivan)
    ann = ImageUser(bot)
    ann.send("/start")
    await ann.text_reply("/imagine")
    tg.send_message(ivan_chat, ivan, "/start")
    await tg.wait_for("sendMessage", lambda c: c.ok and c.params["chat_id"] == ivan_chat["id"])

    # Telegram's button has no language_code: Ivan's chat gets one of its own, in Russian.
    async def labelled() -> bool:
        return ivan_chat["id"] in tg.menu_buttons

    await until(labelled, "Ivan's menu button")
    button = tg.menu_buttons[ivan_chat["id"]]
    assert button["text"] == "Галерея" and button["web_app"] == tg.menu_buttons[None]["web_app"]
    # English is the bot-wide button's language: Ann's /start costs no call.
    assert ann.chat_id not in tg.menu_buttons
    assert tg.menu_buttons[None]["text"] == "Gallery"

    # Ann picks Russian with /language: her button follows.
    ann.send("/language")
    picker = await tg.wait_for(
        "sendMessage", lambda c: "Русский" in str(c.params.get("reply_markup"))
    )
    ann.press(picker.result, "Русский")

    async def followed() -> bool:
        return tg.menu_buttons.get(ann.chat_id, {}).get("text") == "Галерея"

    await until(followed, "Ann's button in Russian")


async def test_an_animation_is_a_video_with_a_still_thumbnail(bot: BotHarness) -> None:
    ann = ImageUser(bot)
    grid = await imagine(ann, HARBOUR, 1)
    ann.press(grid, "U1")
    upscale = await ann.result_photo(count=2)
    ann.press(upscale, "Animate (Low motion)")
    await bot.tg.wait_for(
        "sendAnimation", lambda c: c.ok and int(c.params["chat_id"]) == ann.chat_id, timeout=20
    )
    app = bot.app
    assert app is not None

    async def stored() -> bool:
        row = await app.db.fetch_one(
            "SELECT COUNT(*) AS n FROM tasks WHERE delivery = 'delivered' AND type = 'animate'"
        )
        return row is not None and int(row["n"]) == 1

    await until(stored, "the animation stored as delivered")
    async with aiohttp.ClientSession() as http:
        items = (await listing(http, bot, ann))["items"]
        animation = items[0]
        assert animation["type"] == "animate" and animation["animation"] is True
        assert [item["animation"] for item in items[1:]] == [False, False]
        # The full picture is Telegram's MP4 (the page plays it); the thumbnail is its first frame.
        where = api(bot, f"/{animation['id']}")
        async with http.get(where + "/image", headers=signed(bot, ann)) as response:
            assert response.status == 200 and response.content_type == "video/mp4"
            assert (await response.read())[4:8] == b"ftyp"
        async with http.get(where + "/thumb", headers=signed(bot, ann)) as response:
            assert response.status == 200 and response.content_type == "image/jpeg"
            thumb = await response.read()
    with Image.open(io.BytesIO(thumb)) as still:
        assert still.format == "JPEG" and max(still.size) <= 360
