"""Pillow drawings for the userapi simulator: grids, singles, previews, animations and noise.

Every function is synchronous and CPU-bound; the simulator calls them through
`asyncio.to_thread` so its event loop stays responsive.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import os
import textwrap
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFilter, ImageFont

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"

Colour = tuple[int, int, int]


@dataclass(frozen=True)
class Rendered:
    """An encoded image and the facts a task result must declare about it."""

    data: bytes
    width: int
    height: int
    content_type: str
    ext: str


@lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=max(8, size))


def palette(seed: str) -> list[Colour]:
    """Four clearly different colours derived from `seed` (hues a quarter turn apart)."""
    base = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:2], "big") / 65535
    colours: list[Colour] = []
    for i in range(4):
        r, g, b = colorsys.hsv_to_rgb((base + i * 0.25) % 1.0, 0.55, 0.85)
        colours.append((int(r * 255), int(g * 255), int(b * 255)))
    return colours


def _png(img: Image.Image) -> Rendered:
    buf = io.BytesIO()
    # Speed over size: these files only need to be real, not small.
    img.save(buf, format="PNG", compress_level=1)
    return Rendered(buf.getvalue(), img.width, img.height, "image/png", "png")


def _draw_text_block(
    draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], lines: list[str], size: int
) -> None:
    font = _font(size)
    draw.rectangle(box, fill=(0, 0, 0))
    y = box[1] + size // 4
    for line in lines:
        draw.text((box[0] + size // 2, y), line, fill=(255, 255, 255), font=font)
        y += int(size * 1.2)


def _caption(label: str, prompt: str | None, side: int) -> tuple[list[str], int]:
    size = max(8, side // 40)
    width_chars = max(10, int(side / (size * 0.6)) - 2)
    lines = [label[:width_chars]]
    if prompt:
        lines += textwrap.wrap(prompt, width_chars)[:2]
    return lines, size


def _tile(colour: Colour, side: int, number: int | None, frame: int | None = None) -> Image.Image:
    img = Image.new("RGB", (side, side), colour)
    draw = ImageDraw.Draw(img)
    # A moving disc makes animation frames differ and stills look less flat.
    r = side // 6
    shift = 0 if frame is None else int((side // 4) * ((frame % 8) - 3.5) / 3.5)
    cx = side // 2 + shift
    cy = side // 2
    darker = tuple(max(0, c - 70) for c in colour)
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(darker[0], darker[1], darker[2]))
    if number is not None:
        font = _font(side // 3)
        draw.text((side // 10, side // 10), str(number), fill=(255, 255, 255), font=font)
    return img


def _grid_image(
    seed: str, label: str, prompt: str | None, side: int, frame: int | None = None
) -> Image.Image:
    half = side // 2
    img = Image.new("RGB", (half * 2, half * 2))
    for i, colour in enumerate(palette(seed)):
        img.paste(_tile(colour, half, i + 1, frame), ((i % 2) * half, (i // 2) * half))
    lines, size = _caption(label, prompt, side)
    band = int(size * 1.2) * len(lines) + size // 2
    _draw_text_block(
        ImageDraw.Draw(img), (0, img.height - band, img.width, img.height), lines, size
    )
    return img


def render_grid(seed: str, label: str, prompt: str | None, side: int) -> Rendered:
    """A 2x2 PNG grid: four colours, the numbers 1-4, and the label and prompt written on it."""
    return _png(_grid_image(seed, label, prompt, side))


def render_preview(
    seed: str, label: str, prompt: str | None, side: int, progress: int
) -> Rendered:
    """A small blurred grid, sharper as `progress` grows, like Midjourney's in-progress images."""
    img = _grid_image(seed, label, prompt, side)
    radius = max(1.0, side / 24 * (100 - progress) / 100)
    return _png(img.filter(ImageFilter.GaussianBlur(radius)))


def render_single(seed: str, index: int, label: str, prompt: str | None, side: int) -> Rendered:
    """One image of a grid (colour `index` 1-4 of the grid's palette), drawn at `side` px."""
    img = _tile(palette(seed)[index - 1], side, index)
    lines, size = _caption(label, prompt, side)
    band = int(size * 1.2) * len(lines) + size // 2
    _draw_text_block(ImageDraw.Draw(img), (0, side - band, side, side), lines, size)
    return _png(img)


def render_animation(
    seed: str,
    label: str,
    prompt: str | None,
    side: int,
    *,
    index: int | None = None,
    frames: int = 8,
) -> Rendered:
    """An animated WebP: a 2x2 grid of moving discs, or one of them when `index` is given."""
    images: list[Image.Image] = []
    for frame in range(frames):
        if index is None:
            images.append(_grid_image(seed, label, prompt, side, frame))
        else:
            images.append(_tile(palette(seed)[index - 1], side, index, frame))
    buf = io.BytesIO()
    images[0].save(
        buf,
        format="WEBP",
        save_all=True,
        append_images=images[1:],
        duration=100,
        loop=0,
        quality=60,
        method=0,
    )
    return Rendered(buf.getvalue(), images[0].width, images[0].height, "image/webp", "webp")


def render_noise(side: int) -> Rendered:
    """Random RGB noise as PNG: incompressible, so a 2048 px side gives more than 12 MB."""
    img = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    buf = io.BytesIO()
    # Noise does not compress; skip the effort.
    img.save(buf, format="PNG", compress_level=0)
    return Rendered(buf.getvalue(), side, side, "image/png", "png")


def render_placeholder(text: str, side: int) -> Rendered:
    """A plain PNG standing for an image known only by its url."""
    img = Image.new("RGB", (side, side), palette(text)[0])
    lines, size = _caption("uploaded by url", text, side)
    _draw_text_block(
        ImageDraw.Draw(img), (0, 0, side, int(size * 1.2) * len(lines) + size), lines, size
    )
    return _png(img)


def sniff(data: bytes) -> str | None:
    """The upload format by magic bytes: "png", "jpg", or None for anything else."""
    if data.startswith(PNG_MAGIC):
        return "png"
    if data.startswith(JPEG_MAGIC):
        return "jpg"
    return None


def dimensions(data: bytes) -> tuple[int, int]:
    """Width and height of an encoded image; raises OSError/ValueError if it does not decode."""
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return img.width, img.height
