"""Wiring: settings in, a running bot out (Telegram, the HTTP server, the poller, the storage)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramAPIError
from aiogram.types import BotCommand, BotCommandScopeChat, BotCommandScopeDefault
from aiogram.utils.i18n import I18n
from aiogram.utils.token import TokenValidationError
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from bot.alerts import Alerts
from bot.config import Settings
from bot.delivery import TelegramView
from bot.i18n import DEFAULT_LOCALE, LOCALES, _, build_i18n
from bot.jobs import Jobs
from bot.limits import Defaults, Policy
from bot.payments import Payments
from bot.poller import StatusPoller
from bot.queue_notices import TelegramQueueNotices
from bot.ratelimit import Limits, RateLimiter
from bot.redact import RedactSecrets
from bot.redact import install as install_redaction
from bot.redact import uninstall as uninstall_redaction
from bot.retention import prune_daily
from bot.telegram import StartupError, create_session, wait_for_telegram
from bot.translate import Translator
from bot.userapi import UserAPIClient
from bot.userapi.simulator import Simulator, SimulatorConfig
from bot.web import (
    READY,
    TELEGRAM_WEBHOOK_PREFIX,
    USERAPI_WEBHOOK_PREFIX,
    build_web_app,
    derive_secret,
)
from bot.webapp import RegionApp
from bot.webhook_watch import WebhookWatch
from handlers import get_routers
from handlers.admin_texts import admin_commands
from handlers.middlewares import AccessMiddleware, UserLocaleMiddleware
from storage.access import AccessRepo
from storage.credits import CreditsRepo
from storage.database import Database
from storage.fsm import SQLiteStorage
from storage.prompts import PromptRequestRepo
from storage.settings import UserSettingsRepo
from storage.tasks import TaskRepo
from storage.uploads import UploadRepo
from storage.usage import UsageRepo
from storage.users import UserRepo

log = logging.getLogger(__name__)

# How long a stop waits for updates being handled before cancelling them.
HANDLER_GRACE_SECONDS = 5.0
# Updates handled at once. A burst (a thousand /imagine) otherwise holds a thousand handlers
# in memory, each waiting for its turn at Telegram's 30 messages/s anyway.
UPDATES_AT_ONCE = 64


def user_commands(paid: bool = False) -> list[BotCommand]:
    """The command menu everyone sees, in the current language."""
    if paid:
        return [
            *user_commands(),
            BotCommand(command="buy", description=_("Buy credits with Telegram Stars")),
            BotCommand(command="balance", description=_("Your credits and purchases")),
        ]
    return [
        BotCommand(command="imagine", description=_("Create images from a prompt")),
        BotCommand(command="settings", description=_("Default aspect ratio, model, speed")),
        BotCommand(command="history", description=_("Your recent jobs")),
        BotCommand(command="language", description=_("Change the language")),
        BotCommand(command="me", description=_("Your usage today and your limits")),
        BotCommand(command="help", description=_("How to use the bot")),
    ]


async def set_command_menus(bot: Bot, i18n: I18n, paid: bool = False) -> None:
    """Publish the command menu in every language (Telegram picks by the user's app language)."""
    for locale in LOCALES:
        with i18n.context(), i18n.use_locale(locale):
            commands = user_commands(paid)
        language = None if locale == DEFAULT_LOCALE else locale
        await bot.set_my_commands(commands, scope=BotCommandScopeDefault(), language_code=language)


async def set_admin_menus(bot: Bot, i18n: I18n, admin_ids: list[int], paid: bool = False) -> None:
    """Give each admin's private chat the user commands plus the console's."""
    for admin_id in admin_ids:
        for locale in LOCALES:
            with i18n.context(), i18n.use_locale(locale):
                commands = user_commands(paid) + admin_commands(paid)
            language = None if locale == DEFAULT_LOCALE else locale
            try:
                await bot.set_my_commands(
                    commands, scope=BotCommandScopeChat(chat_id=admin_id), language_code=language
                )
            except TelegramAPIError as error:
                # An admin who never opened the bot has no chat to scope the menu to yet.
                log.warning("No command menu for admin %d: %s", admin_id, error.message)
                break


def admin_sender(bot: Bot, admin_ids: list[int]) -> Callable[[str], Awaitable[None]]:
    """A function that sends a text to every admin's private chat."""

    async def send(text: str) -> None:
        for admin_id in admin_ids:
            try:
                await bot.send_message(chat_id=admin_id, text=text)
            except TelegramAPIError as error:
                log.warning("Alert to admin %d not sent: %s", admin_id, error.message)

    return send


@dataclass
class App:
    """A started bot; `stop()` shuts every part down in order."""

    settings: Settings
    db: Database
    client: UserAPIClient
    bot: Bot
    dispatcher: Dispatcher
    jobs: Jobs
    poller: StatusPoller
    view: TelegramView
    runner: web.AppRunner
    limiter: RateLimiter
    simulator: Simulator | None = None
    alerts: Alerts | None = None
    background: list[asyncio.Task[None]] = field(default_factory=list)
    redactor: RedactSecrets | None = None
    translator: Translator | None = None

    async def wait(self) -> None:
        """Run until the Telegram side stops (polling ends, or forever with a webhook)."""
        if self.settings.telegram_webhook:
            await asyncio.Event().wait()
        else:
            await self.dispatcher.start_polling(
                self.bot,
                handle_signals=False,
                close_bot_session=False,
                tasks_concurrency_limit=UPDATES_AT_ONCE,
            )

    async def stop(self) -> None:
        """Stop taking work, finish what is running, and close every connection."""
        with contextlib.suppress(RuntimeError):  # polling was not running
            await self.dispatcher.stop_polling()
        # Polling runs each update as a task and stop_polling doesn't wait for them; a handler
        # still running would reopen the Telegram session after it is closed.
        handlers = set(self.dispatcher._handle_update_tasks)
        if handlers:
            _, late = await asyncio.wait(handlers, timeout=HANDLER_GRACE_SECONDS)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        self.poller.stop()
        for task in self.background:
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)
        # No new webhooks or Mini App calls first, then let running deliveries finish, then
        # drop pending progress edits: nothing may use the Telegram session once it is closed.
        await self.runner.cleanup()
        await self.jobs.drain()
        # After the drain: a job failing while it drained starts an account re-check, which
        # may alert the admins over Telegram.
        if self.alerts is not None:
            await self.alerts.stop()
        await self.view.close()
        await self.client.aclose()
        if self.translator is not None:
            await self.translator.aclose()
        # A request still waiting for a token would reopen the session closed next; cancel it.
        await self.limiter.close()
        await self.bot.session.close()
        if self.simulator is not None:
            await self.simulator.stop()
        await self.db.close()
        if self.redactor is not None:
            uninstall_redaction(self.redactor)


async def start_app(settings: Settings) -> App:
    """Open storage, connect to the APIs, start the HTTP server and the poller.

    A failure part-way releases what was started already, then raises.
    """
    async with contextlib.AsyncExitStack() as stack:
        app = await _start(settings, stack)
        # Started: from now on App.stop releases everything, in its own order.
        stack.pop_all()
        return app


async def _start(settings: Settings, stack: contextlib.AsyncExitStack) -> App:
    """The start itself; what it opens is pushed on `stack` to be released on failure."""
    token = settings.bot_token.get_secret_value()
    # First of all: no record may carry the token or a key, a failing start's included.
    redactor = install_redaction(
        [token]
        + [
            secret.get_secret_value()
            for secret in (settings.userapi_key, settings.translate_api_key)
            if secret is not None
        ]
    )
    stack.callback(uninstall_redaction, redactor)
    db = await Database.open(settings.database_path)
    stack.push_async_callback(db.close)
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

    limiter = RateLimiter(Limits().scaled(settings.telegram_rate_scale))
    stack.push_async_callback(limiter.close)
    try:
        bot = Bot(
            token=token,
            session=create_session(settings.telegram_api_url, limiter),
            default=DefaultBotProperties(parse_mode=ParseMode.HTML),
        )
    except TokenValidationError:
        raise StartupError(
            "BOT_TOKEN is not a bot token: copy it again from @BotFather in Telegram.",
            exit_code=2,
        ) from None
    stack.push_async_callback(bot.session.close)
    await wait_for_telegram(bot, settings.telegram_api_url)
    tasks = TaskRepo(db)
    i18n = build_i18n()
    user_settings = UserSettingsRepo(db)
    view = TelegramView(
        bot,
        tasks,
        client,
        i18n,
        edit_interval=settings.progress_edit_interval,
        user_settings=user_settings,
    )
    stack.push_async_callback(view.close)
    webhook_secret = derive_secret(token, "userapi-webhook")
    webhook_url = (
        f"{settings.public_url}{USERAPI_WEBHOOK_PREFIX}{webhook_secret}"
        if settings.public_url
        else None
    )
    usage = UsageRepo(db)
    payments = Payments(
        credits=CreditsRepo(db),
        enabled=settings.payments == "stars",
        packs=settings.stars_packs,
        costs=settings.job_costs,
    )
    policy = Policy(
        access=AccessRepo(db),
        usage=usage,
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

    async def account_hashes() -> list[str]:
        seen = await usage.account_hashes()
        return list(dict.fromkeys([*settings.userapi_accounts, *seen]))

    # Without admins nobody could read an alert, so nothing is watched.
    alerts = (
        Alerts(
            client=client,
            send=admin_sender(bot, settings.admin_ids),
            accounts=account_hashes,
            interval=settings.account_check_interval,
            fast_percent=settings.fast_time_alert_percent,
            burst_count=settings.error_burst_count,
            burst_window=settings.error_burst_window,
            i18n=i18n,
        )
        if settings.admin_ids
        else None
    )
    if alerts is not None:
        stack.push_async_callback(alerts.stop)
    webhooks = None
    if webhook_url is not None:
        # The secret part of the path is left out: the alert shows where, not how to forge.
        shown_url = f"{settings.public_url}{USERAPI_WEBHOOK_PREFIX}…"
        webhooks = WebhookWatch(
            grace=settings.webhook_grace,
            on_broken=(lambda: alerts.webhooks_broken(shown_url)) if alerts else None,
            on_restored=alerts.webhooks_restored if alerts else None,
        )
    jobs = Jobs(
        repo=tasks,
        client=client,
        view=view,
        webhook_url=webhook_url,
        gate=policy,
        max_concurrent=settings.max_concurrent_jobs,
        accounts=settings.userapi_accounts,
        queue_view=TelegramQueueNotices(bot, i18n, tasks),
        observer=alerts,
        webhooks=webhooks,
    )
    stack.push_async_callback(jobs.drain)

    users = UserRepo(db)
    translator = (
        Translator(
            url=settings.translate_url,
            api_key=(
                settings.translate_api_key.get_secret_value()
                if settings.translate_api_key
                else None
            ),
            timeout=settings.translate_timeout,
        )
        if settings.translate_url
        else None
    )
    if translator is not None:
        stack.push_async_callback(translator.aclose)
    dispatcher = Dispatcher(
        # Waiting states in the database: a flow half done survives a restart.
        storage=SQLiteStorage(db),
        jobs=jobs,
        tasks=tasks,
        prompts=PromptRequestRepo(db),
        user_settings=user_settings,
        users=users,
        settings=settings,
        client=client,
        uploads=UploadRepo(db),
        policy=policy,
        translator=translator,
        payments=payments,
    )
    dispatcher.include_routers(*get_routers())
    UserLocaleMiddleware(i18n).setup(dispatcher)
    access_middleware = AccessMiddleware()
    dispatcher.message.outer_middleware(access_middleware)
    dispatcher.callback_query.outer_middleware(access_middleware)

    web_app = build_web_app(jobs=jobs, client=client, tasks=tasks, webhook_secret=webhook_secret)
    RegionApp(
        jobs=jobs,
        tasks=tasks,
        client=client,
        token=token,
        max_age=settings.webapp_max_age,
        i18n=i18n,
        policy=policy,
    ).register(web_app)
    if settings.telegram_webhook:
        if not settings.public_url:
            raise StartupError("TELEGRAM_WEBHOOK=true needs PUBLIC_URL.", exit_code=2)
        telegram_secret = derive_secret(token, "telegram-webhook")
        path = TELEGRAM_WEBHOOK_PREFIX + derive_secret(token, "telegram-path")
        SimpleRequestHandler(dispatcher, bot, secret_token=telegram_secret).register(
            web_app, path=path
        )
        await bot.set_webhook(
            f"{settings.public_url}{path}",
            secret_token=telegram_secret,
            allowed_updates=dispatcher.resolve_used_update_types(),
        )
    else:
        await bot.delete_webhook()
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

    poller = StatusPoller(
        repo=tasks,
        client=client,
        jobs=jobs,
        interval=settings.poll_interval,
        max_interval=settings.poll_max_interval,
        quiet_after=settings.webhook_quiet_after if webhook_url else None,
        max_rate=settings.poll_max_rate,
        stuck_after=settings.stuck_after,
        # A key rejected while polling is alerted like one rejected when a job is sent.
        on_key_rejected=(lambda error: alerts.api_error(error, None)) if alerts else None,
    )
    app = App(
        settings=settings,
        db=db,
        client=client,
        bot=bot,
        dispatcher=dispatcher,
        jobs=jobs,
        poller=poller,
        view=view,
        runner=runner,
        limiter=limiter,
        simulator=simulator,
        alerts=alerts,
        redactor=redactor,
        translator=translator,
    )
    await set_command_menus(bot, i18n, payments.enabled)
    await set_admin_menus(bot, i18n, settings.admin_ids, payments.enabled)
    await jobs.recover()
    app.background.append(asyncio.create_task(poller.run()))
    app.background.append(asyncio.create_task(prune_daily(db, settings.retention_days)))
    if alerts is not None:
        app.background.append(asyncio.create_task(alerts.run()))
    web_app[READY]["ready"] = True
    log.info(
        "Bot started: Telegram by %s, task updates by %s",
        "webhook" if settings.telegram_webhook else "long polling",
        "webhook" if webhook_url else "polling",
    )
    return app
