"""The composition root: :func:`build_monitor` wires every component of a monitored app.

Each component receives only its own configuration section. This is the one place that knows
every layer, so it is also where the web layer is attached (loaded on the first request to a
monitoring path, never on ``import asgi_monitor``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable

from prometheus_client import REGISTRY, CollectorRegistry
from starlette.types import ASGIApp

from .alerting.channels import build_channels
from .alerting.delivery import channels_check
from .alerting.identity import Identity
from .alerting.leader import LeaderLock, leader_check
from .alerting.manager import AlertManager
from .alerting.metrics import AlertMetrics
from .alerting.rules import install_default_rules
from .collector import MetricsCollector, MetricsParts
from .config import MonitoringConfig
from .config.health import SystemSettings
from .config.metrics import MetricsSettings
from .exports.build_info import BuildInfo
from .health.builtin import install_default_checks
from .health.checker import HealthChecker, HealthMetrics
from .insights import Insights
from .instrumentation.cache import CacheMetrics
from .instrumentation.custom import CustomMetrics
from .instrumentation.database import DatabaseMetrics
from .instrumentation.system import SystemMetrics
from .instrumentation.users import UserMetrics
from .labels import SeriesCap
from .logs import configure_package_logging
from .monitor import Monitor
from .own_metrics import OwnMetrics
from .sampling.inputs import SampleInputs, SystemSnapshot
from .sampling.merged import MergedReader
from .sampling.samples import SampleBuffer, Sampler
from .slo.evaluation import SLOTracker, install_slo_rules
from .store.choice import choose_store
from .store.merge import names_only
from .store.scrape import ScrapeCollectors
from .store.single import RequestMetrics
from .timeseries import History

logger = logging.getLogger(__name__)

__all__ = ["build_monitor", "metrics_parts", "sampler_of"]


def build_monitor(
    config: MonitoringConfig | None = None, registry: CollectorRegistry | None = None
) -> Monitor:
    """A monitor for ``config`` (default: from the environment) on ``registry`` (default:
    prometheus_client's process-wide one). It does not become the process-wide default: see
    :func:`asgi_monitor.set_default_monitor`."""
    config = config if config is not None else MonitoringConfig.from_env()
    registry = registry if registry is not None else REGISTRY
    configure_package_logging(config.debug, config.log_file)
    _warn_about_hosts(config)
    prefix = config.metrics.prefix

    # The request store (one process or several workers), the instrumentation, the custom
    # metrics and asgi_monitor's own counters, which every part below reports failures to.
    parts = metrics_parts(config.metrics, registry, config.system)
    # Readiness is the monitor's (lifespan) state; the monitor is made last, from the parts.
    built: list[Monitor] = []
    health = _health(config, is_ready=lambda: bool(built) and built[0].ready)
    # Raw samples serve the alert windows (history keeps its own derived points), so they are
    # kept for twice the longest window, at least 10 minutes.
    samples = SampleBuffer(retention_seconds=max(2 * config.alerts.window_seconds, 600.0))
    history = History(retention_seconds=config.history.retention_seconds,
                      interval=config.history.sample_interval_seconds,
                      top_routes=config.history.top_routes)
    # Alerts carry the service and instance labels; the app's title may name the service.
    identity = Identity(config.service)
    lock_path = _lock_path(config, parts.store.directory)
    alerts = _alerts(config, lock_path, identity, parts.own, samples, health)
    alert_lock = LeaderLock(lock_path, interval=config.alerts.check_interval_seconds)
    if config.health.default_checks:
        _alerting_checks(config, health, alerts, alert_lock)
    tracker = _slos(config, alerts, samples)
    # Read in the answering process, so they are exposed under several workers too: health,
    # which build runs where, alerting.
    parts.scrape.add(HealthMetrics(health, prefix))
    parts.scrape.add(BuildInfo(
        identity, prefix=prefix, otel=config.metrics.metric_names in ("otel", "both"),
        attributes=dict(config.otlp.resource_attributes)))
    parts.scrape.add(AlertMetrics(alerts, prefix, leader=alert_lock))
    insights = Insights(
        history, health=health.results,
        critical_checks=lambda: {n for n, c in health.checks.items() if c.critical},
        alerts=alerts.active, cache=parts.cache)
    # The face get_metrics_collector() returns, over the parts above; it shows the insights.
    collector = MetricsCollector(config.metrics, registry, parts, insights=insights)
    # Typed snapshots of the components' numbers: alert rules and history read rates here.
    sampler = sampler_of(collector)
    monitor = Monitor(config=config, registry=registry, collector=collector, health=health,
                      sampler=sampler, samples=samples, history=history, alerts=alerts,
                      alert_lock=alert_lock, insights=insights, identity=identity,
                      scrape_registry=parts.scrape.registry, web_app=_web_app, slos=tracker)
    if config.otlp.endpoint:
        monitor.add_service("otlp", _otlp_export(config, sampler, identity, health, parts.own,
                                                 alert_lock))
    built.append(monitor)
    return monitor


def _warn_about_hosts(config: MonitoringConfig) -> None:
    if config.gate.authorize is not None and not config.gate.allowed_hosts:
        # A hook deciding on the client's address lets a DNS-rebinding page in; the Host check
        # is what stops it (web/crosssite.py host_refusal).
        logger.warning(
            "an authorize hook is configured and MONITORING_ALLOWED_HOSTS is not: state-changing "
            "admin requests are taken whatever their Host header; if the hook trusts the client "
            "address, a DNS-rebinding page can pass it. Set MONITORING_ALLOWED_HOSTS to the "
            "host names this server answers to")


def _health(config: MonitoringConfig, is_ready: Callable[[], bool]) -> HealthChecker:
    health = HealthChecker(default_interval=config.health.interval_seconds,
                           default_timeout=config.health.timeout_seconds, is_ready=is_ready)
    if config.health.default_checks:
        install_default_checks(health, config.health, config.system)
    return health


def _lock_path(config: MonitoringConfig, worker_files: str | None) -> str | None:
    # Alerting: one process evaluates and sends (see alerting/leader.py). Silences and the
    # sender's alerts are shared through files next to the lock, since an admin's request may
    # reach any worker.
    lock_path = config.alerts.lock_path or None
    if lock_path is None and worker_files is not None:
        lock_path = os.path.join(worker_files, "asgi_monitor_alerts.lock")
    return lock_path


def _alerts(config: MonitoringConfig, lock_path: str | None, identity: Identity,
            own: OwnMetrics, samples: SampleBuffer, health: HealthChecker) -> AlertManager:
    alerts = AlertManager(
        history_size=config.alerts.history_size,
        history_file=config.alerts.history_file or None,
        silences_file=f"{lock_path}.silences.json" if lock_path else None,
        state_file=f"{lock_path}.state.json" if lock_path else None,
        channels=build_channels(config.alerts, config.email, config.webhooks,
                                alerts_path=config.paths.alerts),
        evaluation_timeout=config.alerts.evaluation_timeout_seconds,
        channel_queue_size=config.alerts.channel_queue_size,
        on_error=own.internal_error, identity=identity.labels)
    if config.alerts.default_rules:
        install_default_rules(alerts, config.alerts, config.system, samples, health)
    return alerts


def _alerting_checks(config: MonitoringConfig, health: HealthChecker, alerts: AlertManager,
                     alert_lock: LeaderLock) -> None:
    # Non-critical, in a group of their own: a stuck alert channel is no reason to stop
    # sending the app traffic.
    health.register_check("alert_channels", "Alert channels deliver",
                          channels_check(alerts.channel_status),
                          min(config.health.interval_seconds, 15.0), critical=False,
                          groups=("alerting",))
    if alert_lock.path is not None:
        # A worker that sees no leader for two intervals says so: alerting is off.
        health.register_check("alert_leader", "A worker evaluates the alert rules",
                              leader_check(alert_lock),
                              min(config.health.interval_seconds,
                                  config.alerts.check_interval_seconds),
                              critical=False, groups=("alerting",))


def _slos(config: MonitoringConfig, alerts: AlertManager,
          samples: SampleBuffer) -> SLOTracker | None:
    slos = config.slo.all()
    if not slos:
        return None
    # SLO points are kept apart from the samples: a few numbers each, for days.
    tracker = SLOTracker(slos, config.slo.retention_seconds)
    if config.slo.in_process:
        install_slo_rules(alerts, tracker, samples, config.alerts.cooldown_seconds)
    return tracker


def _otlp_export(config: MonitoringConfig, sampler: Sampler, identity: Identity,
                 health: HealthChecker, own: OwnMetrics,
                 alert_lock: LeaderLock) -> Callable[[], Awaitable[None]]:
    # The optional extra loads here, when the export starts, not on import.
    from .exports.otlp import OTLPExport

    def health_status() -> dict[str, str]:
        return {name: health.result(name).status.value for name in health.checks}

    # Under several workers each reads the same merged totals: the alert sender exports.
    export = OTLPExport(endpoint=config.otlp.endpoint, read=sampler.read,
                        identity=identity.labels, interval=config.otlp.interval_seconds,
                        on_error=own.internal_error, health=health_status,
                        leader=alert_lock.acquire, timeout=config.otlp.timeout_seconds,
                        headers=config.otlp.header_pairs(),
                        attributes=dict(config.otlp.resource_attributes),
                        version=lambda: identity.version, off_loop=sampler.off_loop)
    return export.run_forever


def _web_app(monitor: Monitor) -> ASGIApp:
    # The web layer (Starlette routing, Jinja templates) loads on the first monitoring request.
    from .web.app import build_app

    return build_app(monitor)


def metrics_parts(settings: MetricsSettings, registry: CollectorRegistry,
                  system: SystemSettings | None = None) -> MetricsParts:
    """What the metrics collector shows, on ``registry``: the request store this process
    records into, the instrumentation and custom metrics (kept where the store keeps its
    values), and asgi_monitor's own counters; system resources when ``system`` turns them on."""
    prefix = settings.prefix
    store = choose_store(settings, registry)
    scrape = ScrapeCollectors(registry, store.merged)
    own = OwnMetrics(prefix, settings.metric_names, store.requests)
    registry.register(own)
    # One series cap for the custom and instrumentation metrics; its drops are counted in own.
    cap = SeriesCap(settings.max_series, own.custom_dropped)
    kinds = store.kinds
    database = DatabaseMetrics(registry, prefix=prefix, cap=cap, kinds=kinds)
    cache = CacheMetrics(registry, prefix=prefix, cap=cap, kinds=kinds)
    users = UserMetrics(registry, prefix=prefix, cap=cap, kinds=kinds,
                        add_scrape_collector=scrape.add)
    resources = None
    if system is not None and system.metrics:
        resources = SystemMetrics(prefix=prefix, disk_paths=system.disk_paths)
        scrape.add(resources)
    return MetricsParts(store, own, scrape, CustomMetrics(registry, kinds, cap), database, cache,
                        users, resources)


def sampler_of(collector: MetricsCollector, *, clock: Callable[[], float] = time.time,
               monotonic: Callable[[], float] = time.monotonic) -> Sampler:
    """A sampler over the collector's parts: the alert rules' and history's input.

    In a single process each component's ``snapshot()`` is read directly, not the exposition,
    whose thousands of samples would be walked on the event loop. Under several workers the
    request, database, cache and login totals are every worker's, merged from the files; system
    resources are this process' either way, as a scrape reports them.
    """
    system = collector.system.snapshot if collector.system is not None else _no_system
    database, cache, users = collector.database, collector.cache, collector.users
    merged = collector.merged
    if merged is None:
        requests = collector.requests
        assert isinstance(requests, RequestMetrics)

        def read() -> SampleInputs:
            return SampleInputs(requests=requests.snapshot(), database=database.snapshot(),
                                cache=cache.snapshot(), users=users.snapshot(), system=system())

        return Sampler(read, clock, monotonic)

    # The request families under their classic names (the reader's), whatever the exposition's
    # naming; the others as this process declares them, collected with the merged collectors
    # giving names only: a merge here would read every worker's files where the app starts,
    # often on the event loop.
    with names_only():
        declared = {family.name for family in collector.registry.collect()}
    declared.update(merged.family_names(naming="classic"))
    reader = MergedReader(prefix=collector.settings.prefix, declared=declared)

    def read_merged() -> SampleInputs:
        # One read of the files: the request totals as typed values, the rest as families.
        requests, families = merged.sample()
        return reader.read(families, requests)

    # The merge reads every worker's files: off the event loop, with this process' system
    # resources added on it.
    return Sampler(read_merged, clock, monotonic, system=system, off_loop=True)


def _no_system() -> SystemSnapshot | None:
    return None
