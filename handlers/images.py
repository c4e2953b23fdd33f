"""Photos in: /describe, /blend, image prompts, the private photo menu, and Vary (Region) masks."""

from __future__ import annotations

import asyncio
import contextlib
import html
import re
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from aiogram import Bot, F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import (
    CallbackQuery,
    ForceReply,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    ReplyParameters,
    WebAppInfo,
)

from bot.actions import Action
from bot.config import Settings
from bot.i18n import _
from bot.job_request import BlendRequest, DescribeRequest, ImagineRequest
from bot.job_values import Requester, failure_reason
from bot.jobs import Jobs
from bot.media import MAX_PIXELS, MAX_SIDE
from bot.prompts import MAX_PROMPT_LENGTH, PromptError, normalize_prompt
from bot.texts import reason_text
from bot.translate import Translator
from bot.uploads import (
    DOWNLOAD_LIMIT_MB,
    ImageProblem,
    ImageRef,
    Uploaded,
    build_mask,
    download,
    image_of,
    upload_images,
)
from bot.userapi import UserAPIClient, UserAPIError
from bot.userapi.models import TaskType
from bot.webapp import can_inpaint, region_url, start_inpaint, upscale_size
from handlers.common import requester_of
from handlers.prompting import Draft, draft_prompt, plain_prompt, prompt_problem
from storage.settings import UserSettingsRepo
from storage.tasks import TaskRecord, TaskRepo
from storage.uploads import UploadRepo

MIN_BLEND = 2
MAX_BLEND = 5
MAX_IMAGE_PROMPTS = 5
# Style and character references take several images; an omni reference takes one.
MAX_REFERENCES = {"sref": 5, "cref": 5, "oref": 1}
REFERENCE_COMMANDS = ("sref", "oref", "cref")
# Albums remembered per chat, so `/imagine` replying to one photo of an album takes them all.
ALBUMS_KEPT = 200
# Album parts arrive as separate updates a few milliseconds apart; wait this long for quiet.
ALBUM_QUIET_SECONDS = 0.6
# Telegram cuts ForceReply placeholders at 64 characters.
PLACEHOLDER_LIMIT = 64
MENUS_KEPT = 5
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


class RecentAlbums:
    """The images of albums seen lately, by chat and media_group_id (bounded)."""

    def __init__(self, limit: int = ALBUMS_KEPT) -> None:
        self._limit = limit
        self._albums: OrderedDict[tuple[int, str], dict[int, ImageRef]] = OrderedDict()

    def add(self, message: Message) -> None:
        """Note one part of an album as it arrives (a reply may name any part of it)."""
        ref = image_of(message)
        if message.media_group_id is None or ref is None:
            return
        key = (message.chat.id, message.media_group_id)
        self._albums.setdefault(key, {})[message.message_id] = ref
        self._albums.move_to_end(key)
        while len(self._albums) > self._limit:
            self._albums.popitem(last=False)

    def images_of(self, message: Message) -> list[ImageRef]:
        """The images a replied-to message stands for: its album if known, else its own."""
        if message.media_group_id is not None:
            album = self._albums.get((message.chat.id, message.media_group_id))
            if album:
                return [album[message_id] for message_id in sorted(album)]
        ref = image_of(message)
        return [ref] if ref is not None else []


class AlbumCollector:
    """Gathers the messages of one album (sharing media_group_id) into one list."""

    def __init__(self, quiet: float = ALBUM_QUIET_SECONDS) -> None:
        self._quiet = quiet
        self._groups: dict[str, list[Message]] = {}

    async def collect(self, message: Message) -> list[Message] | None:
        """The whole album for its first message; None for the others (already taken)."""
        group_id = message.media_group_id
        if group_id is None:
            return [message]
        group = self._groups.get(group_id)
        if group is not None:
            group.append(message)
            return None
        group = self._groups[group_id] = [message]
        seen = 0
        while seen != len(group):
            seen = len(group)
            await asyncio.sleep(self._quiet)
        del self._groups[group_id]
        return sorted(group, key=lambda m: m.message_id)


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


# -- helpers ---------------------------------------------------------------------------------


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


def _refs(data: dict[str, Any], key: str) -> list[ImageRef]:
    return [ImageRef.from_dict(item) for item in data.get(key) or []]


async def _username(bot: Bot) -> str | None:
    return (await bot.me()).username


async def _remove_keyboard(message: Message | None) -> None:
    if message is None:
        return
    # Already without buttons, or too old to edit: nothing to tidy then.
    with contextlib.suppress(TelegramBadRequest):
        await message.edit_reply_markup(reply_markup=None)


class ImageFlows:
    """The jobs that start from user images, shared by the message and button handlers."""

    def __init__(
        self,
        *,
        bot: Bot,
        jobs: Jobs,
        client: UserAPIClient,
        uploads: UploadRepo,
    ) -> None:
        self.bot = bot
        self.jobs = jobs
        self.client = client
        self.uploads = uploads

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
        await self.jobs.imagine(requester, prompt, account_hash=uploaded[0].account_hash)


# -- Vary (Region) ---------------------------------------------------------------------------


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


# -- router ----------------------------------------------------------------------------------


def build_router() -> Router:
    """The router for photos and image documents, /describe, /blend and the photo menu."""
    router = Router(name="images")
    albums = AlbumCollector()
    recent = RecentAlbums()

    def flows(bot: Bot, jobs: Jobs, client: UserAPIClient, uploads: UploadRepo) -> ImageFlows:
        return ImageFlows(bot=bot, jobs=jobs, client=client, uploads=uploads)

    @router.message(Command("describe"), F.text)
    async def describe_command(
        message: Message,
        state: FSMContext,
        bot: Bot,
        jobs: Jobs,
        client: UserAPIClient,
        uploads: UploadRepo,
    ) -> None:
        replied = message.reply_to_message
        if replied is not None and (replied.photo or replied.document):
            if not looks_like_image(replied):
                await message.reply(problem_text(ImageProblem("not_image")))
                return
            ref = image_of(replied)
            if ref is not None:
                await flows(bot, jobs, client, uploads).describe(
                    message, ref, requester_of(message)
                )
                return
        await state.set_state(Flow.describe_next)
        await message.reply(_("Send me the photo to describe."))

    @router.message(
        Command("imagine", *REFERENCE_COMMANDS, "ref"),
        F.reply_to_message.photo | F.reply_to_message.document,
    )
    async def command_on_photo(
        message: Message,
        command: CommandObject,
        state: FSMContext,
        bot: Bot,
        jobs: Jobs,
        client: UserAPIClient,
        uploads: UploadRepo,
        user_settings: UserSettingsRepo,
        settings: Settings,
        translator: Translator | None,
    ) -> None:
        replied = message.reply_to_message
        assert replied is not None  # the filter saw it
        if not looks_like_image(replied):
            await message.reply(problem_text(ImageProblem("not_image")))
            return
        refs = recent.images_of(replied)
        name = command.command.lower()
        if name == "ref":
            await _offer_menu(message, refs, state)
            return
        if name != "imagine" and not command.args:
            await _ask_reference(message, name, refs, state)
            return
        draft = await draft_prompt(
            message,
            command.args,
            user_settings=user_settings,
            config=settings,
            translator=translator,
            reference=None if name == "imagine" else name,
            images=len(refs) if name == "imagine" else 0,
            refs=0 if name == "imagine" else len(refs),
        )
        if draft is None:
            return
        images = flows(bot, jobs, client, uploads)
        if name == "imagine":
            await images.image_prompt(message, refs, draft, requester_of(message))
        else:
            await images.reference(message, refs, draft, requester_of(message))

    @router.message(Command(*REFERENCE_COMMANDS, "ref"), F.text)
    async def reference_without_photo(message: Message) -> None:
        await message.reply(
            _(
                "Reply to a photo (or an album) with this command, or send the photo with it "
                "as the caption, for example <code>/sref a cozy cabin in the woods</code>."
            )
        )

    @router.message(Flow.reference, Command("imagine"))
    @router.message(Flow.reference, F.text, ~F.text.startswith("/"))
    async def on_reference_prompt(
        message: Message,
        state: FSMContext,
        bot: Bot,
        jobs: Jobs,
        client: UserAPIClient,
        uploads: UploadRepo,
        user_settings: UserSettingsRepo,
        settings: Settings,
        translator: Translator | None,
    ) -> None:
        data = await state.get_data()
        pending = data.get("reference") or {}
        refs = _refs(pending, "images")
        kind = str(pending.get("kind") or "")
        text = message.text or ""
        command = parse_command(text, await _username(bot))
        if command is not None:
            text = command[1]
        if kind not in MAX_REFERENCES or not refs:
            await state.set_state(None)
            await message.reply(_("This menu is too old. Please send the photo again."))
            return
        draft = await draft_prompt(
            message,
            text,
            user_settings=user_settings,
            config=settings,
            translator=translator,
            reference=kind,
            refs=len(refs),
        )
        if draft is None:
            return  # the question stays open for a better prompt
        await state.set_state(None)
        await state.update_data(reference=None)
        await flows(bot, jobs, client, uploads).reference(
            message, refs, draft, requester_of(message)
        )

    @router.message(Command("blend"), F.text)
    async def blend_command(message: Message, state: FSMContext) -> None:
        await state.set_state(Flow.blend)
        await state.update_data(blend=[])
        text, keyboard = blend_panel(0)
        await message.reply(text, reply_markup=keyboard)

    @router.message(F.photo | F.document)
    async def on_image(
        message: Message,
        state: FSMContext,
        bot: Bot,
        jobs: Jobs,
        client: UserAPIClient,
        uploads: UploadRepo,
        tasks: TaskRepo,
        user_settings: UserSettingsRepo,
        settings: Settings,
        translator: Translator | None,
    ) -> None:
        recent.add(message)
        album = await albums.collect(message)
        if album is None:
            return  # part of an album its first message handles
        first = album[0]
        caption = next((m.caption for m in album if m.caption), None)
        command = parse_command(caption, await _username(bot))
        current = await state.get_state()
        images = flows(bot, jobs, client, uploads)
        requester = requester_of(first)
        if command is not None and command[0] not in (
            "describe",
            "blend",
            "imagine",
            *REFERENCE_COMMANDS,
        ):
            raise SkipHandler  # someone else's command with a photo
        if not all(looks_like_image(m) for m in album):
            if command is not None or current is not None or first.chat.type == ChatType.PRIVATE:
                await first.reply(problem_text(ImageProblem("not_image")))
            return
        refs = [ref for m in album if (ref := image_of(m)) is not None]
        if command is not None:
            name, args = command
            if name == "describe":
                await images.describe(first, refs[0], requester)
            elif name == "blend":
                await images.blend(first, refs, requester)
            elif name in REFERENCE_COMMANDS and not args:
                await _ask_reference(first, name, refs, state)
            else:
                reference = name if name in REFERENCE_COMMANDS else None
                draft = await draft_prompt(
                    first,
                    args,
                    user_settings=user_settings,
                    config=settings,
                    translator=translator,
                    reference=reference,
                    images=0 if reference else len(refs),
                    refs=len(refs) if reference else 0,
                )
                if draft is None:
                    return
                if reference:
                    await images.reference(first, refs, draft, requester)
                else:
                    await images.image_prompt(first, refs, draft, requester)
            return
        if current == Flow.describe_next.state:
            await state.set_state(None)
            await images.describe(first, refs[0], requester)
        elif current == Flow.blend.state:
            await _add_to_blend(first, refs, state)
        elif current == Flow.mask.state:
            await _take_mask(first, refs[0], state, bot, tasks)
        elif first.chat.type == ChatType.PRIVATE:
            await _offer_menu(first, refs, state)

    @router.callback_query(ImageMenu.filter())
    async def on_menu(
        query: CallbackQuery,
        callback_data: ImageMenu,
        state: FSMContext,
        bot: Bot,
        jobs: Jobs,
        client: UserAPIClient,
        uploads: UploadRepo,
    ) -> None:
        message = query.message
        if not isinstance(message, Message):
            await query.answer(_("This menu is too old. Please send the photo again."))
            return
        data = await state.get_data()
        images = flows(bot, jobs, client, uploads)
        requester = requester_of(message, query.from_user)
        if callback_data.do == "blend":
            refs = _refs(data, "blend")
            if await state.get_state() != Flow.blend.state:
                await query.answer(_("Start a new blend with /blend."), show_alert=True)
                return
            if not MIN_BLEND <= len(refs) <= MAX_BLEND:
                await query.answer(blend_count_problem(len(refs)), show_alert=True)
                return
            await query.answer()
            await state.set_state(None)
            await state.update_data(blend=[])
            await _remove_keyboard(message)
            await images.blend(message, refs, requester)
            return
        refs = _refs(data.get("menus", {}), str(message.message_id))
        if not refs:
            await query.answer(_("This menu is too old. Please send the photo again."))
            return
        await query.answer()
        await _remove_keyboard(message)
        if callback_data.do == "describe":
            await images.describe(message, refs[0], requester)
        elif callback_data.do == "prompt":
            await state.set_state(Flow.image_prompt)
            await state.update_data(prompt_images=[ref.to_dict() for ref in refs])
            await message.answer(
                _("Send the prompt to go with this image."),
                reply_markup=ForceReply(
                    selective=True, input_field_placeholder=_("a castle in the clouds")
                ),
            )
        elif callback_data.do in MAX_REFERENCES:
            await _ask_reference(message, callback_data.do, refs, state)
        else:
            await state.set_state(Flow.blend)
            await state.update_data(blend=[ref.to_dict() for ref in refs][:MAX_BLEND])
            text, keyboard = blend_panel(len(refs))
            await message.answer(text, reply_markup=keyboard)

    @router.message(Flow.image_prompt, F.text, ~F.text.startswith("/"))
    async def on_image_prompt_text(
        message: Message,
        state: FSMContext,
        bot: Bot,
        jobs: Jobs,
        client: UserAPIClient,
        uploads: UploadRepo,
        user_settings: UserSettingsRepo,
        settings: Settings,
        translator: Translator | None,
    ) -> None:
        refs = _refs(await state.get_data(), "prompt_images")
        draft = await draft_prompt(
            message,
            message.text,
            user_settings=user_settings,
            config=settings,
            translator=translator,
            images=len(refs),
        )
        if draft is None:
            return  # the question stays open for a better prompt
        await state.set_state(None)
        await flows(bot, jobs, client, uploads).image_prompt(
            message, refs, draft, requester_of(message)
        )

    @router.message(Flow.mask, F.text, ~F.text.startswith("/"))
    async def on_text_instead_of_mask(message: Message) -> None:
        await message.reply(
            _(
                "Please send the mask as an image (white = redraw, black = keep). "
                "Send /imagine to start something else."
            )
        )

    @router.message(Flow.mask_prompt, F.text, ~F.text.startswith("/"))
    async def on_mask_prompt(
        message: Message,
        state: FSMContext,
        bot: Bot,
        jobs: Jobs,
        client: UserAPIClient,
        tasks: TaskRepo,
        user_settings: UserSettingsRepo,
        settings: Settings,
        translator: Translator | None,
    ) -> None:
        data = await state.get_data()
        task = await tasks.get(int(data.get("region_task") or 0))
        mask_ref = data.get("region_mask")
        size = upscale_size(task) if task is not None else None
        if not can_inpaint(task) or not isinstance(mask_ref, dict) or task is None or not size:
            await state.set_state(None)
            await message.reply(
                _("This job is no longer available. Start a new one with /imagine.")
            )
            return
        prompt = await plain_prompt(
            message,
            message.text,
            config=settings,
            translator=translator,
            user_settings=user_settings,
        )
        if prompt is None:
            return
        # The mask was checked when it came; it is made again from Telegram's copy now, so
        # no image waits in the stored state (which outlives a restart).
        try:
            mask = await build_mask(await download(bot, ImageRef.from_dict(mask_ref)), *size)
        except ImageProblem as problem:
            await message.reply(problem_text(problem))
            return
        await state.set_state(None)
        await state.update_data(region_task=None, region_mask=None)
        await start_inpaint(jobs, requester_of(message), task, mask_png=mask, prompt=prompt)

    return router


async def _offer_menu(message: Message, refs: Sequence[ImageRef], state: FSMContext) -> None:
    menu = await message.reply(
        _("What should I do with this photo?")
        if len(refs) == 1
        else _("What should I do with these {count} photos?").format(count=len(refs)),
        reply_markup=menu_keyboard(len(refs)),
    )
    await _remember_menu(state, menu.message_id, refs)


async def _ask_reference(
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


async def _remember_menu(state: FSMContext, message_id: int, refs: Sequence[ImageRef]) -> None:
    menus: dict[str, Any] = dict((await state.get_data()).get("menus") or {})
    menus[str(message_id)] = [ref.to_dict() for ref in refs]
    while len(menus) > MENUS_KEPT:
        menus.pop(next(iter(menus)))
    await state.update_data(menus=menus)


async def _add_to_blend(message: Message, refs: Sequence[ImageRef], state: FSMContext) -> None:
    collected = _refs(await state.get_data(), "blend")
    known = {ref.file_unique_id for ref in collected}
    new = [ref for ref in refs if ref.file_unique_id not in known]
    if len(collected) + len(new) > MAX_BLEND:
        await message.reply(
            _(
                "Blend takes at most {high} photos; these would make {count}. "
                "Press Blend, or send /blend to start over."
            ).format(high=MAX_BLEND, count=len(collected) + len(new))
        )
        return
    collected.extend(new)
    await state.update_data(blend=[ref.to_dict() for ref in collected])
    text, keyboard = blend_panel(len(collected))
    await message.reply(text, reply_markup=keyboard)


async def _take_mask(
    message: Message, ref: ImageRef, state: FSMContext, bot: Bot, tasks: TaskRepo
) -> None:
    data = await state.get_data()
    task = await tasks.get(int(data.get("region_task") or 0))
    size = upscale_size(task) if task is not None else None
    if task is None or size is None or not can_inpaint(task):
        await state.set_state(None)
        await message.reply(_("This job is no longer available. Start a new one with /imagine."))
        return
    try:
        raw = await download(bot, ref)
        await build_mask(raw, *size)  # refused now, not after the prompt
    except ImageProblem as problem:
        await message.reply(problem_text(problem))
        return
    await state.set_state(Flow.mask_prompt)
    await state.update_data(region_mask=ref.to_dict())
    prefill = task.prompt or ""
    await message.reply(
        _(
            "✏️ <b>Vary (Region)</b>: reply with the prompt for the painted area.\n"
            "The current one, to copy and edit:\n<code>{prompt}</code>"
        ).format(prompt=html.escape(prefill)),
        reply_markup=ForceReply(
            selective=True, input_field_placeholder=prefill[:PLACEHOLDER_LIMIT] or None
        ),
    )
