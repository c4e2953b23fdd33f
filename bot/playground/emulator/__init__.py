"""A Telegram Bot API emulator in memory: the playground's Telegram and the tests' fake one."""

from bot.playground.emulator.limits import LimitedTelegram
from bot.playground.emulator.server import FakeTelegram
from bot.playground.emulator.wire import (
    NOT_MODIFIED,
    ApiCall,
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
