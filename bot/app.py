"""Wiring: settings in, a running bot out (Telegram, the HTTP server, the poller, the storage)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiogram import Bot, Dispatcher
from aiohttp import web
from redis.asyncio import Redis

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
    build_web,
    connect_telegram_updates,
    protect_secrets,
    serve,
)
from bot.config import Settings, secret_value
from bot.delivery.results import TelegramView
from bot.dispatch import RunningHandlers, build_dispatcher
from bot.jobs.poller import StatusPoller
from bot.jobs.service import Jobs
from bot.owner.alerts import Alerts
from bot.owner.inline import tell_if_inline_off
from bot.owner.retention import prune_daily
from bot.prompts.translate import Translator
from bot.runtime.background import every
from bot.runtime.lease import Lease, RedisLease, SoleLease, while_leading
from bot.runtime.metrics import UP_SINCE, WEBHOOKS_CONFIGURED, QueueGauges, watch_queue
from bot.runtime.redact import RedactSecrets
from bot.runtime.redact import uninstall as uninstall_redaction
from bot.telegram.i18n import build_i18n
from bot.telegram.menus import set_admin_menus, set_command_menus, set_menu_button
from bot.telegram.ratelimit import RateLimiter
from bot.userapi import UserAPIClient
from bot.userapi.simulator import Simulator
from bot.web.gallery import gallery_url
from bot.web.server import Readiness, derive_secret
from bot.web.updates import CommittedUpdates
from handlers.admin.texts import admin_commands
from storage.database import STORAGE_ERRORS, Database, database_url
from storage.replicas.claims import CLAIM_RENEW, UpdateInbox
from storage.settings import UserSettingsRepo
from storage.tasks import TaskRepo
from storage.usage import UsageRepo

log = logging.getLogger(__name__)

# How long a stop waits for updates being handled before cancelling them.
HANDLER_GRACE_SECONDS = 5.0
# Updates handled at once. A burst (a thousand /imagine) otherwise holds a thousand handlers
# in memory, each waiting for its turn at Telegram's 30 messages/s anyway.
UPDATES_AT_ONCE = 64
# With replicas, how often each one recounts the slots all of them hold.
SLOT_SYNC_SECONDS = 1.0


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
    readiness: Readiness = field(default_factory=Readiness)
    redis: Redis | None = None
    # Stops exporting this bot's queue gauges.
    unwatch: Callable[[], None] = lambda: None

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
                    # The sweep ends only by failing: that must end the lead, not go unseen.
                    await asyncio.wait({poller, sweep}, return_when=asyncio.FIRST_COMPLETED)
                    if sweep.done():
                        sweep.result()
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
        self.stopping = self.readiness.stopping = True
        self.unwatch()
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
        if self.redis is not None:
            await self.redis.aclose()
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
    url = secret_value(settings.database_url)
    db = await Database.open(database_url(url, settings.database_path))
    stack.push_async_callback(db.close)
    redis = await build_redis(settings, stack)
    client, simulator = await build_userapi(settings, stack)
    bot, limiter = await build_telegram(settings, stack, redis)
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
    readiness = Readiness(checks={"database": db.ping})
    if redis is not None:
        readiness.checks["redis"] = redis.ping
    web_app = build_web(settings, jobs, client, tasks, policy, i18n, readiness, bot, user_settings)
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
        readiness=readiness,
        redis=redis,
    )
    await set_command_menus(bot, i18n, payments.enabled)
    await set_admin_menus(bot, i18n, settings.admin_ids, admin_commands, payments.enabled)
    await set_menu_button(bot, i18n, gallery_url(b) if (b := settings.mini_app_base) else None)
    await tell_if_inline_off(bot, db, settings.admin_ids, i18n)
    await go_live(app)
    return app


async def go_live(app: App) -> None:
    """Take up the work left by the last run, start the background loops, report ready."""
    if isinstance(app.lease, SoleLease):
        await app.jobs.recover(alone=True)
    else:
        if app.jobs.queue is not None:
            app.jobs.queue.shared = True
        # Replicas: every second, count Midjourney's slots as all replicas' jobs hold them.
        sync = every(SLOT_SYNC_SECONDS, app.jobs.sync_slots, survives=STORAGE_ERRORS)
        app.background.append(asyncio.create_task(sync))
    # The leader's work (polling userapi and Telegram) runs in App.wait.
    # Claims are renewed for as long as this process runs (they expire if it dies).
    renew = every(CLAIM_RENEW, app.tasks.renew_claims, survives=STORAGE_ERRORS)
    app.background.append(asyncio.create_task(renew))
    app.background.append(asyncio.create_task(prune_daily(app.db, app.settings.retention_days)))
    if app.alerts is not None:
        app.background.append(asyncio.create_task(app.alerts.run()))
    app.unwatch = watch_metrics(app)
    app.readiness.started = True
    log.info(
        "Bot started: Telegram by %s, task updates by %s",
        "webhook" if app.settings.telegram_webhook else "long polling",
        "webhook" if app.settings.public_url else "polling",
    )


def watch_metrics(app: App) -> Callable[[], None]:
    """Export what this bot's metrics read live; the function returned stops it."""
    UP_SINCE.set(time.time())
    WEBHOOKS_CONFIGURED.labels("userapi").set(1 if app.settings.public_url else 0)
    WEBHOOKS_CONFIGURED.labels("telegram").set(1 if app.settings.telegram_webhook else 0)
    queue = app.jobs.queue
    if queue is None:  # no cap: nothing waits, and no slots are counted
        return watch_queue(QueueGauges(dict, lambda: 0))
    return watch_queue(QueueGauges(queue.in_flight, lambda: len(queue)))
