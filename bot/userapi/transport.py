"""Requests to userapi.ai: the api-key header, JSON in and out, and which may be repeated."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from enum import Enum
from typing import Any

import httpx

from bot.userapi.models import Task
from bot.userapi.wire import (
    UserAPIError,
    error_from,
    hash_of,
    log_exchange,
    message_of,
    parse_payload,
    snippet,
    unwrap,
)

logger = logging.getLogger("bot.userapi.client")


class Retry(Enum):
    """Which failures a request may be repeated after."""

    # Job-creating and state-toggling POSTs: a repeat after the request may have reached the
    # server can start (and bill) a second job or toggle remix back, so only failures where the
    # request provably never left (no connection was made) are retried.
    UNSENT_ONLY = "unsent-only"
    # Read-only GETs: repeat on any network error, 429 and 5xx.
    IDEMPOTENT = "idempotent"


class Transport:
    """Sends API requests with the key and retries what may safely be repeated."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        api_key: str,
        *,
        attempts: int,
        backoff: float,
        max_retry_after: float,
    ) -> None:
        self._http = http
        self._api_key = api_key
        self.attempts = attempts
        self._backoff = backoff
        self._max_retry_after = max_retry_after

    async def create(self, path: str, body: Mapping[str, Any]) -> str:
        """POST a job-creating request and return the new task's hash."""
        return hash_of(unwrap(await self.post(path, body)))

    async def sync_task(self, path: str, body: Mapping[str, Any]) -> Task:
        """POST a synchronous request whose answer is a finished task."""
        payload = unwrap(await self.post(path, body))
        return parse_payload(Task, payload, what="task")

    async def post(self, path: str, body: Mapping[str, Any]) -> Any:
        """POST a JSON body, retrying only when it was never sent."""
        return await self.send("POST", path, json=body, retry=Retry.UNSENT_ONLY)

    async def send(
        self,
        method: str,
        path: str,
        *,
        retry: Retry,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> Any:
        """Send one API request with the key, apply the retry policy, return the decoded JSON."""
        headers = {"api-key": self._api_key}
        for attempt in range(1, self.attempts + 1):
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
            except httpx.TransportError as exc:
                log_exchange(method, path, None, started)
                # No connection was made, so nothing reached the server: safe to repeat even
                # for a paid job. Anything later is repeated only for read-only requests.
                unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                if attempt < self.attempts and (unsent or retry is Retry.IDEMPOTENT):
                    await asyncio.sleep(self._backoff * 2 ** (attempt - 1))
                    continue
                raise self._redacted(network_error(exc)) from exc
            log_exchange(method, path, response.status_code, started)
            if response.is_success:
                payload = self._decode(response)
                if isinstance(payload, dict) and payload.get("status") is False:
                    # A 2xx can still carry a refusal; it is final, so no retry either way.
                    message = message_of(payload) or "the API reported a failure"
                    raise self._redacted(UserAPIError(response.status_code, message))
                return payload
            error = self._redacted(error_from(response))
            if retry is Retry.IDEMPOTENT and error.retryable and attempt < self.attempts:
                delay = self.delay(attempt, error.retry_after)
                if delay is not None:
                    logger.debug("%s %s: %s, retry in %.2fs", method, path, error, delay)
                    await asyncio.sleep(delay)
                    continue
            raise error
        raise AssertionError("unreachable: the last attempt returns or raises")

    def delay(self, attempt: int, retry_after: float | None) -> float | None:
        """The wait before the next attempt, or None when the server asks for too long a wait."""
        if retry_after is None:
            return float(self._backoff * 2 ** (attempt - 1))
        return retry_after if retry_after <= self._max_retry_after else None

    def _decode(self, response: httpx.Response) -> Any:
        """Decode a 2xx body as JSON, or fail with a short description of what came instead."""
        try:
            return response.json()
        except ValueError as exc:
            text = snippet(response.text)
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


def network_error(exc: httpx.TransportError) -> UserAPIError:
    """The error for a request that got no answer, saying how it failed."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return UserAPIError(None, f"cannot connect to userapi: {type(exc).__name__}")
    if isinstance(exc, httpx.TimeoutException):
        return UserAPIError(None, f"userapi timed out ({type(exc).__name__})")
    return UserAPIError(None, f"network error talking to userapi: {exc!r}")
