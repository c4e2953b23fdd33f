"""What the bot counts for Prometheus: every series in one place, in a registry of its own.

The names and labels are a contract with deploy/ (the dashboard and the alert rules) and with
whoever scrapes the bot, so they change only on purpose. No label ever holds a secret, a prompt
or a user id: label values come from short fixed sets (method names, task types, outcomes) or
account hashes, which the owner already sees in /accounts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE_LATEST", "REGISTRY", "exposition"]

# Our own registry: tests build several bots in one process and a scrape shows only our series.
REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

# Midjourney takes ~30-60 s in fast mode, minutes in relax: buckets up to ten minutes.
_JOB_BUCKETS = (5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600)
# A result should reach the chat within a second or two of Midjourney finishing it.
_DELIVERY_BUCKETS = (0.1, 0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 30, 60)
_REQUEST_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

UPDATES = Counter(
    "mjbot_updates", "Telegram updates handled, by kind.", ["kind"], registry=REGISTRY
)
JOBS = Counter(
    "mjbot_jobs",
    "Finished jobs by userapi task type and how they ended (done, failed, refused, cancelled).",
    ["type", "status"],
    registry=REGISTRY,
)
JOB_SECONDS = Histogram(
    "mjbot_job_seconds",
    "Seconds from submission to done at Midjourney.",
    ["type"],
    buckets=_JOB_BUCKETS,
    registry=REGISTRY,
)
DELIVERY_SECONDS = Histogram(
    "mjbot_delivery_seconds",
    "Seconds from the bot learning a job is done to Telegram accepting the result.",
    buckets=_DELIVERY_BUCKETS,
    registry=REGISTRY,
)
TELEGRAM_REQUESTS = Counter(
    "mjbot_telegram_requests",
    "Requests to the Telegram Bot API by method and outcome (ok, error, 429).",
    ["method", "outcome"],
    registry=REGISTRY,
)
EDITS = Counter(
    "mjbot_telegram_edits",
    "Status and queue message edits by what became of them: shown, or not sent because it "
    "would change nothing (unchanged), the message is gone, or a newer edit made it moot.",
    ["outcome"],
    registry=REGISTRY,
)
TELEGRAM_REQUEST_SECONDS = Histogram(
    "mjbot_telegram_request_seconds",
    "Seconds a Telegram request took on the wire (waiting for the rate limit not counted).",
    ["method"],
    buckets=_REQUEST_BUCKETS,
    registry=REGISTRY,
)
USERAPI_REQUESTS = Counter(
    "mjbot_userapi_requests",
    "Requests to userapi.ai by endpoint and HTTP status (or 'network' when none came back).",
    ["endpoint", "status"],
    registry=REGISTRY,
)
USERAPI_REQUEST_SECONDS = Histogram(
    "mjbot_userapi_request_seconds",
    "Seconds a userapi.ai request took.",
    ["endpoint"],
    buckets=_REQUEST_BUCKETS,
    registry=REGISTRY,
)
WEBHOOKS = Counter(
    "mjbot_webhooks",
    "Webhooks received, by source (userapi, telegram) and outcome (accepted, duplicate, refused).",
    ["source", "outcome"],
    registry=REGISTRY,
)
WEBHOOKS_CONFIGURED = Gauge(
    "mjbot_webhooks_configured",
    "1 when this bot asks the source to call its webhook (PUBLIC_URL set), else 0.",
    ["source"],
    registry=REGISTRY,
)
CREDITS = Counter(
    "mjbot_credits",
    "Credits moved through the ledger: bought, spent, refunded.",
    ["direction"],
    registry=REGISTRY,
)
FAST_SECONDS_LEFT = Gauge(
    "mjbot_account_fast_seconds_left",
    "Fast GPU time left on a Midjourney account, as its last check reported.",
    ["account"],
    registry=REGISTRY,
)
FAST_SECONDS_TOTAL = Gauge(
    "mjbot_account_fast_seconds_total",
    "Fast GPU time the account's plan gives per period, as its last check reported.",
    ["account"],
    registry=REGISTRY,
)
FAST_ALERT_RATIO = Gauge(
    "mjbot_account_fast_alert_ratio",
    "The owner's alert threshold for fast time left, as a share of the plan's "
    "(FAST_TIME_ALERT_PERCENT / 100).",
    registry=REGISTRY,
)
UP_SINCE = Gauge(
    "mjbot_start_time_seconds", "When this replica started (Unix time).", registry=REGISTRY
)


# Series that exist from the start, at 0, so that alerts see their first increase.
for _source in ("userapi", "telegram"):
    for _outcome in ("accepted", "duplicate", "refused"):
        WEBHOOKS.labels(_source, _outcome)
for _direction in ("bought", "spent", "refunded"):
    CREDITS.labels(_direction)
for _edit in ("shown", "unchanged", "gone", "moot"):
    EDITS.labels(_edit)


class QueueGauges(Collector):
    """Jobs in flight per account and jobs waiting, read at scrape time from the live queue."""

    def __init__(
        self,
        in_flight: Callable[[], Mapping[str, int]],
        queued: Callable[[], int],
    ) -> None:
        self._in_flight = in_flight
        self._queued = queued

    def collect(self) -> Iterable[GaugeMetricFamily]:
        """The two gauges as the queue holds them now."""
        flying = GaugeMetricFamily(
            "mjbot_jobs_in_flight",
            "Jobs holding a Midjourney slot, per account ('any' when one pool).",
            labels=["account"],
        )
        for account, count in sorted(self._in_flight().items()):
            flying.add_metric([account], count)
        yield flying
        yield GaugeMetricFamily(
            "mjbot_jobs_queued", "Jobs waiting for a slot.", value=self._queued()
        )

    def describe(self) -> Iterable[GaugeMetricFamily]:
        """Names known before the first scrape (so the registry can check for clashes)."""
        return self.collect()


def watch_queue(gauges: QueueGauges) -> Callable[[], None]:
    """Export the queue's gauges until the returned function is called (a bot stopping)."""
    REGISTRY.register(gauges)
    return lambda: REGISTRY.unregister(gauges)


def exposition() -> bytes:
    """Everything the registry holds, in Prometheus' text format."""
    return generate_latest(REGISTRY)
