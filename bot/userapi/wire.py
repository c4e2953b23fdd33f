"""The wire side of the userapi.ai API: its one error type, and the shapes its answers come in."""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from bot.runtime.metrics import USERAPI_REQUEST_SECONDS, USERAPI_REQUESTS

logger = logging.getLogger("bot.userapi.client")

_M = TypeVar("_M", bound=BaseModel)

_MESSAGE_KEYS = ("error", "message", "detail")
_SNIPPET_CHARS = 200


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


def compact(**fields: Any) -> dict[str, Any]:
    """A JSON body without its None fields: the API tells an absent field from a null one."""
    return {key: value for key, value in fields.items() if value is not None}


def webhook_fields(url: str | None, kind: str | None) -> dict[str, str]:
    """The webhook fields; the type means nothing without a url, so it goes only with one."""
    if url is None:
        return {}
    return {"webhook_url": url} if kind is None else {"webhook_url": url, "webhook_type": kind}


def unwrap(payload: Any) -> Any:
    """Strip the `{"status": true, "result": ...}` envelope some answers come in."""
    if isinstance(payload, dict) and payload.get("status") is True and "result" in payload:
        return payload["result"]
    return payload


def looks_like_task(payload: Mapping[str, Any]) -> bool:
    """Whether a dict is a whole task object rather than a bare `{"hash": ...}` answer."""
    return "type" in payload or "result" in payload or isinstance(payload.get("status"), str)


def hash_of(payload: Any) -> str:
    """The task hash of a job-creating answer (`{"hash"}`, enveloped, or a whole task)."""
    if isinstance(payload, dict):
        value = payload.get("hash")
        if isinstance(value, str) and value:
            return value
    raise UserAPIError(200, f"the API answered without a task hash: {snippet(repr(payload))}")


def parse_payload(model: type[_M], payload: Any, *, what: str) -> _M:
    """Validate a payload into a model; a shape we cannot read is an API error, not a crash."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise UserAPIError(
            200, f"unexpected {what} shape ({exc.error_count()} errors): {snippet(repr(payload))}"
        ) from exc


def message_of(payload: Mapping[str, Any]) -> str | None:
    """The API's own error message, from whichever key carries it."""
    for key in _MESSAGE_KEYS:
        value = payload.get(key)
        if value is None or value == "":
            continue
        return snippet(value if isinstance(value, str) else repr(value))
    return None


def error_from(response: httpx.Response) -> UserAPIError:
    """An error for a non-2xx answer, with the API's message when the body has one."""
    message: str | None = None
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        message = message_of(payload)
    if message is None:
        text = snippet(response.text)
        message = (
            f"HTTP {response.status_code}: {text}" if text else f"HTTP {response.status_code}"
        )
    return UserAPIError(response.status_code, message, retry_after=retry_after_of(response))


def retry_after_of(response: httpx.Response) -> float | None:
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


def snippet(text: str) -> str:
    """Whitespace-collapsed text cut to a log-friendly length."""
    return " ".join(text.split())[:_SNIPPET_CHARS]


def log_exchange(
    method: str, path: str, status: int | None, started: float, *, endpoint: str | None = None
) -> None:
    """One debug line and the metrics per HTTP exchange (never the headers, so never the key).

    The metric's endpoint is an API path without its version prefix (a fixed set, params never
    in it), or what the caller names: a download's URL would make a new series per file.
    """
    elapsed = time.monotonic() - started
    logger.debug("%s %s -> %s in %.0f ms", method, path, status or "no response", elapsed * 1000)
    if endpoint is None:
        endpoint = path.removeprefix("/midjourney/v2/").strip("/")
    USERAPI_REQUESTS.labels(endpoint, str(status) if status else "network").inc()
    USERAPI_REQUEST_SECONDS.labels(endpoint).observe(elapsed)
