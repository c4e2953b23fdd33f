"""What the bot's edited messages show now, so that no edit is sent that Telegram would refuse.

Status messages and queue notices are edited many times, from more than one place, and each
edit may wait a while for its slot under Telegram's limits. Meanwhile the message may have
been deleted (the result replaced it) or given a newer edit. `EditPlan` keeps, per message,
what it shows and the newest edit planned for it, and checks at the moment an edit's slot
comes (`ratelimit.only_if`): an edit that would change nothing, or whose message is gone, or
that a newer edit made moot, is dropped there and never reaches Telegram.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import InlineKeyboardMarkup, InputMediaPhoto

from bot.runtime.metrics import EDITS
from bot.telegram.ratelimit import UnwantedError, only_if
from bot.telegram.session import is_gone

# Messages remembered at once; forgetting one only means asking Telegram about it again.
REMEMBERED = 10_000


class Edit(Enum):
    """What became of an edit."""

    SHOWN = "shown"
    # The message already showed exactly this (known here, or Telegram said so).
    UNCHANGED = "unchanged"
    # The message is gone: the bot removed it, or Telegram no longer has it.
    GONE = "gone"
    # A newer edit of the same message was planned, or the caller's check said no.
    MOOT = "moot"


class Gone(Enum):
    """Why a message takes no more edits."""

    # The bot deleted it (or replaced it and tried to): nothing more is to be shown there.
    REMOVED = "removed"
    # Telegram says it is not there: the user deleted it.
    MISSING = "missing"


def counted(outcome: Edit) -> Edit:
    """Count an edit by what became of it (mjbot_telegram_edits_total), and return it."""
    EDITS.labels(outcome.value).inc()
    return outcome


def not_modified(error: TelegramBadRequest) -> bool:
    """Whether Telegram refused an edit because it would change nothing."""
    return "message is not modified" in error.message.lower()


def look(text: str, markup: InlineKeyboardMarkup | None = None) -> int:
    """A fingerprint of what a message shows: its text or caption (as sent) and its buttons."""
    keyboard = markup.model_dump_json(exclude_none=True) if markup is not None else None
    return hash((text, keyboard))


@dataclass(slots=True)
class _Message:
    # What it shows (a `look`); None when unknown: never seen here, or an edit is under way.
    look: int | None = None
    gone: Gone | None = None
    # Edits planned so far; only the newest may still go.
    planned: int = 0


class EditPlan:
    """Edits of the bot's messages, each sent only if it would still change something."""

    def __init__(self, bot: Bot) -> None:
        self._bot = bot
        self._messages: OrderedDict[tuple[int, int], _Message] = OrderedDict()

    def _message(self, chat_id: int, message_id: int) -> _Message:
        key = (chat_id, message_id)
        found = self._messages.get(key)
        if found is None:
            found = self._messages[key] = _Message()
            if len(self._messages) > REMEMBERED:
                self._messages.popitem(last=False)
        else:
            self._messages.move_to_end(key)
        return found

    def sent(self, chat_id: int, message_id: int, shows: int) -> None:
        """The bot just sent this message, showing `shows` (a `look`)."""
        self._message(chat_id, message_id).look = shows

    def gone(self, chat_id: int, message_id: int) -> Gone | None:
        """Why a message takes no more edits; None while it does (as far as is known)."""
        found = self._messages.get((chat_id, message_id))
        return found.gone if found is not None else None

    def unsure(self, chat_id: int, message_id: int) -> None:
        """Another process (a replica) may have edited this message: what it shows is unknown."""
        found = self._messages.get((chat_id, message_id))
        if found is not None:
            found.look = None

    def removed(self, chat_id: int, message_id: int) -> None:
        """The bot is done with this message (deleted or replaced): edits waiting are dropped."""
        self._message(chat_id, message_id).gone = Gone.REMOVED

    async def delete(self, chat_id: int, message_id: int) -> None:
        """Delete a message; edits of it still waiting for their slot are dropped."""
        self.removed(chat_id, message_id)
        await self._bot.delete_message(chat_id=chat_id, message_id=message_id)

    async def edit_text(
        self,
        chat_id: int,
        message_id: int,
        text: str,
        markup: InlineKeyboardMarkup | None = None,
        *,
        still: Callable[[], bool] | None = None,
    ) -> Edit:
        """Show a new text (and buttons; none removes them) unless that changes nothing.

        `still`, asked when the edit's slot comes, may drop it then (Edit.MOOT).
        """
        return counted(
            await self._edit(
                chat_id,
                message_id,
                look(text, markup),
                lambda: self._bot.edit_message_text(
                    chat_id=chat_id, message_id=message_id, text=text, reply_markup=markup
                ),
                still,
            )
        )

    async def edit_caption(
        self,
        chat_id: int,
        message_id: int,
        caption: str,
        markup: InlineKeyboardMarkup | None = None,
        *,
        still: Callable[[], bool] | None = None,
    ) -> Edit:
        """Show a new caption (and buttons) under a photo unless that changes nothing."""
        return counted(
            await self._edit(
                chat_id,
                message_id,
                look(caption, markup),
                lambda: self._bot.edit_message_caption(
                    chat_id=chat_id, message_id=message_id, caption=caption, reply_markup=markup
                ),
                still,
            )
        )

    async def edit_media(
        self,
        chat_id: int,
        message_id: int,
        media: InputMediaPhoto,
        *,
        still: Callable[[], bool] | None = None,
    ) -> Edit:
        """Show a new photo (always a change) with its caption, unless the message is gone."""
        after = look(str(media.caption or ""))
        return counted(
            await self._edit(
                chat_id,
                message_id,
                None,
                lambda: self._bot.edit_message_media(
                    chat_id=chat_id, message_id=message_id, media=media
                ),
                still,
                after=after,
            )
        )

    async def _edit(
        self,
        chat_id: int,
        message_id: int,
        shows: int | None,
        call: Callable[[], Awaitable[object]],
        still: Callable[[], bool] | None,
        *,
        after: int | None = None,
    ) -> Edit:
        """Plan an edit to show `shows` (None: always a change); send it if still wanted."""
        message = self._message(chat_id, message_id)
        message.planned += 1
        mine = message.planned
        result = shows if shows is not None else after

        def wanted() -> bool:
            return (
                message.gone is None
                and message.planned == mine
                and (shows is None or message.look != shows)
                and (still is None or still())
            )

        def go() -> bool:
            # Asked when the slot comes: a yes sends it, so what it shows is unknown until
            # the answer (Telegram may apply it even if the answer is lost).
            if not wanted():
                return False
            message.look = None
            return True

        if not wanted():
            return self._why(message, mine, shows)
        try:
            with only_if(go):
                await call()
        except UnwantedError:
            return self._why(message, mine, shows)
        except TelegramBadRequest as error:
            if is_gone(error):
                message.gone = Gone.MISSING
                return Edit.GONE
            if not_modified(error):
                if message.planned == mine:
                    message.look = result
                return Edit.UNCHANGED
            raise
        if message.planned == mine:
            message.look = result
        return Edit.SHOWN

    @staticmethod
    def _why(message: _Message, mine: int, shows: int | None) -> Edit:
        """Why an edit was not sent."""
        if message.gone is not None:
            return Edit.GONE
        if message.planned == mine and shows is not None and message.look == shows:
            return Edit.UNCHANGED
        return Edit.MOOT
