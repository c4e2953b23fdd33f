"""The task engine: how a simulated task runs, what it produces and whom it tells."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from typing import Any

import aiohttp
from aiohttp import web

from bot.userapi.models import GRID_TYPES
from bot.userapi.simulator import images as sim_images
from bot.userapi.simulator.base import SimulatorBase
from bot.userapi.simulator.images import Rendered
from bot.userapi.simulator.model import (
    BIG_SIDE,
    FINAL_STATUSES,
    NO_WAITING_TYPES,
    PAN_CHOICES,
    PREFILTER_REASONS,
    PREVIEW_SIDE,
    PROGRESS_STEPS,
    PROGRESS_TYPES,
    SINGLE_TYPES,
    ApiError,
    WebhookDelivery,
    _action_fits,
    _now,
    _opt_str,
    _req_str,
    _StoredFile,
    _upsample_pair,
    logger,
)


class TaskEngine(SimulatorBase):
    """Tasks from creation to a final state: progress, images, webhooks, accounts."""

    def _usable_account(self, account_hash: str | None) -> str:
        """The given account if it is active, else the next active one in rotation."""
        if account_hash is not None:
            account = self._account(account_hash)
            if account.status != "active":
                detail = f": {account.reason}" if account.reason else ""
                raise ApiError(400, f"Account {account_hash} is {account.status}{detail}")
            return account_hash
        candidates = self.config.accounts
        for offset in range(len(candidates)):
            candidate = candidates[(self._rotation + offset) % len(candidates)]
            if self._account(candidate).status == "active":
                self._rotation = (self._rotation + offset + 1) % len(candidates)
                return candidate
        raise ApiError(400, "No active accounts available")

    def _parent(
        self, body: dict[str, Any], allowed: frozenset[str], action: str
    ) -> dict[str, Any]:
        parent_hash = _req_str(body, "hash")
        parent = self.tasks.get(parent_hash)
        if parent is None:
            raise ApiError(404, "Task not found")
        if parent["status"] != "done":
            raise ApiError(400, f"Task is not done (status: {parent['status']})")
        if parent["type"] not in allowed:
            raise ApiError(400, f"Cannot {action} a task of type {parent['type']}")
        return parent

    def _still_image_parent(self, body: dict[str, Any], action: str) -> dict[str, Any]:
        parent = self._parent(body, SINGLE_TYPES, action)
        if parent["hash"] in self._animated:
            raise ApiError(400, f"Cannot {action} an animation")
        return parent

    def _new_task(
        self,
        body: dict[str, Any],
        type_: str,
        *,
        parent: dict[str, Any] | None = None,
        account_hash: str | None = None,
        choice: int | str | None = None,
        prompt: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        webhook_url = _opt_str(body, "webhook_url")
        if webhook_url is not None and not webhook_url.startswith(("http://", "https://")):
            raise ApiError(400, "webhook_url must be an http(s) url")
        webhook_type = _opt_str(body, "webhook_type")
        if webhook_type not in (None, "progress", "result"):
            raise ApiError(400, "webhook_type must be progress or result")
        if parent is not None:
            account = self._usable_account(parent["account_hash"])
            if prompt is None:
                prompt = parent.get("prompt")
        else:
            account = self._usable_account(account_hash)
        task: dict[str, Any] = {
            "hash": str(uuid.uuid4()),
            "account_hash": account,
            "parent_hash": parent["hash"] if parent else None,
            "webhook_url": webhook_url,
            "webhook_type": webhook_type,
            "callback_id": None,
            "type": type_,
            "choice": choice,
            "prompt": prompt,
            "progress": 0,
            "status": "sent",
            "result": None,
            "status_reason": None,
            "prefilter_result": [],
            "job_id": None,
            "created_at": _now(),
        }
        if extra:
            task.update(extra)
        self.tasks[task["hash"]] = task
        self.history[task["hash"]] = [task]
        return task

    def _launch(self, task: dict[str, Any]) -> web.Response:
        runner = asyncio.create_task(self._run(task["hash"]), name=f"sim-task-{task['hash']}")
        self._runners.add(runner)
        runner.add_done_callback(self._runners.discard)
        return web.json_response({"hash": task["hash"]})

    # ----- task life --------------------------------------------------------------------------

    async def _update(self, hash: str, **changes: Any) -> dict[str, Any]:
        task = {**self.tasks[hash], **changes}
        self.tasks[hash] = task
        final = task["status"] in FINAL_STATUSES
        if final:
            self._forget_claims(task)
        url = task.get("webhook_url")
        if url and self.config.send_webhooks and (task.get("webhook_type") == "progress" or final):
            await self._deliver(url, task)
        # History (what wait_for_status sees) grows after delivery, so tests waiting on a
        # status may rely on its webhook having been attempted.
        self.history.setdefault(hash, []).append(task)
        return task

    def _forget_claims(self, task: dict[str, Any]) -> None:
        # A failed upscale or seed may be asked for again.
        if task["status"] != "error" or task["parent_hash"] is None:
            return
        if task["type"] == "upscale" and isinstance(task["choice"], int):
            self._upscaled.discard((task["parent_hash"], task["choice"]))
        if task["type"] == "seed":
            self._seeded.discard(task["parent_hash"])

    async def _deliver(self, url: str, task: dict[str, Any]) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=5, connect=2)
            )
        try:
            async with self._session.post(url, json=task) as response:
                await response.read()
                self.webhooks.append(WebhookDelivery(url, task, response.status, None))
                if response.status >= 400:
                    logger.warning("webhook %s answered %s", url, response.status)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            # The bot may be down; it polls /status after a restart, so the task goes on.
            self.webhooks.append(WebhookDelivery(url, task, None, repr(exc)))
            logger.warning("webhook to %s failed: %r", url, exc)

    async def _run(self, hash: str, *, sync: bool = False) -> None:
        task = self.tasks[hash]
        type_ = task["type"]
        prompt = task.get("prompt") or ""
        await self._sleep()
        if "sim:prefilter" in prompt:
            await self._update(
                hash,
                status="error",
                prefilter_result=list(PREFILTER_REASONS),
                status_reason="Prompt rejected by the prefilter: " + ", ".join(PREFILTER_REASONS),
            )
            return
        if type_ not in NO_WAITING_TYPES:
            await self._update(hash, status="waiting")
            if "sim:stuck" in prompt:
                await asyncio.Event().wait()
            if not sync:
                await self._held()
            await self._sleep()
        fails = "sim:error" in prompt
        if type_ in PROGRESS_TYPES:
            for step, progress in enumerate(PROGRESS_STEPS):
                preview = await self._preview(self.tasks[hash], progress)
                await self._update(hash, status="progress", progress=progress, result=preview)
                if fails and step == 0:
                    break
                await self._sleep()
        if fails:
            await self._update(hash, status="error", status_reason="Simulated Midjourney failure")
            return
        try:
            result = await self._result(self.tasks[hash])
        except (OSError, ValueError) as exc:
            logger.exception("simulator could not produce the result of %s", hash)
            await self._update(hash, status="error", status_reason=f"Simulator failure: {exc}")
            return
        changes: dict[str, Any] = {
            "status": "done",
            "progress": 100,
            "result": result,
            "job_id": str(uuid.uuid4()),
        }
        actions = self._next_actions(self.tasks[hash])
        if actions is not None and self.config.next_actions:
            changes["next_actions"] = actions
        await self._update(hash, **changes)

    def _next_actions(self, task: dict[str, Any]) -> list[dict[str, Any]] | None:
        type_ = task["type"]
        animated = task["hash"] in self._animated
        if type_ == "animate" or (type_ == "reroll" and animated):
            return [{"type": "upscale", "choices": [1, 2, 3, 4]}, {"type": "reroll"}]
        if type_ in GRID_TYPES:
            return [
                {"type": "upscale", "choices": [1, 2, 3, 4]},
                {"type": "variation", "choices": [1, 2, 3, 4]},
                {"type": "reroll"},
            ]
        if type_ in SINGLE_TYPES:
            if animated:
                return []
            actions: list[dict[str, Any]] = [
                action
                for action in (
                    {"type": "vary_subtle"},
                    {"type": "vary_strong"},
                    {"type": "inpaint"},
                    {"type": "zoom", "choices": [50, 75]},
                    {"type": "pan", "choices": list(PAN_CHOICES)},
                )
                if _action_fits(str(action["type"]), task.get("prompt"))
            ]
            if type_ == "upscale":
                actions.append({"type": "upsample", "choices": _upsample_pair(task["prompt"])})
            actions.append({"type": "animate", "choices": ["high", "low"]})
            return actions
        return None

    # ----- images -----------------------------------------------------------------------------

    def _store(self, name: str, rendered: Rendered) -> dict[str, Any]:
        self._files[name] = _StoredFile(rendered.data, rendered.content_type)
        url = f"{self.base_url}/cdn/{name}"
        return {
            "url": url,
            "proxy_url": f"{url}?proxy=1",
            "filename": name,
            "content_type": rendered.content_type,
            "width": rendered.width,
            "height": rendered.height,
            "size": len(rendered.data),
        }

    def _label(self, task: dict[str, Any]) -> str:
        choice = task.get("choice")
        words = [task["type"].upper().replace("_", " ")]
        if choice is not None:
            words.append(str(choice))
        if task["type"] == "blend":
            words.append(f"x{len(task.get('urls') or [])}")
        words.append("#" + task["hash"][:8])
        return " ".join(words)

    async def _preview(self, task: dict[str, Any], progress: int) -> dict[str, Any]:
        rendered = await asyncio.to_thread(
            sim_images.render_preview,
            task["hash"],
            self._label(task),
            task.get("prompt"),
            PREVIEW_SIDE,
            progress,
        )
        return self._store(f"{task['hash']}_p{progress}.png", rendered)

    async def _result(self, task: dict[str, Any]) -> Any:
        type_ = task["type"]
        hash_ = task["hash"]
        prompt = task.get("prompt")
        big = "sim:big" in (prompt or "")
        side = max(64, self.config.grid_size)
        label = self._label(task)
        parent = self.tasks.get(task["parent_hash"] or "")
        if type_ == "describe":
            return self._describe_prompts(task["prompt"] or "")
        if type_ == "info":
            return self._info_result(task)
        if type_ == "prefer":
            account = self._account(task["account_hash"])
            account.remix = not account.remix
            return "on" if account.remix else "off"
        if type_ == "speed":
            self._account(task["account_hash"]).speed = str(task["choice"])
            return None
        if type_ == "seed":
            assert parent is not None
            urls = []
            for index in range(1, 5):
                rendered = await asyncio.to_thread(
                    sim_images.render_single,
                    parent["hash"],
                    index,
                    f"SEED {index}",
                    prompt,
                    side // 2,
                )
                urls.append(self._store(f"{hash_}_{index}.png", rendered))
            digits = str(int(hashlib.sha256(parent["hash"].encode()).hexdigest()[:8], 16))
            return {"seed": digits, "urls": urls}
        rerolls_animation = type_ == "reroll" and parent and parent["hash"] in self._animated
        if type_ == "animate" or rerolls_animation:
            self._animated.add(hash_)
            rendered = await asyncio.to_thread(
                sim_images.render_animation, hash_, label, prompt, side // 2
            )
        elif type_ == "upscale" and parent is not None and parent["hash"] in self._animated:
            self._animated.add(hash_)
            rendered = await asyncio.to_thread(
                sim_images.render_animation,
                parent["hash"],
                label,
                prompt,
                side // 2,
                index=int(task["choice"]),
            )
        elif big:
            rendered = await asyncio.to_thread(sim_images.render_noise, BIG_SIDE)
        elif type_ in SINGLE_TYPES and parent is not None:
            if type_ == "upscale":
                look = (parent["hash"], int(task["choice"]))
                single_side = side // 2
            else:
                look = self._look.get(parent["hash"], (parent["hash"], 1))
                single_side = 2 * int(parent["result"]["width"])
            self._look[hash_] = look
            rendered = await asyncio.to_thread(
                sim_images.render_single, look[0], look[1], label, prompt, single_side
            )
        else:
            rendered = await asyncio.to_thread(sim_images.render_grid, hash_, label, prompt, side)
        self._spend_fast_time(task)
        return self._store(f"{hash_}.{rendered.ext}", rendered)

    def _spend_fast_time(self, task: dict[str, Any]) -> None:
        account = self._account(task["account_hash"])
        if account.speed != "relax":
            # A rough minute of GPU per job, so "fast time low" alerts can be exercised.
            account.fast_remaining_sec = max(0, account.fast_remaining_sec - 60)

    @staticmethod
    def _describe_prompts(url: str) -> list[str]:
        tag = hashlib.sha256(url.encode()).hexdigest()[:6]
        return [
            f"a watercolor landscape with soft light, tag {tag} --ar 1:1",
            f"a cinematic photo of a quiet street at dusk, tag {tag} --ar 3:2",
            f"an isometric illustration of a tiny workshop, tag {tag}",
            f"a minimalist poster of geometric shapes, tag {tag} --v 6.1",
        ]

    def _info_result(self, task: dict[str, Any]) -> dict[str, Any]:
        account = self._account(task["account_hash"])
        queued = running = 0
        for other in self.tasks.values():
            if other["account_hash"] != account.hash or other["type"] in NO_WAITING_TYPES:
                continue
            if other["status"] in ("sent", "waiting"):
                queued += 1
            elif other["status"] == "progress":
                running += 1
        fast = account.speed != "relax"
        return {
            "user_id": str(uuid.uuid5(uuid.NAMESPACE_URL, account.hash)),
            "subscription": {"name": "Standard", "active_to": "2099-01-01T00:00:00+00:00"},
            "visibility_mode": "Public",
            "fast_time_remaining": {
                "remaining_sec": account.fast_remaining_sec,
                "total_sec": account.fast_total_sec,
            },
            "lifetime_usage": {"cnt": 107, "sec": 3816},
            "relaxed_usage": {"cnt": 0, "sec": 0},
            "queued_jobs_fast": queued if fast else 0,
            "queued_jobs_relax": 0 if fast else queued,
            "running_jobs": running,
        }
