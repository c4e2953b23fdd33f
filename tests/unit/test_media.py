"""Photo size rules and animation conversion."""

from __future__ import annotations

import os
from pathlib import Path

import av
from PIL import Image

from bot.telegram.media import PHOTO_MAX_BYTES, animation_to_mp4, fits_photo_rules, prepare_photo


def png(folder: Path, width: int, height: int, *, noise: bool = False) -> Path:
    if noise:
        image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    else:
        image = Image.new("RGB", (width, height), "teal")
    path = folder / "source"
    image.save(path, "PNG")
    return path


def test_photo_rules() -> None:
    assert fits_photo_rules(7_000_000, 2048, 2048)
    assert not fits_photo_rules(PHOTO_MAX_BYTES + 1, 2048, 2048)
    assert not fits_photo_rules(1000, 6000, 4001)
    assert not fits_photo_rules(1000, 2100, 100)


def test_small_png_is_sent_as_is(tmp_path: Path) -> None:
    source = png(tmp_path, 1024, 1024)
    photo = prepare_photo(source, "grid.png", tmp_path)
    assert photo.path == source
    assert photo.filename == "grid.png"
    assert not photo.compressed


def test_twelve_megabyte_png_becomes_a_jpeg_under_ten(tmp_path: Path) -> None:
    source = png(tmp_path, 2048, 2048, noise=True)
    assert source.stat().st_size > 12_000_000
    photo = prepare_photo(source, "big.png", tmp_path)
    assert photo.compressed
    assert photo.filename == "big.jpg"
    size = photo.path.stat().st_size
    assert size <= PHOTO_MAX_BYTES
    with Image.open(photo.path) as image:
        assert image.format == "JPEG"
        assert fits_photo_rules(size, *image.size)


def test_too_narrow_image_is_padded_to_a_shape_telegram_takes(tmp_path: Path) -> None:
    photo = prepare_photo(png(tmp_path, 4200, 100), "strip.png", tmp_path)
    assert photo.compressed
    assert fits_photo_rules(photo.path.stat().st_size, photo.width, photo.height)


def test_animated_webp_becomes_h264_mp4(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (561, 704), (i * 40, 10, 10)) for i in range(5)]
    source, video = tmp_path / "source", tmp_path / "animation.mp4"
    frames[0].save(source, "WEBP", save_all=True, append_images=frames[1:], duration=100)
    animation_to_mp4(source, video)
    with av.open(str(video), mode="r") as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.width, stream.height) == (560, 704)
        assert len(list(container.decode(stream))) == 5
