"""Wiring: settings in, a running bot out (Telegram, the HTTP server, the poller, the storage)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiogram import BaseMiddleware, Bot, Dispatcher
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage, DefaultKeyBuilder
from aiogram.fsm.storage.memory import SimpleEventIsolation
from aiogram.fsm.storage.redis import RedisEventIsolation, RedisStorage
from aiogram.types import (
    TelegramObject,
)
from aiogram.utils.i18n import I18n
from aiohttp import web
from redis.asyncio import Redis
from sqlalchemy.exc import SQLAlchemyError

from bot.build import (
    build_alerts,
    build_jobs,
    build_policy,
    build_poller,
    build_redis,
    build_telegram,
    build_translator,
    build_userapi,
    build_view,
    connect_telegram_updates,
    protect_secrets,
    serve,
)
from bot.config import Settings
from bot.delivery.results import TelegramView
from bot.jobs.poller import StatusPoller
from bot.jobs.service import Jobs
from bot.owner.alerts import Alerts
from bot.owner.inline import tell_if_inline_off
from bot.owner.retention import prune_daily
from bot.prompts.translate import Translator
from bot.runtime.lease import Lease, RedisLease, SoleLease, while_leading
from bot.runtime.redact import RedactSecrets
from bot.runtime.redact import uninstall as uninstall_redaction
from bot.telegram.i18n import build_i18n
from bot.telegram.menus import set_admin_menus, set_command_menus
from bot.telegram.ratelimit import RateLimiter
from bot.userapi import UserAPIClient
from bot.userapi.simulator import Simulator
from bot.web.region import RegionApp
from bot.web.server import (
    READY,
    build_web_app,
    derive_secret,
)
from bot.web.updates import CommittedUpdates
from handlers import get_routers
from handlers.admin.texts import admin_commands
from handlers.middlewares.access import AccessMiddleware
from handlers.middlewares.language import UserLocaleMiddleware
from storage.claims import CLAIM_RENEW, UpdateInbox
from storage.database import Database, database_url
from storage.fsm import DatabaseStorage
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
# With replicas, how often each one recounts the slots all of them hold.
SLOT_SYNC_SECONDS = 1.0


class RunningHandlers(BaseMiddleware):
    """Knows the updates being handled, so a stop can wait for them (an outer middleware)."""

    def __init__(self) -> None:
        self._running: set[asyncio.Task[Any]] = set()

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        """Run the update's handlers, noting the task that runs them."""
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - aiogram always handles inside a task
            return await handler(event, data)
        self._running.add(task)
        try:
            return await handler(event, data)
        finally:
            self._running.discard(task)

    async def finish(self, grace: float) -> None:
        """Wait for running updates to end, then cancel those still running."""
        running = {task for task in self._running if task is not asyncio.current_task()}
        if not running:
            return
        _, late = await asyncio.wait(running, timeout=grace)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)


def _idle() -> asyncio.Event:
    event = asyncio.Event()
    event.set()
    return event


@dataclass
class App:
    """A started bot; `stop()` shuts every part down in order."""

    settings: Settings
    db: Database
    client: UserAPIClient
    bot: Bot
    dispatcher: Dispatcher
    jobs: Jobs
    tasks: TaskRepo
    poller: StatusPoller
    updates: CommittedUpdates | None
    view: TelegramView
    runner: web.AppRunner
    limiter: RateLimiter
    handlers: RunningHandlers
    lease: Lease = field(default_factory=SoleLease)
    simulator: Simulator | None = None
    alerts: Alerts | None = None
    background: list[asyncio.Task[None]] = field(default_factory=list)
    # Set while this replica does no leader's work (so a stop can wait for it to end).
    led: asyncio.Event = field(default_factory=_idle)
    stopping: bool = False
    redactor: RedactSecrets | None = None
    translator: Translator | None = None

    async def wait(self) -> None:
        """Run until the Telegram side stops (polling ends, or forever with a webhook).

        A standby replica waits here and takes over when the lead comes free.
        """
        webhook = self.settings.telegram_webhook
        await while_leading(self.lease, self._lead, None if webhook else self._stop_polling)

    async def _lead(self) -> None:
        """What one replica alone does: poll userapi's /status and (long polling) Telegram.

        Two replicas polling Telegram would take turns being told 409 Conflict. Taking the
        lead from another replica, it first takes up the queue and what that one left, as a
        restart does (alone, that was done at start).
        """
        self.led.clear()
        poller: asyncio.Task[None] | None = None
        try:
            if not isinstance(self.lease, SoleLease):
                await self.jobs.recover(alone=False)
            if self.stopping:
                return
            poller = asyncio.create_task(self.poller.run())
            if self.updates is not None:
                sweep = asyncio.create_task(self.updates.sweep())
                try:
                    await poller
                finally:
                    sweep.cancel()
                    await asyncio.gather(sweep, return_exceptions=True)
            elif self.settings.telegram_webhook:
                await poller
            else:
                await self.dispatcher.start_polling(
                    self.bot,
                    handle_signals=False,
                    close_bot_session=False,
                    tasks_concurrency_limit=UPDATES_AT_ONCE,
                )
        finally:
            if poller is not None:
                poller.cancel()
                await asyncio.gather(poller, return_exceptions=True)
            self.led.set()

    async def _stop_polling(self) -> None:
        with contextlib.suppress(RuntimeError):  # polling had not started yet
            await self.dispatcher.stop_polling()

    async def stop(self) -> None:
        """Stop taking work, finish what is running, and close every connection."""
        self.stopping = True
        await self._stop_polling()
        self.poller.stop()
        # The leader's work (Telegram polling, the status poller) ends before anything closes.
        await self.led.wait()
        # Polling runs each update as a task and stop_polling doesn't wait for them; a handler
        # still running would reopen the Telegram session after it is closed.
        await self.handlers.finish(HANDLER_GRACE_SECONDS)
        for task in self.background:
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)
        # No new webhooks or Mini App calls first, then let running deliveries finish, then
        # drop pending progress edits: nothing may use the Telegram session once it is closed.
        await self.runner.cleanup()
        if self.updates is not None:
            await self.updates.drain(HANDLER_GRACE_SECONDS)
        if self.settings.telegram_webhook:
            # Polling emits the routers' shutdown as it ends; by webhook nothing else would, and
            # albums still gathering (handlers/middlewares/albums.py) would never be handled.
            await self.dispatcher.emit_shutdown(bot=self.bot, **self.dispatcher.workflow_data)
        await self.jobs.drain()
        # Deliveries cut off by the drain go back now, not when their claims expire.
        await self.tasks.hand_back()
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
    redactor = protect_secrets(settings, stack)
    url = settings.database_url.get_secret_value() if settings.database_url else None
    db = await Database.open(database_url(url, settings.database_path))
    stack.push_async_callback(db.close)
    redis = await build_redis(settings, stack)
    client, simulator = await build_userapi(settings, stack)
    bot, limiter = await build_telegram(settings, stack)
    i18n = build_i18n()
    tasks = TaskRepo(db)
    user_settings = UserSettingsRepo(db)
    view = build_view(settings, bot, tasks, client, i18n, user_settings, stack)
    policy, payments = build_policy(settings, db, i18n)
    alerts = build_alerts(settings, client, bot, UsageRepo(db), i18n, stack)
    webhook_secret = derive_secret(token, "userapi-webhook")
    jobs = build_jobs(settings, tasks, client, view, policy, alerts, bot, i18n, webhook_secret)
    stack.push_async_callback(jobs.drain)
    translator = build_translator(settings, stack)
    handlers = RunningHandlers()
    dispatcher = build_dispatcher(
        db,
        redis,
        handlers,
        i18n,
        jobs=jobs,
        tasks=tasks,
        user_settings=user_settings,
        settings=settings,
        client=client,
        policy=policy,
        translator=translator,
        payments=payments,
    )
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
    updates = await connect_telegram_updates(settings, bot, dispatcher, web_app, UpdateInbox(db))
    runner = await serve(settings, web_app, stack)
    poller = build_poller(settings, tasks, client, jobs, alerts)
    bot_id = (await bot.me()).id
    app = App(
        lease=RedisLease(redis, f"{bot_id}:leader") if redis else SoleLease(),
        settings=settings,
        db=db,
        client=client,
        bot=bot,
        dispatcher=dispatcher,
        jobs=jobs,
        tasks=tasks,
        poller=poller,
        updates=updates,
        view=view,
        runner=runner,
        limiter=limiter,
        handlers=handlers,
        simulator=simulator,
        alerts=alerts,
        redactor=redactor,
        translator=translator,
    )
    await set_command_menus(bot, i18n, payments.enabled)
    await set_admin_menus(bot, i18n, settings.admin_ids, admin_commands, payments.enabled)
    await tell_if_inline_off(bot, db, settings.admin_ids, i18n)
    await go_live(app, web_app)
    return app


async def go_live(app: App, web_app: web.Application) -> None:
    """Take up the work left by the last run, start the background loops, report ready."""
    if isinstance(app.lease, SoleLease):
        await app.jobs.recover(alone=True)
    else:
        if app.jobs.queue is not None:
            app.jobs.queue.shared = True
        app.background.append(asyncio.create_task(share_slots(app.jobs)))
    # The leader's work (polling userapi and Telegram) runs in App.wait.
    app.background.append(asyncio.create_task(keep_claims(app.tasks)))
    app.background.append(asyncio.create_task(prune_daily(app.db, app.settings.retention_days)))
    if app.alerts is not None:
        app.background.append(asyncio.create_task(app.alerts.run()))
    web_app[READY]["ready"] = True
    log.info(
        "Bot started: Telegram by %s, task updates by %s",
        "webhook" if app.settings.telegram_webhook else "long polling",
        "webhook" if app.settings.public_url else "polling",
    )


async def keep_claims(tasks: TaskRepo) -> None:
    """Renew this process's claims for as long as it runs (they expire if it dies)."""
    while True:
        await asyncio.sleep(CLAIM_RENEW)
        await tasks.renew_claims()


async def share_slots(jobs: Jobs) -> None:
    """Replicas: every second, count Midjourney's slots as all replicas' jobs hold them."""
    while True:
        await asyncio.sleep(SLOT_SYNC_SECONDS)
        try:
            await jobs.sync_slots()
        except (SQLAlchemyError, OSError) as error:
            log.warning("Slots not synced: %s", error)


def build_dispatcher(
    db: Database,
    redis: Redis | None,
    handlers: RunningHandlers,
    i18n: I18n,
    **dependencies: Any,
) -> Dispatcher:
    """The dispatcher: the routers, the middlewares every update passes, and what handlers get."""
    # Waiting states survive a restart: in the database, or in Redis where replicas share
    # them (and take turns on one user's updates, so two replicas never interleave a flow).
    storage: BaseStorage = DatabaseStorage(db)
    isolation: BaseEventIsolation = SimpleEventIsolation()
    if redis is not None:
        storage = RedisStorage(redis, key_builder=DefaultKeyBuilder(with_bot_id=True))
        isolation = RedisEventIsolation(redis, key_builder=DefaultKeyBuilder(with_bot_id=True))
    dispatcher = Dispatcher(
        storage=storage,
        events_isolation=isolation,
        prompts=PromptRequestRepo(db),
        users=UserRepo(db),
        uploads=UploadRepo(db),
        **dependencies,
    )
    dispatcher.update.outer_middleware(handlers)
    dispatcher.include_routers(*get_routers())
    UserLocaleMiddleware(i18n).setup(dispatcher)
    access_middleware = AccessMiddleware()
    dispatcher.message.outer_middleware(access_middleware)
    dispatcher.callback_query.outer_middleware(access_middleware)
    return dispatcher
