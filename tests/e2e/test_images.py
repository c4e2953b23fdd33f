"""Photos in, over real HTTP: describe, blend, image prompts, formats, limits, mask fallback."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from bot.playground.emulator import FakeTelegram
from bot.userapi.simulator import Simulator
from tests.e2e.harness import BotHarness
from tests.e2e.image_session import ImageUser, heic_picture, labels_of, mask_of, picture

MB = 1024 * 1024


# Faster than the shared default: these tests care about outcomes, not progress.
SIM_PACE = 0.02


@pytest.fixture(params=["webhooks", "polling"])
async def bot(
    request: pytest.FixtureRequest, tg: FakeTelegram, sim: Simulator, tmp_path: Path
) -> AsyncIterator[BotHarness]:
    runner = BotHarness(
        tg=tg,
        sim=sim,
        database_path=tmp_path / "bot.sqlite3",
        webhooks=request.param == "webhooks",
    )
    await runner.start()
    yield runner
    await runner.stop()


async def test_describe_by_caption_then_2_imagines_prompt_2(bot: BotHarness) -> None:
    ann = ImageUser(bot)
    photo = picture()
    ann.send(photo=photo, caption="/describe")

    result = await ann.described()
    assert labels_of_message(result) == [["1", "2", "3", "4"], ["🔄"]]
    describe = ann.bodies("describe")[0]
    upload = ann.sim.requests_to("/midjourney/v2/upload")
    assert len(upload) == 1
    assert photo in ann.uploads()[0]  # a jpg goes up unchanged, as multipart bytes
    uploaded_url = describe["url"]
    assert uploaded_url.startswith(ann.sim.base_url + "/cdn/upload_")
    describe_task = next(t for t in ann.sim.tasks.values() if t["type"] == "describe")
    assert describe["account_hash"] == describe_task["account_hash"]
    prompts = describe_task["result"]
    for prompt in prompts:
        assert prompt in result["text"]

    ann.press(result, "2")
    grid = await ann.result_photo()
    imagine = ann.bodies("imagine")
    assert [b["prompt"] for b in imagine] == [prompts[1]]
    assert imagine[0]["account_hash"] == describe_task["account_hash"]
    assert grid["reply_to_message"]["message_id"] == result["message_id"]
    ann.assert_token_never_sent()


def labels_of_message(message: dict[str, object]) -> list[list[str]]:
    markup = message.get("reply_markup")
    assert isinstance(markup, dict)
    return [[b["text"] for b in row] for row in markup["inline_keyboard"]]


async def test_describe_by_reply_and_again_with_the_reroll_button(bot: BotHarness) -> None:
    ann = ImageUser(bot)
    sent = ann.send(photo=picture(color="purple"))
    menu = await ann.text_reply("What should I do with this photo?")
    assert labels_of(menu) == [
        ["Describe"],
        ["Use as image prompt"],
        ["Blend with more photos"],
        ["🎨 Style reference"],
        ["🧩 Omni reference (V7)", "👤 Character reference (V6)"],
    ]

    ann.send("/describe", reply_to_message_id=sent["message_id"])
    result = await ann.described()
    ann.press(result, "🔄")
    await ann.described(count=2)
    bodies = ann.bodies("describe")
    assert len(bodies) == 2
    assert bodies[0]["url"] == bodies[1]["url"]
    assert bodies[0]["account_hash"] == bodies[1]["account_hash"]
    assert len(ann.sim.requests_to("/midjourney/v2/upload")) == 1
    ann.assert_token_never_sent()


async def test_describe_command_then_photo_and_menu_describe(bot: BotHarness) -> None:
    ann = ImageUser(bot)
    ann.send("/describe")
    await ann.text_reply("Send me the photo to describe")
    ann.send(photo=picture(color="red"))
    await ann.described()

    ann.send(photo=picture(color="green"))
    menu = await ann.text_reply("What should I do with this photo?")
    ann.tg.press(dict(menu.result), labels_data(menu, "Describe"), ann.user)
    await ann.described(count=2)
    assert len(ann.bodies("describe")) == 2


def labels_data(call: object, label: str) -> str:
    from bot.playground.emulator import ApiCall

    assert isinstance(call, ApiCall)
    for row in call.params["reply_markup"]["inline_keyboard"]:
        for button in row:
            if button["text"] == label:
                return str(button["callback_data"])
    raise AssertionError(label)


async def test_blend_from_a_two_photo_album(bot: BotHarness) -> None:
    ann = ImageUser(bot)
    ann.album([picture(color="red"), picture("PNG", color="blue")], caption="/blend")
    result = await ann.result_photo()
    blends = ann.bodies("blend")
    assert len(blends) == 1
    urls = blends[0]["urls"]
    assert [u["ext"] for u in urls] == ["jpg", "png"]
    uploads = ann.sim.requests_to("/midjourney/v2/upload")
    assert len(uploads) == 2
    blend_task = next(t for t in ann.sim.tasks.values() if t["type"] == "blend")
    assert blends[0]["account_hash"] == blend_task["account_hash"]
    assert result["caption"].startswith("Blend")
    assert ["U1", "U2", "U3", "U4"] in labels_of_message(result)
    ann.assert_token_never_sent()


async def test_blend_by_command_photos_and_the_blend_button(bot: BotHarness) -> None:
    ann = ImageUser(bot)
    ann.send("/blend")
    await ann.text_reply("Photos for the blend: 0")
    ann.send(photo=picture(color="red"))
    await ann.text_reply("Photos for the blend: 1")
    ann.send(photo=picture(color="yellow"))
    panel = await ann.text_reply("Photos for the blend: 2")
    assert labels_of(panel) == [["Blend (2)"]]
    ann.tg.press(dict(panel.result), labels_data(panel, "Blend (2)"), ann.user)
    await ann.result_photo()
    assert len(ann.bodies("blend")[0]["urls"]) == 2


async def test_six_photo_blend_is_refused(bot: BotHarness) -> None:
    ann = ImageUser(bot)
    ann.album(
        [picture(color=c) for c in ("red", "blue", "green", "gray", "pink", "tan")], "/blend"
    )
    await ann.text_reply("Blend takes 2 to 5 photos; you sent 6.")
    assert ann.sim.requests_to("/midjourney/v2/upload") == []
    assert ann.sim.requests_to("/midjourney/v2/blend") == []


async def test_image_prompt(bot: BotHarness) -> None:
    ann = ImageUser(bot)
    ann.send(photo=picture(color="olive"), caption="/imagine a fox in the style of this —ar 3:2")
    await ann.result_photo()
    imagine = ann.bodies("imagine")
    url, text = imagine[0]["prompt"].split(" ", 1)
    assert url.startswith(ann.sim.base_url + "/cdn/upload_")
    assert url.endswith(".jpg")
    assert text == "a fox in the style of this --ar 3:2"
    assert len(ann.sim.requests_to("/midjourney/v2/upload")) == 1
    ann.assert_token_never_sent()


@pytest.mark.parametrize(
    ("name", "mime", "data"),
    [
        ("photo.webp", "image/webp", lambda: picture("WEBP")),
        ("IMG_0001.HEIC", "image/heic", heic_picture),
        ("scan.tiff", "image/tiff", lambda: picture("TIFF")),
    ],
)
async def test_other_formats_are_converted_and_described(
    bot: BotHarness, name: str, mime: str, data: object
) -> None:
    assert callable(data)
    ann = ImageUser(bot)
    ann.send(document=(data(), name, mime), caption="/describe")
    await ann.described()
    sent = ann.uploads()[0]
    assert b"image/jpeg" in sent or b"image/png" in sent
    assert b'filename="image.jpg"' in sent or b'filename="image.png"' in sent


async def test_pdf_and_too_big_files_are_refused(bot: BotHarness) -> None:
    ann = ImageUser(bot)
    ann.send(
        document=(b"%PDF-1.4\n%\xe2\xe3\n1 0 obj\n<<>>\nendobj\n", "a.pdf", "application/pdf"),
        caption="/describe",
    )
    await ann.text_reply("not an image")
    ann.send(
        document=(picture("PNG"), "huge.png", "image/png"), caption="/describe", file_size=25 * MB
    )
    await ann.text_reply("up to 20 MB")
    assert ann.sim.requests_to("/midjourney/v2/upload") == []
    assert ann.sim.requests_to("/midjourney/v2/describe") == []


async def test_vary_region_with_a_mask_image(bot: BotHarness) -> None:
    ann = ImageUser(bot)
    ann.send("/imagine a quiet harbour at dawn")
    grid = await ann.result_photo()
    ann.press(grid, "U1")
    upscale = await ann.result_photo(count=2)
    assert ["Vary (Subtle)", "Vary (Strong)", "Vary (Region)"] in labels_of_message(upscale)
    up_task = next(t for t in ann.sim.tasks.values() if t["type"] == "upscale")
    width, height = up_task["result"]["width"], up_task["result"]["height"]

    ann.press(upscale, "Vary (Region)")
    question = await ann.text_reply("send a black-and-white mask image")
    # Any size: a small mask, white on the left half.
    mask = Image.new("L", (100, 50), 0)
    ImageDraw.Draw(mask).rectangle((0, 0, 49, 49), fill=255)
    out = io.BytesIO()
    mask.save(out, "PNG")
    ann.send(
        document=(out.getvalue(), "mask.png", "image/png"),
        reply_to_message_id=question.result["message_id"],
    )
    ask = await ann.text_reply("reply with the prompt for the painted area")
    ann.send("a red sailboat", reply_to_message_id=ask.result["message_id"])
    await ann.result_photo(count=3)

    body = ann.bodies("inpaint")[0]
    assert body["hash"] == up_task["hash"]
    assert body["prompt"] == "a red sailboat"
    sent = mask_of(body).convert("L")
    assert sent.size == (width, height)
    assert sent.getpixel((width // 4, height // 2)) == 255
    assert sent.getpixel((3 * width // 4, height // 2)) == 0
    assert {value for _, value in sent.getcolors() or []} == {0, 255}


async def test_photo_menu_image_prompt_and_blend_with_more(bot: BotHarness) -> None:
    ann = ImageUser(bot)
    ann.send(photo=picture(color="maroon"))
    menu = await ann.text_reply("What should I do with this photo?")
    ann.tg.press(dict(menu.result), labels_data(menu, "Use as image prompt"), ann.user)
    await ann.text_reply("Send the prompt to go with this image")
    ann.send("a lighthouse made of glass")
    await ann.result_photo()
    url, text = ann.bodies("imagine")[0]["prompt"].split(" ", 1)
    assert url.startswith(ann.sim.base_url + "/cdn/upload_")
    assert text == "a lighthouse made of glass"

    ann.send(photo=picture(color="navy"))
    menu = await ann.text_reply("What should I do with this photo?", count=2)
    ann.tg.press(dict(menu.result), labels_data(menu, "Blend with more photos"), ann.user)
    await ann.text_reply("Photos for the blend: 1")
    ann.send(photo=picture(color="gold"))
    panel = await ann.text_reply("Photos for the blend: 2")
    ann.tg.press(dict(panel.result), labels_data(panel, "Blend (2)"), ann.user)
    await ann.result_photo(count=2)
    assert len(ann.bodies("blend")[0]["urls"]) == 2
    ann.assert_token_never_sent()
