"""What a user asked for, as a value: stored with its task before anything is sent.

A queue, a restart or a retry submits the stored request again; `submit` is the one place
that turns a request into a userapi call. Handlers and the Mini App build requests and never
call the client for a job themselves.
"""

from __future__ import annotations

import base64
from typing import Annotated, Literal, TypedDict, assert_never

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from bot.jobs.actions import FollowUp
from bot.userapi import Task, UserAPIClient
from bot.userapi.models import BlendImage


class Hook(TypedDict, total=False):
    """Where the API should post a job's updates (empty when we poll instead)."""

    webhook_url: str
    webhook_type: Literal["progress", "result"]


class _Request(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # The Discord account the job must run on; None lets the bot pick one with a free slot.
    account_hash: str | None = None


class ImagineRequest(_Request):
    """/imagine with a ready prompt (image prompts carry their uploaded URLs in it)."""

    endpoint: Literal["imagine"] = "imagine"
    prompt: str


class DescribeRequest(_Request):
    """/describe an uploaded image."""

    endpoint: Literal["describe"] = "describe"
    url: str


class BlendRequest(_Request):
    """/blend 2-5 uploaded images."""

    endpoint: Literal["blend"] = "blend"
    images: list[BlendImage]


class FollowUpRequest(_Request):
    """A button under a finished task: the API runs it on the parent's account."""

    endpoint: FollowUp
    parent_hash: str
    choice: str | None = None
    prompt: str | None = None


class InpaintRequest(_Request):
    """Vary (Region): a black-and-white PNG mask and a prompt for an upscale."""

    endpoint: Literal["inpaint"] = "inpaint"
    parent_hash: str
    # The PNG as base64 text, as the API takes it; small (a two-colour PNG packs well).
    mask: str
    prompt: str

    @classmethod
    def of(cls, *, parent_hash: str, mask_png: bytes, prompt: str) -> InpaintRequest:
        """A request for a mask given as PNG bytes."""
        return cls(
            parent_hash=parent_hash, mask=base64.b64encode(mask_png).decode(), prompt=prompt
        )


JobRequest = Annotated[
    ImagineRequest | DescribeRequest | BlendRequest | FollowUpRequest | InpaintRequest,
    Field(discriminator="endpoint"),
]
_ADAPTER: TypeAdapter[JobRequest] = TypeAdapter(JobRequest)


def hook_for(webhook_url: str | None) -> Hook:
    """The webhook fields of every job: progress updates to our URL, or none (we poll)."""
    if not webhook_url:
        return {}
    return {"webhook_url": webhook_url, "webhook_type": "progress"}


def stored_request(raw: str | None, account_hash: str | None) -> JobRequest:
    """A task's stored request, on the account the job got its slot on."""
    if raw is None:
        raise LookupError("the task has no stored request")
    request = load_request(raw)
    if request.account_hash is None and account_hash is not None:
        request = request.model_copy(update={"account_hash": account_hash})
    return request


def dump_request(request: JobRequest) -> str:
    """The request as JSON, for the tasks table."""
    return _ADAPTER.dump_json(request).decode()


def load_request(raw: str) -> JobRequest:
    """A request stored by `dump_request`."""
    return _ADAPTER.validate_json(raw)


SIDES: dict[str, Literal["left", "right", "up", "down"]] = {
    "left": "left",
    "right": "right",
    "up": "up",
    "down": "down",
}
MOTIONS: dict[str, Literal["high", "low"]] = {"high": "high", "low": "low"}


def _int(choice: str | None) -> int:
    if choice is None:
        raise ValueError("this action needs a choice")
    return int(choice)


async def submit(client: UserAPIClient, request: JobRequest, hook: Hook) -> str | Task:
    """Send a request to the API once; the task hash (or a finished task, for seeds)."""
    if isinstance(request, ImagineRequest):
        return await client.imagine(
            prompt=request.prompt, account_hash=request.account_hash, **hook
        )
    if isinstance(request, DescribeRequest):
        return await client.describe(url=request.url, account_hash=request.account_hash, **hook)
    if isinstance(request, BlendRequest):
        return await client.blend(urls=request.images, account_hash=request.account_hash, **hook)
    if isinstance(request, InpaintRequest):
        return await client.inpaint(
            hash=request.parent_hash,
            mask_png=base64.b64decode(request.mask),
            prompt=request.prompt,
            **hook,
        )
    return await _follow_up(client, request, hook)


async def _follow_up(client: UserAPIClient, request: FollowUpRequest, hook: Hook) -> str | Task:
    parent, choice, prompt = request.parent_hash, request.choice, request.prompt
    match request.endpoint:
        case "upscale":
            return await client.upscale(hash=parent, choice=_int(choice), **hook)
        case "variation":
            return await client.variation(hash=parent, choice=_int(choice), prompt=prompt, **hook)
        case "reroll":
            return await client.reroll(hash=parent, prompt=prompt, **hook)
        case "vary_subtle":
            return await client.vary_subtle(hash=parent, prompt=prompt, **hook)
        case "vary_strong":
            return await client.vary_strong(hash=parent, prompt=prompt, **hook)
        case "zoom":
            return await client.zoom(hash=parent, choice=_int(choice), **hook)
        case "custom_zoom":
            return await client.zoom(hash=parent, prompt=prompt, **hook)
        case "pan":
            side = SIDES.get(choice or "")
            if side is None:
                raise ValueError(f"pan needs a side, got {choice!r}")
            return await client.pan(hash=parent, choice=side, prompt=prompt, **hook)
        case "upsample":
            return await client.upsample(hash=parent, choice=str(choice), **hook)
        case "animate":
            motion = MOTIONS.get(choice or "")
            if motion is None:
                raise ValueError(f"animate needs a motion, got {choice!r}")
            return await client.animate(hash=parent, choice=motion, **hook)
        case "seed":
            return await client.seed(hash=parent, webhook_url=hook.get("webhook_url"))
        case _:
            assert_never(request.endpoint)
