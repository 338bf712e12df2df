"""What every store is built with: one object, handed to the single-process store, the worker
file store and the merge alike, so the three agree on buckets, cap and names by construction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config.metrics import MetricsSettings

__all__ = ["StoreSettings"]


@dataclass(frozen=True)
class StoreSettings:
    """The request series' bucket bounds, the series cap and the exposition's names.

    ``MetricsCollector`` makes one from the ``metrics`` configuration section; tests and
    benchmarks make their own.
    """

    duration_buckets: Sequence[float]
    size_buckets: Sequence[float]
    max_series: int
    namespace: str = ""
    constant_labels: Sequence[tuple[str, str]] = ()
    naming: str = "classic"
    # Native histograms of the duration and TTFB (asgi_monitor.store.native); off by default.
    native_histograms: bool = False
    native_schema: int = 3
    native_zero_threshold: float = 2.0 ** -128
    native_max_buckets: int = 160
    # The request labels the user chose, in the order a record gives their values.
    label_names: Sequence[str] = ()
    # The status label as its class (2xx...), the series of a class summed on scrape.
    status_classes: bool = False

    @classmethod
    def of(cls, metrics: MetricsSettings) -> StoreSettings:
        """The settings the ``metrics`` configuration section gives the stores."""
        return cls(duration_buckets=metrics.duration_buckets, size_buckets=metrics.size_buckets,
                   max_series=metrics.max_series, namespace=metrics.namespace,
                   constant_labels=metrics.constant_labels, naming=metrics.metric_names,
                   native_histograms=metrics.native_histograms,
                   native_schema=metrics.native_histogram_schema,
                   native_zero_threshold=metrics.native_histogram_zero_threshold,
                   native_max_buckets=metrics.native_histogram_max_buckets,
                   label_names=metrics.label_names, status_classes=metrics.status_classes)
