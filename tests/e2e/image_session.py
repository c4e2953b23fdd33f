"""A user sending images to the bot over real HTTP, and checks on what reached the simulator."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

from PIL import Image, ImageDraw

from bot.playground.emulator import ApiCall, FakeTelegram
from bot.userapi.simulator import Simulator
from tests.e2e.harness import BotHarness, button_data, has_keyboard

API = "/midjourney/v2"


def picture(
    fmt: str = "JPEG", size: tuple[int, int] = (320, 240), color: str = "teal", **save: Any
) -> bytes:
    """A small real image in a format Pillow (and pillow-heif) can write."""
    image = Image.new("RGB", size, color)
    ImageDraw.Draw(image).ellipse((20, 20, size[0] - 20, size[1] - 20), fill="orange")
    out = io.BytesIO()
    image.save(out, fmt, **save)
    return out.getvalue()


def heic_picture() -> bytes:
    """A real HEIC file (HEVC-coded), as iPhones send."""
    import pillow_heif

    image = Image.new("RGB", (256, 192), "navy")
    ImageDraw.Draw(image).rectangle((40, 40, 200, 150), fill="yellow")
    heif = pillow_heif.from_pillow(image)
    out = io.BytesIO()
    heif.save(out, quality=80)
    return out.getvalue()


def labels_of(call: ApiCall) -> list[list[str]]:
    markup = call.params.get("reply_markup") or {}
    return [[b["text"] for b in row] for row in markup.get("inline_keyboard", [])]


class ImageUser:
    """Ann in her private chat with the bot."""

    def __init__(self, bot: BotHarness) -> None:
        self.bot = bot
        self.tg: FakeTelegram = bot.tg
        self.sim: Simulator = bot.sim
        self.user = self.tg.user(1001, "Ann")
        self.chat = self.tg.private_chat(self.user)
        self.chat_id = int(self.chat["id"])

    def send(self, text: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """Send a message (text, photo, document, caption...) as Ann."""
        return self.tg.send_message(self.chat, self.user, text, **kwargs)

    def album(self, photos: list[bytes], caption: str | None) -> list[dict[str, Any]]:
        """Send photos as one album (caption on the first, as Telegram clients do)."""
        group = f"album-{len(self.tg.requests)}-{len(photos)}"
        return [
            self.send(photo=data, media_group_id=group, caption=caption if i == 0 else None)
            for i, data in enumerate(photos)
        ]

    async def text_reply(self, needle: str, count: int = 1, timeout: float = 20) -> ApiCall:
        """Wait for the count-th successful sendMessage to Ann whose text contains needle."""
        return await self.tg.wait_for(
            "sendMessage",
            lambda c: (
                c.ok
                and int(c.params["chat_id"]) == self.chat_id
                and needle in str(c.result.get("text") or "")
            ),
            count=count,
            timeout=timeout,
        )

    def texts(self) -> list[str]:
        """Every text the bot sent to Ann."""
        return [
            str(c.params.get("text"))
            for c in self.tg.calls("sendMessage")
            if c.ok and int(c.params["chat_id"]) == self.chat_id
        ]

    async def described(self, count: int = 1) -> dict[str, Any]:
        """Wait for the count-th describe result (four prompts with 1-4 buttons)."""
        call = await self.tg.wait_for(
            "sendMessage",
            lambda c: (
                c.ok
                and int(c.params["chat_id"]) == self.chat_id
                and labels_of(c)[:1] == [["1", "2", "3", "4"]]
            ),
            count=count,
            timeout=20,
        )
        return dict(call.result)

    async def result_photo(self, count: int = 1) -> dict[str, Any]:
        """Wait for the count-th result photo (with buttons)."""
        return await self.bot.photo_reply(self.chat_id, has_keyboard, count=count, timeout=20)

    def press(self, message: dict[str, Any], label: str) -> str:
        """Press a button by its label."""
        return self.tg.press(message, button_data(message, label), self.user)

    def bodies(self, name: str) -> list[dict[str, Any]]:
        """JSON bodies the bot posted to an endpoint."""
        return [json.loads(r.body) for r in self.sim.requests_to(f"{API}/{name}")]

    def uploads(self) -> list[bytes]:
        """The image bytes of every upload, checking each went as multipart."""
        images = []
        for request in self.sim.requests_to(f"{API}/upload"):
            content_type = request.headers.get("Content-Type", "")
            assert content_type.startswith("multipart/form-data"), content_type
            images.append(request.body)
        return images

    def assert_token_never_sent(self) -> None:
        """No request to the simulator carries the bot token (URL, headers or body)."""
        token = self.tg.token
        needles = [token.encode(), token.split(":", 1)[1].encode()]
        assert self.sim.requests, "nothing reached the simulator"
        for request in self.sim.requests:
            blob = b"\n".join(
                [
                    request.path.encode(),
                    request.query.encode(),
                    *(f"{k}: {v}".encode() for k, v in request.headers.items()),
                    request.body,
                ]
            )
            for needle in needles:
                assert needle not in blob, f"bot token sent to {request.path}"
                assert base64.b64encode(needle) not in blob


def mask_of(body: dict[str, Any]) -> Image.Image:
    """The mask of an inpaint request, decoded."""
    return Image.open(io.BytesIO(base64.b64decode(body["mask"])))


async def open_region(ann: ImageUser) -> tuple[str, dict[str, Any]]:
    """Imagine, upscale, press Vary (Region); return the Mini App URL and the upscale task."""
    ann.send("/imagine a quiet harbour at dawn")
    grid = await ann.result_photo()
    ann.press(grid, "U1")
    upscale = await ann.result_photo(count=2)
    ann.press(upscale, "Vary (Region)")
    call = await ann.text_reply("paint over what should change")
    assert labels_of(call) == [["🖌 Paint the region"]]
    button = call.params["reply_markup"]["inline_keyboard"][0][0]
    url = str(button["web_app"]["url"])
    assert url.startswith("https://")
    task = next(t for t in ann.sim.tasks.values() if t["type"] == "upscale")
    return "http://" + url.removeprefix("https://"), task
