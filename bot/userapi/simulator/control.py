"""Control endpoints for other processes: recorded requests, tasks, config, accounts, faults."""

from __future__ import annotations

import dataclasses

from aiohttp import web

from bot.userapi.simulator.engine import TaskEngine
from bot.userapi.simulator.model import (
    ApiError,
    SimulatorConfig,
    _req_str,
)


class ControlRoutes(TaskEngine):
    """`/_sim/...`: what other processes (the bot run alone, bench) use to steer the simulator."""

    async def _ctl_requests(self, _request: web.Request) -> web.Response:
        return web.json_response([r.to_dict() for r in self.requests])

    async def _ctl_clear_requests(self, _request: web.Request) -> web.Response:
        self.clear_requests()
        return web.json_response({"status": True})

    async def _ctl_tasks(self, _request: web.Request) -> web.Response:
        return web.json_response(self.tasks)

    async def _ctl_config(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        known = {f.name: f for f in dataclasses.fields(SimulatorConfig)}
        for key, value in body.items():
            if key not in known:
                raise ApiError(400, f"unknown config field {key}")
            current = getattr(self.config, key)
            if isinstance(current, bool) and not isinstance(value, bool):
                raise ApiError(400, f"{key} must be a boolean")
            if isinstance(current, int | float) and not isinstance(current, bool):
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ApiError(400, f"{key} must be a number")
                value = type(current)(value)
            if key == "hold" and value is False:
                self.release()
            else:
                setattr(self.config, key, value)
        return web.json_response(dataclasses.asdict(self.config))

    async def _ctl_account(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        account_hash = request.match_info["hash"]
        self.set_account(
            account_hash,
            status=str(body.get("status", "active")),
            reason=body.get("reason"),
            remix=body.get("remix"),
            fast_remaining_sec=body.get("fast_remaining_sec"),
        )
        return web.json_response(self._account(account_hash).public())

    async def _ctl_faults(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        self.fail_next(
            _req_str(body, "path"),
            status=int(body.get("status", 500)),
            body=str(body.get("body", '{"status": false, "error": "Internal server error"}')),
            content_type=str(body.get("content_type", "application/json")),
            times=int(body.get("times", 1)),
            delay=float(body.get("delay", 0.0)),
        )
        return web.json_response({"status": True})

    async def _ctl_release(self, _request: web.Request) -> web.Response:
        self.release()
        return web.json_response({"status": True})
