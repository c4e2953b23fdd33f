"""Telegram's limits shared by replicas: one budget in Redis, taken by an atomic script.

Each replica keeps its own `RateLimiter` (its queue, its priorities); with replicas, a request
it lets through must also pass this budget, which counts every replica's requests the same
way: a sliding window overall and per group (a request counts from its grant until one window
after its answer), a token bucket per private chat, and a 429's retry_after held for all. The
script runs on Redis' clock, so replicas whose clocks differ still agree.

When Redis can't be reached, requests go on under the replica's own limits (a warning says
so): a result is worth more than a perfect budget.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.telegram.rate_windows import Scope
from bot.telegram.ratelimit import Limits, is_group

log = logging.getLogger(__name__)

# A request whose answer never comes (its replica died) stops counting after this long.
IN_FLIGHT_CAP = 30.0
# A limit full of requests not answered yet frees when one is: asked again after this long.
IN_FLIGHT_PAUSE = 0.05
# Between two asks for a slot: not less (Redis is asked again), not more (a slot is missed).
MIN_PAUSE, MAX_PAUSE = 0.005, 0.5
# A Redis outage is reported at most this often.
WARN_EVERY = 60.0

# KEYS: global window, global hold, chat bucket, chat hold, group window, group hold.
# ARGV: request id, has chat (0/1), is group (0/1), chat rate, chat burst, chat need,
#       group window, group most, group need, global window, global most, global need, cap,
#       the pause while the limit is full of requests still waiting for their answer.
# Returns "0" when the request may go (it is counted), else the seconds to wait.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local id, has_chat, is_group = ARGV[1], ARGV[2] == '1', ARGV[3] == '1'
local cap = tonumber(ARGV[13])
local wait = 0

local function held(key)
  local untill = tonumber(redis.call('GET', key) or '0')
  if untill > now then wait = math.max(wait, untill - now) end
end

local function window_wait(key, window, most, need)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  local short = redis.call('ZCARD', key) + math.min(need, most) - most
  if short > 0 then
    local item = redis.call('ZRANGE', key, short - 1, short - 1, 'WITHSCORES')
    local frees = tonumber(item[2]) - now
    -- Still in flight (no answer yet): its window starts when it is answered; look again soon.
    if frees > window then frees = tonumber(ARGV[14]) end
    wait = math.max(wait, frees)
  end
end

held(KEYS[2])
window_wait(KEYS[1], tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12]))
local tokens, rate, burst
if has_chat then
  held(KEYS[4])
  rate, burst = tonumber(ARGV[4]), tonumber(ARGV[5])
  local bucket = redis.call('HMGET', KEYS[3], 'tokens', 'stamp')
  tokens = tonumber(bucket[1]) or burst
  local stamp = tonumber(bucket[2]) or now
  if now > stamp then tokens = math.min(burst, tokens + (now - stamp) * rate) end
  local need = math.min(tonumber(ARGV[6]), burst)
  if tokens < need - 1e-9 then wait = math.max(wait, (need - tokens) / rate) end
  if is_group then
    held(KEYS[6])
    window_wait(KEYS[5], tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9]))
  end
end
if wait > 0 then return tostring(wait) end

redis.call('ZADD', KEYS[1], now + cap, id)
redis.call('PEXPIRE', KEYS[1], math.ceil((cap + tonumber(ARGV[10])) * 1000))
if has_chat then
  redis.call('HSET', KEYS[3], 'tokens', tokens - 1, 'stamp', now)
  redis.call('PEXPIRE', KEYS[3], math.ceil(burst / rate * 1000) + 1000)
  if is_group then
    redis.call('ZADD', KEYS[5], now + cap, id)
    redis.call('PEXPIRE', KEYS[5], math.ceil((cap + tonumber(ARGV[7])) * 1000))
  end
end
return '0'
"""

# KEYS: global window, group window (or the global one again). ARGV: id, global window,
# group window. An answered request counts one window more from now.
_DONE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
if KEYS[2] ~= KEYS[1] then redis.call('ZADD', KEYS[2], 'XX', now + tonumber(ARGV[3]), ARGV[1]) end
return 1
"""

# KEYS: the hold. ARGV: seconds. Holds only ever grow.
_HOLD = """
local t = redis.call('TIME')
local untill = tonumber(t[1]) + tonumber(t[2]) / 1e6 + tonumber(ARGV[1])
if untill > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], tostring(untill), 'PX', math.ceil(tonumber(ARGV[1]) * 1000))
end
return 1
"""


class SharedBudget:
    """Telegram's limits for every replica of one bot, kept in Redis."""

    def __init__(self, redis: Redis, bot_id: int, limits: Limits) -> None:
        self._redis = redis
        self._prefix = f"mjbot:{bot_id}:telegram:"
        self.limits = limits
        self._take = redis.register_script(_TAKE)
        self._done = redis.register_script(_DONE)
        self._hold = redis.register_script(_HOLD)
        self._warned_at = -WARN_EVERY

    def _keys(self, chat_id: int | str | None) -> list[str]:
        chat = self._prefix + f"chat:{chat_id}"
        return [
            self._prefix + "global",
            self._prefix + "global:hold",
            chat,
            chat + ":hold",
            chat + ":window",
            chat + ":window:hold",
        ]

    async def acquire(self, chat_id: int | str | None, reserves: dict[Scope, int]) -> str:
        """Wait until the budget lets a request go, leaving `reserves` free in each limit for
        more urgent ones; the request's id, for `release`."""
        limits, request = self.limits, uuid.uuid4().hex
        group = chat_id is not None and is_group(chat_id)
        args: list[str | int | float] = [
            request,
            int(chat_id is not None),
            int(group),
            limits.chat_rate,
            limits.chat_burst,
            1 + reserves["chat"],
            limits.group_window,
            limits.group_most,
            1 + reserves["group"],
            limits.global_window,
            limits.global_most,
            1 + reserves["global"],
            IN_FLIGHT_CAP,
            IN_FLIGHT_PAUSE,
        ]
        while True:
            try:
                wait = float(await self._take(keys=self._keys(chat_id), args=args))
            except (RedisError, OSError) as error:
                self._outage(error)
                return ""
            if wait <= 0:
                return request
            await asyncio.sleep(min(MAX_PAUSE, max(MIN_PAUSE, wait)))

    async def release(self, chat_id: int | str | None, request: str) -> None:
        """A request let through has its answer: it counts one window more from now."""
        if not request:
            return
        keys = self._keys(chat_id)
        window = keys[4] if chat_id is not None and is_group(chat_id) else keys[0]
        try:
            await self._done(
                keys=[keys[0], window],
                args=[request, self.limits.global_window, self.limits.group_window],
            )
        except (RedisError, OSError) as error:
            self._outage(error)

    async def retry_after(self, chat_id: int | str | None, seconds: float) -> None:
        """Telegram answered 429: every replica holds this chat (or everything) back."""
        keys = self._keys(chat_id)
        try:
            await self._hold(keys=[keys[1] if chat_id is None else keys[3]], args=[seconds])
        except (RedisError, OSError) as error:
            self._outage(error)

    def _outage(self, error: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            log.warning(
                "Redis is out of reach (%s): Telegram's limits are kept per replica meanwhile",
                type(error).__name__,
            )
