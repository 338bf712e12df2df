"""The Monitor: the one object that owns asgi_monitor's state and lifecycle.

It holds the configuration, the metrics collector and the background tasks that later features
register (health scheduler, history sampler, alert evaluator). The middleware starts it on the
ASGI ``lifespan.startup`` event, or lazily on the first request for servers without lifespan;
tests drive it directly with ``async with monitor.running(): ...`` because httpx's ASGITransport
sends no lifespan events.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from .alerting.channels import channels_from_config
from .alerting.leader import LeaderLock
from .alerting.manager import AlertManager
from .alerting.metrics import AlertMetrics
from .alerting.rules import install_default_rules
from .collector import MetricsCollector
from .config import MonitoringConfig, metric_prefix
from .errors import LifecycleError
from .health.builtin import install_default_checks
from .health.checker import HealthChecker, HealthMetrics
from .insights import Insights
from .logs import configure_package_logging
from .multiprocess import multiprocess_dir
from .sampling import SampleBuffer, sampler_for
from .timeseries import History

__all__ = [
    "Monitor",
    "State",
    "get_alert_manager",
    "get_health_checker",
    "get_metrics_collector",
    "get_monitor",
]

logger = logging.getLogger("asgi_monitor")

ServiceFactory = Callable[[], Awaitable[None]]


class State(enum.Enum):
    CREATED = "created"
    RUNNING = "running"
    STOPPED = "stopped"


class Monitor:
    """Configuration, collectors and background tasks of one monitored app."""

    def __init__(
        self, config: MonitoringConfig | None = None, *, registry: CollectorRegistry | None = None
    ) -> None:
        self.config = config if config is not None else MonitoringConfig.from_env()
        configure_package_logging(self.config.debug, self.config.log_file)
        self.registry = registry if registry is not None else REGISTRY
        # Several workers or one: decided once, here (PROMETHEUS_MULTIPROC_DIR, checked and logged).
        self.collector = MetricsCollector(self.config, self.registry,
                                          multiprocess_dir=multiprocess_dir())
        self.state = State.CREATED
        # True between "startup complete" and "shutdown began"; the readiness probe reads it.
        self.ready = False
        self._services: dict[str, ServiceFactory] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

        self.health = HealthChecker(default_interval=self.config.health_check_interval,
                                    default_timeout=self.config.health_check_timeout,
                                    is_ready=lambda: self.ready)
        if self.config.health_default_checks:
            install_default_checks(self.health, self.config)
        # Read in the answering process, so it is exposed under several workers too.
        self.collector.add_scrape_collector(HealthMetrics(self.health, _prefix(self.config)))
        self.add_service("health", self.health.run_forever)

        # Samples of the components' snapshots: alert rules and history read their rates here.
        self.sampler = sampler_for(self.collector)
        # Raw samples serve the alert windows (history keeps its own derived points), so they are
        # kept for twice the longest window, at least 10 minutes.
        self.samples = SampleBuffer(
            retention_seconds=max(2 * self.config.alert_window_seconds, 600.0))
        self.add_service("sampler", self._sample_forever)
        # Each new sample adds one point (the interval since the previous sample) to the history.
        self.history = History(retention_seconds=self.config.history_retention,
                               interval=self.config.metrics_collection_interval,
                               top_routes=self.config.history_top_routes)

        # Alerting: one process evaluates and sends (see alerting/leader.py). Silences and the
        # sender's alerts are shared through files next to the lock, since an admin's request
        # may reach any worker.
        lock_path = self.config.alert_lock_path or None
        if lock_path is None and self.collector.multiprocess_dir is not None:
            lock_path = os.path.join(self.collector.multiprocess_dir, "asgi_monitor_alerts.lock")
        self.alert_lock = LeaderLock(lock_path)
        self.alerts = AlertManager(
            history_size=self.config.alert_history_size,
            history_file=self.config.alert_history_file or None,
            silences_file=f"{lock_path}.silences.json" if lock_path else None,
            state_file=f"{lock_path}.state.json" if lock_path else None,
            channels=channels_from_config(self.config),
            evaluation_timeout=self.config.alert_evaluation_timeout,
            on_error=self.collector.internal_error)
        if self.config.alert_default_rules:
            install_default_rules(self.alerts, self.config, self.samples, self.health)
        self.collector.add_scrape_collector(AlertMetrics(self.alerts, _prefix(self.config)))
        self.add_service("alerts", self._alert_forever)
        # Read through the monitor's attributes at report time, so replacing one is seen.
        self.collector.insights = Insights(
            self.history, health=lambda: self.health.results(),
            critical_checks=lambda: {n for n, c in self.health.checks.items() if c.critical},
            alerts=lambda: self.alerts.active(), cache=self.collector.cache)

    async def _alert_forever(self) -> None:
        interval = self.config.alert_check_interval
        try:
            while True:
                try:
                    leader = self.alert_lock.acquire()
                except OSError as exc:  # e.g. the lock directory went away: retry next time
                    self.collector.internal_error("alert_lock", exc)
                    leader = False
                if leader:
                    # A fresh sample, so rules see the metrics as of now, not of the last sample.
                    try:
                        self.take_sample(history=False)
                    except Exception as exc:
                        self.collector.internal_error("sampler", exc)
                    await self.alerts.evaluate()
                else:
                    self.alerts.follow()
                await asyncio.sleep(interval)
        finally:
            self.alert_lock.release()
            self.alerts.close()

    async def _sample_forever(self) -> None:
        interval = self.config.metrics_collection_interval
        while True:
            try:
                self.take_sample()
            except Exception as exc:  # a broken collector must not stop the sampling
                self.collector.internal_error("sampler", exc)
            await asyncio.sleep(interval)

    def take_sample(self, *, history: bool = True) -> None:
        """Read the metrics now; add the sample to :attr:`samples` and, unless ``history`` is
        false, a point to :attr:`history` (so the history keeps the sampler's interval even
        though the alert loop samples more often)."""
        sample = self.sampler.take()
        self.samples.add(sample)
        if history:
            self.history.record_sample(sample)

    # -- background services --------------------------------------------------------------------
    def add_service(self, name: str, factory: ServiceFactory) -> None:
        """Register a long-running coroutine (e.g. a scheduler loop) to run while started."""
        if name in self._services:
            raise LifecycleError(f"a service named {name!r} is already registered")
        self._services[name] = factory
        if self.state is State.RUNNING:
            self._spawn(name, factory)

    def _spawn(self, name: str, factory: ServiceFactory) -> None:
        self._tasks[name] = asyncio.get_running_loop().create_task(
            self._supervise(name, factory), name=f"asgi_monitor:{name}")

    async def _supervise(self, name: str, factory: ServiceFactory) -> None:
        # A crashing service is logged and counted; it never takes the app or the others down.
        try:
            await factory()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.collector.internal_error(f"service:{name}", exc)

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start every registered service. Must be called from the app's event loop."""
        if self.state is State.RUNNING:
            raise LifecycleError("monitor already started; call stop() first")
        self.start_lazily()

    def start_lazily(self) -> None:
        """Start from a request when the server sent no lifespan events (idempotent)."""
        if self.state is State.RUNNING:
            return
        self.state = State.RUNNING
        for name, factory in self._services.items():
            self._spawn(name, factory)
        self.ready = True

    def begin_shutdown(self) -> None:
        """Readiness turns false as soon as shutdown begins, before tasks are stopped."""
        self.ready = False

    async def stop(self) -> None:
        """Cancel every background task and wait for them to finish."""
        self.ready = False
        if self.state is not State.RUNNING:
            return
        self.state = State.STOPPED
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Monitor]:
        """``async with monitor.running():`` starts the services and stops them on exit."""
        await self.start()
        try:
            yield self
        finally:
            await self.stop()

    def scrape_registry(self) -> CollectorRegistry:
        """The registry ``/api/metrics`` exposes.

        Under several workers, a fresh one per scrape (as prometheus_client's multiprocess docs
        prescribe): every worker's values merged from the directory, plus the collectors read in
        the answering process (system resources, sampled gauges).
        """
        path = self.collector.multiprocess_dir
        if path is None:
            return self.registry
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
        for collector in self.collector.scrape_collectors:
            registry.register(collector)
        return registry

    @property
    def task_names(self) -> list[str]:
        return sorted(self._tasks)


_default: Monitor | None = None
_default_lock = threading.Lock()


def get_monitor() -> Monitor:
    """The process-wide Monitor (configured from the environment on first use)."""
    # Lock-free once it exists: the instrumentation decorators look it up on every call.
    found = _default
    return found if found is not None else monitor_for(None)


def monitor_for(config: MonitoringConfig | None) -> Monitor:
    """The process-wide Monitor, created with ``config`` if it does not exist yet.

    It lives on prometheus_client's default registry, which cannot hold two of them, so a second
    different configuration is an error rather than a silent split of the metrics.
    """
    global _default
    with _default_lock:
        if _default is None:
            _default = Monitor(config)
        elif config is not None and config == _default.config:
            # Equal but for the code-only settings (route_resolver, authorize, which compare
            # equal): adopt them, or a resolver passed to the middleware after something called
            # get_metrics_collector() would be silently ignored. Everything built so far only
            # used the compared fields, which are the same.
            _default.config = config
        elif config is not None:
            raise LifecycleError(
                "the process-wide monitor already exists with another configuration (something "
                "called get_metrics_collector() or wrapped an app first); configure it once, or "
                "pass registry= for a separate monitor")
        return _default


def set_monitor(monitor: Monitor) -> None:
    """Make ``monitor`` the one ``get_*()`` return (the middleware does this)."""
    global _default
    with _default_lock:
        _default = monitor


def get_metrics_collector() -> MetricsCollector:
    """The collector the middleware records into; add custom metrics here."""
    return get_monitor().collector


def get_health_checker() -> HealthChecker:
    """The health checker whose results ``/api/health`` serves; register checks here."""
    return get_monitor().health


def get_alert_manager() -> AlertManager:
    """The alert manager that evaluates rules and notifies; register rules here."""
    return get_monitor().alerts


def _prefix(config: MonitoringConfig) -> str:
    return metric_prefix(config.namespace)
