"""Settings from the environment and `.env`, as SPEC's table names them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.runtime.logs import LogFormat
from bot.userapi.models import COUNTED_TYPES, TaskType

# Jobs that count against daily limits by default: the ones that make a new grid or video.
DEFAULT_COUNTED_TYPES = tuple(str(kind) for kind in TaskType if kind in COUNTED_TYPES)


Speed = Literal["relax", "fast", "turbo"]
ALL_SPEEDS: tuple[Speed, ...] = ("relax", "fast", "turbo")
# What each job type costs in credits with PAYMENTS=stars (types not listed: see bot/payments.py).
DEFAULT_JOB_COSTS: dict[str, int] = {TaskType.IMAGINE: 1, TaskType.UPSCALE: 1, TaskType.ANIMATE: 2}


def _pairs(value: object, what: str) -> list[tuple[str, int]]:
    """`a:1, b:2` as [("a", 1), ("b", 2)], with a clear error naming the setting's form."""
    pairs = []
    for part in str(value).split(","):
        if not part.strip():
            continue
        key, sep, number = part.partition(":")
        if not sep or not key.strip() or not number.strip().isdigit():
            raise ValueError(f"expected {what}, got {part.strip()!r}")
        pairs.append((key.strip(), int(number.strip())))
    return pairs


def secret_value(secret: SecretStr | None) -> str | None:
    """A setting's secret as text, or None when unset."""
    return secret.get_secret_value() if secret is not None else None


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
    # postgresql://user:password@host:5432/db: PostgreSQL instead of the SQLite file.
    database_url: SecretStr | None = None
    # redis://host:6379/0: what replicas share (Telegram's budget, waiting states, the lead).
    redis_url: SecretStr | None = None
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

    # Paid generations: `stars` sells credits for Telegram Stars; unset, jobs cost nothing.
    payments: Literal["stars"] | None = None
    # Credit packs as (credits, stars); STARS_PACKS=10:50,50:200.
    stars_packs: Annotated[list[tuple[int, int]], NoDecode] = Field(default_factory=list)
    # Credits per job type; JOB_COSTS=imagine:1,upscale:1,animate:2 (0 = free).
    job_costs: Annotated[dict[str, int], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_JOB_COSTS)
    )

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
    # `json`: one JSON object per line (for log collectors); `text` for people.
    log_format: LogFormat = "text"
    # Set: GET /metrics answers whoever sends `Authorization: Bearer <it>`, as well as
    # loopback and private addresses reaching the bot directly.
    metrics_token: SecretStr | None = None
    # Vary (Region) Mini App: its public HTTPS base (defaults to PUBLIC_URL), and how old
    # Telegram's signed initData may be (seconds).
    webapp_url: str | None = None
    webapp_max_age: int = 3600
    # Days before finished jobs, unanswered prompt questions, upload records and waiting
    # states are pruned; delivered results (what /history offers again) are kept.
    retention_days: int = Field(default=90, ge=1)

    # Speeds users may ask for (`--fast` in a prompt, /settings); others are stripped with a note.
    allowed_speeds: Annotated[list[Speed], NoDecode] = Field(
        default_factory=lambda: list(ALL_SPEEDS)
    )
    # A LibreTranslate-compatible server: set, non-English prompt text is translated first.
    translate_url: str | None = None
    translate_api_key: SecretStr | None = None
    # Seconds the translator gets for a whole prompt before it goes as written.
    translate_timeout: float = 5.0
    # `python -m bot.playground` (what `make run` starts without BOT_TOKEN): the chat page's port.
    playground_port: int = 8000

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

    @field_validator("bot_token", mode="before")
    @classmethod
    def _token_given(cls, value: object) -> object:
        # `BOT_TOKEN=`, as .env.example ships it, is no token at all (`make run` then starts
        # the playground instead).
        if isinstance(value, str) and not value.strip():
            raise ValueError("BOT_TOKEN is empty")
        return value

    @field_validator("allowed_speeds", mode="before")
    @classmethod
    def _speeds(cls, value: object) -> object:
        # `ALLOWED_SPEEDS=Relax, fast` is as good as `relax,fast`; empty means all.
        speeds = _split_csv(value)
        if isinstance(speeds, list):
            speeds = [str(speed).lower() for speed in speeds]
            return speeds or list(ALL_SPEEDS)
        return speeds

    @field_validator("log_format", mode="before")
    @classmethod
    def _log_format(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("stars_packs", mode="before")
    @classmethod
    def _packs(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        packs = []
        for credits, stars in _pairs(value, "credits:stars like 10:50"):
            if not credits.isdigit() or int(credits) < 1 or stars < 1:
                raise ValueError(f"a pack is credits:stars, both 1 or more; got {credits}:{stars}")
            packs.append((int(credits), stars))
        return packs

    @field_validator("job_costs", mode="before")
    @classmethod
    def _costs(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        # Listed types change the defaults; the rest keep theirs.
        return {**DEFAULT_JOB_COSTS, **dict(_pairs(value.lower(), "type:credits like imagine:1"))}

    @field_validator("payments", mode="before")
    @classmethod
    def _payments(cls, value: object) -> object:
        if isinstance(value, str):
            return value.strip().lower() or None
        return value

    @model_validator(mode="after")
    def _webhook_needs_public_url(self) -> Settings:
        # Telegram must be able to reach the webhook: only PUBLIC_URL says where that is.
        if self.telegram_webhook and not self.public_url:
            raise ValueError("TELEGRAM_WEBHOOK=true needs PUBLIC_URL")
        return self

    @model_validator(mode="after")
    def _packs_for_stars(self) -> Settings:
        # Selling Stars without anything to buy would only tell users they are out of credits.
        if self.payments == "stars" and not self.stars_packs:
            raise ValueError("PAYMENTS=stars needs STARS_PACKS, e.g. STARS_PACKS=10:50,50:200")
        return self

    @field_validator(
        "public_url",
        "userapi_key",
        "webapp_url",
        "translate_url",
        "translate_api_key",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `PUBLIC_URL=` in a .env file means "not set", not "the empty URL".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator(
        "public_url", "telegram_api_url", "userapi_base_url", "webapp_url", "translate_url"
    )
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


class _TokenOnly(BaseSettings):
    """BOT_TOKEN alone, read from the same places as Settings (nothing else is checked)."""

    model_config = Settings.model_config
    bot_token: str = ""


def bot_token_given() -> bool:
    """Whether BOT_TOKEN is set and not empty, in the environment or .env (`make run` asks)."""
    return bool(_TokenOnly().bot_token.strip())
