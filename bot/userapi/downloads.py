"""Files from userapi's side: results and previews, streamed, size-capped, never with the key.

Only the API's own origin or https on public addresses is fetched, every redirect checked the
same way (bot/userapi/netsafe.py); a refused URL is final, other failures are retried.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Callable
from typing import BinaryIO

import httpx

from bot.userapi.netsafe import UnsafeURLError, URLPolicy, pinned
from bot.userapi.wire import UserAPIError, log_exchange, retry_after_of

logger = logging.getLogger("bot.userapi.client")

# Redirects followed by a download (each one checked like the first URL).
MAX_REDIRECTS = 5
# Every file fetched counts under one metrics endpoint: its URL is no label (unbounded, private).
DOWNLOAD = "download"


class Downloads:
    """Streams files over the client's connection pool, within the URL policy."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        urls: URLPolicy,
        attempts: int,
        delay: Callable[[int, float | None], float | None],
    ) -> None:
        self._http = http
        self._urls = urls
        self._attempts = attempts
        self._delay = delay

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

    async def _download_once(
        self, target: httpx.URL, label: str, max_bytes: int, started: float, sink: BinaryIO
    ) -> int:
        """One streamed download attempt, each redirect checked like the first URL."""
        try:
            for _hop in range(MAX_REDIRECTS + 1):
                addresses = await self._urls.check(target)
                with pinned(target, addresses):
                    async with self._http.stream("GET", target) as response:
                        log_exchange(
                            "GET", label, response.status_code, started, endpoint=DOWNLOAD
                        )
                        location = response.headers.get("location")
                        if not (response.is_redirect and location):
                            return await self._receive(response, label, max_bytes, sink)
                target = target.join(location)
                label = f"{target.host}{target.path}"
            raise UserAPIError(None, f"too many redirects fetching {label}")
        except httpx.TimeoutException as exc:
            log_exchange("GET", label, None, started, endpoint=DOWNLOAD)
            raise UserAPIError(None, f"timed out fetching {label}") from exc
        except httpx.TransportError as exc:
            log_exchange("GET", label, None, started, endpoint=DOWNLOAD)
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
                retry_after=retry_after_of(response),
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
