"""Midjourney's files made fit for Telegram: photo size rules and playable animations."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Any, TypeVar

from PIL import Image, ImageSequence

T = TypeVar("T")

# Images are refused from their header before any pixel is decoded: a 200 KB TIFF can declare
# 12000x12000 px and take 600 MB once decoded. Midjourney's own results stay far below this.
MAX_PIXELS = 40_000_000
MAX_SIDE = 16_384
# Pillow warns past MAX_IMAGE_PIXELS and refuses past twice that; the warning is an error too.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
# What users may send (Pillow's format names; MPO, a camera JPEG, opens through JPEG).
USER_FORMATS = ("PNG", "JPEG", "WEBP", "HEIF", "AVIF", "TIFF", "GIF", "BMP")
RESULT_FORMATS = ("PNG", "JPEG", "WEBP", "GIF")


class ImageTooLargeError(Exception):
    """An image whose header declares more pixels than the bot decodes."""


class WorkersBusyError(Exception):
    """Image work refused because the queue of it is full."""


def check_size(width: int, height: int, max_pixels: int = MAX_PIXELS) -> None:
    """Raise ImageTooLargeError for sizes past the pixel or the per-side limit."""
    if width <= 0 or height <= 0:
        return
    if width * height > max_pixels or max(width, height) > MAX_SIDE:
        raise ImageTooLargeError(f"{width}x{height} px")


def open_image(
    source: str | Path | IO[bytes], formats: Sequence[str], max_pixels: int = MAX_PIXELS
) -> Image.Image:
    """Open an image lazily (header only) in one of `formats`, refused if too large."""
    try:
        image = Image.open(source, formats=list(formats))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageTooLargeError(str(error)) from error
    try:
        check_size(*image.size, max_pixels=max_pixels)
    except ImageTooLargeError:
        image.close()
        raise
    return image


class ImageWorkers:
    """A few threads for decoding images, with a bounded queue: excess work is refused.

    Each decoded image holds its pixels in memory, so the thread count bounds peak memory;
    the queue bound keeps a flood from piling up work (and the bytes it holds) without end.
    """

    def __init__(self, threads: int = 2, queue: int = 16, name: str = "images") -> None:
        self._threads = threads
        self._name = name
        self._executor: ThreadPoolExecutor | None = None
        self._room = threads + queue
        self._pending = 0

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """Run `work(*args)` on the threads; WorkersBusyError when the queue is full."""
        if self._pending >= self._room:
            raise WorkersBusyError(self._name)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self._threads, thread_name_prefix=self._name)
        self._pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, work, *args)
        finally:
            self._pending -= 1

    def close(self) -> None:
        """Drop queued work and let the threads end (a later `run` starts new ones)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


# Telegram's sendPhoto rules (Bot API docs): at most 10 MB, width + height at most 10000,
# and a width/height ratio of at most 20.
PHOTO_MAX_BYTES = 10 * 1024 * 1024
PHOTO_MAX_SIDES_SUM = 10_000
PHOTO_MAX_RATIO = 20
# Telegram shows photos at most 2560 px wide; more only costs upload time when we re-encode.
COMPRESSED_MAX_SIDE = 2560


@dataclass(frozen=True, slots=True)
class Photo:
    """A file ready for sendPhoto, and whether it had to be re-encoded."""

    path: Path
    filename: str
    width: int
    height: int
    compressed: bool


def fits_photo_rules(size: int, width: int, height: int) -> bool:
    """Whether Telegram takes a file of this size and shape as a photo."""
    if size > PHOTO_MAX_BYTES or width + height > PHOTO_MAX_SIDES_SUM:
        return False
    return max(width, height) <= PHOTO_MAX_RATIO * max(1, min(width, height))


def prepare_photo(source: Path, filename: str, workdir: Path) -> Photo:
    """The image as is when Telegram takes it, else a JPEG in `workdir` that fits the rules."""
    # Only the header is read for an image that fits; pixels are decoded only to re-encode.
    with open_image(source, RESULT_FORMATS) as image:
        width, height = image.size
        size = source.stat().st_size
        if fits_photo_rules(size, width, height) and image.format in ("PNG", "JPEG"):
            return Photo(source, filename, width, height, compressed=False)
        stem = filename.rsplit(".", 1)[0] or "image"
        return _compress(image, workdir / "photo.jpg", f"{stem}.jpg")


def _compress(image: Image.Image, target: Path, filename: str) -> Photo:
    # convert() copies even when the mode is already right: one decoded copy is enough.
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    width, height = rgb.size
    if width > PHOTO_MAX_RATIO * height or height > PHOTO_MAX_RATIO * width:
        # Too narrow to show as a photo at all: pad it onto a canvas Telegram accepts.
        side = max(width, height) // PHOTO_MAX_RATIO + 1
        canvas = Image.new("RGB", (max(width, side), max(height, side)), "white")
        canvas.paste(rgb, ((canvas.width - width) // 2, (canvas.height - height) // 2))
        rgb = canvas
    rgb.thumbnail((COMPRESSED_MAX_SIDE, COMPRESSED_MAX_SIDE))
    for quality in (90, 80, 70, 55):
        # Not optimize=True: libjpeg would then hold every DCT coefficient (2 bytes a sample,
        # 20 MB for a 1,800 px square) for a file a few percent smaller.
        rgb.save(target, "JPEG", quality=quality)
        if target.stat().st_size <= PHOTO_MAX_BYTES:
            break
    return Photo(target, filename, rgb.width, rgb.height, compressed=True)


def animation_to_mp4(source: Path, target: Path) -> None:
    """Re-encode an animated image (Midjourney sends WebP) as H.264 MP4, which Telegram plays."""
    # PyAV loads FFmpeg's libraries (~16 MB resident): only animations pay for them.
    import av

    with open_image(source, RESULT_FORMATS) as image:
        frames = [frame.convert("RGB") for frame in ImageSequence.Iterator(image)]
        durations = [
            int(frame.info.get("duration", 0)) or 40 for frame in ImageSequence.Iterator(image)
        ]
    # H.264 with yuv420p needs even dimensions.
    width, height = frames[0].width // 2 * 2, frames[0].height // 2 * 2
    with av.open(str(target), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=1000)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, 1000)
        stream.options = {"crf": "23", "preset": "veryfast", "movflags": "+faststart"}
        pts = 0
        for frame, duration in zip(frames, durations, strict=True):
            video_frame = av.VideoFrame.from_image(  # type: ignore[no-untyped-call]
                frame.crop((0, 0, width, height))
            )
            video_frame.pts = pts
            video_frame.time_base = Fraction(1, 1000)
            pts += duration
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
