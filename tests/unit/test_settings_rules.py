"""Settings that only make sense together are checked when the settings are read."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.config import Settings

TOKEN = "123456:ABCdefGhIJKlmNoPQRstuVWxyz0123456789"


def test_a_telegram_webhook_needs_a_public_url() -> None:
    with pytest.raises(ValidationError, match="TELEGRAM_WEBHOOK=true needs PUBLIC_URL"):
        Settings(_env_file=None, bot_token=TOKEN, telegram_webhook=True)
    settings = Settings(
        _env_file=None, bot_token=TOKEN, telegram_webhook=True, public_url="https://bot.example"
    )
    assert settings.telegram_webhook
