"""The composition root: :func:`build_monitor` wires every component of a monitored app.

Each component receives only its own configuration section. This is the one place that knows
every layer, so it is also where the web layer is attached (loaded on the first request to a
monitoring path, never on ``import asgi_monitor``).
"""

from __future__ import annotations

import logging
import os

from prometheus_client import REGISTRY, CollectorRegistry
from starlette.types import ASGIApp

from .alerting.channels import build_channels
from .alerting.delivery import channels_check
from .alerting.identity import Identity
from .alerting.leader import LeaderLock, leader_check
from .alerting.manager import AlertManager
from .alerting.metrics import AlertMetrics
from .alerting.rules import install_default_rules
from .collector import MetricsCollector
from .config import MonitoringConfig
from .exports.build_info import BuildInfo
from .health.builtin import install_default_checks
from .health.checker import HealthChecker, HealthMetrics
from .insights import Insights
from .logs import configure_package_logging
from .monitor import Monitor
from .sampling.samples import SampleBuffer
from .slo.evaluation import SLOTracker, install_slo_rules
from .store.app_files import CheckedMultiProcessCollector
from .store.merge import MergedFilesCollector
from .store.multiprocess import multiprocess_dir
from .timeseries import History

logger = logging.getLogger(__name__)

__all__ = ["build_monitor"]


def build_monitor(
    config: MonitoringConfig | None = None, registry: CollectorRegistry | None = None
) -> Monitor:
    """A monitor for ``config`` (default: from the environment) on ``registry`` (default:
    prometheus_client's process-wide one). It does not become the process-wide default: see
    :func:`asgi_monitor.set_default_monitor`."""
    config = config if config is not None else MonitoringConfig.from_env()
    registry = registry if registry is not None else REGISTRY
    configure_package_logging(config.debug, config.log_file)
    if config.gate.authorize is not None and not config.gate.allowed_hosts:
        # A hook deciding on the client's address lets a DNS-rebinding page in; the Host check
        # is what stops it (web/crosssite.py host_refusal).
        logger.warning(
            "an authorize hook is configured and MONITORING_ALLOWED_HOSTS is not: state-changing "
            "admin requests are taken whatever their Host header; if the hook trusts the client "
            "address, a DNS-rebinding page can pass it. Set MONITORING_ALLOWED_HOSTS to the "
            "host names this server answers to")
    prefix = config.metrics.prefix

    # Several workers or one: multiprocess_dir() reads PROMETHEUS_MULTIPROC_DIR (checked and
    # logged); the collector makes this worker's store there, or falls back to one process when
    # it cannot create the worker's file.
    collector = MetricsCollector(config.metrics, registry, system=config.system,
                                 multiprocess_dir=multiprocess_dir())

    def scrape_registry() -> CollectorRegistry:
        # Under several workers, a fresh registry per scrape: every worker's file merged, the
        # app's own prometheus_client metrics merged from prometheus_client's files (if it
        # keeps any there), plus the collectors read in the answering process (system
        # resources, sampled gauges). Registering reads no file (the merged collector describes
        # itself from its names): the files are read once, when the registry is collected.
        merged_files = collector.merged
        if merged_files is None:
            return registry
        merged = CollectorRegistry()
        merged.register(MergedFilesCollector(merged_files, custom=True))
        merged.register(CheckedMultiProcessCollector(merged_files.directory))
        for scrape_collector in collector.scrape_collectors:
            merged.register(scrape_collector)
        return merged

    # Readiness is the monitor's (lifespan) state; the monitor is made last, from the parts.
    built: list[Monitor] = []
    health = HealthChecker(default_interval=config.health.interval_seconds,
                           default_timeout=config.health.timeout_seconds,
                           is_ready=lambda: bool(built) and built[0].ready)
    if config.health.default_checks:
        install_default_checks(health, config.health, config.system)
    # Read in the answering process, so it is exposed under several workers too.
    collector.add_scrape_collector(HealthMetrics(health, prefix))

    # Typed snapshots of the components' numbers: alert rules and history read rates here.
    sampler = collector.sampler()
    # Raw samples serve the alert windows (history keeps its own derived points), so they are
    # kept for twice the longest window, at least 10 minutes.
    samples = SampleBuffer(retention_seconds=max(2 * config.alerts.window_seconds, 600.0))
    history = History(retention_seconds=config.history.retention_seconds,
                      interval=config.history.sample_interval_seconds,
                      top_routes=config.history.top_routes)

    # Alerting: one process evaluates and sends (see alerting/leader.py). Silences and the
    # sender's alerts are shared through files next to the lock, since an admin's request may
    # reach any worker.
    # Alerts carry the service and instance labels; the app's title may name the service.
    identity = Identity(config.service)
    # Which build runs where: read at scrape, in the answering process.
    collector.add_scrape_collector(BuildInfo(
        identity, prefix=prefix, otel=config.metrics.metric_names in ("otel", "both"),
        attributes=dict(config.otlp.resource_attributes)))
    lock_path = config.alerts.lock_path or None
    if lock_path is None and collector.multiprocess_dir is not None:
        lock_path = os.path.join(collector.multiprocess_dir, "asgi_monitor_alerts.lock")
    alerts = AlertManager(
        history_size=config.alerts.history_size,
        history_file=config.alerts.history_file or None,
        silences_file=f"{lock_path}.silences.json" if lock_path else None,
        state_file=f"{lock_path}.state.json" if lock_path else None,
        channels=build_channels(config.alerts, config.email, config.webhooks,
                                alerts_path=config.paths.alerts),
        evaluation_timeout=config.alerts.evaluation_timeout_seconds,
        channel_queue_size=config.alerts.channel_queue_size,
        on_error=collector.internal_error, identity=identity.labels)
    if config.alerts.default_rules:
        install_default_rules(alerts, config.alerts, config.system, samples, health)
    slos = config.slo.all()
    # SLO points are kept apart from the samples: a few numbers each, for days.
    tracker = SLOTracker(slos, config.slo.retention_seconds) if slos else None
    if tracker is not None and config.slo.in_process:
        install_slo_rules(alerts, tracker, samples, config.alerts.cooldown_seconds)
    alert_lock = LeaderLock(lock_path, interval=config.alerts.check_interval_seconds)
    collector.add_scrape_collector(AlertMetrics(alerts, prefix, leader=alert_lock))
    if config.health.default_checks:
        # Non-critical, in a group of its own: a stuck alert channel is no reason to stop
        # sending the app traffic.
        health.register_check("alert_channels", "Alert channels deliver",
                              channels_check(alerts.channel_status),
                              min(config.health.interval_seconds, 15.0), critical=False,
                              groups=("alerting",))
        if lock_path is not None:
            # A worker that sees no leader for two intervals says so: alerting is off.
            health.register_check("alert_leader", "A worker evaluates the alert rules",
                                  leader_check(alert_lock),
                                  min(config.health.interval_seconds,
                                      config.alerts.check_interval_seconds),
                                  critical=False, groups=("alerting",))

    insights = Insights(
        history, health=health.results,
        critical_checks=lambda: {n for n, c in health.checks.items() if c.critical},
        alerts=alerts.active, cache=collector.cache)
    collector.insights = insights

    monitor = Monitor(config=config, registry=registry, collector=collector, health=health,
                      sampler=sampler, samples=samples, history=history, alerts=alerts,
                      alert_lock=alert_lock, insights=insights, identity=identity,
                      scrape_registry=scrape_registry, web_app=_web_app, slos=tracker)
    if config.otlp.endpoint:
        # The optional extra loads here, when the export starts, not on import.
        from .exports.otlp import OTLPExport

        def health_status() -> dict[str, str]:
            return {name: health.result(name).status.value for name in health.checks}

        # Under several workers each reads the same merged totals: the alert sender exports.
        export = OTLPExport(endpoint=config.otlp.endpoint, read=sampler.read,
                            identity=identity.labels, interval=config.otlp.interval_seconds,
                            on_error=collector.internal_error, health=health_status,
                            leader=monitor.alert_lock.acquire,
                            timeout=config.otlp.timeout_seconds,
                            headers=config.otlp.header_pairs(),
                            attributes=dict(config.otlp.resource_attributes),
                            version=lambda: identity.version, off_loop=sampler.off_loop)
        monitor.add_service("otlp", export.run_forever)
    built.append(monitor)
    return monitor


def _web_app(monitor: Monitor) -> ASGIApp:
    # The web layer (Starlette routing, Jinja templates) loads on the first monitoring request.
    from .web.app import build_app

    return build_app(monitor)
