"""The simulator's vocabulary: constants, its config, recorded requests and small helpers."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from bot.userapi.models import UPSCALED_TYPES

# One logger for the whole simulator, named as before it became a package.
logger = logging.getLogger("bot.userapi.simulator")

DEFAULT_ACCOUNT = "5f1c3a2e-0b7d-4c1e-9a65-3d2b8e4f7a10"
API = "/midjourney/v2"

PROGRESS_TYPES = frozenset(
    {
        "imagine",
        "reroll",
        "blend",
        "zoom",
        "pan",
        "vary_subtle",
        "vary_strong",
        "inpaint",
        "animate",
    }
)
NO_WAITING_TYPES = frozenset({"info", "prefer", "speed"})
# Jobs whose result is one image taken out of a grid (the API calls them upscales).
SINGLE_TYPES = UPSCALED_TYPES
FINAL_STATUSES = frozenset({"done", "error"})
PROGRESS_STEPS = (10, 45, 80)
UPSAMPLE_CHOICES = (
    "v5_2x",
    "v5_4x",
    "subtle",
    "creative",
    "v6_2x_subtle",
    "v6_2x_creative",
    "v6r1_2x_subtle",
    "v6r1_2x_creative",
    "v7_2x_subtle",
    "v7_2x_creative",
)
PAN_CHOICES = ("left", "right", "up", "down")
PREFILTER_REASONS = ["SEXUALLY_EXPLICIT", "PROFANITY"]
FAKE_DISCORD_TOKEN = "MTSIM.fake-discord-token.never-store-me"
BIG_SIDE = 2048
PREVIEW_SIDE = 256
MAX_BODY = 64 * 1024 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class SimulatorConfig:
    """Run-time knobs of the simulator; mutable while it runs."""

    pace: float = 0.0
    api_key: str | None = None
    accounts: list[str] = field(default_factory=lambda: [DEFAULT_ACCOUNT])
    grid_size: int = 1024
    next_actions: bool = True
    hold: bool = False
    send_webhooks: bool = True


@dataclass
class RecordedRequest:
    """One request the simulator received (control calls excluded)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    # When it arrived (time.monotonic), to order it against what others saw.
    at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form, the body as text."""
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": self.body.decode("utf-8", errors="replace"),
        }


@dataclass
class WebhookDelivery:
    """One webhook POST attempt: where, what, and how it went."""

    url: str
    task: dict[str, Any]
    status: int | None
    error: str | None


@dataclass
class _Fault:
    status: int
    body: bytes
    content_type: str
    remaining: int
    delay: float


@dataclass
class _Account:
    hash: str
    status: str = "active"
    reason: str | None = None
    remix: bool = False
    fast_remaining_sec: int = 51876
    fast_total_sec: int = 54000
    speed: str = "fast"
    created_at: str = field(default_factory=_now)

    def public(self) -> dict[str, Any]:
        digest = hashlib.sha256(self.hash.encode()).hexdigest()
        return {
            "hash": self.hash,
            "token": FAKE_DISCORD_TOKEN,
            "channel_id": str(int(digest[:15], 16)),
            "status": self.status,
            "status_reason": self.reason,
            "external_username": f"sim_{digest[:6]}",
            "external_email": "s****@e****.com",
            "is_remix": self.remix,
            "created_at": self.created_at,
        }


@dataclass
class _StoredFile:
    data: bytes
    content_type: str


class ApiError(Exception):
    """An API error answer: HTTP status and the message for `{"status": false, "error": ...}`."""

    def __init__(self, status: int, message: str) -> None:
        """Keep the status and message."""
        super().__init__(message)
        self.status = status
        self.message = message


def _error_response(status: int, message: str) -> web.Response:
    return web.json_response({"status": False, "error": message}, status=status)


def _upsample_pair(prompt: str | None) -> list[str]:
    """The two upsample choices Midjourney offers for the prompt's model version."""
    text = prompt or ""
    if re.search(r"--niji\b", text):
        return ["v6_2x_subtle", "v6_2x_creative"]
    match = re.search(r"--(?:v|version)\s+(\d+(?:\.\d+)?)", text)
    if match is None:
        return ["v7_2x_subtle", "v7_2x_creative"]
    version = match.group(1)
    major = int(version.split(".")[0])
    if major < 6:
        return ["v5_2x", "v5_4x"]
    if version in ("6", "6.0"):
        return ["v6_2x_subtle", "v6_2x_creative"]
    if version.startswith("6."):
        return ["v6r1_2x_subtle", "v6r1_2x_creative"]
    return ["v7_2x_subtle", "v7_2x_creative"]


def _version(prompt: str | None) -> tuple[str, float]:
    """The model family (v or niji) and version a prompt runs on (V7 unless it names one)."""
    text = prompt or ""
    niji = re.search(r"--niji(?:\s+(\d+(?:\.\d+)?))?", text)
    if niji:
        return "niji", float(niji.group(1) or 6)
    match = re.search(r"--(?:v|version)\s+(\d+(?:\.\d+)?)", text)
    return "v", float(match.group(1)) if match else 7.0


# Midjourney's parameters that only some versions take, as (family, version) -> allowed.
_VERSION_PARAMS: dict[str, tuple[str, Callable[[str, float], bool]]] = {
    "oref": ("Omni reference", lambda family, version: family == "v" and version >= 7),
    "cref": ("Character reference", lambda family, version: 6 <= version < 7),
    "draft": ("Draft mode", lambda family, version: family == "v" and version >= 7),
}
# Upscale buttons that came with V5.2 (V5 for Vary (Region)); older upscales lack them.
_ACTION_MIN_VERSION = {"vary_subtle": 5.2, "vary_strong": 5.2, "zoom": 5.2, "pan": 5.2}


def _check_prompt_version(prompt: str) -> None:
    """Refuse parameters the prompt's version doesn't take, as Midjourney does."""
    family, version = _version(prompt)
    for flag, (name, allowed) in _VERSION_PARAMS.items():
        if re.search(rf"(?:^|\s)--{flag}\b", prompt) and not allowed(family, version):
            raise ApiError(400, f"{name} (--{flag}) is not available for this version")


def _action_fits(action: str, prompt: str | None) -> bool:
    family, version = _version(prompt)
    low = _ACTION_MIN_VERSION.get(action)
    return low is None or family == "niji" or version >= low


def _check_action_version(action: str, parent: dict[str, Any]) -> None:
    if not _action_fits(action, parent.get("prompt")):
        raise ApiError(400, f"{action} is not available for this version")


def _opt_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, f"{key} must be a string")
    return value or None


def _req_str(body: dict[str, Any], key: str) -> str:
    value = _opt_str(body, key)
    if value is None or not value.strip():
        raise ApiError(400, f"{key} is required")
    return value


def _opt_bool(body: dict[str, Any], key: str) -> bool:
    value = body.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ApiError(400, f"{key} must be a boolean")
    return value
