"""Photo size rules and animation conversion."""

from __future__ import annotations

import io
import os

import av
from PIL import Image

from bot.media import PHOTO_MAX_BYTES, animation_to_mp4, fits_photo_rules, prepare_photo


def png(width: int, height: int, *, noise: bool = False) -> bytes:
    if noise:
        image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    else:
        image = Image.new("RGB", (width, height), "teal")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_photo_rules() -> None:
    assert fits_photo_rules(7_000_000, 2048, 2048)
    assert not fits_photo_rules(PHOTO_MAX_BYTES + 1, 2048, 2048)
    assert not fits_photo_rules(1000, 6000, 4001)
    assert not fits_photo_rules(1000, 2100, 100)


def test_small_png_is_sent_as_is() -> None:
    data = png(1024, 1024)
    photo = prepare_photo(data, "grid.png")
    assert photo.data == data
    assert not photo.compressed


def test_twelve_megabyte_png_becomes_a_jpeg_under_ten() -> None:
    data = png(2048, 2048, noise=True)
    assert len(data) > 12_000_000
    photo = prepare_photo(data, "big.png")
    assert photo.compressed
    assert photo.filename == "big.jpg"
    assert len(photo.data) <= PHOTO_MAX_BYTES
    with Image.open(io.BytesIO(photo.data)) as image:
        assert image.format == "JPEG"
        assert fits_photo_rules(len(photo.data), *image.size)


def test_too_narrow_image_is_padded_to_a_shape_telegram_takes() -> None:
    photo = prepare_photo(png(4200, 100), "strip.png")
    assert photo.compressed
    assert fits_photo_rules(len(photo.data), photo.width, photo.height)


def test_animated_webp_becomes_h264_mp4() -> None:
    frames = [Image.new("RGB", (561, 704), (i * 40, 10, 10)) for i in range(5)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "WEBP", save_all=True, append_images=frames[1:], duration=100)
    video = animation_to_mp4(buffer.getvalue())
    with av.open(io.BytesIO(video), mode="r") as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.width, stream.height) == (560, 704)
        assert len(list(container.decode(stream))) == 5
