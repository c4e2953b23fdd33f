"""`@bot [words]`: the user's own results, as Telegram's copies of them, to drop into any chat."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.types import (
    InlineQuery,
    InlineQueryResultCachedMpeg4Gif,
    InlineQueryResultCachedPhoto,
    InlineQueryResultsButton,
    Message,
)

from bot.delivery.texts import result_title, shared_caption
from bot.jobs.actions import is_animation
from bot.owner.limits import Policy
from bot.telegram.i18n import _
from storage.tasks import TaskRecord, TaskRepo

# Telegram takes at most 50 results per answer; scrolling past them asks for the next page.
PAGE_SIZE = 50
# Answers are the asker's alone and change with each new result: Telegram keeps one briefly.
CACHE_SECONDS = 10
# What the button under an empty answer sends the bot: `/start inline`.
START_PARAMETER = "inline"
# Words searched for at most (a query is at most 256 characters anyway).
MAX_WORDS = 10
InlineResult = InlineQueryResultCachedPhoto | InlineQueryResultCachedMpeg4Gif


def inline_result(task: TaskRecord) -> InlineResult:
    """A result as an inline result: Telegram's own copy (no upload), the prompt as caption.

    No buttons: the result lands in a chat the bot may not be in, where they could do nothing.
    `parse_mode=None`: the prompt is shown as written, not read as HTML.
    """
    file_id = task.result_file_id
    if file_id is None:
        raise ValueError(f"task {task.id} has no result in Telegram to share")
    caption, title = shared_caption(task), result_title(task)
    if is_animation(task.result):
        return InlineQueryResultCachedMpeg4Gif(
            id=str(task.id),
            mpeg4_file_id=file_id,
            title=title,
            caption=caption,
            parse_mode=None,
        )
    return InlineQueryResultCachedPhoto(
        id=str(task.id),
        photo_file_id=file_id,
        title=title,
        description=caption[:100],
        caption=caption,
        parse_mode=None,
    )


def page_offset(offset: str) -> int:
    """The position an inline query's offset names (our own next_offset, echoed back).

    A client can send any text: what is not a plain number of ours starts from the top.
    """
    return int(offset) if offset.isascii() and offset.isdigit() and len(offset) <= 9 else 0


async def share(query: InlineQuery, tasks: TaskRepo, policy: Policy) -> None:
    """Answer `@bot [words]` with the asker's results whose prompts hold every word."""
    user_id = query.from_user.id
    if await policy.is_banned(user_id):
        await query.answer([], cache_time=CACHE_SECONDS, is_personal=True)
        return
    offset, words = page_offset(query.offset), query.query.split()[:MAX_WORDS]
    # Upscales first: they are what people share.
    found = await tasks.gallery(
        user_id, words=words, offset=offset, limit=PAGE_SIZE + 1, upscaled=True
    )
    page = found[:PAGE_SIZE]
    button = None
    if not page and offset == 0:
        has_any = bool(words and await tasks.gallery(user_id, words=[], offset=0, limit=1))
        text = _("Nothing matches: open the bot") if has_any else _("No images yet: make one")
        button = InlineQueryResultsButton(text=text, start_parameter=START_PARAMETER)
    await query.answer(
        [inline_result(task) for task in page],
        cache_time=CACHE_SECONDS,
        # Each user sees their own results: Telegram must not hand this answer to another.
        is_personal=True,
        next_offset=str(offset + PAGE_SIZE) if len(found) > PAGE_SIZE else None,
        button=button,
    )


def not_shared_by_us(message: Message, bot: Bot) -> bool:
    """False for a message a user sent "via @bot": one of our results, shared, not a request."""
    # Shared into the bot's own chat (or a group it reads), the photo would otherwise open the
    # photo menu, or be taken as the photo a flow waits for (a Vary (Region) mask).
    return message.via_bot is None or message.via_bot.id != bot.id


def build_router() -> Router:
    """The router for inline queries."""
    router = Router(name="inline")
    router.inline_query.register(share)
    return router
