"""Settings from the environment and `.env`, as SPEC's table names them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Jobs that count against daily limits by default: the ones that make a new grid or video.
DEFAULT_COUNTED_TYPES = (
    "imagine",
    "variation",
    "reroll",
    "blend",
    "zoom",
    "pan",
    "vary_subtle",
    "vary_strong",
    "inpaint",
    "animate",
)


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

    # Access and spending limits: defaults here, changed at run time by admin commands.
    access_mode: Literal["open", "allowlist"] = "open"
    allowed_user_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    allowed_chat_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    daily_limit: int = 0  # counted jobs per user per day; 0 = no limit
    user_concurrent_jobs: int = 10
    max_concurrent_jobs: int = 12  # across all users: what the Midjourney accounts run at once
    counted_job_types: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_COUNTED_TYPES)
    )
    account_check_interval: float = 300.0
    fast_time_alert_percent: float = 10.0
    error_burst_count: int = 5
    error_burst_window: float = 300.0

    # Beyond SPEC's table: tuning knobs with safe defaults.
    simulator_pace: float = 1.5
    poll_interval: float = 3.0
    poll_max_interval: float = 30.0
    webhook_quiet_after: float = 60.0
    # With PUBLIC_URL: a task with no webhook this long after it was sent is polled instead.
    webhook_grace: float = 15.0
    progress_edit_interval: float = 3.0
    # Most GET /status requests per second, across all tasks.
    poll_max_rate: float = 20.0
    # A task whose state has not changed this long (seconds) is failed with a message.
    stuck_after: float = 3600.0
    # Multiplies the rates of the Telegram limits; only for a fake Telegram in tests.
    telegram_rate_scale: float = 1.0
    # Seconds to wait for an answer from userapi before telling the user it is unreachable.
    userapi_timeout: float = 30.0
    log_level: str = "INFO"
    # Vary (Region) Mini App: its public HTTPS base (defaults to PUBLIC_URL), and how old
    # Telegram's signed initData may be (seconds).
    webapp_url: str | None = None
    webapp_max_age: int = 3600

    @field_validator(
        "admin_ids",
        "userapi_accounts",
        "allowed_user_ids",
        "allowed_chat_ids",
        "counted_job_types",
        mode="before",
    )
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("public_url", "userapi_key", "webapp_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `PUBLIC_URL=` in a .env file means "not set", not "the empty URL".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("public_url", "telegram_api_url", "userapi_base_url", "webapp_url")
    @classmethod
    def _no_trailing_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @property
    def mini_app_base(self) -> str | None:
        """Where Telegram opens the Mini App; None without HTTPS (Telegram requires it)."""
        base = self.webapp_url or self.public_url
        return base if base and base.startswith("https://") else None

    @property
    def uses_simulator(self) -> bool:
        """Whether the bot runs against its built-in simulator (no API key given)."""
        return self.userapi_key is None
