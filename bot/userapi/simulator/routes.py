"""The userapi.ai endpoints the simulator serves, and its CDN."""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.parser
import email.policy
import uuid

from aiohttp import web

from bot.userapi.models import GRID_TYPES
from bot.userapi.simulator import images as sim_images
from bot.userapi.simulator.engine import TaskEngine
from bot.userapi.simulator.images import Rendered
from bot.userapi.simulator.model import (
    PAN_CHOICES,
    UPSAMPLE_CHOICES,
    ApiError,
    _check_action_version,
    _check_prompt_version,
    _opt_bool,
    _opt_str,
    _req_str,
)


class ApiRoutes(TaskEngine):
    """The API's endpoints: each checks its body as userapi.ai does and starts a task."""

    async def _imagine(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        prompt = _req_str(body, "prompt")
        _opt_bool(body, "is_disable_prefilter")
        _check_prompt_version(prompt)
        task = self._new_task(
            body, "imagine", account_hash=_opt_str(body, "account_hash"), prompt=prompt
        )
        return self._launch(task)

    async def _animate(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        parent = self._still_image_parent(body, "animate")
        choice = body.get("choice")
        if choice not in ("high", "low"):
            raise ApiError(400, "choice must be one of: high, low")
        return self._launch(self._new_task(body, "animate", parent=parent, choice=choice))

    async def _describe(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        url = _req_str(body, "url")
        task = self._new_task(
            body, "describe", account_hash=_opt_str(body, "account_hash"), prompt=url
        )
        return self._launch(task)

    async def _upscale(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        parent = self._parent(body, GRID_TYPES | {"animate"}, "upscale")
        choice = body.get("choice")
        if isinstance(choice, bool) or not isinstance(choice, int) or not 1 <= choice <= 4:
            raise ApiError(400, "choice must be in [1..4]")
        if (parent["hash"], choice) in self._upscaled:
            raise ApiError(400, "Image already upscaled")
        task = self._new_task(body, "upscale", parent=parent, choice=choice)
        self._upscaled.add((parent["hash"], choice))
        return self._launch(task)

    async def _upsample(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        parent = self._parent(body, frozenset({"upscale"}), "upsample")
        if parent["hash"] in self._animated:
            raise ApiError(400, "Cannot upsample an animation")
        choice = body.get("choice")
        if choice not in UPSAMPLE_CHOICES:
            raise ApiError(400, "choice must be one of: " + ", ".join(UPSAMPLE_CHOICES))
        return self._launch(self._new_task(body, "upsample", parent=parent, choice=choice))

    async def _variation(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        parent = self._parent(body, GRID_TYPES, "make variations of")
        if parent["hash"] in self._animated:
            raise ApiError(400, "Cannot make variations of an animation")
        choice = body.get("choice")
        if isinstance(choice, bool) or not isinstance(choice, int) or not 1 <= choice <= 4:
            raise ApiError(400, "choice must be in [1..4]")
        task = self._new_task(
            body, "variation", parent=parent, choice=choice, prompt=_opt_str(body, "prompt")
        )
        return self._launch(task)

    async def _seed(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        parent = self._parent(body, GRID_TYPES | {"animate"}, "get the seed of")
        is_async = _opt_bool(body, "is_async")
        if parent["hash"] in self._seeded:
            raise ApiError(400, "Seed can only be requested once for this task")
        task = self._new_task(body, "seed", parent=parent)
        self._seeded.add(parent["hash"])
        if is_async:
            return self._launch(task)
        await self._run(task["hash"], sync=True)
        return web.json_response(self.tasks[task["hash"]])

    async def _vary(self, request: web.Request, type_: str) -> web.Response:
        body = await self._json_body(request)
        parent = self._still_image_parent(body, "vary")
        _check_action_version(type_, parent)
        task = self._new_task(body, type_, parent=parent, prompt=_opt_str(body, "prompt"))
        return self._launch(task)

    async def _vary_subtle(self, request: web.Request) -> web.Response:
        return await self._vary(request, "vary_subtle")

    async def _vary_strong(self, request: web.Request) -> web.Response:
        return await self._vary(request, "vary_strong")

    async def _inpaint(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        parent = self._still_image_parent(body, "inpaint")
        prompt = _req_str(body, "prompt")
        mask_text = _req_str(body, "mask")
        try:
            mask = base64.b64decode(mask_text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ApiError(400, "mask must be base64 of a png image") from exc
        if sim_images.sniff(mask) != "png":
            raise ApiError(400, "mask must be base64 of a png image")
        try:
            width, height = await asyncio.to_thread(sim_images.dimensions, mask)
        except (OSError, ValueError) as exc:
            raise ApiError(400, "mask must be base64 of a png image") from exc
        image = parent["result"]
        if (width, height) != (image["width"], image["height"]):
            raise ApiError(
                400,
                f"mask size {width}x{height} must equal the image size "
                f"{image['width']}x{image['height']}",
            )
        return self._launch(self._new_task(body, "inpaint", parent=parent, prompt=prompt))

    async def _blend(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        urls = body.get("urls")
        if not isinstance(urls, list) or not 2 <= len(urls) <= 5:
            raise ApiError(400, "urls must hold 2 to 5 images")
        for item in urls:
            if not isinstance(item, dict) or not isinstance(item.get("url"), str):
                raise ApiError(400, "each of urls must be {url, ext}")
            if not item["url"]:
                raise ApiError(400, "each of urls must be {url, ext}")
            if item.get("ext") not in ("png", "jpg"):
                raise ApiError(400, "ext must be png or jpg")
        task = self._new_task(
            body,
            "blend",
            account_hash=_opt_str(body, "account_hash"),
            extra={"urls": [{"url": u["url"], "ext": u["ext"]} for u in urls]},
        )
        return self._launch(task)

    async def _reroll(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        parent = self._parent(body, GRID_TYPES | {"animate"}, "reroll")
        task = self._new_task(body, "reroll", parent=parent, prompt=_opt_str(body, "prompt"))
        return self._launch(task)

    async def _zoom(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        parent = self._still_image_parent(body, "zoom")
        _check_action_version("zoom", parent)
        choice = body.get("choice")
        prompt = _opt_str(body, "prompt")
        if choice is None and prompt is None:
            raise ApiError(400, "choice or prompt is required")
        if choice is not None and (isinstance(choice, bool) or choice not in (50, 75)):
            raise ApiError(400, "choice must be in [50, 75]")
        return self._launch(
            self._new_task(body, "zoom", parent=parent, choice=choice, prompt=prompt)
        )

    async def _pan(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        parent = self._still_image_parent(body, "pan")
        _check_action_version("pan", parent)
        choice = body.get("choice")
        if choice not in PAN_CHOICES:
            raise ApiError(400, "choice must be in [left, right, up, down]")
        task = self._new_task(
            body, "pan", parent=parent, choice=choice, prompt=_opt_str(body, "prompt")
        )
        return self._launch(task)

    async def _info(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        account = _req_str(body, "account_hash")
        return self._launch(self._new_task(body, "info", account_hash=account))

    async def _account_setting(
        self, request: web.Request, type_: str, choices: tuple[str, ...]
    ) -> web.Response:
        body = await self._json_body(request)
        account = _req_str(body, "account_hash")
        choice = body.get("choice")
        if choice not in choices:
            raise ApiError(400, "choice must be one of: " + ", ".join(choices))
        is_async = _opt_bool(body, "is_async")
        task = self._new_task(body, type_, account_hash=account, choice=choice)
        if is_async:
            return self._launch(task)
        await self._run(task["hash"], sync=True)
        return web.json_response({"status": True, "result": self.tasks[task["hash"]]})

    async def _prefer(self, request: web.Request) -> web.Response:
        return await self._account_setting(request, "prefer", ("remix",))

    async def _speed(self, request: web.Request) -> web.Response:
        return await self._account_setting(request, "speed", ("relax", "fast", "turbo"))

    async def _status(self, request: web.Request) -> web.Response:
        hash_ = request.query.get("hash", "")
        if not hash_:
            raise ApiError(400, "hash is required")
        task = self.tasks.get(hash_)
        if task is None:
            raise ApiError(404, "Task not found")
        return web.json_response(task)

    async def _discord_info(self, request: web.Request) -> web.Response:
        account_hash = request.query.get("account_hash", "")
        if not account_hash:
            raise ApiError(400, "account_hash is required")
        return web.json_response(self._account(account_hash).public())

    async def _upload(self, request: web.Request) -> web.Response:
        if request.content_type == "multipart/form-data":
            fields = self._multipart(request.headers.get("Content-Type", ""), await request.read())
            data = fields.get("image")
            if data is None:
                raise ApiError(400, "image is required")
            account_field = fields.get("account_hash")
            account = self._usable_account(account_field.decode() if account_field else None)
            kind = sim_images.sniff(data)
            if kind is None:
                raise ApiError(400, "Image must be in png or jpg format")
            try:
                width, height = await asyncio.to_thread(sim_images.dimensions, data)
            except (OSError, ValueError) as exc:
                raise ApiError(400, "Image must be in png or jpg format") from exc
            content_type = "image/png" if kind == "png" else "image/jpeg"
            rendered = Rendered(data, width, height, content_type, kind)
        else:
            body = await self._json_body(request)
            url = _req_str(body, "url")
            if not url.startswith(("http://", "https://")):
                raise ApiError(400, "url must be an http(s) link to a png or jpg file")
            account = self._usable_account(_opt_str(body, "account_hash"))
            rendered = await asyncio.to_thread(sim_images.render_placeholder, url, 512)
        name = f"upload_{uuid.uuid4().hex}.{rendered.ext}"
        image = self._store(name, rendered)
        image["id"] = str(int(uuid.uuid4().hex[:15], 16))
        image["ephemeral"] = False
        return web.json_response({"account_hash": account, "image": image})

    @staticmethod
    def _multipart(content_type: str, body: bytes) -> dict[str, bytes]:
        # The body was already read for recording, so parse the bytes rather than the stream.
        head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
        fields: dict[str, bytes] = {}
        if not message.is_multipart():
            raise ApiError(400, "Malformed multipart body")
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if isinstance(name, str) and isinstance(payload, bytes):
                fields[name] = payload
        return fields

    async def _cdn(self, request: web.Request) -> web.Response:
        stored = self._files.get(request.match_info["name"])
        if stored is None:
            return web.Response(status=404, text="Not found")
        return web.Response(body=stored.data, headers={"Content-Type": stored.content_type})
