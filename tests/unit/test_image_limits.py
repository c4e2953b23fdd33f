"""Images are bounded before decoding: size limits from the header, formats, a bounded queue."""

from __future__ import annotations

import asyncio
import io
import threading

import pytest
from PIL import Image, UnidentifiedImageError

from bot.telegram.media import (
    MAX_SIDE,
    USER_FORMATS,
    ImageTooLargeError,
    ImageWorkers,
    WorkersBusyError,
    check_size,
    open_image,
)
from bot.telegram.uploads import ImageProblem, make_mask, prepare_image
from tests.hostile import png_bomb


def encoded(fmt: str, size: tuple[int, int] = (40, 30), mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, 0).save(out, fmt)
    return out.getvalue()


def test_sizes_past_the_pixel_or_side_limit_are_refused() -> None:
    check_size(6000, 6000)
    check_size(MAX_SIDE, 100)
    with pytest.raises(ImageTooLargeError):
        check_size(7000, 7000)
    with pytest.raises(ImageTooLargeError):
        check_size(MAX_SIDE + 1, 10)
    with pytest.raises(ImageTooLargeError):
        check_size(100, 100, max_pixels=9_999)


def test_a_bomb_is_refused_from_its_header() -> None:
    bomb = png_bomb(9000, color_type=0)  # 81 Mpx: under Pillow's own limit, over ours
    with pytest.raises(ImageTooLargeError):
        open_image(io.BytesIO(bomb), USER_FORMATS)
    with pytest.raises(ImageProblem) as refused:
        prepare_image(bomb)
    assert refused.value.code == "too_large"
    with pytest.raises(ImageProblem) as refused:
        make_mask(png_bomb(5000, color_type=0), 512, 512)  # 25 Mpx: past the mask cap
    assert refused.value.code == "too_large"
    with pytest.raises(ImageProblem) as refused:
        make_mask(encoded("PNG", mode="L"), 9000, 9000)  # a forged target size
    assert refused.value.code == "too_large"


def test_only_the_supported_formats_are_opened() -> None:
    with pytest.raises(UnidentifiedImageError):
        open_image(io.BytesIO(encoded("ICO", (32, 32))), USER_FORMATS)
    with pytest.raises(ImageProblem) as refused:
        prepare_image(encoded("PCX"))
    assert refused.value.code == "not_image"
    assert prepare_image(encoded("BMP")).ext == "jpg"


async def test_the_workers_refuse_work_past_their_queue() -> None:
    workers = ImageWorkers(threads=1, queue=1, name="test-images")
    release = threading.Event()
    try:
        first = asyncio.create_task(workers.run(release.wait, 5))
        second = asyncio.create_task(workers.run(release.wait, 5))
        await asyncio.sleep(0.05)
        with pytest.raises(WorkersBusyError):
            await workers.run(release.wait, 5)
        release.set()
        assert await first is True and await second is True
        assert await workers.run(sum, [1, 2]) == 3  # room again
    finally:
        release.set()
        workers.close()
