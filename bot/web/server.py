"""The bot's HTTP server: health check, userapi webhooks, and (optionally) Telegram's webhook."""

from __future__ import annotations

import hashlib
import hmac
import logging

import httpx
from aiohttp import web
from pydantic import ValidationError

from bot.jobs.service import Jobs
from bot.userapi import Task, UserAPIClient, UserAPIError
from bot.userapi.netsafe import UnsafeURLError, urls_in
from storage.tasks import TaskRepo

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


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, however many pieces it arrives in; 413 past `limit` bytes.

    `request.content.read(n)` returns only what happens to be buffered: over a real network a
    body arrives in several segments, so it is read to the end here.
    """
    declared = request.content_length
    if declared is not None and declared > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=declared)
    body = bytearray()
    while chunk := await request.content.read(limit + 1 - len(body)):
        body += chunk
        if len(body) > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(body))
    return bytes(body)


def derive_secret(token: str, purpose: str) -> str:
    """An unguessable, stable secret for a URL path, derived from the bot token.

    Stable across restarts, so webhooks of tasks started before a restart still arrive.
    """
    return hmac.new(token.encode(), purpose.encode(), hashlib.sha256).hexdigest()[:40]


class UserAPIWebhook:
    """Receives task updates from userapi: checks them, answers at once, handles them later."""

    def __init__(self, *, jobs: Jobs, client: UserAPIClient, tasks: TaskRepo, secret: str) -> None:
        self._jobs = jobs
        self._client = client
        self._tasks = tasks
        self._secret = secret
        self._confirming: set[str] = set()

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
        body = await read_body(request, MAX_WEBHOOK_BYTES)
        try:
            task = Task.model_validate_json(body)
        except ValidationError as error:
            # Bad UTF-8, bad JSON and too deeply nested JSON are validation errors here too.
            log.info("Rejected a malformed webhook: %s", type(error).__name__)
            raise web.HTTPBadRequest(text="invalid task object") from error
        # Anyone who learns the webhook URL can forge one: it is a hint. Its result URLs must
        # point at the API's own files or at public https hosts; otherwise the task is taken
        # from the API's own answer instead.
        result = task.model_dump(mode="json", include={"result"}).get("result")
        pointed = list(urls_in(result))
        urls = [httpx.URL(url) for url in pointed if self._client.urls.looks_safe(url)]
        if len(urls) < len(pointed):
            log.warning("Webhook for task %s points at a refused URL; asking the API", task.hash)
            self._jobs.spawn(self._confirm(task.hash))
        elif all(self._client.urls.trusted(url) for url in urls):
            self._jobs.offer(task)
        else:
            self._jobs.spawn(self._resolve_then_offer(task, urls))
        return web.json_response({"ok": True})

    async def _resolve_then_offer(self, task: Task, urls: list[httpx.URL]) -> None:
        """Offer the task if its hosts resolve to public addresses, else ask the API."""
        try:
            for url in urls:
                await self._client.urls.check(url)
        except UnsafeURLError as error:
            log.warning("Webhook for task %s: %s; asking the API", task.hash, error)
            await self._confirm(task.hash)
            return
        self._jobs.offer(task)

    async def _confirm(self, task_hash: str) -> None:
        """Offer the task as `GET /status` tells it, if the bot knows the task."""
        # Only tasks of ours, each once at a time: forged hints can't make the bot flood the API.
        if task_hash in self._confirming or await self._tasks.get_by_hash(task_hash) is None:
            return
        self._confirming.add(task_hash)
        try:
            task = await self._client.status(hash=task_hash)
        except UserAPIError as error:
            # The poller asks again on its own schedule: the hint is only dropped.
            log.info("Task %s not confirmed: %s", task_hash, error.message)
            return
        finally:
            self._confirming.discard(task_hash)
        self._jobs.offer(task)


async def healthz(request: web.Request) -> web.Response:
    """200 once the bot has started, 503 before."""
    if request.app[READY].get("ready"):
        return web.json_response({"status": "ok"})
    return web.json_response({"status": "starting"}, status=503)


def build_web_app(
    *, jobs: Jobs, client: UserAPIClient, tasks: TaskRepo, webhook_secret: str
) -> web.Application:
    """The aiohttp application with the bot's own routes."""
    app = web.Application(client_max_size=MAX_WEBHOOK_BYTES)
    app[READY] = {"ready": False}
    app.router.add_get("/healthz", healthz)
    app.router.add_post(
        USERAPI_WEBHOOK_PREFIX + "{secret}",
        UserAPIWebhook(jobs=jobs, client=client, tasks=tasks, secret=webhook_secret).handle,
    )
    return app
