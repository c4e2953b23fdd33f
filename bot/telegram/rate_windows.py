"""What Telegram's limits count with: a token bucket (a chat) and a sliding window (a group,
everything), both asked how long until a request may go, and told when it went and returned."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Literal, Protocol

Scope = Literal["chat", "group", "global"]


class Limit(Protocol):
    """One limit a request must pass: a chat's bucket, a group's or the global window."""

    def wait(self, now: float, need: int) -> float:
        """Seconds until `need` more may go: 0 when they may, inf until a request returns."""

    def take(self) -> None:
        """One request goes now."""

    def done(self, now: float) -> None:
        """A request taken earlier has its answer."""

    def block(self, now: float, seconds: float) -> None:
        """Telegram said to wait: nothing goes for `seconds`."""

    def idle(self, now: float) -> bool:
        """Whether forgetting this limit changes nothing."""


@dataclass(slots=True)
class Bucket:
    """A token bucket: `capacity` tokens, refilled at `rate` per second."""

    rate: float
    capacity: float
    tokens: float
    stamp: float

    def refill(self, now: float) -> None:
        """Add the tokens earned since the last look."""
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def wait(self, now: float, need: float) -> float:
        """Seconds until `need` tokens are there (0 when they are)."""
        self.refill(now)
        # A bucket too small to leave a reserve asks for a full bucket instead.
        need = min(need, self.capacity)
        if self.tokens >= need - 1e-9:
            return 0.0
        return (need - self.tokens) / self.rate

    def take(self) -> None:
        """Spend a token."""
        self.tokens -= 1.0

    def done(self, now: float) -> None:
        """Nothing to do: a bucket counts requests when they go."""

    def block(self, now: float, seconds: float) -> None:
        """Empty the bucket so the next token comes only after `seconds` (Telegram said so)."""
        self.refill(now)
        self.tokens = min(self.tokens, 1.0 - seconds * self.rate)

    def idle(self, now: float) -> bool:
        """Full again."""
        return self.wait(now, math.ceil(self.capacity)) == 0


@dataclass(slots=True)
class Window:
    """At most `most` requests in any `seconds`; one in flight counts until `seconds` after."""

    seconds: float
    most: int
    in_flight: int = 0
    # When answered requests stop counting, oldest first (the clock only moves forward).
    ends: deque[float] = field(default_factory=deque)
    held_until: float = 0.0

    def wait(self, now: float, need: int) -> float:
        """Seconds until `need` more may go: 0 when they may, inf until a request returns."""
        if now < self.held_until:
            return self.held_until - now
        while self.ends and self.ends[0] <= now:
            self.ends.popleft()
        short = self.in_flight + len(self.ends) + min(need, self.most) - self.most
        if short <= 0:
            return 0.0
        if short <= len(self.ends):
            return self.ends[short - 1] - now
        return math.inf

    def take(self) -> None:
        """One more in flight."""
        self.in_flight += 1

    def done(self, now: float) -> None:
        """Answered: it keeps counting for one more window."""
        self.in_flight -= 1
        self.ends.append(now + self.seconds)

    def block(self, now: float, seconds: float) -> None:
        """Hold everything for `seconds`."""
        self.held_until = max(self.held_until, now + seconds)

    def idle(self, now: float) -> bool:
        """Nothing in flight, nothing counting, nothing held."""
        self.wait(now, 0)  # drops what stopped counting
        return not self.in_flight and not self.ends and now >= self.held_until
