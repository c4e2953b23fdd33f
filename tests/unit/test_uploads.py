"""Image preparation, masks, initData checks and describe-prompt parsing."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import time
from urllib.parse import urlencode

import pytest
from PIL import Image, ImageDraw

from bot.telegram.uploads import ImageProblem, make_mask, prepare_image
from bot.web.region import check_init_data
from handlers.images.common import describe_prompt, parse_command

TOKEN = "123456:TEST-token"


def encoded(image: Image.Image, fmt: str, **save: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **save)
    return out.getvalue()


def test_png_and_jpg_pass_through_unchanged() -> None:
    png = encoded(Image.new("RGB", (40, 30), "red"), "PNG")
    jpg = encoded(Image.new("RGB", (40, 30), "red"), "JPEG")
    assert prepare_image(png).data == png
    assert prepare_image(png).ext == "png"
    prepared = prepare_image(jpg)
    assert (prepared.data, prepared.ext, prepared.content_type) == (jpg, "jpg", "image/jpeg")
    assert (prepared.width, prepared.height) == (40, 30)


@pytest.mark.parametrize(
    ("fmt", "mode", "ext"),
    [
        ("WEBP", "RGB", "jpg"),
        ("WEBP", "RGBA", "png"),
        ("TIFF", "RGB", "jpg"),
        ("BMP", "RGB", "jpg"),
    ],
)
def test_other_formats_become_png_or_jpg(fmt: str, mode: str, ext: str) -> None:
    color = (0, 0, 255, 128) if mode == "RGBA" else (0, 0, 255)  # see-through: alpha is kept
    prepared = prepare_image(encoded(Image.new(mode, (64, 48), color), fmt))
    assert prepared.ext == ext
    with Image.open(io.BytesIO(prepared.data)) as image:
        assert image.format == ("PNG" if ext == "png" else "JPEG")
        assert image.size == (64, 48)


def test_animated_gif_gives_its_first_frame() -> None:
    frames = [Image.new("P", (32, 32), color) for color in (1, 2, 3)]
    data = io.BytesIO()
    frames[0].save(data, "GIF", save_all=True, append_images=frames[1:])
    prepared = prepare_image(data.getvalue())
    assert prepared.ext in ("png", "jpg")
    assert (prepared.width, prepared.height) == (32, 32)


@pytest.mark.parametrize("data", [b"%PDF-1.4 not an image", b"", b"\x89PNG\r\n\x1a\n truncated"])
def test_non_images_are_refused(data: bytes) -> None:
    with pytest.raises(ImageProblem) as caught:
        prepare_image(data)
    assert caught.value.code == "not_image"


def test_mask_is_scaled_and_thresholded_to_the_exact_size() -> None:
    source = Image.new("L", (10, 10), 0)
    ImageDraw.Draw(source).rectangle((0, 0, 4, 9), fill=200)
    mask = Image.open(io.BytesIO(make_mask(encoded(source, "PNG"), 301, 157)))
    assert mask.format == "PNG"
    assert mask.size == (301, 157)
    gray = mask.convert("L")
    assert gray.getpixel((10, 80)) == 255
    assert gray.getpixel((290, 80)) == 0
    assert {value for _, value in gray.getcolors() or []} == {0, 255}


def test_transparent_strokes_mark_the_region() -> None:
    source = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    ImageDraw.Draw(source).rectangle((10, 0, 19, 19), fill=(255, 0, 0, 255))
    gray = Image.open(io.BytesIO(make_mask(encoded(source, "PNG"), 40, 40))).convert("L")
    assert gray.getpixel((35, 20)) == 255
    assert gray.getpixel((5, 20)) == 0


def signed(token: str, auth_date: int, user_id: int = 7) -> str:
    fields = {
        "auth_date": str(auth_date),
        "user": json.dumps({"id": user_id, "first_name": "A"}, separators=(",", ":")),
    }
    check = "\n".join(f"{k}={v}" for k, v in sorted(fields.items()))
    secret = hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()
    fields["hash"] = hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()
    return urlencode(fields)


def test_init_data_signature_and_age() -> None:
    now = int(time.time())
    good = check_init_data(signed(TOKEN, now), TOKEN, 3600)
    assert good is not None
    assert good.user is not None
    assert good.user.id == 7
    assert check_init_data(signed("1:other", now), TOKEN, 3600) is None
    assert check_init_data(signed(TOKEN, now - 7200), TOKEN, 3600) is None
    assert check_init_data(signed(TOKEN, now).replace("A%22", "B%22"), TOKEN, 3600) is None
    assert check_init_data("", TOKEN, 3600) is None
    assert check_init_data("garbage", TOKEN, 3600) is None


def test_commands_in_captions() -> None:
    assert parse_command("/imagine a cat", "mj_bot") == ("imagine", "a cat")
    assert parse_command("/blend@MJ_Bot", "mj_bot") == ("blend", "")
    assert parse_command("/blend@other_bot", "mj_bot") is None
    assert parse_command("a cat", "mj_bot") is None
    assert parse_command(None, "mj_bot") is None


def test_describe_prompts_lose_midjourneys_numbering() -> None:
    prompts = ["1️⃣ a cat in a hat --ar 1:1", "2. a dog", "plain"]
    assert describe_prompt(prompts, 1) == "a cat in a hat --ar 1:1"
    assert describe_prompt(prompts, 2) == "a dog"
    assert describe_prompt(prompts, 3) == "plain"
    assert describe_prompt(prompts, 4) is None
