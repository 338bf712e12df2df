"""Several worker processes (``uvicorn --workers N``, gunicorn): multiprocess metrics.

With ``PROMETHEUS_MULTIPROC_DIR`` set, every worker writes its metric values to memory-mapped files
in that directory and ``/api/metrics`` (answered by whichever worker gets the scrape) merges all of
them with :class:`prometheus_client.multiprocess.MultiProcessCollector`. The choice is made once,
when the :class:`~asgi_monitor.Monitor` is built (:func:`multiprocess_dir`):

- the request metrics then use :class:`MultiprocessRequestMetrics`, the same interface as the
  single-process store but backed by real prometheus_client metrics (whose values live in the
  files), with label children cached per label set;
- a directory that is missing or not writable is reported at start-up and the process falls back
  to single-process metrics rather than crashing on its first request.

For gunicorn, add ``child_exit = asgi_monitor.multiprocess.child_exit`` to the config file so a
dead worker's live gauges (requests in progress, open WebSockets) stop counting.
See docs/multiprocess.md.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.multiprocess import mark_process_dead

from .config import metric_prefix
from .labels import BoundedChildren, SeriesCap
from .request_metrics import (
    HELP,
    HTTP_REQUESTS,
    HTTP_REQUESTS_IN_PROGRESS,
    OVERFLOW,
    ROUTE_HISTOGRAMS,
    STANDARD_METHODS,
    WEBSOCKET_EXTRA_BUCKETS,
    Cell,
    RequestStore,
)

__all__ = ["GAUGE_MODE", "STORED_LABELS", "MultiprocessRequestMetrics", "child_exit",
           "multiprocess_dir"]

logger = logging.getLogger("asgi_monitor")

ENV_VAR = "PROMETHEUS_MULTIPROC_DIR"
# How gauges the app sets (set_gauge, active sessions) merge across workers: the value set last,
# by any worker.
GAUGE_MODE: Literal["mostrecent"] = "mostrecent"
# The labels a request series is stored under in the files (constant labels follow).
STORED_LABELS = ("method", "route", "status", "scheme")


def multiprocess_dir(environ: dict[str, str] | None = None) -> str | None:
    """The usable multiprocess directory, or None for single-process metrics.

    prometheus_client picks its value storage when it is first imported; this makes that choice
    agree with what the directory allows, so both sides of a scrape use the same mode.
    """
    env = os.environ if environ is None else environ
    path = env.get(ENV_VAR, "")
    if not path:
        return None
    problem = None
    if not os.path.isdir(path):
        problem = "does not exist or is not a directory"
    elif not os.access(path, os.W_OK | os.X_OK):
        problem = "is not writable by this process"
    if problem is not None:
        logger.error(
            "%s=%r %s: falling back to single-process metrics, so each worker will report only "
            "its own requests. Create the directory (empty) before starting the server.",
            ENV_VAR, path, problem)
        # Metrics created from here on keep their values in memory instead of failing to open files.
        values.ValueClass = values.MutexValue
        return None
    if not getattr(values.ValueClass, "_multiprocess", False):
        # The variable was set after prometheus_client was imported.
        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    logger.info("%s=%r: multiprocess metrics on (pid %d); empty this directory before each "
                   "server start", ENV_VAR, path, os.getpid())
    return path


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn hook: ``child_exit = asgi_monitor.multiprocess.child_exit`` in gunicorn.conf.py."""
    mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


class GaugeCell(Cell):
    """A :class:`Cell` that also writes its gauge's file. Only the event loop thread of this
    process moves it, so our own copy of the value is exact."""

    __slots__ = ("_gauge",)

    def __init__(self, gauge: Any) -> None:
        super().__init__()
        self._gauge = gauge

    def add(self, delta: int) -> None:
        self.value += delta
        self._gauge.set(self.value)


class _Series:
    """What one request updates, as prometheus_client children resolved once per label set."""

    __slots__ = ("count", "duration", "ttfb", "request_size", "response_size")

    def __init__(self, count: Any, duration: Any, ttfb: Any, request_size: Any,
                 response_size: Any) -> None:
        self.count = count
        self.duration = duration
        self.ttfb = ttfb
        self.request_size = request_size
        self.response_size = response_size

    def observe(
        self, duration: float, ttfb: float, request_bytes: int, response_bytes: int
    ) -> None:
        self.count.inc()
        self.duration.observe(duration)
        self.ttfb.observe(ttfb)
        self.request_size.observe(request_bytes)
        self.response_size.observe(response_bytes)


class MultiprocessRequestMetrics(RequestStore):
    """The :class:`~asgi_monitor.request_metrics.RequestMetrics` interface on prometheus_client.

    Same families, names, labels and series cap as the single-process store. Gauges use
    ``livesum``: the sum over the workers that are alive (gunicorn's ``child_exit`` tells which).
    """

    def __init__(
        self,
        *,
        registry: CollectorRegistry,
        namespace: str = "",
        duration_buckets: Sequence[float],
        size_buckets: Sequence[float],
        max_series: int,
        constant_labels: Sequence[tuple[str, str]] = (),
    ) -> None:
        p = metric_prefix(namespace)
        # The files hold label values per series, so constant labels are real label names here,
        # their values given once when a series' children are resolved (cached), not per request.
        names = tuple(name for name, _ in constant_labels)
        self._constant_values = tuple(value for _, value in constant_labels)
        self._dropped: dict[str, int] = {}
        cap = SeriesCap(max_series, self._dropped)
        # Stored per (method, route, status, scheme), as the single-process store keeps them;
        # asgi_monitor.merged_requests projects them onto the chosen names on scrape.
        self._total = Counter(f"{p}{HTTP_REQUESTS}", HELP[HTTP_REQUESTS],
                              (*STORED_LABELS, *names), registry=registry)
        # In _Series' order: duration, ttfb, request_size, response_size.
        self._histograms = [
            Histogram(f"{p}{name}", doc, (*STORED_LABELS, *names),
                      buckets=size_buckets if in_bytes else duration_buckets, registry=registry)
            for name, _, doc, in_bytes in ROUTE_HISTOGRAMS
        ]
        in_progress = Gauge(f"{p}{HTTP_REQUESTS_IN_PROGRESS}", HELP[HTTP_REQUESTS_IN_PROGRESS],
                            ("method", *names), multiprocess_mode="livesum", registry=registry)
        self.in_progress: dict[str, Cell] = {
            m: GaugeCell(in_progress.labels(m, *self._constant_values))
            for m in (*STANDARD_METHODS, "OTHER")}
        self._series: BoundedChildren[tuple[str, str, int, str], _Series] = BoundedChildren(
            "http_requests_total", self._make_series, max_series=max_series,
            dropped=self._dropped, overflow=lambda key: (key[0], OVERFLOW, key[2], key[3]))

        self._ws_total = Counter(f"{p}websocket_connections", HELP["websocket_connections"],
                                 ("route", *names), registry=registry)
        ws_active = Gauge(f"{p}websocket_connections_active", HELP["websocket_connections_active"],
                          names, multiprocess_mode="livesum", registry=registry)
        self.ws_active = GaugeCell(ws_active.labels(*self._constant_values) if names
                                   else ws_active)
        self._ws_duration = Histogram(
            f"{p}websocket_session_duration_seconds", HELP["websocket_session_duration_seconds"],
            ("route", *names), buckets=sorted({*duration_buckets, *WEBSOCKET_EXTRA_BUCKETS}),
            registry=registry)
        self._ws_routes: BoundedChildren[tuple[str], tuple[str, Any, Any]] = cap.children(
            "websocket_connections_total",
            lambda key: (key[0], self._ws_total.labels(key[0], *self._constant_values),
                         self._ws_duration.labels(key[0], *self._constant_values)))

    def _make_series(self, key: tuple[str, str, int, str]) -> _Series:
        method, route, status, scheme = key
        labels = (method, route, str(status), scheme, *self._constant_values)
        return _Series(self._total.labels(*labels),
                       *(histogram.labels(*labels) for histogram in self._histograms))

    def record(
        self, method: str, route: str, status: int, scheme: str, duration: float, ttfb: float,
        request_bytes: int, response_bytes: int,
    ) -> None:
        self.series(method, route, status, scheme).observe(duration, ttfb, request_bytes,
                                                           response_bytes)

    def series(self, method: str, route: str, status: int, scheme: str) -> _Series:
        return self._series.get((method, route, status, scheme))

    def websocket_accepted(self, route: str) -> str:
        label, total, _ = self._ws_routes.get((route,))
        total.inc()
        self.ws_active.add(1)
        return label

    def websocket_closed(self, route: str, duration: float) -> None:
        self.ws_active.add(-1)
        self._ws_routes.get((route,))[2].observe(duration)

    def dropped_counts(self) -> dict[str, int]:
        return dict(self._dropped)

