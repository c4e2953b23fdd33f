"""Typed shapes of the userapi.ai Midjourney API: requests' parts, the task object and friends."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class TaskStatus(StrEnum):
    """A task's lifecycle as the API reports it."""

    SENT = "sent"
    WAITING = "waiting"
    PROGRESS = "progress"
    DONE = "done"
    ERROR = "error"

    @property
    def is_final(self) -> bool:
        """Whether no further update can follow this one."""
        return self in (TaskStatus.DONE, TaskStatus.ERROR)


class TaskType(StrEnum):
    """Every task type the API documents (the `type` field of a task)."""

    IMAGINE = "imagine"
    ANIMATE = "animate"
    DESCRIBE = "describe"
    UPSCALE = "upscale"
    UPSAMPLE = "upsample"
    VARIATION = "variation"
    SEED = "seed"
    VARY_SUBTLE = "vary_subtle"
    VARY_STRONG = "vary_strong"
    INPAINT = "inpaint"
    BLEND = "blend"
    REROLL = "reroll"
    ZOOM = "zoom"
    PAN = "pan"
    INFO = "info"
    PREFER = "prefer"
    SPEED = "speed"


# The sets of job types the bot and the simulator reason about, defined here and nowhere else.
# Jobs whose result is a grid of four images (U1-U4 and V1-V4 work on it).
GRID_TYPES: frozenset[TaskType] = frozenset(
    {
        TaskType.IMAGINE,
        TaskType.VARIATION,
        TaskType.REROLL,
        TaskType.BLEND,
        TaskType.ZOOM,
        TaskType.PAN,
        TaskType.VARY_SUBTLE,
        TaskType.VARY_STRONG,
        TaskType.INPAINT,
    }
)
# Jobs whose result is one image (or animation) picked out of a grid.
UPSCALED_TYPES: frozenset[TaskType] = frozenset({TaskType.UPSCALE, TaskType.UPSAMPLE})
# Jobs that make a new grid or video: they count against daily limits by default.
COUNTED_TYPES: frozenset[TaskType] = GRID_TYPES | {TaskType.ANIMATE}


class _Lenient(BaseModel):
    """Base for API payloads: unknown fields are kept, so new API fields never break parsing."""

    model_config = ConfigDict(extra="allow")


class ImageResult(_Lenient):
    """An image (or animation) the API points to: Discord CDN urls and their metadata."""

    url: str
    proxy_url: str | None = None
    filename: str | None = None
    content_type: str | None = None
    width: int | None = None
    height: int | None = None
    size: int | None = None


class SeedResult(_Lenient):
    """The answer of /seed: the seed number and the four single images of the grid."""

    seed: str
    urls: list[ImageResult] = Field(default_factory=list)

    @field_validator("seed", mode="before")
    @classmethod
    def _seed_as_text(cls, value: Any) -> Any:
        # The doc shows a string, but a number is just as plausible: keep digits either way.
        return str(value) if isinstance(value, int) else value


class Subscription(_Lenient):
    """The Midjourney plan of an account."""

    name: str | None = None
    active_to: str | None = None


class FastTime(_Lenient):
    """Fast GPU time left in the current period."""

    remaining_sec: int = 0
    total_sec: int = 0


class Usage(_Lenient):
    """A count of jobs and the seconds they took."""

    cnt: int = 0
    sec: int = 0


class InfoResult(_Lenient):
    """The answer of /info: an account's Midjourney subscription and queue."""

    user_id: str | None = None
    subscription: Subscription | None = None
    visibility_mode: str | None = None
    fast_time_remaining: FastTime | None = None
    lifetime_usage: Usage | None = None
    relaxed_usage: Usage | None = None
    queued_jobs_fast: int = 0
    queued_jobs_relax: int = 0
    running_jobs: int = 0


TaskResult = ImageResult | SeedResult | InfoResult | list[str] | str | dict[str, Any] | None


def parse_result(value: Any) -> TaskResult:
    """Turn a task's raw `result` into the shape its content shows.

    The field is method-specific (an image, four prompts, a seed, subscription info, "on"/"off"
    or null); the task type is not always trustworthy (vary-strong reports `vary_subtle`), so
    the content decides. A dict matching none of the known shapes is kept as it is.
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        return [str(item) for item in value]
    if isinstance(value, dict):
        if "seed" in value:
            return SeedResult.model_validate(value)
        if "url" in value:
            return ImageResult.model_validate(value)
        if {"subscription", "fast_time_remaining", "running_jobs"} & value.keys():
            return InfoResult.model_validate(value)
        return value
    return str(value)


class NextAction(_Lenient):
    """One follow-up the API offers for a finished task, e.g. upscale with choices 1-4."""

    type: str
    choices: list[int | str] | None = None


class BlendImage(_Lenient):
    """One image of a blend: an uploaded image's url and its extension."""

    url: str
    ext: str = "png"


class Task(_Lenient):
    """The task object, as returned by /status and posted to webhooks.

    Everything but `hash` is optional: webhooks of different methods carry different subsets,
    and `next_actions` in particular may be absent (then buttons come from the type).
    """

    hash: str
    account_hash: str | None = None
    parent_hash: str | None = None
    type: str | None = None
    status: TaskStatus | None = None
    progress: int | None = None
    prompt: str | None = None
    choice: int | str | None = None
    result: TaskResult = None
    status_reason: str | None = None
    prefilter_result: list[str] = Field(default_factory=list)
    next_actions: list[NextAction] | None = None
    webhook_url: str | None = None
    webhook_type: str | None = None
    job_id: str | None = None
    callback_id: str | None = None
    urls: list[BlendImage] | None = None
    created_at: str | None = None

    @field_validator("result", mode="plain")
    @classmethod
    def _parse_result(cls, value: Any) -> TaskResult:
        return parse_result(value)

    @field_validator("prefilter_result", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    @field_validator("progress", mode="before")
    @classmethod
    def _progress_as_int(cls, value: Any) -> Any:
        # Seen as "45" or 45.0 from some proxies: keep whole percents.
        if isinstance(value, str) and value.strip().replace(".", "", 1).isdigit():
            return int(float(value))
        if isinstance(value, float):
            return int(value)
        return value

    @property
    def image(self) -> ImageResult | None:
        """The result as an image, if it is one."""
        return self.result if isinstance(self.result, ImageResult) else None

    @property
    def prompts(self) -> list[str] | None:
        """The result as describe's prompts, if it is a list."""
        return self.result if isinstance(self.result, list) else None

    @property
    def seed(self) -> SeedResult | None:
        """The result as a seed, if it is one."""
        return self.result if isinstance(self.result, SeedResult) else None

    @property
    def info(self) -> InfoResult | None:
        """The result as subscription info, if it is one."""
        return self.result if isinstance(self.result, InfoResult) else None


class UploadedImage(ImageResult):
    """An image uploaded to Discord through /upload."""

    id: str | None = None
    ephemeral: bool | None = None


class UploadResult(_Lenient):
    """The answer of /upload: the account that holds the image, and the image."""

    account_hash: str | None = None
    image: UploadedImage


class DiscordAccount(BaseModel):
    """The answer of /discord/info, minus the Discord token it also carries (never kept)."""

    model_config = ConfigDict(extra="ignore")

    hash: str | None = None
    status: str | None = None
    status_reason: str | None = None
    channel_id: str | None = None
    external_username: str | None = None
    is_remix: bool | None = None
    created_at: str | None = None
