"""The gallery Mini App: a user's results as a grid, one result's details, and its actions.

Every API route checks Telegram's signed `initData` (as Vary (Region) does, bot/web/region.py)
and serves only the signed-in user's own results: another user's task id is refused (403)
exactly like one that does not exist. Actions start the same jobs as the chat's buttons
(`Jobs.run_action`), answering in the chat the result is in; a re-run is a new /imagine in the
user's private chat with their current /settings.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from aiogram.utils.i18n import I18n
from aiohttp import web

from bot.delivery.keyboards import task_action_rows
from bot.delivery.texts import type_label
from bot.jobs.actions import Action, flat_actions, follow_up, is_animation
from bot.jobs.request import ImagineRequest
from bot.jobs.service import Jobs
from bot.jobs.values import Requester
from bot.owner.limits import Policy
from bot.prompts.rules import (
    PromptError,
    apply_defaults,
    defaults_of,
    normalize_prompt,
    strip_speeds,
    version_problem,
)
from bot.telegram.i18n import pick_locale
from bot.userapi.models import TaskStatus, TaskType
from bot.web.gallery_texts import page_texts
from bot.web.pictures import Pictures, PictureUnavailable, Size, picture_tag
from bot.web.region import STATIC_DIR, signed_user
from bot.web.server import read_body
from storage.settings import UserSettingsRepo
from storage.tasks import TaskRecord, TaskRepo

log = logging.getLogger(__name__)

GALLERY_PATH = "/webapp/gallery"
API = "/webapp/api/gallery"
PAGE_SIZE = 24
MAX_PAGE_SIZE = 60
MAX_SEARCH_WORDS = 8
MAX_ACTION_BYTES = 4096
# Images are the user's own: kept by their browser only (private), checked again after a day.
IMAGE_CACHE = "private, max-age=86400"
_PARAM_START = re.compile(r"\s(?=--[A-Za-z])")


def gallery_url(base: str) -> str:
    """The Mini App's address."""
    return f"{base}{GALLERY_PATH}"


def split_prompt(prompt: str | None) -> tuple[str, list[str]]:
    """A prompt's words and its parameters (`--ar 3:2`, ...), as the detail view shows them."""
    parts = [part.strip() for part in _PARAM_START.split((prompt or "").strip())]
    words = "" if parts[0].startswith("--") else parts[0]
    return words, [part for part in parts if part.startswith("--")]


def gallery_actions(task: TaskRecord) -> list[Action]:
    """The chat buttons the gallery offers too: the API follow-ups that need no typed prompt."""
    if task.status != TaskStatus.DONE:
        return []
    return [
        action
        for action in flat_actions(task_action_rows(task))
        if follow_up(action.kind) is not None and not action.always_needs_prompt
    ]


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in user, as their initData names them."""

    user_id: int
    name: str | None
    language_code: str | None


class GalleryApp:
    """The Mini App's routes: page, listing, details, images, and the actions."""

    def __init__(
        self,
        *,
        jobs: Jobs,
        tasks: TaskRepo,
        user_settings: UserSettingsRepo,
        pictures: Pictures,
        token: str,
        max_age: float,
        i18n: I18n,
        policy: Policy | None = None,
        allowed_speeds: tuple[str, ...] = (),
    ) -> None:
        self._jobs = jobs
        self._tasks = tasks
        self._user_settings = user_settings
        self._pictures = pictures
        self._token = token
        self._max_age = max_age
        self._i18n = i18n
        self._policy = policy
        self._speeds = allowed_speeds

    def register(self, app: web.Application) -> None:
        """Add the routes to the bot's aiohttp application."""
        task = API + "/{task_id:\\d+}"
        app.router.add_get(GALLERY_PATH, self.page)
        app.router.add_get(API, self.listing)
        app.router.add_get(task, self.detail)
        app.router.add_get(task + "/thumb", self.thumb)
        app.router.add_get(task + "/image", self.image)
        app.router.add_post(task + "/rerun", self.rerun)
        app.router.add_post(task + "/action", self.action)
        app.router.add_post(task + "/hide", self.hide)

    async def page(self, request: web.Request) -> web.FileResponse:
        """The gallery page (static; it holds no secrets)."""
        return web.FileResponse(
            STATIC_DIR / "gallery.html",
            headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
        )

    async def _viewer(self, request: web.Request) -> Viewer:
        user = await signed_user(request, self._token, self._max_age, self._policy)
        name = " ".join(part for part in (user.first_name, user.last_name) if part) or None
        return Viewer(user.id, name, user.language_code)

    async def _own(self, request: web.Request) -> tuple[Viewer, TaskRecord]:
        """The viewer and the task the URL names, which must be theirs and shown."""
        viewer = await self._viewer(request)
        task = await self._tasks.get(int(request.match_info["task_id"]))
        # Someone else's task and a missing one get the same answer: ids reveal nothing.
        if task is None or task.user_id != viewer.user_id or task.hidden_at is not None:
            raise web.HTTPForbidden(text="not your image")
        if not task.result_file_id and not isinstance(task.result, dict):
            raise web.HTTPNotFound(text="this job has no image")
        return viewer, task

    async def _locale(self, viewer: Viewer) -> str:
        chosen = (await self._user_settings.get(viewer.user_id)).locale
        return chosen or pick_locale(viewer.language_code)

    def _requester(self, viewer: Viewer, locale: str, task: TaskRecord | None) -> Requester:
        """Where a job's messages go: the result's own chat for actions, else the private chat."""
        if task is None:
            return Requester(chat_id=viewer.user_id, user_id=viewer.user_id, locale=locale)
        return Requester(
            chat_id=task.chat_id,
            user_id=viewer.user_id,
            thread_id=task.thread_id,
            message_id=task.result_message_id,
            locale=locale,
            name=viewer.name if task.chat_id < 0 else None,
        )

    def _item(self, task: TaskRecord) -> dict[str, Any]:
        return {
            "id": task.id,
            "prompt": task.prompt or "",
            "type": task.type,
            "label": type_label(task.type),
            "created_at": task.created_at,
            # Its full picture is a video (an Animate result): the page plays it.
            "animation": is_animation(task.result),
        }

    async def listing(self, request: web.Request) -> web.Response:
        """A page of the user's results, newest first, searched by the words of `q`."""
        viewer = await self._viewer(request)
        try:
            offset = max(0, int(request.query.get("offset", "0")))
            limit = min(MAX_PAGE_SIZE, max(1, int(request.query.get("limit", PAGE_SIZE))))
        except ValueError as error:
            raise web.HTTPBadRequest(text="offset and limit are numbers") from error
        words = request.query.get("q", "").split()[:MAX_SEARCH_WORDS]
        # One more than asked: whether there is a next page, without counting them all.
        found = await self._tasks.gallery(
            viewer.user_id, words=words, offset=offset, limit=limit + 1
        )
        locale = await self._locale(viewer)
        with self._i18n.context(), self._i18n.use_locale(locale):
            items = [self._item(task) for task in found[:limit]]
            texts = page_texts()
        more = len(found) > limit
        return web.json_response(
            {"items": items, "next_offset": offset + limit if more else None, "texts": texts},
            headers={"Cache-Control": "no-store"},
        )

    async def detail(self, request: web.Request) -> web.Response:
        """One result: prompt, parameters, size, and the actions the chat's buttons offer."""
        viewer, task = await self._own(request)
        words, params = split_prompt(task.prompt)
        result = task.result if isinstance(task.result, dict) else {}
        with self._i18n.context(), self._i18n.use_locale(await self._locale(viewer)):
            item = self._item(task)
            actions = [{"key": a.key, "label": a.label} for a in gallery_actions(task)]
        return web.json_response(
            item
            | {
                "words": words,
                "params": params,
                "width": result.get("width"),
                "height": result.get("height"),
                "actions": actions,
            },
            headers={"Cache-Control": "no-store"},
        )

    async def thumb(self, request: web.Request) -> web.Response:
        """The result's thumbnail (a small JPEG)."""
        return await self._picture(request, "thumb")

    async def image(self, request: web.Request) -> web.Response:
        """The result's full image."""
        return await self._picture(request, "full")

    async def _picture(self, request: web.Request, size: Size) -> web.Response:
        _, task = await self._own(request)
        tag = picture_tag(task, size)
        # Vary: a browser shared by two Telegram accounts asks again with the other's initData.
        headers = {
            "Cache-Control": IMAGE_CACHE,
            "ETag": tag,
            "Vary": "Authorization",
            "X-Content-Type-Options": "nosniff",
        }
        if tag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers=headers)
        try:
            picture = await self._pictures.get(task, size)
        except PictureUnavailable as error:
            if error.code == "busy":
                raise web.HTTPServiceUnavailable(text="busy, try again") from error
            raise web.HTTPBadGateway(text="the image is no longer available") from error
        return web.Response(body=picture.data, content_type=picture.content_type, headers=headers)

    async def rerun(self, request: web.Request) -> web.Response:
        """Run the prompt again as a new /imagine, with the user's current defaults.

        Parameters written in the stored prompt stay (as in /imagine, the prompt's own flags
        win); every parameter it doesn't set comes from /settings as they are now.
        """
        viewer, task = await self._own(request)
        user = await self._user_settings.get(viewer.user_id)
        try:
            words, _ = strip_speeds(normalize_prompt(task.prompt), self._speeds)
            prompt = apply_defaults(
                normalize_prompt(words), defaults_of(user), speeds=self._speeds
            )
        except PromptError:
            return web.json_response({"ok": False, "error": "prompt"}, status=422)
        if version_problem(prompt) is not None:
            return web.json_response({"ok": False, "error": "prompt"}, status=422)
        requester = self._requester(viewer, await self._locale(viewer), None)
        record = await self._jobs.start(
            requester, ImagineRequest(prompt=prompt), type=TaskType.IMAGINE, prompt=prompt
        )
        return _started(record)

    async def action(self, request: web.Request) -> web.Response:
        """Press one of the result's buttons (`{"key": "upscale:1"}`) from the gallery."""
        viewer, task = await self._own(request)
        try:
            key = str(json.loads(await read_body(request, MAX_ACTION_BYTES))["key"])
        except (ValueError, KeyError, TypeError) as error:
            raise web.HTTPBadRequest(text="expected JSON with key") from error
        action = next((a for a in gallery_actions(task) if a.key == key), None)
        if action is None:
            raise web.HTTPConflict(text="this result has no such action")
        if await self._jobs.remix.needs_prompt(task, action):
            # Remix mode asks for a new prompt: that conversation happens in the chat.
            return web.json_response({"ok": False, "error": "needs_prompt"}, status=409)
        requester = self._requester(viewer, await self._locale(viewer), task)
        return _started(await self._jobs.run_action(requester, task, action))

    async def hide(self, request: web.Request) -> web.Response:
        """Remove the result from the gallery and /history (its chat message stays)."""
        viewer, task = await self._own(request)
        await self._tasks.hide(task.id, viewer.user_id)
        return web.json_response({"ok": True})


def _started(record: TaskRecord) -> web.Response:
    """A started job's answer: its id, and whether it was refused at once (limits, credits)."""
    ok = record.status != TaskStatus.ERROR
    return web.json_response({"ok": ok, "task_id": record.id, "error": None if ok else "refused"})
