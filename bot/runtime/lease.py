"""Leadership: the one replica that may do what only one may (poll Telegram, poll userapi).

With Redis, the leader holds a key with an expiry and renews it; a replica that dies stops
renewing, the key expires, and a standby takes it within `ttl` + one `retry`. Without Redis
there is one replica, and it leads from the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# Renew (or take over) only if the key is still ours (or gone): compare and set in one step.
_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 1
end
return 0
"""
# Let go only of our own lease (a late release must not end a successor's).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class Lease(Protocol):
    """The right to lead, held while `leading()` is entered."""

    def leading(self) -> contextlib.AbstractAsyncContextManager[asyncio.Event]:
        """Wait to lead; inside, the event is set when the lead is lost."""
        ...


class SoleLease:
    """One replica: it leads at once and never loses the lead."""

    @contextlib.asynccontextmanager
    async def leading(self) -> AsyncIterator[asyncio.Event]:
        """Lead now."""
        yield asyncio.Event()


class RedisLease:
    """A lease on a Redis key, renewed while held; standbys retry until it is free."""

    def __init__(
        self,
        redis: Redis,
        name: str,
        *,
        ttl: float = 15.0,
        renew: float = 4.0,
        retry: float = 2.0,
        margin: float = 1.0,
    ) -> None:
        self._redis = redis
        self.key = f"mjbot:lease:{name}"
        self.ttl = ttl
        self.renew = renew
        self.retry = retry
        # The lead is given up this long before the key may expire: the leader's work takes
        # a moment to stop, and must have stopped before a standby can start.
        self.margin = margin
        if not 0 <= margin < ttl - renew:
            raise ValueError("the lease's margin must leave time to renew within its ttl")
        # Who we are in the key's value: unique per process and per lease.
        self.holder = secrets.token_hex(8)

    async def _claim(self) -> bool:
        result = await self._redis.eval(_RENEW, 1, self.key, self.holder, int(self.ttl * 1000))
        return bool(result)

    @contextlib.asynccontextmanager
    async def leading(self) -> AsyncIterator[asyncio.Event]:
        """Wait until the lease is ours; keep it renewed inside; let it go on the way out."""
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            try:
                if await self._claim():
                    break
            except (RedisError, OSError) as error:
                # A standby outlives a Redis blip: it just can't take over meanwhile.
                log.warning("Lease %s not claimable: %s", self.key, error)
            await asyncio.sleep(self.retry)
        log.info("Leading (%s)", self.key)
        lost = asyncio.Event()
        keeper = asyncio.create_task(self._keep(lost, asked + self.ttl))
        try:
            yield lost
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            # Handing over now, not when the key expires: a rolling deploy's successor
            # starts at once.
            with contextlib.suppress(RedisError, OSError):
                await self._redis.eval(_RELEASE, 1, self.key, self.holder)

    async def _keep(self, lost: asyncio.Event, expires: float) -> None:
        """Renew until the lease can't be kept, or may expire soon; then say it was lost."""
        # `expires` (loop time) is the soonest the key may expire: `ttl` after the last renewal
        # that succeeded was sent (Redis set the expiry a little later). With Redis out of reach
        # the lead ends `margin` before then, a renewal still waiting cut short: a standby may
        # lead from then on, and two leaders would poll Telegram in turn (409 Conflict).
        loop = asyncio.get_running_loop()
        while True:
            deadline = expires - self.margin
            await asyncio.sleep(max(0.0, min(self.renew, deadline - loop.time())))
            asked = loop.time()
            if asked >= deadline:
                log.warning("Lost the lead (%s): not renewed in time", self.key)
                break
            try:
                async with asyncio.timeout_at(deadline):
                    held = await self._claim()
            except (RedisError, OSError) as error:  # OSError covers the timeout too
                reason = str(error) or type(error).__name__
                log.warning("Lease %s not renewed: %s", self.key, reason)
                continue
            if not held:
                log.warning("Lost the lead (%s): another replica holds it", self.key)
                break
            expires = asked + self.ttl
        lost.set()


async def while_leading(
    lease: Lease,
    work: Callable[[], Coroutine[Any, Any, None]],
    stop: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Run `work` whenever this replica leads, and wait to lead again when it loses the lead.

    A lost lead ends the work with `stop` (graceful) when given, else by cancelling it. Work
    that ends by itself ends this too.
    """
    while True:
        async with lease.leading() as lost:
            running = asyncio.create_task(work())
            losing = asyncio.create_task(lost.wait())
            try:
                await asyncio.wait({running, losing}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                losing.cancel()
                if not running.done():
                    if stop is not None:
                        await stop()
                    else:
                        running.cancel()
                await asyncio.gather(running, losing, return_exceptions=True)
            if not lost.is_set():
                running.result()  # ended by itself (or failed): so do we
                return
