"""Telegram's limits shared by replicas: one budget in Redis, taken by an atomic script.

Each replica keeps its own `RateLimiter` (its queue, its priorities); with replicas, it asks
this budget, for its waiting requests in its order, which may go now. The budget counts every
replica's requests the same way: a sliding window overall and per group (a request counts from
its grant until one window after its answer), a token bucket per private chat, and a 429's
retry_after held for all. The script runs on Redis' clock, so replicas whose clocks differ
still agree.

When Redis can't be reached, requests go on under the replica's own limits (a warning says
so): a result is worth more than a perfect budget.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.telegram.rate_windows import Scope
from bot.telegram.ratelimit import Limits, is_group

# A request to ask the budget for: a number the asker gives it once (the same in each ask),
# its chat (None: no chat's limit), the slots it must leave free in each limit for others.
Ask = tuple[int, int | str | None, dict[Scope, int]]

log = logging.getLogger(__name__)

# A request whose answer never comes (its replica died) stops counting after this long.
IN_FLIGHT_CAP = 30.0
# A limit full of requests not answered yet frees when one is: asked again after this long.
IN_FLIGHT_PAUSE = 0.05
# A Redis outage is reported at most this often.
WARN_EVERY = 60.0

# KEYS: global window, global hold, then for each request: its chat's bucket, hold, window.
# ARGV: chat rate, chat burst, group window, group most, global window, global most, cap, the
#       pause while the limit is full of requests still waiting for their answer, then for
#       each request: id, has chat (0/1), is group (0/1), chat need, group need, global need.
# Lets the requests through in order, as many as the limits allow (each is counted), as the
# local `_grant` does: one that needs more of the overall window than is free stops the rest
# (they need as much or more), one held back by its chat is skipped. Returns the seconds until
# one not let through may go (as a string: Lua numbers become integers), then the 1-based
# positions of those let through.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local group_window, group_most = tonumber(ARGV[3]), tonumber(ARGV[4])
local global_window, global_most = tonumber(ARGV[5]), tonumber(ARGV[6])
local cap, pause = tonumber(ARGV[7]), tonumber(ARGV[8])

local function held(key)
  local untill = tonumber(redis.call('GET', key) or '0')
  return math.max(0, untill - now)
end

local function window_wait(key, window, most, need)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  local short = redis.call('ZCARD', key) + math.min(need, most) - most
  if short <= 0 then return 0 end
  local item = redis.call('ZRANGE', key, short - 1, short - 1, 'WITHSCORES')
  local frees = tonumber(item[2]) - now
  -- Still in flight (no answer yet): its window starts when it is answered; look again soon.
  if frees > window then return pause end
  return frees
end

local soonest = held(KEYS[2])
if soonest > 0 then return {tostring(soonest)} end
soonest = math.huge
local granted = {}
for i = 0, (#ARGV - 8) / 6 - 1 do
  local a, k = 9 + i * 6, 3 + i * 3
  local overall = window_wait(KEYS[1], global_window, global_most, tonumber(ARGV[a + 5]))
  if overall > 0 then
    soonest = math.min(soonest, overall)
    break
  end
  local wait, tokens = 0, 0
  local has_chat, is_group = ARGV[a + 1] == '1', ARGV[a + 2] == '1'
  if has_chat then
    wait = held(KEYS[k + 1])
    local bucket = redis.call('HMGET', KEYS[k], 'tokens', 'stamp')
    tokens = tonumber(bucket[1]) or burst
    local stamp = tonumber(bucket[2]) or now
    if now > stamp then tokens = math.min(burst, tokens + (now - stamp) * rate) end
    local need = math.min(tonumber(ARGV[a + 3]), burst)
    if tokens < need - 1e-9 then wait = math.max(wait, (need - tokens) / rate) end
    if is_group then
      local group = window_wait(KEYS[k + 2], group_window, group_most, tonumber(ARGV[a + 4]))
      wait = math.max(wait, group)
    end
  end
  if wait > 0 then
    soonest = math.min(soonest, wait)
  else
    redis.call('ZADD', KEYS[1], now + cap, ARGV[a])
    redis.call('PEXPIRE', KEYS[1], math.ceil((cap + global_window) * 1000))
    if has_chat then
      redis.call('HSET', KEYS[k], 'tokens', tokens - 1, 'stamp', now)
      redis.call('PEXPIRE', KEYS[k], math.ceil(burst / rate * 1000) + 1000)
      if is_group then
        redis.call('ZADD', KEYS[k + 2], now + cap, ARGV[a])
        redis.call('PEXPIRE', KEYS[k + 2], math.ceil((cap + group_window) * 1000))
      end
    end
    granted[#granted + 1] = i + 1
  end
end
if soonest == math.huge then soonest = 0 end
local answer = {tostring(soonest)}
for _, position in ipairs(granted) do answer[#answer + 1] = position end
return answer
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

# KEYS: global window, chat bucket, chat hold, group window. ARGV: id, has chat (0/1), is group
# (0/1), chat burst. A request let through but not sent: it stops counting, its token returns.
_GIVE_BACK = """
redis.call('ZREM', KEYS[1], ARGV[1])
if ARGV[2] == '1' then
  local tokens = tonumber(redis.call('HGET', KEYS[2], 'tokens'))
  if tokens then redis.call('HSET', KEYS[2], 'tokens', math.min(tonumber(ARGV[4]), tokens + 1)) end
  if ARGV[3] == '1' then redis.call('ZREM', KEYS[4], ARGV[1]) end
end
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
        self._give_back = redis.register_script(_GIVE_BACK)
        self._warned_at = -WARN_EVERY
        # Request ids: this budget's own prefix, then the asker's number for the request.
        self._me = uuid.uuid4().hex[:16]

    def _global_keys(self) -> list[str]:
        return [self._prefix + "global", self._prefix + "global:hold"]

    def _chat_keys(self, chat_id: int | str | None) -> list[str]:
        """A chat's bucket, its hold, its window (a group's); unused without a chat."""
        chat = self._prefix + f"chat:{chat_id}"
        return [chat, chat + ":hold", chat + ":window"]

    async def take(self, asks: Sequence[Ask]) -> tuple[list[str], float] | None:
        """Let through those of `asks` (in order) the budget allows now, each leaving its
        reserves free for more urgent ones.

        Returns each ask's request id for `release` ("" if it must wait) and the seconds until
        one still waiting may go; None when Redis is out of reach.
        """
        limits = self.limits
        keys = self._global_keys()
        args: list[str | int | float] = [
            limits.chat_rate,
            limits.chat_burst,
            limits.group_window,
            limits.group_most,
            limits.global_window,
            limits.global_most,
            IN_FLIGHT_CAP,
            IN_FLIGHT_PAUSE,
        ]
        requests = [f"{self._me}:{number}" for number, _chat, _reserves in asks]
        for (_number, chat_id, reserves), request in zip(asks, requests, strict=True):
            keys += self._chat_keys(chat_id)
            group = chat_id is not None and is_group(chat_id)
            args += [
                request,
                int(chat_id is not None),
                int(group),
                1 + reserves["chat"],
                1 + reserves["group"],
                1 + reserves["global"],
            ]
        try:
            answer = await self._take(keys=keys, args=args)
        except (RedisError, OSError) as error:
            self._outage(error)
            return None
        let_through = {int(position) - 1 for position in answer[1:]}
        granted = [r if n in let_through else "" for n, r in enumerate(requests)]
        return granted, float(answer[0])

    async def release(self, chat_id: int | str | None, request: str) -> None:
        """A request let through has its answer: it counts one window more from now."""
        if not request:
            return
        overall = self._global_keys()[0]
        group = chat_id is not None and is_group(chat_id)
        try:
            await self._done(
                keys=[overall, self._chat_keys(chat_id)[2] if group else overall],
                args=[request, self.limits.global_window, self.limits.group_window],
            )
        except (RedisError, OSError) as error:
            self._outage(error)

    async def give_back(self, chat_id: int | str | None, request: str) -> None:
        """A request let through that was not sent after all: it never counted."""
        group = chat_id is not None and is_group(chat_id)
        try:
            await self._give_back(
                keys=self._global_keys()[:1] + self._chat_keys(chat_id),
                args=[request, int(chat_id is not None), int(group), self.limits.chat_burst],
            )
        except (RedisError, OSError) as error:
            self._outage(error)

    async def retry_after(self, chat_id: int | str | None, seconds: float) -> None:
        """Telegram answered 429: every replica holds this chat (or everything) back."""
        hold = self._global_keys()[1] if chat_id is None else self._chat_keys(chat_id)[1]
        try:
            await self._hold(keys=[hold], args=[seconds])
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
