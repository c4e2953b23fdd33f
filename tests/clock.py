"""A clock tests move by hand (bot/clock.py), so timed code is tested without sleeping."""

from __future__ import annotations

import time


class ManualClock:
    """Both clocks start at the real time and move only when `advance` is called."""

    def __init__(self) -> None:
        self._monotonic = time.monotonic()
        self._wall = time.time()

    def monotonic(self) -> float:
        """The monotonic reading, as last advanced."""
        return self._monotonic

    def time(self) -> float:
        """The wall-clock reading, as last advanced."""
        return self._wall

    def advance(self, seconds: float) -> None:
        """Move both clocks forward."""
        self._monotonic += seconds
        self._wall += seconds
