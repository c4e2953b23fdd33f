"""Midjourney's files made fit for Telegram: photo size rules and playable animations."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from PIL import Image, ImageSequence

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
    with Image.open(source) as image:
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

    with Image.open(source) as image:
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
