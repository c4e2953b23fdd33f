"""Settings that only make sense together are checked when the settings are read."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.config import Settings, bot_token_given

TOKEN = "123456:ABCdefGhIJKlmNoPQRstuVWxyz0123456789"


def test_a_telegram_webhook_needs_a_public_url() -> None:
    with pytest.raises(ValidationError, match="TELEGRAM_WEBHOOK=true needs PUBLIC_URL"):
        Settings(_env_file=None, bot_token=TOKEN, telegram_webhook=True)
    settings = Settings(
        _env_file=None, bot_token=TOKEN, telegram_webhook=True, public_url="https://bot.example"
    )
    assert settings.telegram_webhook


def test_an_empty_bot_token_is_no_token() -> None:
    with pytest.raises(ValidationError, match="BOT_TOKEN is empty"):
        Settings(_env_file=None, bot_token="  ")


@pytest.mark.parametrize(
    ("environment", "dotenv", "given"),
    [
        (None, None, False),
        (None, "BOT_TOKEN=\n", False),
        (None, f"BOT_TOKEN={TOKEN}\n", True),
        ("", f"BOT_TOKEN={TOKEN}\n", False),  # the environment wins, as in Settings
        (TOKEN, "BOT_TOKEN=\n", True),
    ],
)
def test_make_run_asks_for_the_token_where_settings_look(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    environment: str | None,
    dotenv: str | None,
    given: bool,
) -> None:
    monkeypatch.chdir(tmp_path)
    if dotenv is not None:
        (tmp_path / ".env").write_text(dotenv)
    if environment is None:
        monkeypatch.delenv("BOT_TOKEN", raising=False)
    else:
        monkeypatch.setenv("BOT_TOKEN", environment)
    assert bot_token_given() is given
