"""The metric classes asgi_monitor's own prometheus_client metrics are made of.

One process: prometheus_client's ``Counter``, ``Gauge`` and ``Histogram``. Several workers: the
same classes with their values in this worker's file (:mod:`asgi_monitor.store.worker_file`)
instead of ``prometheus_client.values.ValueClass``, which is process-wide and belongs to the app's
own metrics: custom metrics (``increment_counter``, ``set_gauge``, ``record_histogram``) and the
database, cache and user metrics are merged with the request metrics, and switching them to files
never changes how the app's own prometheus_client metrics store their values.

The subclasses replace ``_metric_init``, where prometheus_client creates a child's values (the
same attribute names since prometheus_client 0.4); everything else, labels, validation and
exposition of a single process, stays prometheus_client's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.utils import floatToGoString

from .worker_file import WorkerFile

__all__ = ["GAUGE_MODE", "PROMETHEUS_KINDS", "FileValue", "MetricKinds", "file_kinds"]

# How gauges the app sets (set_gauge, active sessions) merge across workers: the value set last,
# by any worker.
GAUGE_MODE: Literal["mostrecent"] = "mostrecent"


@dataclass(frozen=True)
class MetricKinds:
    counter: type[Counter]
    gauge: type[Gauge]
    histogram: type[Histogram]


PROMETHEUS_KINDS = MetricKinds(Counter, Gauge, Histogram)


class FileOwner(Protocol):
    """Whatever holds this worker's current file (the request store: it opens a new one in a
    forked child)."""

    def worker_file(self) -> WorkerFile: ...


class FileValue:
    """prometheus_client's value interface (inc, set, get) on two slots of the worker's file:
    the value, and for gauges the time it was set (``mostrecent`` merges by it)."""

    def __init__(self, owner: FileOwner, typ: str, metric_name: str, name: str,
                 labelnames: Sequence[str], labelvalues: Sequence[str], help_text: str,
                 multiprocess_mode: str = "", **_: Any) -> None:
        self._owner = owner
        self._record = ["v", typ, multiprocess_mode, metric_name, name, list(labelnames),
                        list(labelvalues), help_text]
        self._lock = threading.Lock()
        self._bind()

    def _bind(self) -> None:
        file = self._owner.worker_file()
        self._file = file
        self._value = 0.0
        try:
            self._view, self._at, _ = file.new_block(2, self._record)
        except OSError:
            # No space for the series: it keeps working in memory only (counted in the file's
            # error slot by new_block).
            self._view, self._at = memoryview(bytearray(16)).cast("d"), 0

    def inc(self, amount: float) -> None:
        if self._file is not self._owner.worker_file():
            self._bind()  # a forked child: start over in its own file
        with self._lock:
            self._value += amount
            self._view[self._at] = self._value
            self._view[self._at + 1] = time.time()

    def set(self, value: float, timestamp: float | None = None) -> None:
        if self._file is not self._owner.worker_file():
            self._bind()
        with self._lock:
            self._value = float(value)
            self._view[self._at] = self._value
            self._view[self._at + 1] = timestamp or time.time()

    def get(self) -> float:
        return self._value

    def set_exemplar(self, exemplar: Any) -> None:
        return  # the files hold no exemplars, as prometheus_client's do not

    def get_exemplar(self) -> None:
        return None


def file_kinds(owner: FileOwner) -> MetricKinds:
    """Counter, Gauge and Histogram whose values live in ``owner``'s file."""

    def value(*args: Any, **kwargs: Any) -> FileValue:
        return FileValue(owner, *args, **kwargs)

    class FileCounter(Counter):
        def _metric_init(self) -> None:
            self._value = value(self._type, self._name, self._name + "_total",
                                self._labelnames, self._labelvalues, self._documentation)
            self._created = time.time()

    class FileGauge(Gauge):
        def _metric_init(self) -> None:
            self._value = value(self._type, self._name, self._name,
                                self._labelnames, self._labelvalues, self._documentation,
                                multiprocess_mode=self._multiprocess_mode)

    class FileHistogram(Histogram):
        def _metric_init(self) -> None:
            self._created = time.time()
            self._sum = value(self._type, self._name, self._name + "_sum",
                              self._labelnames, self._labelvalues, self._documentation)
            self._buckets = [
                value(self._type, self._name, self._name + "_bucket",
                      (*self._labelnames, "le"),
                      (*self._labelvalues, floatToGoString(bound)),  # type: ignore[no-untyped-call]
                      self._documentation)
                for bound in self._upper_bounds]

    return MetricKinds(FileCounter, FileGauge, FileHistogram)
