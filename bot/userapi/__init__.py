"""The userapi.ai Midjourney API: its typed client, its error and its models."""

from bot.userapi.client import UserAPIClient
from bot.userapi.models import (
    BlendImage,
    DiscordAccount,
    FastTime,
    ImageResult,
    InfoResult,
    NextAction,
    SeedResult,
    Subscription,
    Task,
    TaskResult,
    TaskStatus,
    TaskType,
    UploadedImage,
    UploadResult,
    Usage,
    parse_result,
)
from bot.userapi.wire import UserAPIError

__all__ = [
    "BlendImage",
    "DiscordAccount",
    "FastTime",
    "ImageResult",
    "InfoResult",
    "NextAction",
    "SeedResult",
    "Subscription",
    "Task",
    "TaskResult",
    "TaskStatus",
    "TaskType",
    "UploadResult",
    "UploadedImage",
    "Usage",
    "UserAPIClient",
    "UserAPIError",
    "parse_result",
]
