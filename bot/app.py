"""Wiring: settings in, a running bot out (Telegram, the HTTP server, the poller, the storage)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.enums import ParseMode
from aiogram.types import BotCommand, BotCommandScopeDefault
from aiogram.utils.i18n import SimpleI18nMiddleware
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from bot.config import Settings
from bot.delivery import TelegramView
from bot.i18n import build_i18n
from bot.jobs import Jobs
from bot.poller import StatusPoller
from bot.telegram import create_session
from bot.userapi import UserAPIClient
from bot.userapi.simulator import Simulator, SimulatorConfig
from bot.web import (
    READY,
    TELEGRAM_WEBHOOK_PREFIX,
    USERAPI_WEBHOOK_PREFIX,
    build_web_app,
    derive_secret,
)
from handlers import get_routers
from storage.database import Database
from storage.prompts import PromptRequestRepo
from storage.tasks import TaskRepo
from storage.users import UserRepo

log = logging.getLogger(__name__)

USER_COMMANDS = [
    BotCommand(command="imagine", description="Create images from a prompt"),
    BotCommand(command="help", description="How to use the bot"),
]


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
    runner: web.AppRunner
    simulator: Simulator | None = None
    background: list[asyncio.Task[None]] = field(default_factory=list)

    async def wait(self) -> None:
        """Run until the Telegram side stops (polling ends, or forever with a webhook)."""
        if self.settings.telegram_webhook:
            await asyncio.Event().wait()
        else:
            await self.dispatcher.start_polling(
                self.bot, handle_signals=False, close_bot_session=False
            )

    async def stop(self) -> None:
        """Stop taking work, finish what is running, and close every connection."""
        with contextlib.suppress(RuntimeError):  # polling was not running
            await self.dispatcher.stop_polling()
        self.poller.stop()
        for task in self.background:
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)
        await self.jobs.drain()
        await self.runner.cleanup()
        await self.client.aclose()
        await self.bot.session.close()
        if self.simulator is not None:
            await self.simulator.stop()
        await self.db.close()


async def start_app(settings: Settings) -> App:
    """Open storage, connect to the APIs, start the HTTP server and the poller."""
    db = await Database.open(settings.database_path)
    simulator: Simulator | None = None
    if settings.userapi_key is None:
        simulator = Simulator(SimulatorConfig(pace=settings.simulator_pace))
        base_url = await simulator.start()
        api_key = "simulator"
        log.warning("=" * 70)
        log.warning("No USERAPI_KEY set: running on the BUILT-IN SIMULATOR at %s.", base_url)
        log.warning("Images are drawn locally; nothing reaches Midjourney.")
        log.warning("=" * 70)
    else:
        base_url = settings.userapi_base_url
        api_key = settings.userapi_key.get_secret_value()
    client = UserAPIClient(base_url=base_url, api_key=api_key)

    token = settings.bot_token.get_secret_value()
    bot = Bot(
        token=token,
        session=create_session(settings.telegram_api_url),
        default=DefaultBotProperties(parse_mode=ParseMode.HTML),
    )
    tasks = TaskRepo(db)
    i18n = build_i18n()
    view = TelegramView(bot, tasks, client, i18n, edit_interval=settings.progress_edit_interval)
    webhook_secret = derive_secret(token, "userapi-webhook")
    webhook_url = (
        f"{settings.public_url}{USERAPI_WEBHOOK_PREFIX}{webhook_secret}"
        if settings.public_url
        else None
    )
    jobs = Jobs(repo=tasks, client=client, view=view, webhook_url=webhook_url)

    dispatcher = Dispatcher(
        jobs=jobs,
        tasks=tasks,
        prompts=PromptRequestRepo(db),
        users=UserRepo(db),
        settings=settings,
    )
    dispatcher.include_routers(*get_routers())
    SimpleI18nMiddleware(i18n).setup(dispatcher)

    web_app = build_web_app(jobs=jobs, webhook_secret=webhook_secret)
    if settings.telegram_webhook:
        if not settings.public_url:
            raise SystemExit("TELEGRAM_WEBHOOK=true needs PUBLIC_URL.")
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
    await web.TCPSite(runner, settings.web_host, settings.web_port).start()

    poller = StatusPoller(
        repo=tasks,
        client=client,
        jobs=jobs,
        interval=settings.poll_interval,
        max_interval=settings.poll_max_interval,
        quiet_after=settings.webhook_quiet_after if webhook_url else None,
    )
    app = App(
        settings=settings,
        db=db,
        client=client,
        bot=bot,
        dispatcher=dispatcher,
        jobs=jobs,
        poller=poller,
        runner=runner,
        simulator=simulator,
    )
    await bot.set_my_commands(USER_COMMANDS, scope=BotCommandScopeDefault())
    await jobs.recover()
    app.background.append(asyncio.create_task(poller.run()))
    web_app[READY]["ready"] = True
    log.info(
        "Bot started: Telegram by %s, task updates by %s",
        "webhook" if settings.telegram_webhook else "long polling",
        "webhook" if webhook_url else "polling",
    )
    return app
