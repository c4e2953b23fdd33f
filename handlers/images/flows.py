"""Jobs that start from user images, and the questions several image routers ask (no router)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from aiogram import Bot
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramBadRequest
from aiogram.fsm.context import FSMContext
from aiogram.types import (
    CallbackQuery,
    ForceReply,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    ReplyParameters,
    WebAppInfo,
)

from bot.config import Settings
from bot.jobs.actions import Action
from bot.jobs.request import BlendRequest, DescribeRequest, ImagineRequest
from bot.jobs.service import Jobs
from bot.jobs.values import Requester
from bot.prompts.rules import MAX_PROMPT_LENGTH, PromptError, normalize_prompt
from bot.prompts.translate import Translator
from bot.telegram.albums import AlbumKey, RecentAlbums
from bot.telegram.i18n import _
from bot.telegram.uploads import ImageProblem, ImageRef, Uploaded, image_of, upload_images
from bot.userapi import UserAPIClient, UserAPIError
from bot.userapi.models import TaskType
from bot.web.region import region_url, upscale_size
from handlers.common import requester_of
from handlers.images.common import (
    MAX_BLEND,
    MAX_IMAGE_PROMPTS,
    MAX_REFERENCES,
    MIN_BLEND,
    Flow,
    blend_count_problem,
    describe_prompt,
    looks_like_image,
    menu_keyboard,
    problem_text,
    reference_ask,
    too_many_references,
    upload_failed,
)
from handlers.images.prompting import Draft, draft_prompt, prompt_problem
from storage.settings import UserSettingsRepo
from storage.tasks import TaskRecord
from storage.uploads import UploadRepo

# Photo menus remembered per user and chat; an older menu's press asks for the photo again.
MENUS_KEPT = 5


class ImageFlows:
    """The jobs that start from user images, shared by the message and button handlers."""

    def __init__(
        self,
        *,
        bot: Bot,
        jobs: Jobs,
        client: UserAPIClient,
        uploads: UploadRepo,
        user_settings: UserSettingsRepo,
        settings: Settings,
        translator: Translator | None,
    ) -> None:
        self.bot = bot
        self.jobs = jobs
        self.client = client
        self.uploads = uploads
        self.user_settings = user_settings
        self.settings = settings
        self.translator = translator

    async def draft(
        self,
        message: Message,
        text: str | None,
        *,
        reference: str | None = None,
        images: int = 0,
        refs: int = 0,
    ) -> Draft | None:
        """The user's prompt checked (and translated) for these images; None once told why not."""
        return await draft_prompt(
            message,
            text,
            user_settings=self.user_settings,
            config=self.settings,
            translator=self.translator,
            reference=reference,
            images=images,
            refs=refs,
        )

    async def _upload(
        self, message: Message, refs: Sequence[ImageRef], user_id: int
    ) -> list[Uploaded] | None:
        with contextlib.suppress(TelegramBadRequest):  # the "sending a photo" hint is cosmetic
            await self.bot.send_chat_action(
                message.chat.id, "upload_photo", message_thread_id=message.message_thread_id
            )
        try:
            return await upload_images(self.bot, self.client, self.uploads, refs, user_id=user_id)
        except ImageProblem as problem:
            await message.reply(problem_text(problem))
        except UserAPIError as error:
            await message.reply(upload_failed(error))
        return None

    async def describe(self, message: Message, ref: ImageRef, requester: Requester) -> None:
        """Upload one image and describe it on the same account."""
        uploaded = await self._upload(message, [ref], requester.user_id)
        if not uploaded:
            return
        image = uploaded[0]
        await self.jobs.start(
            requester,
            DescribeRequest(url=image.url, account_hash=image.account_hash),
            type=TaskType.DESCRIBE,
            prompt=image.url,
        )

    async def blend(
        self, message: Message, refs: Sequence[ImageRef], requester: Requester
    ) -> None:
        """Upload 2-5 images and blend them."""
        if not MIN_BLEND <= len(refs) <= MAX_BLEND:
            await message.reply(blend_count_problem(len(refs)))
            return
        uploaded = await self._upload(message, refs, requester.user_id)
        if not uploaded:
            return
        images = [image.blend_image for image in uploaded]
        await self.jobs.start(
            requester,
            BlendRequest(images=images, account_hash=uploaded[0].account_hash),
            type=TaskType.BLEND,
            prompt=None,
        )

    async def image_prompt(
        self,
        message: Message,
        refs: Sequence[ImageRef],
        draft: Draft,
        requester: Requester,
    ) -> None:
        """Upload images and imagine `<url> ... <text>`."""
        if len(refs) > MAX_IMAGE_PROMPTS:
            await message.reply(
                _("Midjourney takes at most {limit} image prompts; you sent {count}.").format(
                    limit=MAX_IMAGE_PROMPTS, count=len(refs)
                )
            )
            return
        uploaded = await self._upload(message, refs, requester.user_id)
        if not uploaded:
            return
        prompt = draft.compose(images=[image.url for image in uploaded])
        await self._imagine(message, requester, prompt, uploaded)

    async def reference(
        self,
        message: Message,
        refs: Sequence[ImageRef],
        draft: Draft,
        requester: Requester,
    ) -> None:
        """Upload images and imagine the prompt with them as a style, omni or character ref."""
        kind = draft.reference or "sref"
        if len(refs) > MAX_REFERENCES[kind]:
            await message.reply(too_many_references(kind, len(refs)))
            return
        uploaded = await self._upload(message, refs, requester.user_id)
        if not uploaded:
            return
        prompt = draft.compose(refs=[image.url for image in uploaded])
        await self._imagine(message, requester, prompt, uploaded)

    async def _imagine(
        self, message: Message, requester: Requester, prompt: str, uploaded: Sequence[Uploaded]
    ) -> None:
        if len(prompt) > MAX_PROMPT_LENGTH:
            await message.reply(prompt_problem(PromptError("too_long")))
            return
        # The images live on the account they were uploaded to: the job must run there too.
        request = ImagineRequest(prompt=prompt, account_hash=uploaded[0].account_hash)
        await self.jobs.start(requester, request, type=TaskType.IMAGINE, prompt=prompt)


async def offer_menu(message: Message, refs: Sequence[ImageRef], state: FSMContext) -> None:
    """Ask what to do with a photo (or album): the menu, remembered for its presses."""
    menu = await message.reply(
        _("What should I do with this photo?")
        if len(refs) == 1
        else _("What should I do with these {count} photos?").format(count=len(refs)),
        reply_markup=menu_keyboard(len(refs)),
    )
    menus: dict[str, Any] = dict((await state.get_data()).get("menus") or {})
    menus[str(menu.message_id)] = [ref.to_dict() for ref in refs]
    while len(menus) > MENUS_KEPT:
        menus.pop(next(iter(menus)))
    await state.update_data(menus=menus)


async def ask_reference(
    message: Message, kind: str, refs: Sequence[ImageRef], state: FSMContext
) -> None:
    """Keep the images (their Telegram ids only) and ask for the prompt that goes with them."""
    if len(refs) > MAX_REFERENCES[kind]:
        await message.reply(too_many_references(kind, len(refs)))
        return
    await state.set_state(Flow.reference)
    await state.update_data(reference={"kind": kind, "images": [ref.to_dict() for ref in refs]})
    await message.answer(
        reference_ask(kind, len(refs)),
        reply_markup=ForceReply(
            selective=True, input_field_placeholder=_("a castle in the clouds")
        ),
    )


async def ask_region(
    message: Message,
    user_id: int,
    task: TaskRecord,
    state: FSMContext,
    settings: Settings,
) -> None:
    """Open the Mini App (private chats with HTTPS), or ask for a mask image instead."""
    base = settings.mini_app_base
    reply = ReplyParameters(message_id=message.message_id, allow_sending_without_reply=True)
    if base is not None and message.chat.type == ChatType.PRIVATE:
        button = InlineKeyboardButton(
            text=_("🖌 Paint the region"), web_app=WebAppInfo(url=region_url(base, task.id))
        )
        await message.answer(
            _("Vary (Region): paint over what should change, then write the prompt."),
            reply_parameters=reply,
            reply_markup=InlineKeyboardMarkup(inline_keyboard=[[button]]),
        )
        return
    size = upscale_size(task)
    await state.set_state(Flow.mask)
    await state.update_data(region_task=task.id)
    await message.answer(
        _(
            "Vary (Region): send a black-and-white mask image, white where Midjourney should "
            "redraw and black where it should keep the picture. Any size works: I scale it "
            "to the image's {size}."
        ).format(size=f"{size[0]}×{size[1]}" if size else ""),
        reply_parameters=reply,
        reply_markup=ForceReply(selective=True),
    )


async def describe_button(
    query: CallbackQuery,
    message: Message,
    task: TaskRecord,
    action: Action,
    jobs: Jobs,
    client: UserAPIClient,
) -> None:
    """A describe result's 1-4 (imagine that prompt) or 🔄 (describe again), same account."""
    requester = requester_of(message, query.from_user)
    account = task.account_hash
    request: DescribeRequest | ImagineRequest
    if action.kind == "describe":
        kind, prompt = TaskType.DESCRIBE, task.prompt or ""
        request = DescribeRequest(url=prompt, account_hash=account)
    else:
        prompts = task.result if isinstance(task.result, list) else []
        try:
            prompt = normalize_prompt(describe_prompt(prompts, int(str(action.choice))))
        except PromptError as error:
            await query.answer(prompt_problem(error)[:200], show_alert=True)
            return
        kind = TaskType.IMAGINE
        request = ImagineRequest(prompt=prompt, account_hash=account)
    await query.answer(_("{action}: started").format(action=action.label))
    await jobs.start(requester, request, type=kind, prompt=prompt, parent=task, action=action.key)


async def replied_images(
    message: Message, recent: RecentAlbums, bot: Bot
) -> list[ImageRef] | None:
    """The images a command replying to a photo names (its whole album if seen); None if bad."""
    replied = message.reply_to_message
    assert replied is not None  # the router's filter saw it
    if not looks_like_image(replied):
        await message.reply(problem_text(ImageProblem("not_image")))
        return None
    key = AlbumKey.of(bot, replied)
    album = await recent.images(key) if key is not None else []
    if album:
        return album
    ref = image_of(replied)
    return [ref] if ref is not None else []
