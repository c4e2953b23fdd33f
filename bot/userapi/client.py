"""A typed async client for the userapi.ai Midjourney API: one keyword-only method per endpoint."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import io
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from enum import Enum
from types import TracebackType
from typing import Any, BinaryIO, Literal, Self, TypeVar

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from bot.userapi.models import BlendImage, DiscordAccount, Task, UploadResult
from bot.userapi.netsafe import Resolver, UnsafeURLError, URLPolicy

logger = logging.getLogger(__name__)

_M = TypeVar("_M", bound=BaseModel)

WebhookType = Literal["progress", "result"]

_MESSAGE_KEYS = ("error", "message", "detail")
_SNIPPET_CHARS = 200
# Redirects followed by a download (each one checked like the first URL).
MAX_REDIRECTS = 5


class UserAPIError(Exception):
    """Any failure talking to userapi.ai: an HTTP error, an error body, or no answer at all."""

    def __init__(
        self,
        status: int | None,
        message: str,
        *,
        retry_after: float | None = None,
        retryable: bool | None = None,
    ) -> None:
        self.status = status
        self._retryable = retryable
        self.message = message
        # Seconds the server asked to wait (429/503), for callers that schedule their own retry.
        self.retry_after = retry_after
        super().__init__(f"userapi error {status}: {message}" if status else message)

    @property
    def retryable(self) -> bool:
        """Whether the same request may succeed later: no answer, rate limit or server error."""
        if self._retryable is not None:
            return self._retryable
        return self.status is None or self.status == 429 or self.status >= 500

    @property
    def is_auth_error(self) -> bool:
        """Whether the API key was rejected."""
        return self.status in (401, 403)


class _Retry(Enum):
    """Which failures a request may be repeated after."""

    # Job-creating and state-toggling POSTs: a repeat after the request may have reached the
    # server can start (and bill) a second job or toggle remix back, so only failures where the
    # request provably never left (no connection was made) are retried.
    UNSENT_ONLY = "unsent-only"
    # Read-only GETs: repeat on any network error, 429 and 5xx.
    IDEMPOTENT = "idempotent"


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
        self._api_key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        self._attempts = max(1, retry_attempts)
        self._backoff = retry_backoff
        self._max_retry_after = max_retry_after
        # No default headers: the key is added per API request so that fetch() of a CDN url
        # can never carry it to a third-party host.
        self._http = httpx.AsyncClient(
            base_url=base_url, timeout=httpx.Timeout(timeout), transport=transport
        )
        # Files come only from the API's own origin or from https on public addresses.
        self.urls = URLPolicy([base_url], resolve)

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
        body = _compact(
            prompt=prompt,
            account_hash=account_hash,
            is_disable_prefilter=is_disable_prefilter,
            **_webhook(webhook_url, webhook_type),
        )
        return await self._create("/midjourney/v2/imagine", body)

    async def animate(
        self,
        *,
        hash: str,
        choice: Literal["high", "low"],
        webhook_url: str | None = None,
        webhook_type: WebhookType | None = None,
    ) -> str:
        """Animate an upscale (high or low motion); return the task hash."""
        body = _compact(hash=hash, choice=choice, **_webhook(webhook_url, webhook_type))
        return await self._create("/midjourney/v2/animate", body)

    async def describe(
        self,
        *,
        url: str,
        webhook_url: str | None = None,
        webhook_type: WebhookType | None = None,
        account_hash: str | None = None,
    ) -> str:
        """Ask for four prompts describing the image at `url`; return the task hash."""
        body = _compact(url=url, account_hash=account_hash, **_webhook(webhook_url, webhook_type))
        return await self._create("/midjourney/v2/describe", body)

    async def upscale(
        self,
        *,
        hash: str,
        choice: int,
        webhook_url: str | None = None,
        webhook_type: WebhookType | None = None,
    ) -> str:
        """Upscale image `choice` (1-4) of a grid; return the task hash."""
        body = _compact(hash=hash, choice=choice, **_webhook(webhook_url, webhook_type))
        return await self._create("/midjourney/v2/upscale", body)

    async def upsample(
        self,
        *,
        hash: str,
        choice: str,
        webhook_url: str | None = None,
        webhook_type: WebhookType | None = None,
    ) -> str:
        """Upscale an upscale again (subtle/creative/2x/4x by version); return the task hash."""
        body = _compact(hash=hash, choice=choice, **_webhook(webhook_url, webhook_type))
        return await self._create("/midjourney/v2/upsample", body)

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
        body = _compact(
            hash=hash, choice=choice, prompt=prompt, **_webhook(webhook_url, webhook_type)
        )
        return await self._create("/midjourney/v2/variation", body)

    async def seed(self, *, hash: str, webhook_url: str | None = None) -> str | Task:
        """Ask for a grid's seed asynchronously; return the hash, or the task if sent one."""
        body = _compact(hash=hash, is_async=True, webhook_url=webhook_url)
        payload = _unwrap(await self._post("/midjourney/v2/seed", body))
        if isinstance(payload, dict) and _looks_like_task(payload):
            return _parse(Task, payload, what="seed task")
        return _hash_of(payload)

    async def vary_subtle(
        self,
        *,
        hash: str,
        prompt: str | None = None,
        webhook_url: str | None = None,
        webhook_type: WebhookType | None = None,
    ) -> str:
        """Vary (Subtle) an upscale; return the task hash."""
        body = _compact(hash=hash, prompt=prompt, **_webhook(webhook_url, webhook_type))
        return await self._create("/midjourney/v2/vary-subtle", body)

    async def vary_strong(
        self,
        *,
        hash: str,
        prompt: str | None = None,
        webhook_url: str | None = None,
        webhook_type: WebhookType | None = None,
    ) -> str:
        """Vary (Strong) an upscale; return the task hash."""
        body = _compact(hash=hash, prompt=prompt, **_webhook(webhook_url, webhook_type))
        return await self._create("/midjourney/v2/vary-strong", body)

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
        body = _compact(hash=hash, mask=mask, prompt=prompt, **_webhook(webhook_url, webhook_type))
        return await self._create("/midjourney/v2/inpaint", body)

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
        body = _compact(
            urls=[image.model_dump(mode="json", exclude_none=True) for image in urls],
            account_hash=account_hash,
            **_webhook(webhook_url, webhook_type),
        )
        return await self._create("/midjourney/v2/blend", body)

    async def reroll(
        self,
        *,
        hash: str,
        prompt: str | None = None,
        webhook_url: str | None = None,
        webhook_type: WebhookType | None = None,
    ) -> str:
        """Run a job's prompt again (the 🔄 button); return the task hash."""
        body = _compact(hash=hash, prompt=prompt, **_webhook(webhook_url, webhook_type))
        return await self._create("/midjourney/v2/reroll", body)

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
        body = _compact(
            hash=hash, choice=choice, prompt=prompt, **_webhook(webhook_url, webhook_type)
        )
        return await self._create("/midjourney/v2/zoom", body)

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
        body = _compact(
            hash=hash, choice=choice, prompt=prompt, **_webhook(webhook_url, webhook_type)
        )
        return await self._create("/midjourney/v2/pan", body)

    async def info(self, *, account_hash: str, webhook_url: str | None = None) -> str:
        """Ask for an account's subscription info; return the task hash (result via /status)."""
        body = _compact(account_hash=account_hash, webhook_url=webhook_url)
        return await self._create("/midjourney/v2/info", body)

    # --- synchronous account settings ------------------------------------------------------

    async def prefer(self, *, account_hash: str, choice: str = "remix") -> Task:
        """Toggle remix mode on an account; return the finished task (result "on" or "off")."""
        body = {"account_hash": account_hash, "choice": choice, "is_async": False}
        return await self._sync_task("/midjourney/v2/prefer", body)

    async def speed(self, *, account_hash: str, choice: Literal["relax", "fast", "turbo"]) -> Task:
        """Switch an account's speed mode; return the finished task."""
        body = {"account_hash": account_hash, "choice": choice, "is_async": False}
        return await self._sync_task("/midjourney/v2/speed", body)

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
        data = _compact(account_hash=account_hash)
        payload = await self._send(
            "POST", "/midjourney/v2/upload", files=files, data=data, retry=_Retry.UNSENT_ONLY
        )
        return _parse(UploadResult, _unwrap(payload), what="upload result")

    async def upload_url(self, *, url: str, account_hash: str | None = None) -> UploadResult:
        """Have the API fetch a png/jpg from `url` into Discord; return where it now lives."""
        payload = await self._post(
            "/midjourney/v2/upload", _compact(url=url, account_hash=account_hash)
        )
        return _parse(UploadResult, _unwrap(payload), what="upload result")

    # --- reads --------------------------------------------------------------------------------

    async def status(self, *, hash: str) -> Task:
        """Read a task's current state."""
        payload = await self._send(
            "GET", "/midjourney/v2/status", params={"hash": hash}, retry=_Retry.IDEMPOTENT
        )
        return _parse(Task, _unwrap(payload), what="task")

    async def discord_info(self, *, account_hash: str) -> DiscordAccount:
        """Read a Discord account's state (its token is dropped)."""
        payload = await self._send(
            "GET", "/discord/info", params={"account_hash": account_hash}, retry=_Retry.IDEMPOTENT
        )
        return _parse(DiscordAccount, _unwrap(payload), what="discord account")

    async def fetch(self, url: str, *, max_bytes: int) -> bytes:
        """Download a small file (a preview, an image to edit) into memory."""
        buffer = io.BytesIO()
        await self.download(url, buffer, max_bytes=max_bytes)
        return buffer.getvalue()

    async def download(self, url: str, sink: BinaryIO, *, max_bytes: int) -> int:
        """Stream a file into `sink` (never with the api key), up to `max_bytes`; its size."""
        # A retry starts the sink over from its beginning.
        target = httpx.URL(url)
        label = f"{target.host}{target.path}"
        for attempt in range(1, self._attempts + 1):
            started = time.monotonic()
            sink.seek(0)
            sink.truncate()
            try:
                return await self._download_once(target, label, max_bytes, started, sink)
            except UnsafeURLError as unsafe:
                # Final: the same URL is refused the same way next time.
                logger.warning("Download %s", unsafe)
                raise UserAPIError(None, str(unsafe), retryable=False) from unsafe
            except UserAPIError as error:
                if not error.retryable or attempt == self._attempts:
                    raise
                delay = self._delay(attempt, error.retry_after)
                if delay is None:
                    raise
                logger.debug("GET %s failed (%s), retry in %.2fs", label, error, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    # --- plumbing -----------------------------------------------------------------------------

    async def _download_once(
        self, target: httpx.URL, label: str, max_bytes: int, started: float, sink: BinaryIO
    ) -> int:
        """One streamed download attempt, each redirect checked like the first URL."""
        try:
            for _hop in range(MAX_REDIRECTS + 1):
                await self.urls.check(target)
                async with self._http.stream("GET", target) as response:
                    _log("GET", label, response.status_code, started)
                    self.urls.check_peer(target, response)
                    location = response.headers.get("location")
                    if response.is_redirect and location:
                        target = target.join(location)
                        label = f"{target.host}{target.path}"
                        continue
                    return await self._receive(response, label, max_bytes, sink)
            raise UserAPIError(None, f"too many redirects fetching {label}")
        except httpx.TimeoutException as exc:
            _log("GET", label, None, started)
            raise UserAPIError(None, f"timed out fetching {label}") from exc
        except httpx.TransportError as exc:
            _log("GET", label, None, started)
            raise UserAPIError(
                None, f"network error fetching {label}: {type(exc).__name__}"
            ) from exc

    async def _receive(
        self, response: httpx.Response, label: str, max_bytes: int, sink: BinaryIO
    ) -> int:
        """Stream a final answer's body into `sink`, up to `max_bytes`."""
        if not response.is_success:
            raise UserAPIError(
                response.status_code,
                f"HTTP {response.status_code} fetching {label}",
                retry_after=_retry_after(response),
            )
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            raise UserAPIError(
                response.status_code,
                f"{label} is {declared} bytes, over the {max_bytes} byte limit",
            )
        received = 0
        async for chunk in response.aiter_bytes():
            received += len(chunk)
            if received > max_bytes:
                raise UserAPIError(
                    response.status_code,
                    f"{label} is over the {max_bytes} byte limit",
                )
            # A chunk into the page cache takes microseconds: no thread hop for it.
            sink.write(chunk)
        return received

    async def _create(self, path: str, body: Mapping[str, Any]) -> str:
        """POST a job-creating request and return the new task's hash."""
        return _hash_of(_unwrap(await self._post(path, body)))

    async def _sync_task(self, path: str, body: Mapping[str, Any]) -> Task:
        """POST a synchronous request whose answer is a finished task."""
        payload = _unwrap(await self._post(path, body))
        return _parse(Task, payload, what="task")

    async def _post(self, path: str, body: Mapping[str, Any]) -> Any:
        """POST a JSON body, retrying only when it was never sent."""
        return await self._send("POST", path, json=body, retry=_Retry.UNSENT_ONLY)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        retry: _Retry,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> Any:
        """Send one API request with the key, apply the retry policy, return the decoded JSON."""
        headers = {"api-key": self._api_key}
        for attempt in range(1, self._attempts + 1):
            started = time.monotonic()
            try:
                response = await self._http.request(
                    method,
                    path,
                    json=json,
                    params=params,
                    files=files,
                    data=data,
                    headers=headers,
                )
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # No connection was made, so nothing reached the server: safe to repeat even
                # for a paid job. ConnectTimeout subclasses TimeoutException, so it comes first.
                _log(method, path, None, started)
                error = UserAPIError(None, f"cannot connect to userapi: {type(exc).__name__}")
                if attempt < self._attempts:
                    await asyncio.sleep(self._backoff * 2 ** (attempt - 1))
                    continue
                raise error from exc
            except httpx.TimeoutException as exc:
                _log(method, path, None, started)
                error = UserAPIError(None, f"userapi timed out ({type(exc).__name__})")
                if retry is _Retry.IDEMPOTENT and attempt < self._attempts:
                    await asyncio.sleep(self._backoff * 2 ** (attempt - 1))
                    continue
                raise error from exc
            except httpx.TransportError as exc:
                _log(method, path, None, started)
                error = UserAPIError(None, f"network error talking to userapi: {exc!r}")
                if retry is _Retry.IDEMPOTENT and attempt < self._attempts:
                    await asyncio.sleep(self._backoff * 2 ** (attempt - 1))
                    continue
                raise self._redacted(error) from exc
            _log(method, path, response.status_code, started)
            if response.is_success:
                payload = self._decode(response)
                if isinstance(payload, dict) and payload.get("status") is False:
                    # A 2xx can still carry a refusal; it is final, so no retry either way.
                    message = _message_of(payload) or "the API reported a failure"
                    raise self._redacted(UserAPIError(response.status_code, message))
                return payload
            error = self._redacted(_error_from(response))
            if retry is _Retry.IDEMPOTENT and error.retryable and attempt < self._attempts:
                delay = self._delay(attempt, error.retry_after)
                if delay is not None:
                    logger.debug("%s %s: %s, retry in %.2fs", method, path, error, delay)
                    await asyncio.sleep(delay)
                    continue
            raise error
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _delay(self, attempt: int, retry_after: float | None) -> float | None:
        """The wait before the next attempt, or None when the server asks for too long a wait."""
        if retry_after is None:
            return float(self._backoff * 2 ** (attempt - 1))
        return retry_after if retry_after <= self._max_retry_after else None

    def _decode(self, response: httpx.Response) -> Any:
        """Decode a 2xx body as JSON, or fail with a short description of what came instead."""
        try:
            return response.json()
        except ValueError as exc:
            text = _snippet(response.text)
            what = f"not JSON: {text}" if text else "empty body"
            raise self._redacted(
                UserAPIError(response.status_code, f"HTTP {response.status_code}: {what}")
            ) from exc

    def _redacted(self, error: UserAPIError) -> UserAPIError:
        """The same error with the api key cut out, should the server have echoed it."""
        if self._api_key and self._api_key in error.message:
            return UserAPIError(
                error.status,
                error.message.replace(self._api_key, "***"),
                retry_after=error.retry_after,
            )
        return error


def _compact(**fields: Any) -> dict[str, Any]:
    """A JSON body without its None fields: the API tells an absent field from a null one."""
    return {key: value for key, value in fields.items() if value is not None}


def _webhook(url: str | None, kind: str | None) -> dict[str, str]:
    """The webhook fields; the type means nothing without a url, so it goes only with one."""
    if url is None:
        return {}
    return {"webhook_url": url} if kind is None else {"webhook_url": url, "webhook_type": kind}


def _unwrap(payload: Any) -> Any:
    """Strip the `{"status": true, "result": ...}` envelope some answers come in."""
    if isinstance(payload, dict) and payload.get("status") is True and "result" in payload:
        return payload["result"]
    return payload


def _looks_like_task(payload: Mapping[str, Any]) -> bool:
    """Whether a dict is a whole task object rather than a bare `{"hash": ...}` answer."""
    return "type" in payload or "result" in payload or isinstance(payload.get("status"), str)


def _hash_of(payload: Any) -> str:
    """The task hash of a job-creating answer (`{"hash"}`, enveloped, or a whole task)."""
    if isinstance(payload, dict):
        value = payload.get("hash")
        if isinstance(value, str) and value:
            return value
    raise UserAPIError(200, f"the API answered without a task hash: {_snippet(repr(payload))}")


def _parse(model: type[_M], payload: Any, *, what: str) -> _M:
    """Validate a payload into a model; a shape we cannot read is an API error, not a crash."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise UserAPIError(
            200, f"unexpected {what} shape ({exc.error_count()} errors): {_snippet(repr(payload))}"
        ) from exc


def _message_of(payload: Mapping[str, Any]) -> str | None:
    """The API's own error message, from whichever key carries it."""
    for key in _MESSAGE_KEYS:
        value = payload.get(key)
        if value is None or value == "":
            continue
        return _snippet(value if isinstance(value, str) else repr(value))
    return None


def _error_from(response: httpx.Response) -> UserAPIError:
    """An error for a non-2xx answer, with the API's message when the body has one."""
    message: str | None = None
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        message = _message_of(payload)
    if message is None:
        text = _snippet(response.text)
        message = (
            f"HTTP {response.status_code}: {text}" if text else f"HTTP {response.status_code}"
        )
    return UserAPIError(response.status_code, message, retry_after=_retry_after(response))


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), if usable."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _snippet(text: str) -> str:
    """Whitespace-collapsed text cut to a log-friendly length."""
    return " ".join(text.split())[:_SNIPPET_CHARS]


def _log(method: str, path: str, status: int | None, started: float) -> None:
    """One debug line per HTTP exchange (never the headers, so never the key)."""
    elapsed_ms = (time.monotonic() - started) * 1000
    logger.debug("%s %s -> %s in %.0f ms", method, path, status or "no response", elapsed_ms)
