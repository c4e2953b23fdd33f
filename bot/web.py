"""The bot's HTTP server: health check, userapi webhooks, and (optionally) Telegram's webhook."""

from __future__ import annotations

import hashlib
import hmac
import logging

from aiohttp import web
from pydantic import ValidationError

from bot.jobs import Jobs
from bot.userapi import Task

log = logging.getLogger(__name__)

# A task object is a few KB; anything near this is not from userapi.
MAX_WEBHOOK_BYTES = 256 * 1024
USERAPI_WEBHOOK_PREFIX = "/userapi/webhook/"
TELEGRAM_WEBHOOK_PREFIX = "/telegram/webhook/"

READY = web.AppKey("ready", dict)
# The API document does not promise a Content-Type for webhooks: take JSON, and plain text or
# no type at all (some senders omit it), but refuse forms and files outright.
JSON_TYPES = frozenset({"application/json", "text/plain"})


def _json_ish(request: web.Request) -> bool:
    """Whether the body claims to be JSON (or claims nothing)."""
    if "Content-Type" not in request.headers:
        return True
    kind = request.content_type
    return kind in JSON_TYPES or kind.endswith("+json")


def derive_secret(token: str, purpose: str) -> str:
    """An unguessable, stable secret for a URL path, derived from the bot token.

    Stable across restarts, so webhooks of tasks started before a restart still arrive.
    """
    return hmac.new(token.encode(), purpose.encode(), hashlib.sha256).hexdigest()[:40]


class UserAPIWebhook:
    """Receives task updates from userapi: checks them, answers at once, handles them later."""

    def __init__(self, *, jobs: Jobs, secret: str) -> None:
        self._jobs = jobs
        self._secret = secret

    async def handle(self, request: web.Request) -> web.Response:
        """Handle one webhook POST."""
        given = request.match_info.get("secret", "")
        if not hmac.compare_digest(given.encode(), self._secret.encode()):
            raise web.HTTPNotFound()
        if request.content_length is not None and request.content_length > MAX_WEBHOOK_BYTES:
            raise web.HTTPRequestEntityTooLarge(
                max_size=MAX_WEBHOOK_BYTES, actual_size=request.content_length
            )
        if not _json_ish(request):
            raise web.HTTPUnsupportedMediaType(text="expected application/json")
        body = await request.content.read(MAX_WEBHOOK_BYTES + 1)
        if len(body) > MAX_WEBHOOK_BYTES:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_WEBHOOK_BYTES, actual_size=len(body))
        try:
            task = Task.model_validate_json(body)
        except ValidationError as error:
            # Bad UTF-8, bad JSON and too deeply nested JSON are validation errors here too.
            log.info("Rejected a malformed webhook: %s", type(error).__name__)
            raise web.HTTPBadRequest(text="invalid task object") from error
        self._jobs.offer(task)
        return web.json_response({"ok": True})


async def healthz(request: web.Request) -> web.Response:
    """200 once the bot has started, 503 before."""
    if request.app[READY].get("ready"):
        return web.json_response({"status": "ok"})
    return web.json_response({"status": "starting"}, status=503)


def build_web_app(*, jobs: Jobs, webhook_secret: str) -> web.Application:
    """The aiohttp application with the bot's own routes."""
    app = web.Application(client_max_size=MAX_WEBHOOK_BYTES)
    app[READY] = {"ready": False}
    app.router.add_get("/healthz", healthz)
    app.router.add_post(
        USERAPI_WEBHOOK_PREFIX + "{secret}",
        UserAPIWebhook(jobs=jobs, secret=webhook_secret).handle,
    )
    return app
