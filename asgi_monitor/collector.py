"""The metrics collector: the face ``get_metrics_collector()`` returns over request metrics,
custom metrics, instrumentation and the package's own metrics.

It is the one the middleware records into, so an app's custom metrics land in the same registry
that ``/api/metrics`` exposes. The raw :class:`prometheus_client.CollectorRegistry` stays
reachable as :attr:`MetricsCollector.registry` for people who want prometheus_client objects
directly. The parts are made by :func:`asgi_monitor.build.build_monitor`; this class builds none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .errors import MonitoringError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.registry import Collector

    from .config.metrics import MetricsSettings
    from .instrumentation.cache import CacheMetrics
    from .instrumentation.custom import CustomMetrics
    from .instrumentation.database import DatabaseMetrics
    from .instrumentation.system import SystemMetrics
    from .instrumentation.users import UserMetrics
    from .own_metrics import OwnMetrics
    from .store.choice import ChosenStore
    from .store.merge import MergedFiles
    from .store.scrape import ScrapeCollectors
    from .store.single import RequestStore

__all__ = ["InsightsReport", "MetricsCollector", "MetricsParts"]


class InsightsReport(Protocol):
    """The performance insights over the monitor's history (:class:`asgi_monitor.insights.
    Insights` is one); the collector only hands their report on."""

    def report(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class MetricsParts:
    """What the collector shows, each made once by :func:`asgi_monitor.build.metrics_parts`."""

    store: ChosenStore
    own: OwnMetrics
    scrape: ScrapeCollectors
    custom: CustomMetrics
    database: DatabaseMetrics
    cache: CacheMetrics
    users: UserMetrics
    system: SystemMetrics | None = None


class MetricsCollector:
    """Owns the registry and every metric asgi_monitor records.

    Custom metrics are created on first use::

        metrics = get_metrics_collector()
        metrics.increment_counter("signups_total", labels={"plan": "pro"})
        metrics.set_gauge("queue_depth", 42)
        metrics.record_histogram("job_duration_seconds", 1.5)

    A name keeps the type and label names of its first use; changing either raises
    :class:`MetricError`, as do invalid names and negative counter increments.

    Beyond HTTP: :attr:`database`, :attr:`cache` and :attr:`users` (see
    :mod:`asgi_monitor.instrumentation`); system resources, when ``system`` turns them on, are
    read on scrape.

    With ``PROMETHEUS_MULTIPROC_DIR`` (see :mod:`asgi_monitor.store.multiprocess`) every metric
    here keeps its values in this worker's file in that directory; :attr:`merged` reads all
    workers' files.
    """

    def __init__(
        self,
        settings: MetricsSettings,
        registry: CollectorRegistry,
        parts: MetricsParts,
        *,
        insights: InsightsReport | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.requests: RequestStore = parts.store.requests
        # Under several workers: the worker files' directory, and the merged view of every
        # worker's file (None in one process).
        self.multiprocess_dir: str | None = parts.store.directory
        self.merged: MergedFiles | None = parts.store.merged
        self._own = parts.own
        self._scrape = parts.scrape
        self._custom = parts.custom
        self.database = parts.database
        self.cache = parts.cache
        self.users = parts.users
        # The sampler reads its snapshot() too (memory and disk rules, history).
        self.system = parts.system
        self._insights = insights

    @property
    def internal_errors(self) -> dict[str, int]:
        """Failures inside monitoring, by where they happened."""
        return self._own.internal_errors

    @property
    def scrape_collectors(self) -> list[Collector]:
        """Read at scrape time by the process that answers it (see Monitor.scrape_registry)."""
        return self._scrape.collectors

    def add_scrape_collector(self, collector: Collector) -> None:
        """Register a collector that reads its values when scraped (psutil, a sampled callable).

        In multiprocess mode it is not on :attr:`registry` but added to each scrape's registry.
        """
        self._scrape.add(collector)

    def get_performance_insights(self) -> dict[str, Any]:
        """Health score, findings, trends and the slowest / most failing routes.

        Computed from the monitor's history by documented rules (see :mod:`asgi_monitor.insights`);
        a rule without enough data says ``"insufficient_data"`` rather than guessing.
        """
        if self._insights is None:
            raise MonitoringError("this collector has no history attached; use the one "
                                  "get_metrics_collector() or Monitor(...).collector returns")
        return self._insights.report()

    def internal_error(self, where: str, exc: BaseException) -> None:
        """Count a failure inside monitoring and log it, at most once a minute per place."""
        self._own.internal_error(where, exc)

    def increment_counter(
        self, name: str, labels: Mapping[str, str] | None = None, value: float = 1
    ) -> None:
        self._custom.increment_counter(name, labels, value)

    def set_gauge(self, name: str, value: float, labels: Mapping[str, str] | None = None) -> None:
        self._custom.set_gauge(name, value, labels)

    def record_histogram(
        self,
        name: str,
        value: float,
        labels: Mapping[str, str] | None = None,
        *,
        buckets: Sequence[float] | None = None,
    ) -> None:
        self._custom.record_histogram(name, value, labels, buckets=buckets)
