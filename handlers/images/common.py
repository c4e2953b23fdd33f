"""What the image routers share (no router here): waiting states, menu data, words, parsing."""

from __future__ import annotations

import contextlib
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiogram import Bot
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Filter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.delivery.texts import reason_text
from bot.jobs.values import failure_reason
from bot.telegram.i18n import _
from bot.telegram.media import MAX_PIXELS, MAX_SIDE
from bot.telegram.uploads import DOWNLOAD_LIMIT_MB, ImageProblem, ImageRef, image_of
from bot.userapi import UserAPIError

MIN_BLEND = 2
MAX_BLEND = 5
MAX_IMAGE_PROMPTS = 5
# Style and character references take several images; an omni reference takes one.
MAX_REFERENCES = {"sref": 5, "cref": 5, "oref": 1}
REFERENCE_COMMANDS = ("sref", "oref", "cref")
# Telegram cuts ForceReply placeholders at 64 characters.
PLACEHOLDER_LIMIT = 64
IMAGE_EXTENSIONS = frozenset(
    {"png", "jpg", "jpeg", "webp", "heic", "heif", "avif", "tif", "tiff", "gif", "bmp"}
)
_COMMAND = re.compile(r"^/([A-Za-z0-9_]+)(?:@([A-Za-z0-9_]+))?(?:\s+(.*))?$", re.DOTALL)
# Midjourney numbers describe's prompts with keycap emoji; the prompt itself starts after.
_NUMBERING = re.compile(r"^\s*(?:\d\ufe0f?\u20e3|\d+[.)])\s*")


class Flow(StatesGroup):
    """What the bot waits for from a user in a chat."""

    describe_next = State()
    blend = State()
    image_prompt = State()
    mask = State()
    mask_prompt = State()
    reference = State()


class ImageMenu(CallbackData, prefix="im1"):
    """A press on the photo menu or the Blend button."""

    do: str


# -- words -----------------------------------------------------------------------------------


def problem_text(problem: ImageProblem) -> str:
    """Why a file can't be used, in the user's language."""
    if problem.code == "too_big":
        return _(
            "That file is too big: bots can only download files up to {limit} MB from "
            "Telegram. Please send a smaller image."
        ).format(limit=DOWNLOAD_LIMIT_MB)
    if problem.code == "too_large":
        return _(
            "That image is too large: I take images of up to {megapixels} megapixels and "
            "{side} px a side. Please send a smaller one."
        ).format(megapixels=MAX_PIXELS // 1_000_000, side=MAX_SIDE)
    if problem.code == "busy":
        return _("Too many images are being prepared right now. Please send it again in a minute.")
    if problem.code == "not_image":
        return _(
            "That file is not an image I can read. Please send a photo, or a PNG, JPG, WEBP, "
            "HEIC, AVIF, TIFF or GIF file."
        )
    return _("I couldn't download that file from Telegram. Please send it again.")


def upload_failed(error: UserAPIError) -> str:
    """Why an upload to Midjourney failed."""
    return _("I couldn't upload the image to Midjourney: {reason}").format(
        reason=html.escape(reason_text(failure_reason(error)))
    )


def menu_too_old() -> str:
    """The answer to a photo menu or question whose images the bot no longer has."""
    return _("This menu is too old. Please send the photo again.")


def job_gone() -> str:
    """The answer to a Vary (Region) step whose job the bot no longer has."""
    return _("This job is no longer available. Start a new one with /imagine.")


def blend_count_problem(count: int) -> str:
    """The answer to a blend with the wrong number of photos."""
    return _("Blend takes {low} to {high} photos; you sent {count}.").format(
        low=MIN_BLEND, high=MAX_BLEND, count=count
    )


def blend_panel(count: int) -> tuple[str, InlineKeyboardMarkup]:
    """The text and Blend button shown while photos are collected."""
    text = _(
        "🖼 Photos for the blend: <b>{count}</b> of {high}.\n"
        "Send more (an album works too), then press Blend."
    ).format(count=count, high=MAX_BLEND)
    button = InlineKeyboardButton(
        text=_("Blend ({count})").format(count=count),
        callback_data=ImageMenu(do="blend").pack(),
    )
    return text, InlineKeyboardMarkup(inline_keyboard=[[button]])


def reference_name(kind: str) -> str:
    """A reference kind in words."""
    if kind == "oref":
        return _("Omni reference")
    if kind == "cref":
        return _("Character reference")
    return _("Style reference")


def reference_ask(kind: str, count: int) -> str:
    """The question for the prompt that goes with a reference."""
    return _(
        "{icon} <b>{name}</b> ({count} image(s)): send the prompt to go with it, for example "
        "<code>a lighthouse at dusk --ar 16:9</code>. The image goes in as <code>{flag}</code>."
    ).format(
        icon="🎨" if kind == "sref" else "🧩" if kind == "oref" else "👤",
        name=reference_name(kind),
        count=count,
        flag=f"--{kind}",
    )


def too_many_references(kind: str, count: int) -> str:
    """The answer to more images than a reference takes."""
    return _("{name} takes at most {limit} image(s); you sent {count}.").format(
        name=reference_name(kind), limit=MAX_REFERENCES[kind], count=count
    )


def menu_keyboard(count: int) -> InlineKeyboardMarkup:
    """The photo menu: describe, image prompt, blend, and the three kinds of reference."""

    def button(text: str, do: str) -> InlineKeyboardButton:
        return InlineKeyboardButton(text=text, callback_data=ImageMenu(do=do).pack())

    rows = [
        [InlineKeyboardButton(text=_("Describe"), callback_data=ImageMenu(do="describe").pack())],
        [
            InlineKeyboardButton(
                text=_("Use as image prompt"), callback_data=ImageMenu(do="prompt").pack()
            )
        ],
        [
            InlineKeyboardButton(
                text=_("Blend with more photos") if count < MIN_BLEND else _("Blend these"),
                callback_data=ImageMenu(do="blend_more").pack(),
            )
        ],
        [button("🎨 " + _("Style reference"), "sref")],
        [
            button("🧩 " + _("Omni reference (V7)"), "oref"),
            button("👤 " + _("Character reference (V6)"), "cref"),
        ],
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows)


# -- reading messages ------------------------------------------------------------------------


def looks_like_image(message: Message) -> bool:
    """Whether a message's file may be an image (photos always; documents by type or name)."""
    if message.photo:
        return True
    document = message.document
    if document is None:
        return False
    mime = (document.mime_type or "").lower()
    name = (document.file_name or "").lower()
    ext = name.rsplit(".", 1)[-1] if "." in name else ""
    return (
        mime.startswith("image/")
        or ext in IMAGE_EXTENSIONS
        or mime in ("", "application/octet-stream")
    )


def parse_command(text: str | None, username: str | None) -> tuple[str, str] | None:
    """A leading /command (addressed to us, if addressed at all) and its arguments."""
    match = _COMMAND.match((text or "").strip())
    if match is None:
        return None
    mention = match.group(2)
    if mention and (username is None or mention.lower() != username.lower()):
        return None
    return match.group(1).lower(), (match.group(3) or "").strip()


def describe_prompt(prompts: Sequence[Any], index: int) -> str | None:
    """Prompt number `index` (1-based) of a describe result, without Midjourney's numbering."""
    if not 1 <= index <= len(prompts):
        return None
    return _NUMBERING.sub("", str(prompts[index - 1])).strip() or None


def refs_of(data: dict[str, Any], key: str) -> list[ImageRef]:
    """Images kept in a waiting state's data (their Telegram ids only)."""
    return [ImageRef.from_dict(item) for item in data.get(key) or []]


async def bot_username(bot: Bot) -> str | None:
    """The bot's @username (aiogram caches getMe)."""
    return (await bot.me()).username


async def pressed_menu(query: CallbackQuery) -> Message | None:
    """The menu message a press came from; None (the press answered) when it is out of reach."""
    if isinstance(query.message, Message):
        return query.message
    await query.answer(menu_too_old())
    return None


async def remove_keyboard(message: Message | None) -> None:
    """Take the buttons off a menu that has been used."""
    if message is None:
        return
    # Already without buttons, or too old to edit: nothing to tidy then.
    with contextlib.suppress(TelegramBadRequest):
        await message.edit_reply_markup(reply_markup=None)


# -- what a photo asks for -------------------------------------------------------------------

# Caption commands the image routers take; any other command with a photo is someone else's.
CAPTION_COMMANDS = ("describe", "blend", "imagine", *REFERENCE_COMMANDS)
# A photo's intent when no caption command names one: the flow the user is in.
_WAITING = {
    Flow.describe_next.state: "describe_next",
    Flow.blend.state: "blend_add",
    Flow.mask.state: "mask",
}


@dataclass(frozen=True, slots=True)
class Photos:
    """An incoming photo or whole album: what it asks for, its messages and their images."""

    intent: str
    args: str
    messages: list[Message]
    refs: list[ImageRef]

    @property
    def first(self) -> Message:
        """The album's first message, which answers go to."""
        return self.messages[0]


def photo_intent(
    album: Sequence[Message], username: str | None, current: str | None
) -> tuple[str, str] | None:
    """The intent and arguments of a photo or album; None when it is not for the image flows.

    The caption's command wins over the waiting state `current`; a private photo with neither
    opens the menu; a file that is not an image is refused where it was clearly meant for us.
    """
    caption = next((m.caption for m in album if m.caption), None)
    command = parse_command(caption, username)
    if command is not None and command[0] not in CAPTION_COMMANDS:
        return None  # someone else's command with a photo
    private = album[0].chat.type == ChatType.PRIVATE
    if not all(looks_like_image(m) for m in album):
        meant = command is not None or current is not None or private
        return ("not_image", "") if meant else None
    if command is not None:
        return command
    waiting = _WAITING.get(current or "")
    if waiting is not None:
        return waiting, ""
    return ("menu", "") if private else None


class PhotoIntent(Filter):
    """Passes a photo or album (whole, from AlbumMiddleware) that asks for one of `intents`."""

    def __init__(self, *intents: str) -> None:
        self.intents = intents

    async def __call__(
        self,
        message: Message,
        bot: Bot,
        state: FSMContext,
        album: list[Message] | None = None,
    ) -> bool | dict[str, Any]:
        """Hand the handler `photos` when the intent is one of ours."""
        parts = album or [message]
        found = photo_intent(parts, await bot_username(bot), await state.get_state())
        if found is None or found[0] not in self.intents:
            return False
        refs = [ref for m in parts if (ref := image_of(m)) is not None]
        return {"photos": Photos(found[0], found[1], parts, refs)}
