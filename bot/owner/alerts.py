"""Telling the owner about trouble: an account leaving `active`, fast time running low, the key
rejected, a burst of errors. Each alert goes out once per episode, not once per job."""

from __future__ import annotations

import asyncio
import html
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.utils.i18n import I18n

from bot.owner.accounts import AccountState, read_account, short_hash
from bot.runtime.metrics import FAST_ALERT_RATIO, FAST_SECONDS_LEFT, FAST_SECONDS_TOTAL
from bot.telegram.i18n import DEFAULT_LOCALE, _
from bot.userapi import UserAPIClient, UserAPIError
from storage.tasks import TaskRecord

log = logging.getLogger(__name__)

# After an error, the account is looked at again, but not more often than this.
RECHECK_AFTER_ERROR = 30.0


class Alerts:
    """Watches accounts and job outcomes; a `JobObserver` for bot/jobs.py."""

    def __init__(
        self,
        *,
        client: UserAPIClient,
        send: Callable[[str], Awaitable[None]],
        accounts: Callable[[], Awaitable[list[str]]],
        interval: float = 300.0,
        fast_percent: float = 10.0,
        burst_count: int = 5,
        burst_window: float = 300.0,
        i18n: I18n | None = None,
    ) -> None:
        self._client = client
        self._send = send
        self._accounts = accounts
        self._interval = interval
        self._fast_percent = fast_percent
        FAST_ALERT_RATIO.set(fast_percent / 100)
        self._burst_count = burst_count
        self._burst_window = burst_window
        self._i18n = i18n
        self._open: set[str] = set()
        self._errors: deque[float] = deque()
        self._last_check: dict[str, float] = {}
        self._checking: set[str] = set()
        self._background: set[asyncio.Task[None]] = set()

    @contextmanager
    def _speaking(self) -> Iterator[None]:
        if self._i18n is None:
            yield
            return
        with self._i18n.context(), self._i18n.use_locale(DEFAULT_LOCALE):
            yield

    # -- episodes ------------------------------------------------------------------------

    async def _raise(self, key: str, text: str) -> None:
        """Send an alert unless this episode was already announced."""
        if key in self._open:
            return
        self._open.add(key)
        log.warning("Admin alert %s", key)
        try:
            await self._send(text)
        except Exception:
            # Alerts are best-effort: a Telegram hiccup must not break the job that noticed.
            log.exception("Sending admin alert %s failed", key)

    def _clear(self, key: str) -> None:
        if key in self._open:
            log.info("Alert episode %s is over", key)
        self._open.discard(key)

    # -- accounts ------------------------------------------------------------------------

    async def check_account(self, account_hash: str) -> AccountState:
        """Read one account and raise or end its alert episodes."""
        self._last_check[account_hash] = time.monotonic()
        state = await read_account(self._client, account_hash)
        with self._speaking():
            await self._judge(state)
        return state

    async def _judge(self, state: AccountState) -> None:
        name = html.escape(short_hash(state.hash))
        if state.discord is not None:
            self._clear("key")
            status = state.discord.status or "unknown"
            key = f"account:{state.hash}"
            if status == "active":
                self._clear(key)
            else:
                reason = state.discord.status_reason or ""
                await self._raise(
                    key,
                    _("⚠️ Account {name} is <b>{status}</b>: {reason}").format(
                        name=name, status=html.escape(status), reason=html.escape(reason)
                    ),
                )
        fast = state.info.fast_time_remaining if state.info else None
        if fast is not None:
            FAST_SECONDS_LEFT.labels(state.hash).set(fast.remaining_sec)
            FAST_SECONDS_TOTAL.labels(state.hash).set(fast.total_sec)
        percent = state.fast_percent
        if percent is not None:
            key = f"fast:{state.hash}"
            if percent < self._fast_percent:
                await self._raise(
                    key,
                    _("⏳ Account {name} has {percent:.0f}% fast time left.").format(
                        name=name, percent=percent
                    ),
                )
            else:
                self._clear(key)

    async def check_all(self) -> None:
        """Read every known account once."""
        for account_hash in await self._accounts():
            try:
                await self.check_account(account_hash)
            except UserAPIError as error:
                await self.api_error(error, None)

    async def run(self) -> None:
        """Check the accounts now and then until cancelled."""
        while True:
            try:
                await self.check_all()
            except Exception:
                # One bad round (a database hiccup) must not end the watch.
                log.exception("Account check failed")
            await asyncio.sleep(self._interval)

    def _recheck_soon(self, account_hash: str | None) -> None:
        if not account_hash or account_hash in self._checking:
            return
        if time.monotonic() - self._last_check.get(account_hash, 0.0) < RECHECK_AFTER_ERROR:
            return
        self._checking.add(account_hash)
        task = asyncio.create_task(self._recheck(account_hash))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _recheck(self, account_hash: str) -> None:
        try:
            await self.check_account(account_hash)
        except UserAPIError as error:
            log.warning("Account re-check failed: %s", error.message)
        finally:
            self._checking.discard(account_hash)

    async def stop(self) -> None:
        """Cancel re-checks still running."""
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    # -- webhooks ------------------------------------------------------------------------

    async def webhooks_broken(self, url: str) -> None:
        """userapi's webhooks don't reach the bot: say where they go and what to check."""
        with self._speaking():
            await self._raise(
                "webhooks",
                _(
                    "📭 userapi's webhooks don't reach the bot at <code>{url}</code>. Results "
                    "still arrive, because the bot asks userapi itself, but later and at a "
                    "cost in requests. Check that PUBLIC_URL opens from the internet over "
                    "HTTPS, that the proxy passes this path on to the bot's WEB_PORT, and that "
                    "no firewall blocks userapi. I'll say nothing more until they arrive again."
                ).format(url=html.escape(url)),
            )

    def webhooks_restored(self) -> None:
        """Webhooks arrive again: a new failure is a new episode."""
        self._clear("webhooks")

    # -- job outcomes (JobObserver) ------------------------------------------------------

    async def api_error(self, error: UserAPIError, account_hash: str | None) -> None:
        """An API call failed: a rejected key is alerted at once; others count toward a burst."""
        with self._speaking():
            if error.is_auth_error:
                await self._raise(
                    "key",
                    _(
                        "🔑 The userapi.ai key was rejected (HTTP {status}). "
                        "Jobs fail until it is fixed."
                    ).format(status=error.status),
                )
                return
            await self._count_error()
        self._recheck_soon(account_hash)

    async def task_failed(self, task: TaskRecord) -> None:
        """A task ended in `error`: count it, and look at its account again."""
        with self._speaking():
            await self._count_error()
        self._recheck_soon(task.account_hash)

    async def _count_error(self) -> None:
        now = time.monotonic()
        self._errors.append(now)
        while self._errors and self._errors[0] < now - self._burst_window:
            self._errors.popleft()
        if len(self._errors) >= self._burst_count:
            await self._raise(
                "burst",
                _(
                    "🔥 {count} jobs failed in the last {minutes} min. /stats has the reasons."
                ).format(count=len(self._errors), minutes=max(1, round(self._burst_window / 60))),
            )
        elif not self._errors or len(self._errors) <= 1:
            self._clear("burst")


def admin_sender(bot: Bot, admin_ids: list[int]) -> Callable[[str], Awaitable[None]]:
    """A function that sends a text to every admin's private chat."""

    async def send(text: str) -> None:
        for admin_id in admin_ids:
            try:
                await bot.send_message(chat_id=admin_id, text=text)
            except TelegramAPIError as error:
                log.warning("Alert to admin %d not sent: %s", admin_id, error.message)

    return send
