"""docker-compose.yml and deploy/ stay true to the bot: its metrics, its paths, its files."""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from bot.runtime import metrics
from bot.runtime.metrics import REGISTRY, QueueGauges, watch_queue
from bot.web.region import API_PREFIX, REGION_PATH
from bot.web.server import TELEGRAM_WEBHOOK_PREFIX, USERAPI_WEBHOOK_PREFIX

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERT_TESTS = DEPLOY / "prometheus" / "alerts.test.yml"
CADDYFILE = DEPLOY / "caddy" / "Caddyfile"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources"
PROVIDERS = DEPLOY / "grafana" / "provisioning" / "dashboards"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "mjbot.json"

SERVERS = {"db", "redis", "proxy"}
OBSERVABILITY = {"prometheus", "grafana"}
# Series Prometheus makes itself for every target, and the labels it adds to every series.
PROMETHEUS_OWN = {"up"}
TARGET_LABELS = {"job", "instance"}
# Paths the bot serves that must never be public (the bot answers /metrics to any private
# address, and every request through the proxy comes from one).
PRIVATE_PATHS = ("/metrics", "/readyz", "/healthz")

# PromQL: what is not a metric name. Words followed by "(" are functions and aggregations.
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_SELECTOR = re.compile(r"([A-Za-z_:][\w:]*)?\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)")
_RANGE = re.compile(r"\[[^\]]*\]|\boffset\s+\S+")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_WORD = re.compile(r"(?<![\w.:$])([A-Za-z_:][\w:]*)(\s*\()?")
_KEYWORDS = {"and", "or", "unless", "bool", "inf", "nan"}
_HISTOGRAM_PARTS = re.compile(r"_(?:bucket|sum|count)$")


def load(path: Path) -> Any:
    """A YAML file as Python data (safe_load: plain data only)."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def replicas() -> set[str]:
    """The compose services that run the bot: those built from the repository."""
    return {name for name, service in load(COMPOSE)["services"].items() if "build" in service}


def parse_promql(expr: str) -> tuple[set[str], dict[str, set[str]], set[str]]:
    """Metric names, label names matched per selector's metric, and grouping labels."""
    text = _STRING.sub('""', expr)
    matched: dict[str, set[str]] = {}
    for selector in _SELECTOR.finditer(text):
        name = selector.group(1) or ""
        matched.setdefault(name, set()).update(_MATCHER.findall(selector.group(2)))
    text = _RANGE.sub("", _SELECTOR.sub(lambda found: found.group(1) or "", text))
    grouping: set[str] = set()
    for clause in _GROUPING.finditer(text):
        grouping.update(label.strip() for label in clause.group(1).split(",") if label.strip())
    text = _GROUPING.sub("", text)
    names = {
        word.group(1)
        for word in _WORD.finditer(text)
        if not word.group(2) and word.group(1) not in _KEYWORDS
    }
    return names, matched, grouping


def dashboard_exprs() -> list[str]:
    """Every query of every panel (rows' nested panels too)."""
    exprs: list[str] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            exprs.extend(target["expr"] for target in panel.get("targets", []))
            walk(panel.get("panels", []))

    walk(json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"])
    return exprs


def alert_rules() -> list[dict[str, Any]]:
    """Every rule of every group in alerts.yml."""
    return [rule for group in load(ALERTS)["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def exported() -> dict[str, tuple[str, set[str]]]:
    """Each series name the bot exports, with its type and label names."""
    stop = watch_queue(QueueGauges(lambda: {"any": 1}, lambda: 0))
    try:
        families = list(REGISTRY.collect())
    finally:
        stop()
    # A labelled metric shows no sample before its first use: its labels come from its wrapper.
    declared = {
        wrapper._name: set(wrapper._labelnames)
        for wrapper in vars(metrics).values()
        if isinstance(wrapper, MetricWrapperBase)
    }
    names: dict[str, tuple[str, set[str]]] = {}
    for family in families:
        labels = set(declared.get(family.name, ()))
        for sample in family.samples:
            labels |= set(sample.labels) - {"le"}
        # Counters are exported as name_total; histograms are read as name_bucket/_sum/_count.
        name = f"{family.name}_total" if family.type == "counter" else family.name
        names[name] = (family.type, labels)
    return names


def check_expr(expr: str, exported: dict[str, tuple[str, set[str]]]) -> list[str]:
    """What in one PromQL expression the bot does not export (empty when all is well)."""
    names, matched, grouping = parse_promql(expr)
    problems: list[str] = []
    known_labels = set().union(*(labels for _, labels in exported.values())) | TARGET_LABELS
    for name in sorted(names):
        base = _HISTOGRAM_PARTS.sub("", name)
        if exported.get(base, ("", set()))[0] == "histogram":
            name = base
        if name not in exported and name not in PROMETHEUS_OWN:
            problems.append(f"{name} is not exported")
    for name, labels in matched.items():
        base = _HISTOGRAM_PARTS.sub("", name)
        own = exported.get(base, exported.get(name, ("", known_labels)))[1]
        for label in labels - own - TARGET_LABELS:
            problems.append(f"{name or 'a selector'} has no label {label!r}")
    problems += [f"no series has a label {label!r}" for label in grouping - known_labels - {"le"}]
    return problems


def test_the_promql_reader_finds_metric_names_only() -> None:
    names, matched, grouping = parse_promql(
        "histogram_quantile(0.99, sum by (le, type) (rate(mjbot_job_seconds_bucket[5m]))) "
        '/ on() group_left() max(up{job="mjbot", instance=~"bot-.*"}) > 1e3 '
        'and sum(increase(mjbot_webhooks_total{source="a{b}"}[10m:1m])) or vector(0)'
    )
    assert names == {"mjbot_job_seconds_bucket", "up", "mjbot_webhooks_total"}
    assert matched == {"up": {"job", "instance"}, "mjbot_webhooks_total": {"source"}}
    assert grouping == {"le", "type"}


def test_every_series_the_dashboard_and_alerts_use_is_exported(
    exported: dict[str, tuple[str, set[str]]],
) -> None:
    exprs = dashboard_exprs() + [rule["expr"] for rule in alert_rules()]
    problems = {expr: found for expr in exprs if (found := check_expr(expr, exported))}
    assert not problems
    used = set().union(*(parse_promql(expr)[0] for expr in exprs))
    # The panels and alerts the issues ask for read these.
    assert {
        "up",
        "mjbot_jobs_total",
        "mjbot_jobs_queued",
        "mjbot_jobs_in_flight",
        "mjbot_delivery_seconds_bucket",
        "mjbot_delivery_seconds_count",
        "mjbot_telegram_requests_total",
        "mjbot_userapi_requests_total",
        "mjbot_webhooks_total",
        "mjbot_webhooks_configured",
        "mjbot_account_fast_seconds_left",
        "mjbot_account_fast_seconds_total",
        "mjbot_account_fast_alert_ratio",
    } <= used


def test_a_series_the_bot_lacks_is_caught(exported: dict[str, tuple[str, set[str]]]) -> None:
    assert check_expr("sum(rate(mjbot_jobs_done_total[5m]))", exported) == [
        "mjbot_jobs_done_total is not exported"
    ]
    assert check_expr("mjbot_jobs_queued_count", exported) == [
        "mjbot_jobs_queued_count is not exported"
    ]
    assert check_expr('sum by (kind) (mjbot_jobs_total{outcome="done"})', exported) == [
        "mjbot_jobs_total has no label 'outcome'"
    ]


def test_compose_runs_two_replicas_behind_the_proxy_and_observability_on_demand() -> None:
    services = load(COMPOSE)["services"]
    bots = replicas()
    assert len(bots) >= 2
    assert set(services) == SERVERS | bots | OBSERVABILITY
    for name in SERVERS | bots:
        assert "profiles" not in services[name], name
    for name in OBSERVABILITY:
        assert services[name]["profiles"] == ["observability"], name
    for name in bots:
        bot = services[name]
        assert bot["build"] == "."
        env = bot["environment"]
        assert env["DATABASE_URL"].startswith("postgresql://")
        assert env["REDIS_URL"].startswith("redis://")
        assert env["PUBLIC_URL"].startswith("https://")
        assert env["TELEGRAM_WEBHOOK"] == "true"
        assert bot["env_file"] == ".env"
        assert bot["depends_on"] == {
            "db": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
        }
        assert any("/readyz" in part for part in bot["healthcheck"]["test"])
        # Only the proxy is reachable from outside: a replica's /metrics never is.
        assert "ports" not in bot
    assert {"healthcheck", "volumes"} <= set(services["db"])
    assert services["db"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")
    assert "healthcheck" in services["redis"]
    assert "443:443" in services["proxy"]["ports"]
    for name in OBSERVABILITY:
        assert all(port.startswith("127.0.0.1:") for port in services[name]["ports"]), name


def mounted(service: dict[str, Any], inside: str) -> Path:
    """The file or folder of the repository that a service sees at `inside`."""
    target = PurePosixPath(inside)
    volumes: list[str] = service["volumes"]
    for volume in volumes:
        source, _, rest = volume.partition(":")
        at = PurePosixPath(rest.split(":")[0])
        if source.startswith("./") and (target == at or at in target.parents):
            return ROOT / source / target.relative_to(at)
    raise AssertionError(f"nothing of the repository is mounted at {inside}")


def test_prometheus_reads_the_alerts_and_scrapes_every_replica() -> None:
    services = load(COMPOSE)["services"]
    config = load(PROMETHEUS)
    prometheus = services["prometheus"]
    config_file = next(
        arg.split("=", 1)[1] for arg in prometheus["command"] if arg.startswith("--config.file=")
    )
    assert mounted(prometheus, config_file) == PROMETHEUS
    assert config["rule_files"]
    for rule_file in config["rule_files"]:
        assert mounted(prometheus, rule_file).is_file(), rule_file
    assert ALERTS in {mounted(prometheus, rule_file) for rule_file in config["rule_files"]}
    (job,) = (job for job in config["scrape_configs"] if job["job_name"] == "mjbot")
    assert job["metrics_path"] == "/metrics"
    targets = {target for group in job["static_configs"] for target in group["targets"]}
    assert targets == {f"{name}:8080" for name in replicas()}


def test_every_alert_says_what_to_do_and_has_a_promtool_case() -> None:
    rules = alert_rules()
    assert len(rules) >= 6
    for rule in rules:
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert len(rule["annotations"]["description"].split()) >= 20, rule["alert"]
    tested = {
        case["alertname"]
        for test in load(ALERT_TESTS)["tests"]
        for case in test["alert_rule_test"]
    }
    assert tested == {rule["alert"] for rule in rules}
    assert load(ALERT_TESTS)["rule_files"] == [ALERTS.name]


def caddy_routes() -> tuple[list[str], list[str]]:
    """The path patterns the Caddyfile passes to the bot, and the upstreams it passes them to."""
    text = CADDYFILE.read_text(encoding="utf-8")
    (paths,) = re.findall(r"^\s*@bot path (.+)$", text, re.MULTILINE)
    (upstreams,) = re.findall(r"^\s*reverse_proxy (.+?)\s*\{?$", text, re.MULTILINE)
    assert re.search(r"^\s*handle @bot \{", text, re.MULTILINE)
    return paths.split(), upstreams.split()


def passed(path: str, patterns: list[str]) -> bool:
    """Whether Caddy's path matcher with these patterns matches `path`."""
    return any(
        path.startswith(pattern[:-1]) if pattern.endswith("*") else path == pattern
        for pattern in patterns
    )


def test_the_proxy_passes_webhooks_and_mini_apps_but_not_metrics() -> None:
    patterns, upstreams = caddy_routes()
    assert set(upstreams) == {f"{name}:8080" for name in replicas()}
    for path in (
        TELEGRAM_WEBHOOK_PREFIX + "0123abcd",
        USERAPI_WEBHOOK_PREFIX + "0123abcd",
        REGION_PATH,
        API_PREFIX + "12",
        API_PREFIX + "12/image",
    ):
        assert passed(path, patterns), path
    for path in PRIVATE_PATHS:
        assert not passed(path, patterns), path
    proxy = load(COMPOSE)["services"]["proxy"]
    assert mounted(proxy, "/etc/caddy/Caddyfile") == CADDYFILE


def test_grafana_provisions_the_datasource_the_dashboard_uses() -> None:
    grafana = load(COMPOSE)["services"]["grafana"]
    sources = [
        source
        for path in sorted(DATASOURCES.glob("*.yml"))
        for source in load(path)["datasources"]
    ]
    assert [source["url"] for source in sources] == ["http://prometheus:9090"]
    uid = sources[0]["uid"]
    providers = [
        provider
        for path in sorted(PROVIDERS.glob("*.yml"))
        for provider in load(path)["providers"]
    ]
    assert [mounted(grafana, provider["options"]["path"]) for provider in providers] == [
        DASHBOARD.parent
    ]
    assert mounted(grafana, "/etc/grafana/provisioning/datasources") == DATASOURCES
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert {panel["datasource"]["uid"] for panel in panels} == {uid}
    assert all(panel["description"] and panel["targets"] for panel in panels)
    env = grafana["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert "GRAFANA_ADMIN_PASSWORD" in env["GF_SECURITY_ADMIN_PASSWORD"]
