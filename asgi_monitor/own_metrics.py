"""asgi_monitor's own counters: failures inside monitoring and label sets dropped by the series
cap. Every part that can fail reports here (``internal_error``), so it is made before them."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from .exports.metric_names import metric_name
from .logs import RateLimitedLog
from .store.single import RequestStore

__all__ = ["OwnMetrics"]

logger = logging.getLogger("asgi_monitor.metrics")


class OwnMetrics(Collector):
    def __init__(self, prefix: str, naming: str, requests: RequestStore) -> None:
        self._prefix = prefix
        # The dropped series are named as the scrape shows them.
        self._naming = naming
        self._requests = requests
        self.internal_errors: dict[str, int] = {}
        # Drops by the series cap outside the request metrics (custom and instrumentation).
        self.custom_dropped: dict[str, int] = {}
        self._error_log = RateLimitedLog(logger, logging.ERROR)

    def internal_error(self, where: str, exc: BaseException) -> None:
        """Count a failure inside monitoring and log it, at most once a minute per place."""
        self.internal_errors[where] = self.internal_errors.get(where, 0) + 1
        self._error_log.log(where, "asgi_monitor failed in %s (the app's response is "
                            "unaffected): %r", where, exc, exc_info=exc)

    def describe(self) -> Iterator[Metric]:
        return self.collect()

    def collect(self) -> Iterator[Metric]:
        errors = CounterMetricFamily(
            f"{self._prefix}asgi_monitor_internal_errors",
            "Failures inside asgi_monitor itself (the app's response was not affected).",
            labels=("where",))
        for where, count in sorted(self.internal_errors.items()):
            errors.add_metric((where,), count)
        yield errors
        dropped = CounterMetricFamily(
            f"{self._prefix}asgi_monitor_series_dropped",
            "Observations recorded under the '<overflow>' label because a metric reached its "
            "series cap.", labels=("metric",))
        counts = dict(self._requests.dropped_counts())
        counts.update(self.custom_dropped)
        for metric, count in sorted(counts.items()):
            dropped.add_metric((metric_name(metric, self._naming),), count)
        yield dropped
