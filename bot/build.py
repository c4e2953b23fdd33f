"""The parts of a running bot, each built in one small step; bot/app.py puts them together.

Each step that opens something pushes its release on the start's exit stack, so a start that
fails part-way releases what it opened.
"""

from __future__ import annotations

import contextlib
import logging
from urllib.parse import urlsplit

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.enums import ParseMode
from aiogram.utils.i18n import I18n
from aiogram.utils.token import TokenValidationError
from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import make_url

from bot.config import Settings, secret_value
from bot.delivery.notices import TelegramQueueNotices
from bot.delivery.results import TelegramView
from bot.jobs.poller import StatusPoller
from bot.jobs.service import Jobs
from bot.jobs.watch import WebhookWatch
from bot.owner.alerts import Alerts, admin_sender
from bot.owner.limits import Defaults, Policy
from bot.owner.payments import Payments
from bot.prompts.translate import Translator
from bot.runtime.redact import RedactSecrets
from bot.runtime.redact import install as install_redaction
from bot.runtime.redact import uninstall as uninstall_redaction
from bot.telegram.ratelimit import Limits, RateLimiter
from bot.telegram.session import StartupError, create_session, wait_for_telegram
from bot.telegram.shared_budget import SharedBudget
from bot.userapi import UserAPIClient
from bot.userapi.simulator import Simulator, SimulatorConfig
from bot.web.gallery import GalleryApp
from bot.web.pictures import Pictures
from bot.web.region import RegionApp
from bot.web.server import (
    TELEGRAM_WEBHOOK_PREFIX,
    USERAPI_WEBHOOK_PREFIX,
    Readiness,
    build_web_app,
    derive_secret,
)
from bot.web.updates import CommittedUpdates
from storage.access import AccessRepo
from storage.credits import CreditsRepo
from storage.database import Database
from storage.replicas.claims import UpdateInbox
from storage.settings import UserSettingsRepo
from storage.tasks import TaskRepo
from storage.usage import UsageRepo

log = logging.getLogger(__name__)

# How long a Redis command (or connecting) may take: ours answer within milliseconds, and with
# redis-py's 5 s each Telegram message would wait that long for the shared budget while Redis
# hangs, before the local limits take over. `?socket_timeout=` in REDIS_URL overrides it.
REDIS_TIMEOUT_SECONDS = 1.0


def protect_secrets(settings: Settings, stack: contextlib.AsyncExitStack) -> RedactSecrets:
    """Mask the bot token and the keys in every log record from now on."""
    secrets = [settings.bot_token.get_secret_value()] + [
        secret.get_secret_value()
        for secret in (
            settings.userapi_key,
            settings.translate_api_key,
            settings.database_url,
            settings.redis_url,
            settings.metrics_token,
        )
        if secret is not None
    ]
    # A driver's error may quote a URL's password alone.
    if settings.database_url is not None:
        password = make_url(settings.database_url.get_secret_value()).password
        secrets += [password] if password else []
    if settings.redis_url is not None:
        password = urlsplit(settings.redis_url.get_secret_value()).password
        secrets += [password] if password else []
    redactor = install_redaction(secrets)
    stack.callback(uninstall_redaction, redactor)
    return redactor


def build_view(
    settings: Settings,
    bot: Bot,
    tasks: TaskRepo,
    client: UserAPIClient,
    i18n: I18n,
    user_settings: UserSettingsRepo,
    stack: contextlib.AsyncExitStack,
) -> TelegramView:
    """Where jobs show in Telegram: status messages, progress, results."""
    view = TelegramView(
        bot,
        tasks,
        client,
        i18n,
        edit_interval=settings.progress_edit_interval,
        user_settings=user_settings,
        shared=settings.redis_url is not None,  # replicas take status turns in the database
    )
    stack.push_async_callback(view.close)
    return view


async def build_userapi(
    settings: Settings, stack: contextlib.AsyncExitStack
) -> tuple[UserAPIClient, Simulator | None]:
    """The userapi client: the real API with a key, the built-in simulator without."""
    simulator: Simulator | None = None
    if settings.userapi_key is None:
        simulator = Simulator(SimulatorConfig(pace=settings.simulator_pace))
        stack.push_async_callback(simulator.stop)
        base_url = await simulator.start()
        api_key = "simulator"
        log.warning("=" * 70)
        log.warning("No USERAPI_KEY set: running on the BUILT-IN SIMULATOR at %s.", base_url)
        log.warning("Images are drawn locally; nothing reaches Midjourney.")
        log.warning("=" * 70)
    else:
        base_url = settings.userapi_base_url
        api_key = settings.userapi_key.get_secret_value()
    client = UserAPIClient(base_url=base_url, api_key=api_key, timeout=settings.userapi_timeout)
    stack.push_async_callback(client.aclose)
    return client, simulator


async def build_telegram(
    settings: Settings, stack: contextlib.AsyncExitStack, redis: Redis | None = None
) -> tuple[Bot, RateLimiter]:
    """The Telegram bot behind its rate limiter (its budget shared in Redis when there is one),
    once Telegram answered and took the token."""
    limiter = RateLimiter(Limits().scaled(settings.telegram_rate_scale))
    stack.push_async_callback(limiter.close)
    try:
        bot = Bot(
            token=settings.bot_token.get_secret_value(),
            session=create_session(
                settings.telegram_api_url, limiter, pace=settings.telegram_rate_scale
            ),
            default=DefaultBotProperties(parse_mode=ParseMode.HTML),
        )
    except TokenValidationError:
        raise StartupError(
            "BOT_TOKEN is not a bot token: copy it again from @BotFather in Telegram.",
            exit_code=2,
        ) from None
    stack.push_async_callback(bot.session.close)
    if redis is not None:
        limiter.share(SharedBudget(redis, bot.id, limiter.limits))
    await wait_for_telegram(bot, settings.telegram_api_url)
    return bot, limiter


def build_policy(settings: Settings, db: Database, i18n: I18n) -> tuple[Policy, Payments]:
    """Who may start what, and what it costs."""
    payments = Payments(
        credits=CreditsRepo(db),
        enabled=settings.payments == "stars",
        packs=settings.stars_packs,
        costs=settings.job_costs,
    )
    policy = Policy(
        access=AccessRepo(db),
        usage=UsageRepo(db),
        defaults=Defaults(
            admin_ids=frozenset(settings.admin_ids),
            mode=settings.access_mode,
            allowed_user_ids=frozenset(settings.allowed_user_ids),
            allowed_chat_ids=frozenset(settings.allowed_chat_ids),
            daily_limit=settings.daily_limit,
            user_concurrent_jobs=settings.user_concurrent_jobs,
            counted_types=frozenset(settings.counted_job_types),
        ),
        i18n=i18n,
        payments=payments,
    )
    return policy, payments


def build_alerts(
    settings: Settings,
    client: UserAPIClient,
    bot: Bot,
    usage: UsageRepo,
    i18n: I18n,
    stack: contextlib.AsyncExitStack,
) -> Alerts | None:
    """The owner's alerts; none without admins, as nobody could read them."""
    if not settings.admin_ids:
        return None

    async def account_hashes() -> list[str]:
        seen = await usage.account_hashes()
        return list(dict.fromkeys([*settings.userapi_accounts, *seen]))

    alerts = Alerts(
        client=client,
        send=admin_sender(bot, settings.admin_ids),
        accounts=account_hashes,
        interval=settings.account_check_interval,
        fast_percent=settings.fast_time_alert_percent,
        burst_count=settings.error_burst_count,
        burst_window=settings.error_burst_window,
        i18n=i18n,
    )
    stack.push_async_callback(alerts.stop)
    return alerts


def build_jobs(
    settings: Settings,
    tasks: TaskRepo,
    client: UserAPIClient,
    view: TelegramView,
    policy: Policy,
    alerts: Alerts | None,
    bot: Bot,
    i18n: I18n,
    webhook_secret: str,
) -> Jobs:
    """Jobs, with the queue's notices and, under PUBLIC_URL, the webhook watch."""
    webhook_url = None
    webhooks = None
    if settings.public_url:
        webhook_url = f"{settings.public_url}{USERAPI_WEBHOOK_PREFIX}{webhook_secret}"
        # The secret part of the path is left out: the alert shows where, not how to forge.
        shown_url = f"{settings.public_url}{USERAPI_WEBHOOK_PREFIX}…"
        webhooks = WebhookWatch(
            grace=settings.webhook_grace,
            on_broken=(lambda: alerts.webhooks_broken(shown_url)) if alerts else None,
            on_restored=alerts.webhooks_restored if alerts else None,
        )
    return Jobs(
        repo=tasks,
        client=client,
        view=view,
        webhook_url=webhook_url,
        gate=policy,
        max_concurrent=settings.max_concurrent_jobs,
        accounts=settings.userapi_accounts,
        queue_view=TelegramQueueNotices(bot, i18n, tasks, view.edits),
        observer=alerts,
        webhooks=webhooks,
        progress_gap=settings.progress_edit_interval,  # progress stored as often as shown
    )


def build_translator(settings: Settings, stack: contextlib.AsyncExitStack) -> Translator | None:
    """The prompt translator, when TRANSLATE_URL names one."""
    if not settings.translate_url:
        return None
    key = settings.translate_api_key
    translator = Translator(
        url=settings.translate_url,
        api_key=secret_value(key),
        timeout=settings.translate_timeout,
    )
    stack.push_async_callback(translator.aclose)
    return translator


async def build_redis(settings: Settings, stack: contextlib.AsyncExitStack) -> Redis | None:
    """Redis, when REDIS_URL is set: checked now, so a wrong URL stops the start in one line."""
    if settings.redis_url is None:
        if settings.database_url is not None:
            log.warning(
                "DATABASE_URL without REDIS_URL: run this bot as a single replica. Replicas "
                "share Telegram's limits, waiting states, albums, flood counters and the "
                "polling lead through Redis."
            )
        return None
    redis = Redis.from_url(
        settings.redis_url.get_secret_value(),
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
    )
    stack.push_async_callback(redis.aclose)
    try:
        await redis.ping()
    except (RedisError, OSError) as error:
        raise StartupError(f"Redis (REDIS_URL) does not answer: {error}") from None
    return redis


async def connect_telegram_updates(
    settings: Settings,
    bot: Bot,
    dispatcher: Dispatcher,
    web_app: web.Application,
    inbox: UpdateInbox,
) -> CommittedUpdates | None:
    """Take Telegram's updates by webhook on our server, or clear it for long polling."""
    if not settings.telegram_webhook or not settings.public_url:
        await bot.delete_webhook()
        return None
    token = settings.bot_token.get_secret_value()
    telegram_secret = derive_secret(token, "telegram-webhook")
    path = TELEGRAM_WEBHOOK_PREFIX + derive_secret(token, "telegram-path")
    updates = CommittedUpdates(dispatcher, bot, inbox, telegram_secret)
    updates.register(web_app, path)
    await bot.set_webhook(
        f"{settings.public_url}{path}",
        secret_token=telegram_secret,
        allowed_updates=dispatcher.resolve_used_update_types(),
    )
    return updates


async def serve(
    settings: Settings, web_app: web.Application, stack: contextlib.AsyncExitStack
) -> web.AppRunner:
    """Listen on WEB_HOST:WEB_PORT."""
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    try:
        await web.TCPSite(runner, settings.web_host, settings.web_port).start()
    except OSError as error:
        raise StartupError(
            f"Cannot listen on {settings.web_host}:{settings.web_port} "
            f"(WEB_HOST/WEB_PORT): {error.strerror or error}"
        ) from None
    return runner


def build_poller(
    settings: Settings,
    tasks: TaskRepo,
    client: UserAPIClient,
    jobs: Jobs,
    alerts: Alerts | None,
) -> StatusPoller:
    """The status poller: the only source of updates without PUBLIC_URL, a watchdog with it."""
    return StatusPoller(
        repo=tasks,
        client=client,
        jobs=jobs,
        interval=settings.poll_interval,
        max_interval=settings.poll_max_interval,
        quiet_after=settings.webhook_quiet_after if settings.public_url else None,
        max_rate=settings.poll_max_rate,
        stuck_after=settings.stuck_after,
        # A key rejected while polling is alerted like one rejected when a job is sent.
        on_key_rejected=(lambda error: alerts.api_error(error, None)) if alerts else None,
    )


def build_web(
    settings: Settings,
    jobs: Jobs,
    client: UserAPIClient,
    tasks: TaskRepo,
    policy: Policy,
    i18n: I18n,
    readiness: Readiness,
    bot: Bot,
    user_settings: UserSettingsRepo,
) -> web.Application:
    """The HTTP server's routes: health, readiness, metrics, userapi's webhook, the Mini Apps."""
    token = settings.bot_token.get_secret_value()
    web_app = build_web_app(
        jobs=jobs,
        client=client,
        tasks=tasks,
        webhook_secret=derive_secret(token, "userapi-webhook"),
        readiness=readiness,
        metrics_token=secret_value(settings.metrics_token),
    )
    RegionApp(
        jobs=jobs,
        tasks=tasks,
        client=client,
        token=token,
        max_age=settings.webapp_max_age,
        i18n=i18n,
        policy=policy,
    ).register(web_app)
    GalleryApp(
        jobs=jobs,
        tasks=tasks,
        user_settings=user_settings,
        pictures=Pictures(bot, client),
        token=token,
        max_age=settings.webapp_max_age,
        i18n=i18n,
        policy=policy,
        allowed_speeds=tuple(settings.allowed_speeds),
    ).register(web_app)
    return web_app
