"""User images in: download from Telegram, convert to png/jpg, upload to userapi as bytes.

A Telegram file URL carries the bot token, so files are downloaded here (through aiogram) and
only their bytes ever leave the bot. userapi takes png and jpg only: everything else (webp,
heic/heif, avif, tiff, gif, bmp) is converted first.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import pillow_heif
from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.types import Document, Message, PhotoSize
from PIL import Image, ImageOps, UnidentifiedImageError

from bot.telegram.media import (
    USER_FORMATS,
    ImageTooLargeError,
    ImageWorkers,
    WorkersBusyError,
    check_size,
    open_image,
)
from bot.userapi import UserAPIClient
from bot.userapi.models import BlendImage
from storage.uploads import UploadRecord, UploadRepo

log = logging.getLogger(__name__)
T = TypeVar("T")

pillow_heif.register_heif_opener()

# Bots may download files up to 20 MB through getFile.
DOWNLOAD_LIMIT = 20 * 1024 * 1024
DOWNLOAD_LIMIT_MB = DOWNLOAD_LIMIT // (1024 * 1024)
PASS_THROUGH = {"PNG": ("png", "image/png"), "JPEG": ("jpg", "image/jpeg")}
MASK_THRESHOLD = 128
# A painted mask is a canvas the size of the upscale at most (4096x4096 for the largest).
MASK_MAX_PIXELS = 4096 * 4096
# User images decoded at once (each holds its pixels), and how many more may wait.
WORKERS = ImageWorkers(threads=2, queue=16, name="uploads")


class ImageProblem(Exception):
    """Why a user's file can't be used.

    `too_big` (over Telegram's download limit), `too_large` (too many pixels), `not_image`,
    `download_failed` or `busy` (too many images being converted already).
    """

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True, slots=True)
class ImageRef:
    """A user's image as Telegram knows it (kept until it is uploaded)."""

    file_id: str
    file_unique_id: str
    file_size: int | None = None
    file_name: str | None = None

    def to_dict(self) -> dict[str, object]:
        """Plain values, for FSM storage."""
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": self.file_size,
            "file_name": self.file_name,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> ImageRef:
        """The inverse of `to_dict`."""
        size = data.get("file_size")
        name = data.get("file_name")
        return cls(
            file_id=str(data["file_id"]),
            file_unique_id=str(data["file_unique_id"]),
            file_size=size if isinstance(size, int) else None,
            file_name=name if isinstance(name, str) else None,
        )


@dataclass(frozen=True, slots=True)
class PreparedImage:
    """Image bytes the API accepts (png or jpg)."""

    data: bytes
    ext: str
    content_type: str
    width: int
    height: int

    @property
    def filename(self) -> str:
        """A file name with the right extension."""
        return f"image.{self.ext}"


@dataclass(frozen=True, slots=True)
class Uploaded:
    """An image now on Discord: its URL and extension, and the account that holds it."""

    url: str
    ext: str
    account_hash: str | None
    width: int | None = None
    height: int | None = None

    @property
    def blend_image(self) -> BlendImage:
        """The image as /blend wants it."""
        return BlendImage(url=self.url, ext=self.ext)


def image_of(message: Message) -> ImageRef | None:
    """The image a message carries (the largest photo size, or a document), if any."""
    if message.photo:
        largest: PhotoSize = message.photo[-1]
        return ImageRef(largest.file_id, largest.file_unique_id, largest.file_size)
    document: Document | None = message.document
    if document is not None:
        return ImageRef(
            document.file_id, document.file_unique_id, document.file_size, document.file_name
        )
    return None


def prepare_image(data: bytes) -> PreparedImage:
    """Sniff the format; pass png/jpg through, convert anything else the bot supports."""
    try:
        with open_image(io.BytesIO(data), USER_FORMATS) as image:
            image_format = image.format or ""
            if image_format in PASS_THROUGH:
                ext, content_type = PASS_THROUGH[image_format]
                image.verify()
                width, height = image.size
                return PreparedImage(data, ext, content_type, width, height)
            image.seek(0)  # animated gif/webp: the first frame
            image.load()
            return _convert(image)
    except ImageTooLargeError as error:
        log.info("Refused an image of %s", error)
        raise ImageProblem("too_large") from error
    except UnidentifiedImageError as error:
        raise ImageProblem("not_image") from error
    except (OSError, ValueError, SyntaxError) as error:
        # Truncated or corrupt files, and formats whose decoder is missing.
        log.info("Unreadable image: %s", type(error).__name__)
        raise ImageProblem("not_image") from error


def _convert(image: Image.Image) -> PreparedImage:
    upright = ImageOps.exif_transpose(image)
    has_alpha = upright.mode in ("RGBA", "LA", "PA") or (
        upright.mode == "P" and "transparency" in upright.info
    )
    out = io.BytesIO()
    if has_alpha:
        upright.convert("RGBA").save(out, "PNG", optimize=False)
        ext, content_type = "png", "image/png"
    else:
        upright.convert("RGB").save(out, "JPEG", quality=95)
        ext, content_type = "jpg", "image/jpeg"
    return PreparedImage(out.getvalue(), ext, content_type, upright.width, upright.height)


def make_mask(data: bytes, width: int, height: int) -> bytes:
    """Any image as a black-and-white PNG of exactly width x height (white = repaint)."""
    try:
        # The target size comes from a stored result: checked like an image's own.
        check_size(width, height)
        with open_image(io.BytesIO(data), USER_FORMATS, max_pixels=MASK_MAX_PIXELS) as image:
            image.seek(0)
            gray = image.convert("L")
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                alpha = image.convert("RGBA").getchannel("A")
                lowest = alpha.getextrema()[0]
                if isinstance(lowest, int | float) and lowest < MASK_THRESHOLD:
                    # Strokes on a transparent layer: coverage, not colour, marks the region.
                    gray = alpha
    except ImageTooLargeError as error:
        log.info("Refused a mask of %s", error)
        raise ImageProblem("too_large") from error
    except UnidentifiedImageError as error:
        raise ImageProblem("not_image") from error
    except (OSError, ValueError, SyntaxError) as error:
        raise ImageProblem("not_image") from error
    scaled = gray.resize((width, height), Image.Resampling.BILINEAR)
    mask = scaled.point(lambda value: 255 if value >= MASK_THRESHOLD else 0, mode="1")
    out = io.BytesIO()
    mask.save(out, "PNG")
    return out.getvalue()


async def download(bot: Bot, ref: ImageRef) -> bytes:
    """The file's bytes from Telegram, refusing files over the 20 MB getFile limit."""
    if ref.file_size is not None and ref.file_size > DOWNLOAD_LIMIT:
        raise ImageProblem("too_big")
    try:
        file = await bot.get_file(ref.file_id)
    except TelegramBadRequest as error:
        if "too big" in error.message.lower():
            raise ImageProblem("too_big") from error
        raise ImageProblem("download_failed") from error
    except TelegramAPIError as error:
        log.warning("getFile failed: %s", type(error).__name__)
        raise ImageProblem("download_failed") from error
    if file.file_size is not None and file.file_size > DOWNLOAD_LIMIT:
        raise ImageProblem("too_big")
    if file.file_path is None:
        raise ImageProblem("download_failed")
    buffer = io.BytesIO()
    # download_file builds the token-bearing URL inside aiogram; it is never logged or shared.
    try:
        await bot.download_file(file.file_path, destination=buffer)
    except (TelegramAPIError, aiohttp.ClientError, TimeoutError, OSError) as error:
        # aiogram's message for a failed download is the token-bearing URL: only its kind.
        log.warning("Telegram file download failed: %s", type(error).__name__)
        raise ImageProblem("download_failed") from None
    return buffer.getvalue()


async def _on_workers(work: Callable[..., T], *args: Any) -> T:
    try:
        return await WORKERS.run(work, *args)
    except WorkersBusyError as error:
        raise ImageProblem("busy") from error


async def fetch_prepared(bot: Bot, ref: ImageRef) -> PreparedImage:
    """Download and convert one image."""
    data = await download(bot, ref)
    return await _on_workers(prepare_image, data)


async def build_mask(data: bytes, width: int, height: int) -> bytes:
    """`make_mask` on the image threads."""
    return await _on_workers(make_mask, data, width, height)


async def upload_images(
    bot: Bot,
    client: UserAPIClient,
    uploads: UploadRepo,
    refs: Sequence[ImageRef],
    *,
    user_id: int,
    account_hash: str | None = None,
) -> list[Uploaded]:
    """Get images onto Discord, all on one account (the first upload's), reusing recent ones.

    Every file is downloaded and checked before the first upload, so a bad file in an album
    costs no upload.
    """
    account = account_hash
    first = await uploads.recent(refs[0].file_unique_id, account) if refs else None
    if first is not None:
        account = first.account_hash
    known = {
        ref.file_unique_id: record
        for ref in refs
        if (record := await uploads.recent(ref.file_unique_id, account)) is not None
    }
    prepared = {
        ref.file_unique_id: await fetch_prepared(bot, ref)
        for ref in refs
        if ref.file_unique_id not in known
    }
    result: list[Uploaded] = []
    for ref in refs:
        record = known.get(ref.file_unique_id)
        if record is None:
            image = prepared[ref.file_unique_id]
            answer = await client.upload(
                image=image.data,
                filename=image.filename,
                content_type=image.content_type,
                account_hash=account,
            )
            # The job must run where the images are: later uploads go to the same account.
            account = answer.account_hash or account
            record = UploadRecord(
                ref.file_unique_id, account, answer.image.url, image.ext, image.width, image.height
            )
            await uploads.add(user_id, record)
            known[ref.file_unique_id] = record
        result.append(
            Uploaded(record.url, record.ext, record.account_hash, record.width, record.height)
        )
    return result
