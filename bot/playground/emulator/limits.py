"""A fake Telegram that enforces Telegram's sending limits, answering 429 when they are broken."""

from __future__ import annotations

import math
import time
from collections import deque
from typing import Any

from bot.playground.emulator.server import FakeTelegram
from bot.playground.emulator.wire import ApiCall, JSONDict, UploadedFile

# (window seconds, most messages in any such window)
GLOBAL_LIMIT = (1.0, 30)
GROUP_LIMIT = (60.0, 20)
CHAT_LIMIT = (1.0, 4)  # about one a second, short bursts allowed
_UNCOUNTED = frozenset({"sendchataction"})


class LimitedTelegram(FakeTelegram):
    """FakeTelegram plus sliding-window limits per chat, per group and overall."""

    def __init__(self, scale: float = 1.0, **world: Any) -> None:
        """Start with empty windows; `scale` > 1 makes every window that many times shorter.

        `world` goes to FakeTelegram (token, bot_username, ...).
        """
        super().__init__(**world)
        self.scale = scale
        self._windows: dict[object, deque[float]] = {}
        self.refused: list[ApiCall] = []
        self.counted: list[tuple[float, str, object]] = []

    def _over(self, key: object, limit: tuple[float, int], now: float) -> float:
        window, most = limit
        stamps = self._windows.setdefault(key, deque())
        window /= self.scale
        while stamps and stamps[0] <= now - window:
            stamps.popleft()
        if len(stamps) >= most:
            return stamps[0] + window - now
        return 0.0

    async def _dispatch(
        self, name: str, params: JSONDict, files: dict[str, UploadedFile]
    ) -> tuple[int, JSONDict]:
        lower = name.lower()
        if lower.startswith(("send", "edit")) and lower not in _UNCOUNTED:
            now = time.monotonic()
            chat = params.get("chat_id")
            limits: list[tuple[object, tuple[float, int]]] = [("*", GLOBAL_LIMIT)]
            if chat is not None:
                limits.append((("chat", chat), CHAT_LIMIT))
                if isinstance(chat, int) and chat < 0:
                    limits.append((("group", chat), GROUP_LIMIT))
            wait = max(self._over(key, limit, now) for key, limit in limits)
            if wait > 0:
                retry = max(1, math.ceil(wait))
                body: JSONDict = {
                    "ok": False,
                    "error_code": 429,
                    "description": f"Too Many Requests: retry after {retry}",
                    "parameters": {"retry_after": retry},
                }
                self._record(name, params, files, body, 429)
                self.refused.append(self.requests[-1])
                return 429, body
            for key, _limit in limits:
                self._windows[key].append(now)
            self.counted.append((now, name, chat))
        return await super()._dispatch(name, params, files)
