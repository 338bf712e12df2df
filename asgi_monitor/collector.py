"""The metrics collector: request metrics, custom metrics and the package's own health metrics.

``get_metrics_collector()`` returns the one the middleware records into, so an app's custom
metrics land in the same registry that ``/api/metrics`` exposes. The raw
:class:`prometheus_client.CollectorRegistry` stays reachable as :attr:`MetricsCollector.registry`
for people who want prometheus_client objects directly.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from .config import MetricsSettings, SystemSettings
from .errors import MetricError, MonitoringError
from .instrumentation.cache import CacheMetrics
from .instrumentation.database import DatabaseMetrics
from .instrumentation.system import SystemMetrics
from .instrumentation.users import UserMetrics
from .labels import BoundedChildren, SeriesCap
from .logs import RateLimitedLog
from .metric_names import metric_name
from .sampling.inputs import SampleInputs, SystemSnapshot
from .sampling.merged import MergedReader
from .sampling.samples import Sampler
from .store.merge import MergedFiles, MergedFilesCollector, names_only
from .store.metric_kinds import PROMETHEUS_KINDS, file_kinds
from .store.multiprocess import (
    ENV_VAR,
    GAUGE_MODE,
    MultiprocessRequestMetrics,
    NativeMultiprocessRequestMetrics,
    fall_back,
)
from .store.settings import StoreSettings
from .store.single import (
    NativeRequestMetrics,
    RequestMetrics,
    RequestMetricsCollector,
    RequestStore,
)


class InsightsReport(Protocol):
    """The performance insights over the monitor's history (:class:`asgi_monitor.insights.
    Insights` is one); the collector only hands their report on."""

    def report(self) -> dict[str, Any]: ...

__all__ = ["MetricsCollector"]

logger = logging.getLogger("asgi_monitor.metrics")

# Used with fullmatch: "$" would also accept a trailing newline, which breaks the exposition.
_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

class _Custom:
    __slots__ = ("kind", "labelnames", "metric", "children")

    def __init__(self, kind: str, labelnames: tuple[str, ...], metric: Any,
                 children: BoundedChildren[tuple[str, ...], Any]) -> None:
        self.kind = kind
        self.labelnames = labelnames
        self.metric = metric
        self.children = children


class _SelfMetrics(Collector):
    """asgi_monitor's own counters: internal errors and label sets dropped by the series cap."""

    def __init__(self, owner: MetricsCollector, prefix: str) -> None:
        self._owner = owner
        self._prefix = prefix
        # The dropped series are named as the scrape shows them.
        self._naming = owner.settings.metric_names

    def describe(self) -> Iterator[Metric]:
        return self.collect()

    def collect(self) -> Iterator[Metric]:
        errors = CounterMetricFamily(
            f"{self._prefix}asgi_monitor_internal_errors",
            "Failures inside asgi_monitor itself (the app's response was not affected).",
            labels=("where",))
        for where, count in sorted(self._owner.internal_errors.items()):
            errors.add_metric((where,), count)
        yield errors
        dropped = CounterMetricFamily(
            f"{self._prefix}asgi_monitor_series_dropped",
            "Observations recorded under the '<overflow>' label because a metric reached its "
            "series cap.", labels=("metric",))
        counts = dict(self._owner.requests.dropped_counts())
        counts.update(self._owner.custom_dropped)
        for metric, count in sorted(counts.items()):
            dropped.add_metric((metric_name(metric, self._naming),), count)
        yield dropped


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

    With ``multiprocess_dir`` (see :mod:`asgi_monitor.store.multiprocess`) every metric here keeps
    its values in this worker's file in that directory; :attr:`merged` reads all workers' files.
    """

    def __init__(
        self,
        settings: MetricsSettings,
        registry: CollectorRegistry,
        *,
        system: SystemSettings | None = None,
        multiprocess_dir: str | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.multiprocess_dir = multiprocess_dir
        self.internal_errors: dict[str, int] = {}
        # Drops by the series cap outside the request metrics (custom and instrumentation).
        self.custom_dropped: dict[str, int] = {}
        self._error_log = RateLimitedLog(logger, logging.ERROR)
        self._custom: dict[str, _Custom] = {}
        self._lock = threading.Lock()
        # Read at scrape time by the process that answers it (see Monitor.scrape_registry).
        self.scrape_collectors: list[Collector] = []
        # Set by build_monitor once the insights exist (they read the history and the health
        # checker, made after the collector); the collector never imports them.
        self.insights: InsightsReport | None = None
        prefix = settings.prefix
        self.requests: RequestStore
        # Under several workers: the merged view of every worker's file (None in one process).
        self.merged: MergedFiles | None = None
        kinds = PROMETHEUS_KINDS
        store = self._worker_store(settings)
        if store is None:
            # The native store only when asked: with them off the hot path is unchanged.
            requests = (NativeRequestMetrics if settings.native_histograms else RequestMetrics)(
                StoreSettings.of(settings))
            registry.register(RequestMetricsCollector(requests))
            self.requests = requests
        else:
            self.requests = store
            # asgi_monitor's own metrics keep their values in the worker's file too.
            kinds = file_kinds(store)
            merged = self.merged = MergedFiles(store.file.directory, StoreSettings.of(settings))

            leftovers = merged.earlier_run(os.getppid())
            if leftovers:
                logger.warning(
                    "%s=%r holds the files of %d worker(s) of an earlier run; their counts are "
                    "part of the merged totals. Empty the directory before each server start.",
                    ENV_VAR, store.file.directory, len(leftovers))
            # Dead workers' files folded into one (before serving: nothing waits for it).
            merged.compact()

            # On this registry too (every worker's requests; the custom metrics registered
            # here are this process' own), so the families are declared and read the same.
            registry.register(MergedFilesCollector(merged))
        self._kinds = kinds
        registry.register(_SelfMetrics(self, prefix))
        self._cap = SeriesCap(settings.max_series, self.custom_dropped)
        self.database = DatabaseMetrics(registry, prefix=prefix, cap=self._cap, kinds=kinds)
        self.cache = CacheMetrics(registry, prefix=prefix, cap=self._cap, kinds=kinds)
        self.users = UserMetrics(registry, prefix=prefix, cap=self._cap, kinds=kinds,
                                 add_scrape_collector=self.add_scrape_collector)
        # The sampler reads its snapshot() too (memory and disk rules, history).
        self.system: SystemMetrics | None = None
        if system is not None and system.metrics:
            self.system = SystemMetrics(prefix=prefix, disk_paths=system.disk_paths)
            self.add_scrape_collector(self.system)

    def _worker_store(self, settings: MetricsSettings) -> MultiprocessRequestMetrics | None:
        directory = self.multiprocess_dir
        if directory is None:
            return None
        try:
            store = (NativeMultiprocessRequestMetrics if settings.native_histograms
                     else MultiprocessRequestMetrics)
            return store(directory, StoreSettings.of(settings))
        except OSError as exc:
            fall_back(f"{ENV_VAR}={directory!r}: cannot create this worker's metric file "
                      f"({exc})")
            self.multiprocess_dir = None
            return None

    def add_scrape_collector(self, collector: Collector) -> None:
        """Register a collector that reads its values when scraped (psutil, a sampled callable).

        In multiprocess mode it is not on :attr:`registry` but added to each scrape's registry.
        """
        self.scrape_collectors.append(collector)
        if self.multiprocess_dir is None:
            self.registry.register(collector)

    def get_performance_insights(self) -> dict[str, Any]:
        """Health score, findings, trends and the slowest / most failing routes.

        Computed from the monitor's history by documented rules (see :mod:`asgi_monitor.insights`);
        a rule without enough data says ``"insufficient_data"`` rather than guessing.
        """
        if self.insights is None:
            raise MonitoringError("this collector has no history attached; use the one "
                                  "get_metrics_collector() or Monitor(...).collector returns")
        return self.insights.report()

    # -- internal failures ----------------------------------------------------------------------

    def sampler(self, *, clock: Callable[[], float] = time.time,
                monotonic: Callable[[], float] = time.monotonic) -> Sampler:
        """A sampler over this collector's components: the alert rules' and history's input.

        In a single process each component's ``snapshot()`` is read directly, not the
        exposition, whose thousands of samples would be walked on the event loop.
        Under several workers the request, database, cache and login totals are every worker's,
        merged from the files; system resources are this process' either way, as a scrape
        reports them.
        """
        system = self.system.snapshot if self.system is not None else _no_system
        requests = self.requests
        if isinstance(requests, RequestMetrics):
            store = requests

            def read() -> SampleInputs:
                return SampleInputs(requests=store.snapshot(), database=self.database.snapshot(),
                                    cache=self.cache.snapshot(), users=self.users.snapshot(),
                                    system=system())

            return Sampler(read, clock, monotonic)

        merged = self.merged
        assert merged is not None
        # The request families under their classic names (the reader's), whatever the
        # exposition's naming; the others as this process declares them, collected with the
        # merged collectors giving names only: a merge here would read every worker's files
        # where the app starts, often on the event loop.
        with names_only():
            declared = {family.name for family in self.registry.collect()}
        declared.update(merged.family_names(naming="classic"))
        reader = MergedReader(prefix=self.settings.prefix, declared=declared)

        def read_merged() -> SampleInputs:
            # One read of the files: the request totals as typed values, the rest as families.
            requests, families = merged.sample()
            return reader.read(families, requests)

        # The merge reads every worker's files: off the event loop, with this process' system
        # resources added on it.
        return Sampler(read_merged, clock, monotonic, system=system, off_loop=True)

    def internal_error(self, where: str, exc: BaseException) -> None:
        """Count a failure inside monitoring and log it, at most once a minute per place."""
        self.internal_errors[where] = self.internal_errors.get(where, 0) + 1
        self._error_log.log(where, "asgi_monitor failed in %s (the app's response is "
                            "unaffected): %r", where, exc, exc_info=exc)

    # -- custom metrics -------------------------------------------------------------------------
    def increment_counter(
        self, name: str, labels: Mapping[str, str] | None = None, value: float = 1
    ) -> None:
        if value < 0:
            raise MetricError(f"counter {name!r} can only go up; got increment {value!r}")
        self._child("counter", name, labels).inc(value)

    def set_gauge(self, name: str, value: float, labels: Mapping[str, str] | None = None) -> None:
        self._child("gauge", name, labels).set(value)

    def record_histogram(
        self,
        name: str,
        value: float,
        labels: Mapping[str, str] | None = None,
        *,
        buckets: Sequence[float] | None = None,
    ) -> None:
        self._child("histogram", name, labels, buckets=buckets).observe(value)

    def _child(
        self,
        kind: str,
        name: str,
        labels: Mapping[str, str] | None,
        buckets: Sequence[float] | None = None,
    ) -> Any:
        labels = labels or {}
        labelnames = tuple(sorted(labels))
        custom = self._custom.get(name)
        if custom is None:
            custom = self._create(kind, name, labelnames, buckets)
        if custom.kind != kind:
            raise MetricError(f"metric {name!r} is a {custom.kind}, not a {kind}")
        if custom.labelnames != labelnames:
            raise MetricError(
                f"metric {name!r} was created with labels {list(custom.labelnames)}, "
                f"got {list(labelnames)}; a metric keeps one label set")
        if not labelnames:
            return custom.metric
        # Label values from user input must not grow memory without bound: capped children.
        return custom.children.get(tuple(str(labels[k]) for k in labelnames))

    def _create(
        self, kind: str, name: str, labelnames: tuple[str, ...], buckets: Sequence[float] | None
    ) -> _Custom:
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise MetricError(
                f"invalid metric name {name!r}: use letters, digits, '_' and ':', "
                "not starting with a digit")
        for label in labelnames:
            if not _LABEL_RE.fullmatch(label) or label.startswith("__"):
                raise MetricError(f"invalid label name {label!r} for metric {name!r}")
        with self._lock:
            existing = self._custom.get(name)
            if existing is not None:
                return existing
            kwargs: dict[str, Any] = {"registry": self.registry}
            kinds = {"counter": self._kinds.counter, "gauge": self._kinds.gauge,
                     "histogram": self._kinds.histogram}
            if kind == "histogram" and buckets is not None:
                kwargs["buckets"] = tuple(buckets)
            if kind == "gauge":
                kwargs["multiprocess_mode"] = GAUGE_MODE  # ignored by a single process
            try:
                metric = kinds[kind](name, f"Custom {kind} {name}", labelnames, **kwargs)
            except ValueError as exc:
                raise MetricError(f"cannot create metric {name!r}: {exc}") from None
            children: BoundedChildren[tuple[str, ...], Any] = self._cap.children(
                name, lambda values: metric.labels(*values))
            custom = self._custom[name] = _Custom(kind, labelnames, metric, children)
            return custom


def _no_system() -> SystemSnapshot | None:
    return None
