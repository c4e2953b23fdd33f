"""Settings from the environment and `.env`, as SPEC's table names them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _split_csv(value: object) -> object:
    """Accept `1,2, 3` (what people write in .env) as well as a JSON list."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, int):
        return [value]
    return value


class Settings(BaseSettings):
    """Everything the bot can be told from outside."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    bot_token: SecretStr
    telegram_api_url: str = "https://api.telegram.org"
    userapi_key: SecretStr | None = None
    userapi_base_url: str = "https://api.userapi.ai"
    public_url: str | None = None
    web_host: str = "0.0.0.0"
    web_port: int = 8080
    database_path: Path = Path("data/bot.sqlite3")
    admin_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    userapi_accounts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    telegram_webhook: bool = False

    # Beyond SPEC's table: tuning knobs with safe defaults.
    simulator_pace: float = 1.5
    poll_interval: float = 3.0
    poll_max_interval: float = 30.0
    webhook_quiet_after: float = 60.0
    progress_edit_interval: float = 3.0
    log_level: str = "INFO"

    @field_validator("admin_ids", "userapi_accounts", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("public_url", "userapi_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `PUBLIC_URL=` in a .env file means "not set", not "the empty URL".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("public_url", "telegram_api_url", "userapi_base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @property
    def uses_simulator(self) -> bool:
        """Whether the bot runs against its built-in simulator (no API key given)."""
        return self.userapi_key is None
