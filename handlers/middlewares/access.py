"""Who may do what, decided before it costs: floods, channel senders, bans, allowlist, limits."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery, Message, TelegramObject, User

from bot.owner.limits import Policy
from bot.telegram.i18n import _
from handlers.common import GROUP_COMMANDS, command_name, requester_of
from handlers.images.common import Flow, ImageMenu, looks_like_image, parse_command
from handlers.middlewares.throttle import LRU, TRACKED, FloodGate, Throttle
from storage.users import UserRepo

log = logging.getLogger(__name__)


def too_fast() -> str:
    """The one notice a flood gets."""
    return _("Too many messages at once. I'll skip them for a few seconds.")


def not_as_channel() -> str:
    """Why a message sent as a channel or an anonymous admin is refused."""
    return _(
        "Please write as yourself: the bot counts jobs, limits and history per person, "
        "and can't tell who is behind a channel or an anonymous admin."
    )


def outsider_text(user_id: int) -> str:
    """The answer to someone not on the allowlist."""
    return "\n".join(
        [
            _("This bot is private. Ask its owner for access."),
            _("Your Telegram id: <code>{id}</code>").format(id=user_id),
        ]
    )


# Commands that upload the photo they come with (or reply to), and the job each starts.
PHOTO_COMMANDS = {
    "describe": "describe",
    "blend": "blend",
    "imagine": "imagine",
    "sref": "imagine",
    "oref": "imagine",
    "cref": "imagine",
}


async def job_type_of(event: TelegramObject, current: str | None) -> str | None:
    """The job an update would download or upload images for, if any (None: costs nothing).

    `current` is the user's waiting state. Only these paths spend before `Jobs.start` checks
    its gate; the rest start jobs (or not) without touching a file, and the gate there is
    early enough.
    """
    if isinstance(event, CallbackQuery):
        data = event.data or ""
        if not data.startswith(ImageMenu.__prefix__ + ImageMenu.__separator__):
            return None
        try:
            do = ImageMenu.unpack(data).do
        except (TypeError, ValueError):
            return None  # not data we made: the menu's handler won't match it either
        return {"describe": "describe", "blend": "blend"}.get(do)
    if not isinstance(event, Message):
        return None
    username = (await event.bot.me()).username if event.bot is not None else None
    if event.photo or event.document:
        command = parse_command(event.caption, username)
        if command is not None:
            return PHOTO_COMMANDS.get(command[0])
        if current == Flow.describe_next.state:
            return "describe"
        if current == Flow.mask.state:
            return "inpaint"
        return None
    command = parse_command(event.text, username)
    replied = event.reply_to_message
    if command is not None:
        if replied is not None and looks_like_image(replied):
            return PHOTO_COMMANDS.get(command[0])
        return None
    if event.text and current in (Flow.image_prompt.state, Flow.reference.state):
        return "imagine"
    if event.text and current == Flow.mask_prompt.state:
        return "inpaint"
    return None


async def _addressed_to_us(message: Message) -> bool:
    """Whether a group message is a command for this bot (others' commands are not ours)."""
    text = message.text or message.caption
    if not text or not text.startswith("/"):
        return False
    username = (await message.bot.me()).username if message.bot is not None else None
    return parse_command(text, username) is not None


class AccessMiddleware(BaseMiddleware):
    """Decides, before any handler spends anything, whether an update is heard at all.

    In order: floods are cut (in memory or Redis, before any database read); messages sent as a
    channel or an anonymous admin are refused; banned users, switched-off groups and, in
    allowlist mode, outsiders are turned away; and an update that would download or upload
    images is checked against the requester's limits first. Jobs.start checks again: it is
    the authority, this is the early, cheap refusal.
    """

    def __init__(self, *, throttle: FloodGate | None = None, tracked: int = TRACKED) -> None:
        self.throttle = throttle or Throttle(tracked=tracked)
        self._seen: LRU[int, tuple[str | None, str | None, str | None]] = LRU(tracked)
        self._seen_chats: LRU[int, bool] = LRU(tracked)

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        """Let the update through, or drop it (answering a press so the client stops waiting)."""
        policy: Policy | None = data.get("policy")
        user: User | None = data.get("event_from_user")
        if policy is None or user is None:
            return await handler(event, data)
        if isinstance(event, Message) and event.successful_payment is not None:
            # Money was taken: whoever paid gets their credits, banned, throttled or not.
            return await handler(event, data)
        sender_chat = event.sender_chat if isinstance(event, Message) else None
        admin = policy.is_admin(user.id) and sender_chat is None
        if not admin and await self._speaks_to_us(event):
            sender = sender_chat.id if sender_chat is not None else user.id
            verdict = await self.throttle.check(
                f"{data['bot'].id}:{sender}",
                event.media_group_id if isinstance(event, Message) else None,
            )
            if verdict is False:
                await self._tell(event, too_fast(), alert=False)
            if verdict is not True:
                # Further presses go unanswered: the client stops waiting by itself, and a
                # flood must not turn into as many calls to Telegram.
                return None
        if isinstance(event, Message) and sender_chat is not None:
            return await self._as_chat(event)
        users: UserRepo | None = data.get("users")
        if users is not None:
            await self._remember(users, user, event)
        if admin:
            return await handler(event, data)
        if await policy.is_banned(user.id):
            if isinstance(event, CallbackQuery):
                await event.answer(_("You can't use this bot."), show_alert=True)
            return None
        chat_id = self._chat_id(event)
        if chat_id is not None and not await policy.chat_enabled(chat_id):
            if isinstance(event, Message) and command_name(event.text) in GROUP_COMMANDS:
                return await handler(event, data)
            if isinstance(event, CallbackQuery):
                await event.answer(_("The bot is switched off in this group."), show_alert=True)
            return None
        if chat_id is not None and not await policy.is_allowed(user.id, chat_id):
            if await self._speaks_to_us(event):
                await self._tell(event, outsider_text(user.id), alert=True)
            return None
        # aiogram's FSM middleware has read the waiting state already.
        kind = await job_type_of(event, data.get("raw_state"))
        if kind is not None:
            message = event.message if isinstance(event, CallbackQuery) else event
            if isinstance(message, Message):
                refusal = await policy.refusal(requester_of(message, user), kind)
                if refusal is not None:
                    await self._tell(event, refusal, alert=True)
                    return None
        return await handler(event, data)

    async def _as_chat(self, message: Message) -> None:
        # Refused rather than keyed on sender_chat: button presses always come from a person,
        # so a job keyed on a channel could never be pressed by whoever asked for it, and
        # every anonymous admin of a group shares one sender_chat, so limits and bans could
        # not tell them apart anyway. A channel's posts forwarded into its discussion group
        # are not addressed to anyone: those stay quiet.
        if message.is_automatic_forward or message.chat.type == ChatType.CHANNEL:
            return
        if await _addressed_to_us(message):
            await message.reply(not_as_channel())

    @staticmethod
    async def _speaks_to_us(event: TelegramObject) -> bool:
        # In groups the bot hears all the chatter; only what is meant for it is counted
        # against a flood or answered with a refusal.
        if isinstance(event, CallbackQuery):
            return True
        if not isinstance(event, Message):
            return False
        if event.chat.type == ChatType.PRIVATE or await _addressed_to_us(event):
            return True
        replied = event.reply_to_message
        return (
            replied is not None
            and replied.from_user is not None
            and event.bot is not None
            and replied.from_user.id == event.bot.id
        )

    @staticmethod
    async def _tell(event: TelegramObject, text: str, *, alert: bool) -> None:
        try:
            if isinstance(event, CallbackQuery):
                # Alerts are cut at 200 characters by Telegram.
                await event.answer(text[:200], show_alert=alert)
            elif isinstance(event, Message):
                await event.reply(text)
        except TelegramAPIError:
            # A refusal that can't be delivered (chat gone, query too old) changes nothing.
            return

    @staticmethod
    def _chat_id(event: TelegramObject) -> int | None:
        if isinstance(event, Message):
            return event.chat.id
        if isinstance(event, CallbackQuery) and isinstance(event.message, Message):
            return event.message.chat.id
        return None

    async def _remember(self, users: UserRepo, user: User, event: TelegramObject) -> None:
        # Written only when something changed: a busy group must not mean a write per message.
        key = (user.username, user.first_name, user.language_code)
        if self._seen.get(user.id) != key:
            await users.seen_user(
                user.id,
                username=user.username,
                first_name=user.first_name,
                language_code=user.language_code,
            )
            self._seen.put(user.id, key)
        if isinstance(event, Message) and self._seen_chats.get(event.chat.id) is None:
            await users.seen_chat(event.chat.id, type=event.chat.type, title=event.chat.title)
            self._seen_chats.put(event.chat.id, True)
