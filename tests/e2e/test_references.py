"""Today's Midjourney from Telegram, over real HTTP: references from photos, reply-to-photo
prompts, /settings' new defaults, version checks, speeds the owner allows, and translation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.playground.emulator import ApiCall, FakeTelegram
from bot.userapi.simulator import Simulator
from tests.e2e.harness import BotHarness, button_data, button_labels, has_keyboard, make_harness
from tests.e2e.image_session import ImageUser, labels_of, picture
from tests.fake_translator import FakeTranslator

SIM_PACE = 0.02
API = "/midjourney/v2"
GROUP = -1001222333444
SLOW_NOTE = "translator didn't answer"


@pytest.fixture
async def bot(tg: FakeTelegram, sim: Simulator, tmp_path: Path) -> AsyncIterator[BotHarness]:
    async for runner in make_harness(tg, sim, tmp_path, webhooks=True):
        yield runner


@pytest.fixture
async def translator() -> AsyncIterator[FakeTranslator]:
    fake = FakeTranslator(api_key="tr-key")
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def translating_bot(
    tg: FakeTelegram, sim: Simulator, tmp_path: Path, translator: FakeTranslator
) -> AsyncIterator[BotHarness]:
    async for runner in make_harness(
        tg,
        sim,
        tmp_path,
        webhooks=True,
        translate_url=translator.base_url,
        translate_api_key="tr-key",
        translate_timeout=1.0,
    ):
        yield runner


def upload_then_imagine(sim: Simulator) -> list[str]:
    """The API paths the bot called, in order, without polling."""
    return [r.path for r in sim.requests if r.path in (f"{API}/upload", f"{API}/imagine")]


def imagine_prompts(sim: Simulator) -> list[str]:
    return [json.loads(r.body)["prompt"] for r in sim.requests_to(f"{API}/imagine")]


def pressed_menu(ann: ImageUser, menu: ApiCall, label: str) -> None:
    ann.tg.press(dict(menu.result), button_data(dict(menu.result), label), ann.user)


def upload_urls_in_order(sim: Simulator) -> list[str]:
    """The URL each upload answered with, read back from the CDN files in upload order."""
    # The simulator names each upload uniquely; the prompt's URLs must be among them.
    return [f"{sim.base_url}/cdn/{name}" for name in sim._files if name.startswith("upload_")]


async def reference_job(ann: ImageUser, label: str, prompt: str, photos: int = 1) -> str:
    """Press a reference button on the photo menu, answer the question, return the prompt."""
    question = "these 2 photos" if photos == 2 else "this photo"
    menu = await ann.text_reply(f"What should I do with {question}?")
    pressed_menu(ann, menu, label)
    ask = await ann.text_reply("send the prompt to go with it")
    assert ask.params["reply_markup"]["force_reply"] is True
    # Nothing is uploaded before the prompt arrives: the URL is used at once.
    assert ann.sim.requests_to(f"{API}/upload") == []
    ann.send(prompt, reply_to_message_id=ask.result["message_id"])
    await ann.result_photo()
    return imagine_prompts(ann.sim)[0]


async def test_photo_as_style_reference(bot: BotHarness) -> None:
    ann = ImageUser(bot)
    ann.send(photo=picture(color="navy"))
    prompt = await reference_job(ann, "🎨 Style reference", "a cozy cabin, snow")
    [url] = upload_urls_in_order(ann.sim)
    assert prompt == f"a cozy cabin, snow --sref {url}"
    assert upload_then_imagine(ann.sim) == [f"{API}/upload", f"{API}/imagine"]
    ann.uploads()  # multipart, checked inside
    # The job runs on the account that holds the uploaded image.
    assert ann.bodies("imagine")[0]["account_hash"] is not None
    ann.assert_token_never_sent()


async def test_photo_as_omni_reference(bot: BotHarness) -> None:
    ann = ImageUser(bot)
    ann.send(photo=picture(color="maroon"))
    prompt = await reference_job(ann, "🧩 Omni reference (V7)", "a knight on a horse --ar 3:2")
    [url] = upload_urls_in_order(ann.sim)
    assert prompt == f"a knight on a horse --ar 3:2 --oref {url}"
    assert upload_then_imagine(ann.sim) == [f"{API}/upload", f"{API}/imagine"]
    ann.uploads()


async def test_album_as_two_style_references(bot: BotHarness) -> None:
    ann = ImageUser(bot)
    ann.album([picture(color="red"), picture("PNG", color="blue")], caption=None)
    prompt = await reference_job(ann, "🎨 Style reference", "a city at night", photos=2)
    uploads = [r for r in ann.sim.requests if r.path == f"{API}/upload"]
    assert len(uploads) == 2
    words, urls = prompt.split(" --sref ")
    assert words == "a city at night"
    assert sorted(urls.split(" ")) == sorted(upload_urls_in_order(ann.sim))
    assert urls.split(" ")[0].endswith(".jpg") and urls.split(" ")[1].endswith(".png")
    assert upload_then_imagine(ann.sim) == [f"{API}/upload", f"{API}/upload", f"{API}/imagine"]


async def test_character_reference_runs_on_v6_and_omni_takes_one_image(bot: BotHarness) -> None:
    ann = ImageUser(bot)
    ann.send(photo=picture(color="teal"))
    prompt = await reference_job(ann, "👤 Character reference (V6)", "a pilot in a cockpit")
    [url] = upload_urls_in_order(ann.sim)
    assert prompt == f"a pilot in a cockpit --cref {url} --v 6.1"

    ann.album([picture(color="red"), picture(color="blue")], caption=None)
    menu = await ann.text_reply("What should I do with these 2 photos?")
    pressed_menu(ann, menu, "🧩 Omni reference (V7)")
    await ann.text_reply("Omni reference takes at most 1 image(s); you sent 2.")


async def test_imagine_replying_to_a_photo_in_private(bot: BotHarness) -> None:
    ann = ImageUser(bot)
    photo = ann.send(photo=picture(color="olive"))
    await ann.text_reply("What should I do with this photo?")
    ann.send("/imagine a fox in this style —ar 2:3", reply_to_message_id=photo["message_id"])
    await ann.result_photo()
    [url] = upload_urls_in_order(ann.sim)
    assert imagine_prompts(ann.sim) == [f"{url} a fox in this style --ar 2:3"]
    assert upload_then_imagine(ann.sim) == [f"{API}/upload", f"{API}/imagine"]
    ann.assert_token_never_sent()


async def test_imagine_replying_to_a_photo_and_an_album_in_a_group(bot: BotHarness) -> None:
    tg, sim = bot.tg, bot.sim
    chat = tg.group_chat(GROUP, "Artists")
    ann = tg.user(1201, "Ann")
    photo = tg.send_message(chat, ann, photo=picture(color="pink"))
    tg.send_message(
        chat,
        ann,
        f"/imagine@{tg.bot_username} a lighthouse",
        reply_to_message_id=photo["message_id"],
    )
    await bot.photo_reply(GROUP, has_keyboard)
    [url] = upload_urls_in_order(sim)
    assert imagine_prompts(sim) == [f"{url} a lighthouse"]
    assert upload_then_imagine(sim) == [f"{API}/upload", f"{API}/imagine"]
    # No photo menu in groups: a photo alone is people talking.
    assert not [c for c in tg.calls("sendMessage") if "What should I do" in c.params["text"]]

    album = [
        tg.send_message(chat, ann, photo=picture(color=color), media_group_id="g-album")
        for color in ("red", "green")
    ]
    await asyncio.sleep(0.3)  # people reply to an album they have seen arrive
    tg.send_message(
        chat,
        ann,
        f"/imagine@{tg.bot_username} two moods",
        reply_to_message_id=album[1]["message_id"],
    )
    await bot.photo_reply(GROUP, has_keyboard, count=2)
    second = imagine_prompts(sim)[1].split(" ")
    assert second[2:] == ["two", "moods"]
    assert all(part.startswith(f"{sim.base_url}/cdn/upload_") for part in second[:2])
    assert len(sim.requests_to(f"{API}/upload")) == 3


async def test_sref_command_replying_to_a_photo_in_a_group(bot: BotHarness) -> None:
    tg, sim = bot.tg, bot.sim
    chat = tg.group_chat(GROUP, "Artists")
    ann = tg.user(1202, "Ann")
    photo = tg.send_message(chat, ann, photo=picture(color="gold"))
    tg.send_message(
        chat, ann, f"/sref@{tg.bot_username} a bakery", reply_to_message_id=photo["message_id"]
    )
    await bot.photo_reply(GROUP, has_keyboard)
    [url] = upload_urls_in_order(sim)
    assert imagine_prompts(sim) == [f"a bakery --sref {url}"]

    tg.send_message(chat, ann, f"/ref@{tg.bot_username}", reply_to_message_id=photo["message_id"])
    menu = await tg.wait_for("sendMessage", lambda c: "What should I do" in c.params["text"])
    assert ["🎨 Style reference"] in labels_of(menu)


# -- /settings --------------------------------------------------------------------------------


async def open_settings(tg: FakeTelegram, chat: dict[str, Any], user: dict[str, Any]) -> Any:
    count = len([c for c in tg.calls("sendMessage") if c.params["text"].startswith("⚙️")])
    tg.send_message(chat, user, "/settings")
    call = await tg.wait_for(
        "sendMessage", lambda c: c.params["text"].startswith("⚙️"), count=count + 1
    )
    return dict(call.result)


async def press_and_wait(
    tg: FakeTelegram, menu: dict[str, Any], label: str, user: dict[str, Any]
) -> dict[str, Any]:
    edits = len(tg.calls("editMessageText"))
    tg.press(menu, button_data(menu, label), user)
    await tg.wait_for("editMessageText", count=edits + 1)
    return tg.message(menu["chat"]["id"], menu["message_id"]) or {}


async def type_code(
    tg: FakeTelegram, menu: dict[str, Any], label: str, code: str, user: dict[str, Any]
) -> None:
    chat = menu["chat"]
    tg.press(menu, button_data(menu, label), user)
    ask = await tg.wait_for("sendMessage", lambda c: "off</code> to remove it" in c.params["text"])
    tg.send_message(chat, user, code, reply_to_message_id=ask.result["message_id"])
    await tg.wait_for("sendMessage", lambda c: c.params["text"].startswith("Saved: "))


async def test_default_style_code_and_draft_mode_are_appended_unless_set(
    bot: BotHarness, tg: FakeTelegram, sim: Simulator
) -> None:
    ann = tg.user(1301, "Ann")
    chat = tg.private_chat(ann)
    menu = await open_settings(tg, chat, ann)
    tg.press(menu, button_data(menu, "Style code"), ann)
    ask = await tg.wait_for("sendMessage", lambda c: "style code" in c.params["text"])
    tg.send_message(chat, ann, "12ab", reply_to_message_id=ask.result["message_id"])
    await tg.wait_for("sendMessage", lambda c: "A style code is a number" in c.params["text"])
    tg.send_message(chat, ann, "--sref 123456", reply_to_message_id=ask.result["message_id"])
    await tg.wait_for(
        "sendMessage", lambda c: "Saved: <code>--sref 123456</code>" in str(c.params)
    )
    menu = await open_settings(tg, chat, ann)
    assert "Style code (<code>--sref</code>): <b>123456</b>" in menu["text"] or (
        "Style code (--sref): 123456" in menu["text"]
    )
    menu = await press_and_wait(tg, menu, "Draft mode: off", ann)
    assert ["Draft mode: on", "--exp"] in button_labels(menu)

    tg.send_message(chat, ann, "/imagine a red fox")
    await bot.photo_reply(chat["id"], has_keyboard)
    tg.send_message(chat, ann, "/imagine a blue fox --sref 777 --sw 50")
    await bot.photo_reply(chat["id"], has_keyboard, count=2)
    assert imagine_prompts(sim) == [
        "a red fox --draft --sref 123456",
        "a blue fox --sref 777 --sw 50 --draft",
    ]

    # A photo style reference is the prompt's own --sref: the default code stays out.
    photo = tg.send_message(chat, ann, photo=picture(color="plum"))
    tg.send_message(chat, ann, "/sref a green fox", reply_to_message_id=photo["message_id"])
    await bot.photo_reply(chat["id"], has_keyboard, count=3)
    third = imagine_prompts(sim)[2]
    assert third.startswith(f"a green fox --sref {sim.base_url}/cdn/upload_")
    assert "123456" not in third and third.endswith(" --draft")


async def test_parameters_that_dont_fit_the_version_are_refused_before_any_call(
    bot: BotHarness, tg: FakeTelegram, sim: Simulator
) -> None:
    ann = tg.user(1302, "Ann")
    chat = tg.private_chat(ann)
    tg.send_message(chat, ann, "/imagine a cat --oref https://example.com/cat.png --v 6")
    refused = await tg.wait_for("sendMessage", lambda c: "--oref" in c.params["text"])
    assert "doesn't work with V6" in refused.params["text"]
    assert "V7+" in refused.params["text"]

    # The same with V6.1 chosen in /settings: the default model decides the version.
    menu = await open_settings(tg, chat, ann)
    tg.press(menu, button_data(menu, "Model"), ann)
    await tg.wait_for("editMessageReplyMarkup")
    submenu = tg.message(chat["id"], menu["message_id"]) or {}
    assert button_labels(submenu)[0] == ["V7", "V6.1", "Niji 7", "Niji 6"]
    await press_and_wait(tg, submenu, "V6.1", ann)
    tg.send_message(chat, ann, "/imagine a dog --oref https://example.com/dog.png")
    refused = await tg.wait_for("sendMessage", lambda c: "V6.1" in c.params["text"], count=1)
    assert "--oref" in refused.params["text"] and "Nothing was sent" in refused.params["text"]
    tg.send_message(chat, ann, "/imagine a man --cref https://example.com/man.png --v 7")
    refused = await tg.wait_for("sendMessage", lambda c: "--cref" in c.params["text"])
    assert "V6, V6.1, Niji 6" in refused.params["text"]
    assert sim.requests_to(f"{API}/imagine") == []
    assert sim.requests_to(f"{API}/upload") == []


# -- ALLOWED_SPEEDS ---------------------------------------------------------------------------


@pytest.fixture
async def relax_bot(tg: FakeTelegram, sim: Simulator, tmp_path: Path) -> AsyncIterator[BotHarness]:
    async for runner in make_harness(tg, sim, tmp_path, webhooks=True, allowed_speeds="relax"):
        yield runner


async def test_speeds_the_owner_forbids_are_stripped_with_a_note(
    relax_bot: BotHarness, tg: FakeTelegram, sim: Simulator
) -> None:
    ann = tg.user(1401, "Ann")
    chat = tg.private_chat(ann)
    assert relax_bot.app is not None
    # Chosen while turbo was allowed: no longer added.
    from storage.settings import UserSettingsRepo

    await UserSettingsRepo(relax_bot.app.db).update(ann["id"], speed="turbo")

    tg.send_message(chat, ann, "/imagine a cat —turbo --ar 3:2 --fast")
    note = await tg.wait_for("sendMessage", lambda c: "isn't allowed here" in c.params["text"])
    assert "--turbo, --fast" in note.params["text"]
    tg.send_message(chat, ann, "/imagine a dog --relax")
    await relax_bot.photo_reply(chat["id"], has_keyboard, count=2)
    assert sorted(imagine_prompts(sim)) == ["a cat --ar 3:2", "a dog --relax"]

    menu = await open_settings(tg, chat, ann)
    assert "Speed: <b>default</b>" in str(menu) or "Speed: default" in menu["text"]
    tg.press(menu, button_data(menu, "Speed"), ann)
    await tg.wait_for("editMessageReplyMarkup")
    submenu = tg.message(chat["id"], menu["message_id"]) or {}
    assert button_labels(submenu)[0] == ["Relax"]

    # Nothing but a forbidden speed is no prompt at all.
    tg.send_message(chat, ann, "/imagine --turbo")
    await tg.wait_for("sendMessage", lambda c: "Please add a prompt" in c.params["text"])
    assert len(sim.requests_to(f"{API}/imagine")) == 2


# -- translation ------------------------------------------------------------------------------


async def test_russian_prompt_is_translated_and_nothing_else(
    translating_bot: BotHarness, tg: FakeTelegram, sim: Simulator, translator: FakeTranslator
) -> None:
    ann = tg.user(1501, "Аня", language_code="ru")
    chat = tg.private_chat(ann)
    tg.send_message(
        chat, ann, '/imagine https://example.com/ref.png кот в шляпе "КОТ" --ar 16:9 --no закат'
    )
    await translating_bot.photo_reply(chat["id"], has_keyboard)
    assert sorted(translator.texts()) == sorted(["кот в шляпе", "закат"])
    assert all(
        r.body["source"] == "auto" and r.body["target"] == "en" for r in translator.requests
    )
    assert all(
        r.body["format"] == "text" and r.body["api_key"] == "tr-key" for r in translator.requests
    )
    assert imagine_prompts(sim) == [
        'https://example.com/ref.png a cat in a hat "КОТ" --ar 16:9 --no sunset'
    ]
    status = await tg.wait_for("sendMessage", lambda c: "a cat in a hat" in c.params["text"])
    assert "кот" not in status.params["text"]

    # English needs no translator.
    tg.send_message(chat, ann, "/imagine a red fox --ar 1:1")
    await translating_bot.photo_reply(chat["id"], has_keyboard, count=2)
    assert len(translator.requests) == 2


async def test_translation_can_be_turned_off_per_user(
    translating_bot: BotHarness, tg: FakeTelegram, sim: Simulator, translator: FakeTranslator
) -> None:
    ann = tg.user(1502, "Аня", language_code="ru")
    chat = tg.private_chat(ann)
    menu = await open_settings(tg, chat, ann)
    await press_and_wait(tg, menu, "Переводить промпты: вкл", ann)
    tg.send_message(chat, ann, "/imagine рыжая лиса")
    await translating_bot.photo_reply(chat["id"], has_keyboard)
    assert translator.requests == []
    assert imagine_prompts(sim) == ["рыжая лиса"]


async def test_slow_translator_leaves_the_prompt_as_written(
    translating_bot: BotHarness, tg: FakeTelegram, sim: Simulator, translator: FakeTranslator
) -> None:
    translator.delay = 3.0  # over the 1 s the harness gives it (5 s by default)
    ann = tg.user(1503, "Ann")
    chat = tg.private_chat(ann)
    tg.send_message(chat, ann, "/imagine рыжая лиса --ar 2:3")
    note = await tg.wait_for(
        "sendMessage", lambda c: "translator didn't answer" in c.params["text"]
    )
    await translating_bot.photo_reply(chat["id"], has_keyboard)
    assert imagine_prompts(sim) == ["рыжая лиса --ar 2:3"]
    assert note.params["reply_parameters"]["message_id"] or note.params.get("reply_to_message_id")

    translator.delay, translator.status = 0.0, 500
    tg.send_message(chat, ann, "/imagine закат")
    await tg.wait_for(
        "sendMessage", lambda c: "translator didn't answer" in c.params["text"], count=2
    )
    await translating_bot.photo_reply(chat["id"], has_keyboard, count=2)
    assert imagine_prompts(sim)[1] == "закат"


async def test_reference_prompt_is_translated_too(
    translating_bot: BotHarness, translator: FakeTranslator
) -> None:
    ann = ImageUser(translating_bot)
    ann.send(photo=picture(color="navy"))
    prompt = await reference_job(ann, "🎨 Style reference", "уютный домик в лесу --ar 3:2")
    [url] = upload_urls_in_order(ann.sim)
    assert prompt == f"a cozy cabin in the woods --ar 3:2 --sref {url}"
    assert translator.texts() == ["уютный домик в лесу"]


# -- buttons by version -----------------------------------------------------------------------


def text_sent(tg: FakeTelegram, chat_id: int, needle: str) -> list[str]:
    """Texts and captions the bot sent or edited into a chat containing needle."""
    found = []
    for method in ("sendMessage", "editMessageText", "editMessageCaption", "sendPhoto"):
        for call in tg.calls(method):
            text = str(call.params.get("text") or call.params.get("caption") or "")
            if call.ok and int(call.params["chat_id"]) == chat_id and needle in text:
                found.append(text)
    return found


async def test_buttons_fit_the_version_and_a_refused_button_is_explained(
    bot: BotHarness, tg: FakeTelegram, sim: Simulator
) -> None:
    ann = tg.user(1601, "Ann")
    chat = tg.private_chat(ann)
    # No next_actions from the API: the version table decides.
    sim.config.next_actions = False
    tg.send_message(chat, ann, "/imagine an old barn --v 5.1")
    grid = await bot.photo_reply(chat["id"], has_keyboard)
    tg.press(grid, button_data(grid, "U1"), ann)
    upscale = await bot.photo_reply(chat["id"], has_keyboard, count=2)
    assert button_labels(upscale) == [
        ["Vary (Region)"],
        ["Upscale (2x)", "Upscale (4x)"],
        ["Animate (High motion)", "Animate (Low motion)"],
    ]

    # With next_actions the API decides; a button it then refuses gets words, not a failure.
    sim.config.next_actions = True
    tg.send_message(chat, ann, "/imagine a new barn")
    grid = await bot.photo_reply(chat["id"], has_keyboard, count=3)
    tg.press(grid, button_data(grid, "U2"), ann)
    upscale = await bot.photo_reply(chat["id"], has_keyboard, count=4)
    assert ["⬅️", "➡️", "⬆️", "⬇️"] in button_labels(upscale)
    sim.fail_next(
        f"{API}/pan",
        status=400,
        body='{"status": false, "error": "Pan is not available for this version"}',
    )
    tg.press(upscale, button_data(upscale, "⬅️"), ann)
    for _ in range(200):
        if text_sent(tg, chat["id"], "isn't available for this image"):
            break
        await asyncio.sleep(0.05)
    [said] = text_sent(tg, chat["id"], "isn't available for this image")
    assert "V7" in said and "failed" not in said


async def test_help_shows_references_parameters_and_translation(
    translating_bot: BotHarness, tg: FakeTelegram
) -> None:
    ann = tg.user(1701, "Ann")
    chat = tg.private_chat(ann)
    tg.send_message(chat, ann, "/help")
    call = await tg.wait_for("sendMessage", lambda c: "References from photos" in c.params["text"])
    text = call.params["text"]
    for example in ("/sref a fox", "--oref", "--cref", "--draft", "--p abc123", "кот в шляпе"):
        assert example in text
    tg.send_message(chat, ann, "/sref a fox")
    await tg.wait_for("sendMessage", lambda c: "Reply to a photo" in c.params["text"])
