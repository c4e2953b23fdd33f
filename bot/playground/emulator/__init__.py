"""A Telegram Bot API emulator in memory: the playground's Telegram and the tests' fake one."""

from bot.playground.emulator.limits import LimitedTelegram
from bot.playground.emulator.server import (
    NOT_MODIFIED,
    ApiCall,
    FakeTelegram,
    JSONDict,
    UploadedFile,
    WebhookDelivery,
)

__all__ = [
    "NOT_MODIFIED",
    "ApiCall",
    "FakeTelegram",
    "JSONDict",
    "LimitedTelegram",
    "UploadedFile",
    "WebhookDelivery",
]
