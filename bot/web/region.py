"""Vary (Region): the mask-painting Mini App page, its API routes, and the inpaint job.

The page is static; everything it loads or sends goes through routes that check Telegram's
signed `initData` (HMAC-SHA256 keyed by HMAC("WebAppData", bot token), with a maximum age),
sent as `Authorization: tma <initData>`. Only the upscale's own requester may use it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiogram.utils.i18n import I18n
from aiogram.utils.web_app import WebAppInitData, WebAppUser, safe_parse_webapp_init_data
from aiohttp import web

from bot.jobs.actions import is_animation
from bot.jobs.request import InpaintRequest
from bot.jobs.service import Jobs
from bot.jobs.values import Requester
from bot.owner.limits import Policy
from bot.prompts.rules import PromptError, normalize_prompt
from bot.telegram.i18n import _
from bot.telegram.uploads import ImageProblem, build_mask
from bot.userapi import UserAPIClient, UserAPIError
from bot.userapi.models import UPSCALED_TYPES, TaskStatus
from bot.web.server import read_body
from storage.tasks import TaskRecord, TaskRepo

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "assets"
REGION_PATH = "/webapp/region"
API_PREFIX = "/webapp/api/region/"
MAX_SUBMIT_BYTES = 8 * 1024 * 1024
MAX_IMAGE_BYTES = 64 * 1024 * 1024
DATA_URL_PREFIX = "data:image/png;base64,"
IMAGES_AT_ONCE = 4
IMAGE_CACHE_BYTES = 32 * 1024 * 1024
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp"})


def page_texts() -> dict[str, str]:
    """The Mini App's words in the current language (the page shows English until then)."""
    return {
        "brush": _("Brush"),
        "eraser": _("Eraser"),
        "undo": _("Undo"),
        "clear": _("Clear"),
        "prompt": _("Prompt"),
        "submit": _("Submit"),
        "paint_first": _("Paint the area to redraw first."),
        "need_prompt": _("Please write a prompt."),
        "sending": _("Sending…"),
        "sent": _("Sent! The result will come to the chat."),
        "expired": _("This page has expired. Press Vary (Region) again."),
        "send_failed": _("Could not send: {error}"),
        "load_failed": _("Could not load the image: {error}"),
        "ready": _("Paint over what should change, then submit."),
        "too_large": _("The painted mask is too large to send."),
    }


def region_url(base: str, task_id: int) -> str:
    """The Mini App address for one upscale."""
    return f"{base}{REGION_PATH}?task={task_id}"


def check_init_data(init_data: str, token: str, max_age: float) -> WebAppInitData | None:
    """The signed initData if its signature is right and it is fresh enough, else None."""
    try:
        parsed = safe_parse_webapp_init_data(token, init_data)
    except (ValueError, TypeError):
        # TypeError: hmac.compare_digest refuses a hash with non-ASCII characters.
        return None
    auth_date = parsed.auth_date
    if auth_date.tzinfo is None:
        auth_date = auth_date.replace(tzinfo=UTC)
    age = (datetime.now(UTC) - auth_date).total_seconds()
    if age > max_age or age < -60:
        return None
    return parsed


async def signed_user(
    request: web.Request, token: str, max_age: float, policy: Policy | None
) -> WebAppUser:
    """The Telegram user a Mini App request speaks for (`Authorization: tma <initData>`);
    403 unless initData is signed with the bot's token, fresh, and its user not banned."""
    scheme, _, init_data = request.headers.get("Authorization", "").partition(" ")
    checked = check_init_data(init_data, token, max_age) if scheme.lower() == "tma" else None
    if checked is None or checked.user is None:
        log.info("Mini App request with invalid or stale initData refused (%s)", request.path)
        raise web.HTTPForbidden(text="invalid or expired Telegram initData")
    if policy is not None and await policy.is_banned(checked.user.id):
        raise web.HTTPForbidden(text="banned")
    return checked.user


def upscale_size(task: TaskRecord) -> tuple[int, int] | None:
    """The upscale's width and height as the API reported them."""
    result = task.result
    if not isinstance(result, dict):
        return None
    width, height = result.get("width"), result.get("height")
    if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
        return width, height
    return None


def can_inpaint(task: TaskRecord | None) -> bool:
    """Whether a task is a finished still upscale (what Vary (Region) works on)."""
    return (
        task is not None
        and task.status == TaskStatus.DONE
        and task.type in UPSCALED_TYPES
        and task.hash is not None
        and isinstance(task.result, dict)
        and not is_animation(task.result)
    )


async def start_inpaint(
    jobs: Jobs,
    requester: Requester,
    parent: TaskRecord,
    *,
    mask_png: bytes,
    prompt: str,
) -> TaskRecord:
    """Start Vary (Region) on an upscale with a ready mask and prompt."""
    parent_hash = parent.hash
    if parent_hash is None:  # pragma: no cover - checked by can_inpaint
        raise LookupError(f"task {parent.id} has no hash")
    return await jobs.start(
        requester,
        InpaintRequest.of(parent_hash=parent_hash, mask_png=mask_png, prompt=prompt),
        type="inpaint",
        prompt=prompt,
        parent=parent,
        action="inpaint",
    )


@dataclass(frozen=True, slots=True)
class _Allowed:
    user_id: int
    task: TaskRecord


class RegionApp:
    """The Mini App's routes: the page, the image to paint on, and the submission."""

    def __init__(
        self,
        *,
        jobs: Jobs,
        tasks: TaskRepo,
        client: UserAPIClient,
        token: str,
        max_age: float,
        i18n: I18n,
        policy: Policy | None = None,
    ) -> None:
        self._i18n = i18n
        self._policy = policy
        # Upscales proxied at once: each is held in memory (up to MAX_IMAGE_BYTES) meanwhile.
        self._image_slots = asyncio.Semaphore(IMAGES_AT_ONCE)
        self._images: OrderedDict[int, tuple[str, bytes]] = OrderedDict()
        self._images_bytes = 0
        self._jobs = jobs
        self._tasks = tasks
        self._client = client
        self._token = token
        self._max_age = max_age

    def register(self, app: web.Application) -> None:
        """Add the routes to the bot's aiohttp application."""
        app.router.add_get(REGION_PATH, self.page)
        app.router.add_get(API_PREFIX + "{task_id:\\d+}", self.info)
        app.router.add_get(API_PREFIX + "{task_id:\\d+}/image", self.image)
        app.router.add_post(API_PREFIX + "{task_id:\\d+}", self.submit)

    async def page(self, request: web.Request) -> web.FileResponse:
        """The painting page (static; it holds no secrets)."""
        return web.FileResponse(
            STATIC_DIR / "region.html",
            headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
        )

    async def _allowed(self, request: web.Request) -> _Allowed:
        user_id = (await signed_user(request, self._token, self._max_age, self._policy)).id
        task = await self._tasks.get(int(request.match_info["task_id"]))
        if task is None or user_id not in (task.user_id, task.chat_id):
            raise web.HTTPForbidden(text="not your image")
        if not can_inpaint(task):
            raise web.HTTPConflict(text="this image can't be varied by region")
        return _Allowed(user_id, task)

    async def info(self, request: web.Request) -> web.Response:
        """The upscale's size and prompt (to pre-fill the prompt field)."""
        allowed = await self._allowed(request)
        size = upscale_size(allowed.task)
        with self._i18n.context(), self._i18n.use_locale(allowed.task.locale):
            texts = page_texts()
        return web.json_response(
            {
                "prompt": allowed.task.prompt or "",
                "width": size[0] if size else None,
                "height": size[1] if size else None,
                "texts": texts,
            }
        )

    async def image(self, request: web.Request) -> web.Response:
        """The upscale itself, proxied so the page never needs the CDN (or any token)."""
        allowed = await self._allowed(request)
        url = str(allowed.task.result.get("url") or "")
        data = self._cached(allowed.task.id, url)
        if data is None:
            try:
                async with self._image_slots:
                    # Another request may have fetched it while this one waited.
                    data = self._cached(allowed.task.id, url)
                    if data is None:
                        data = await self._client.fetch(url, max_bytes=MAX_IMAGE_BYTES)
                        self._remember(allowed.task.id, url, data)
            except UserAPIError as error:
                log.warning("Upscale image for the Mini App unavailable: %s", error.message)
                raise web.HTTPBadGateway(text="the image is no longer available") from error
        # Only image types: the body is served from the bot's own origin.
        content_type = str(allowed.task.result.get("content_type") or "")
        if content_type not in IMAGE_TYPES:
            content_type = "image/png"
        return web.Response(
            body=data,
            content_type=content_type,
            headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
        )

    def _cached(self, task_id: int, url: str) -> bytes | None:
        entry = self._images.get(task_id)
        if entry is None or entry[0] != url:
            return None
        self._images.move_to_end(task_id)
        return entry[1]

    def _remember(self, task_id: int, url: str, data: bytes) -> None:
        """Keep recent upscales (the page loads one per open), within IMAGE_CACHE_BYTES."""
        if len(data) > IMAGE_CACHE_BYTES:
            return
        old = self._images.pop(task_id, None)
        self._images_bytes += len(data) - (len(old[1]) if old else 0)
        self._images[task_id] = (url, data)
        while self._images_bytes > IMAGE_CACHE_BYTES:
            _, (_, dropped) = self._images.popitem(last=False)
            self._images_bytes -= len(dropped)

    async def submit(self, request: web.Request) -> web.Response:
        """Check, build the mask at the upscale's exact size, and start the inpaint job."""
        allowed = await self._allowed(request)
        body = await read_body(request, MAX_SUBMIT_BYTES)
        try:
            payload: Any = json.loads(body)
            mask_url = str(payload["mask"])
            raw_prompt = str(payload.get("prompt") or "")
        except (ValueError, KeyError, TypeError) as error:
            raise web.HTTPBadRequest(text="expected JSON with mask and prompt") from error
        if not mask_url.startswith(DATA_URL_PREFIX):
            raise web.HTTPBadRequest(text="mask must be a PNG data URL")
        try:
            painted = base64.b64decode(mask_url[len(DATA_URL_PREFIX) :], validate=True)
        except (binascii.Error, ValueError) as error:
            raise web.HTTPBadRequest(text="mask is not valid base64") from error
        try:
            prompt = normalize_prompt(raw_prompt)
        except PromptError:
            return web.json_response({"ok": False, "error": "prompt"}, status=422)
        size = upscale_size(allowed.task)
        if size is None:
            raise web.HTTPConflict(text="the image size is unknown")
        try:
            mask = await build_mask(painted, *size)
        except ImageProblem as error:
            if error.code == "too_large":
                raise web.HTTPRequestEntityTooLarge(
                    max_size=MAX_SUBMIT_BYTES, actual_size=len(body), text="mask is too large"
                ) from error
            if error.code == "busy":
                raise web.HTTPServiceUnavailable(text="busy, try again") from error
            raise web.HTTPBadRequest(text="mask is not an image") from error
        task = allowed.task
        requester = Requester(
            chat_id=task.chat_id,
            user_id=allowed.user_id,
            thread_id=task.thread_id,
            message_id=task.result_message_id,
            locale=task.locale,
        )
        record = await start_inpaint(self._jobs, requester, task, mask_png=mask, prompt=prompt)
        return web.json_response({"ok": record.status != TaskStatus.ERROR, "task_id": record.id})
