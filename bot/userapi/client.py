"""A typed async client for the userapi.ai Midjourney API: one keyword-only method per endpoint."""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from types import TracebackType
from typing import BinaryIO, Literal, Self, TypeVar

import httpx
from pydantic import BaseModel, SecretStr

from bot.userapi.downloads import Downloads
from bot.userapi.models import BlendImage, DiscordAccount, Task, UploadResult
from bot.userapi.netsafe import Resolver, URLPolicy, pinned_transport
from bot.userapi.transport import Retry, Transport
from bot.userapi.wire import (
    compact,
    hash_of,
    looks_like_task,
    parse_payload,
    unwrap,
    webhook_fields,
)

logger = logging.getLogger(__name__)

_M = TypeVar("_M", bound=BaseModel)

WebhookType = Literal["progress", "result"]

_MESSAGE_KEYS = ("error", "message", "detail")
_SNIPPET_CHARS = 200
# Redirects followed by a download (each one checked like the first URL).
MAX_REDIRECTS = 5


class UserAPIClient:
    """The userapi.ai Midjourney API; the only place that knows its URLs and the api-key header."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | SecretStr,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        retry_attempts: int = 3,
        retry_backoff: float = 0.5,
        max_retry_after: float = 10.0,
        resolve: Resolver | None = None,
    ) -> None:
        # No default headers: the key is added per API request so that fetch() of a CDN url
        # can never carry it to a third-party host.
        # Files come only from the API's own origin or from https on public addresses, and
        # connections to other hosts go only to the addresses the policy checked.
        self.urls = URLPolicy([base_url], resolve)
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout),
            transport=transport or pinned_transport(self.urls),
        )
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        self._api = Transport(
            self._http,
            key,
            attempts=max(1, retry_attempts),
            backoff=retry_backoff,
            max_retry_after=max_retry_after,
        )
        self._downloads = Downloads(self._http, self.urls, self._api.attempts, self._api.delay)

    async def aclose(self) -> None:
        """Close the underlying connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        """Enter the context: the client itself."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close on leaving the context."""
        await self.aclose()

    # --- job-creating endpoints -----------------------------------------------------------

    async def imagine(
        self,
        *,
        prompt: str,
        webhook_url: str | None = None,
        webhook_type: WebhookType | None = None,
        account_hash: str | None = None,
        is_disable_prefilter: bool = False,
    ) -> str:
        """Start an imagine job; return its task hash."""
        body = compact(
            prompt=prompt,
            account_hash=account_hash,
            is_disable_prefilter=is_disable_prefilter,
            **webhook_fields(webhook_url, webhook_type),
        )
        return await self._api.create("/midjourney/v2/imagine", body)

    async def animate(
        self,
        *,
        hash: str,
        choice: Literal["high", "low"],
        webhook_url: str | None = None,
        webhook_type: WebhookType | None = None,
    ) -> str:
        """Animate an upscale (high or low motion); return the task hash."""
        body = compact(hash=hash, choice=choice, **webhook_fields(webhook_url, webhook_type))
        return await self._api.create("/midjourney/v2/animate", body)

    async def describe(
        self,
        *,
        url: str,
        webhook_url: str | None = None,
        webhook_type: WebhookType | None = None,
        account_hash: str | None = None,
    ) -> str:
        """Ask for four prompts describing the image at `url`; return the task hash."""
        body = compact(
            url=url, account_hash=account_hash, **webhook_fields(webhook_url, webhook_type)
        )
        return await self._api.create("/midjourney/v2/describe", body)

    async def upscale(
        self,
        *,
        hash: str,
        choice: int,
        webhook_url: str | None = None,
        webhook_type: WebhookType | None = None,
    ) -> str:
        """Upscale image `choice` (1-4) of a grid; return the task hash."""
        body = compact(hash=hash, choice=choice, **webhook_fields(webhook_url, webhook_type))
        return await self._api.create("/midjourney/v2/upscale", body)

    async def upsample(
        self,
        *,
        hash: str,
        choice: str,
        webhook_url: str | None = None,
        webhook_type: WebhookType | None = None,
    ) -> str:
        """Upscale an upscale again (subtle/creative/2x/4x by version); return the task hash."""
        body = compact(hash=hash, choice=choice, **webhook_fields(webhook_url, webhook_type))
        return await self._api.create("/midjourney/v2/upsample", body)

    async def variation(
        self,
        *,
        hash: str,
        choice: int,
        prompt: str | None = None,
        webhook_url: str | None = None,
        webhook_type: WebhookType | None = None,
    ) -> str:
        """Make variations of grid image `choice` (1-4); return the task hash."""
        body = compact(
            hash=hash, choice=choice, prompt=prompt, **webhook_fields(webhook_url, webhook_type)
        )
        return await self._api.create("/midjourney/v2/variation", body)

    async def seed(self, *, hash: str, webhook_url: str | None = None) -> str | Task:
        """Ask for a grid's seed asynchronously; return the hash, or the task if sent one."""
        body = compact(hash=hash, is_async=True, webhook_url=webhook_url)
        payload = unwrap(await self._api.post("/midjourney/v2/seed", body))
        if isinstance(payload, dict) and looks_like_task(payload):
            return parse_payload(Task, payload, what="seed task")
        return hash_of(payload)

    async def vary_subtle(
        self,
        *,
        hash: str,
        prompt: str | None = None,
        webhook_url: str | None = None,
        webhook_type: WebhookType | None = None,
    ) -> str:
        """Vary (Subtle) an upscale; return the task hash."""
        body = compact(hash=hash, prompt=prompt, **webhook_fields(webhook_url, webhook_type))
        return await self._api.create("/midjourney/v2/vary-subtle", body)

    async def vary_strong(
        self,
        *,
        hash: str,
        prompt: str | None = None,
        webhook_url: str | None = None,
        webhook_type: WebhookType | None = None,
    ) -> str:
        """Vary (Strong) an upscale; return the task hash."""
        body = compact(hash=hash, prompt=prompt, **webhook_fields(webhook_url, webhook_type))
        return await self._api.create("/midjourney/v2/vary-strong", body)

    async def inpaint(
        self,
        *,
        hash: str,
        mask_png: bytes,
        prompt: str,
        webhook_url: str | None = None,
        webhook_type: WebhookType | None = None,
    ) -> str:
        """Vary (Region): repaint the white area of `mask_png` on an upscale; return the hash."""
        mask = base64.b64encode(mask_png).decode("ascii")
        body = compact(
            hash=hash, mask=mask, prompt=prompt, **webhook_fields(webhook_url, webhook_type)
        )
        return await self._api.create("/midjourney/v2/inpaint", body)

    async def blend(
        self,
        *,
        urls: Sequence[BlendImage],
        account_hash: str | None = None,
        webhook_url: str | None = None,
        webhook_type: WebhookType | None = None,
    ) -> str:
        """Blend 2-5 uploaded images; return the task hash."""
        if not 2 <= len(urls) <= 5:
            raise ValueError(f"blend takes 2 to 5 images, got {len(urls)}")
        body = compact(
            urls=[image.model_dump(mode="json", exclude_none=True) for image in urls],
            account_hash=account_hash,
            **webhook_fields(webhook_url, webhook_type),
        )
        return await self._api.create("/midjourney/v2/blend", body)

    async def reroll(
        self,
        *,
        hash: str,
        prompt: str | None = None,
        webhook_url: str | None = None,
        webhook_type: WebhookType | None = None,
    ) -> str:
        """Run a job's prompt again (the 🔄 button); return the task hash."""
        body = compact(hash=hash, prompt=prompt, **webhook_fields(webhook_url, webhook_type))
        return await self._api.create("/midjourney/v2/reroll", body)

    async def zoom(
        self,
        *,
        hash: str,
        choice: int | None = None,
        prompt: str | None = None,
        webhook_url: str | None = None,
        webhook_type: WebhookType | None = None,
    ) -> str:
        """Zoom out an upscale by `choice` (50 = 2x, 75 = 1.5x) or by a custom `prompt`."""
        if (choice is None) == (prompt is None):
            raise ValueError("zoom takes exactly one of choice or prompt")
        body = compact(
            hash=hash, choice=choice, prompt=prompt, **webhook_fields(webhook_url, webhook_type)
        )
        return await self._api.create("/midjourney/v2/zoom", body)

    async def pan(
        self,
        *,
        hash: str,
        choice: Literal["left", "right", "up", "down"],
        prompt: str | None = None,
        webhook_url: str | None = None,
        webhook_type: WebhookType | None = None,
    ) -> str:
        """Pan an upscale in one direction; return the task hash."""
        body = compact(
            hash=hash, choice=choice, prompt=prompt, **webhook_fields(webhook_url, webhook_type)
        )
        return await self._api.create("/midjourney/v2/pan", body)

    async def info(self, *, account_hash: str, webhook_url: str | None = None) -> str:
        """Ask for an account's subscription info; return the task hash (result via /status)."""
        body = compact(account_hash=account_hash, webhook_url=webhook_url)
        return await self._api.create("/midjourney/v2/info", body)

    # --- synchronous account settings ------------------------------------------------------

    async def prefer(self, *, account_hash: str, choice: str = "remix") -> Task:
        """Toggle remix mode on an account; return the finished task (result "on" or "off")."""
        body = {"account_hash": account_hash, "choice": choice, "is_async": False}
        return await self._api.sync_task("/midjourney/v2/prefer", body)

    async def speed(self, *, account_hash: str, choice: Literal["relax", "fast", "turbo"]) -> Task:
        """Switch an account's speed mode; return the finished task."""
        body = {"account_hash": account_hash, "choice": choice, "is_async": False}
        return await self._api.sync_task("/midjourney/v2/speed", body)

    # --- uploads ------------------------------------------------------------------------------

    async def upload(
        self,
        *,
        image: bytes,
        filename: str,
        content_type: str,
        account_hash: str | None = None,
    ) -> UploadResult:
        """Upload png/jpg bytes to Discord as multipart; return where the image now lives."""
        files = {"image": (filename, image, content_type)}
        data = compact(account_hash=account_hash)
        payload = await self._api.send(
            "POST", "/midjourney/v2/upload", files=files, data=data, retry=Retry.UNSENT_ONLY
        )
        return parse_payload(UploadResult, unwrap(payload), what="upload result")

    async def upload_url(self, *, url: str, account_hash: str | None = None) -> UploadResult:
        """Have the API fetch a png/jpg from `url` into Discord; return where it now lives."""
        payload = await self._api.post(
            "/midjourney/v2/upload", compact(url=url, account_hash=account_hash)
        )
        return parse_payload(UploadResult, unwrap(payload), what="upload result")

    # --- reads --------------------------------------------------------------------------------

    async def status(self, *, hash: str) -> Task:
        """Read a task's current state."""
        payload = await self._api.send(
            "GET", "/midjourney/v2/status", params={"hash": hash}, retry=Retry.IDEMPOTENT
        )
        return parse_payload(Task, unwrap(payload), what="task")

    async def discord_info(self, *, account_hash: str) -> DiscordAccount:
        """Read a Discord account's state (its token is dropped)."""
        payload = await self._api.send(
            "GET", "/discord/info", params={"account_hash": account_hash}, retry=Retry.IDEMPOTENT
        )
        return parse_payload(DiscordAccount, unwrap(payload), what="discord account")

    async def fetch(self, url: str, *, max_bytes: int) -> bytes:
        """Download a small file (a preview, an image to edit) into memory."""
        return await self._downloads.fetch(url, max_bytes=max_bytes)

    async def download(self, url: str, sink: BinaryIO, *, max_bytes: int) -> int:
        """Stream a file into `sink` (never with the api key), up to `max_bytes`; its size."""
        return await self._downloads.download(url, sink, max_bytes=max_bytes)
