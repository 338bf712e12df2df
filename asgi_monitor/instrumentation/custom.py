"""The app's own metrics by name: ``increment_counter``, ``set_gauge``, ``record_histogram``.

A name keeps the type and label names of its first use; changing either raises
:class:`~asgi_monitor.errors.MetricError`, as do invalid names and negative counter increments.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry

from ..errors import MetricError
from ..labels import BoundedChildren, SeriesCap
from ..store.metric_kinds import GAUGE_MODE, MetricKinds

__all__ = ["CustomMetrics"]

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


class CustomMetrics:
    """Metrics created on first use, on ``registry``, with the store's metric kinds (in memory,
    or in this worker's file) and label values capped by ``cap``."""

    def __init__(self, registry: CollectorRegistry, kinds: MetricKinds, cap: SeriesCap) -> None:
        self._registry = registry
        self._kinds = {"counter": kinds.counter, "gauge": kinds.gauge,
                       "histogram": kinds.histogram}
        self._cap = cap
        self._custom: dict[str, _Custom] = {}
        self._lock = threading.Lock()

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
            kwargs: dict[str, Any] = {"registry": self._registry}
            if kind == "histogram" and buckets is not None:
                kwargs["buckets"] = tuple(buckets)
            if kind == "gauge":
                kwargs["multiprocess_mode"] = GAUGE_MODE  # ignored by a single process
            try:
                metric = self._kinds[kind](name, f"Custom {kind} {name}", labelnames, **kwargs)
            except ValueError as exc:
                raise MetricError(f"cannot create metric {name!r}: {exc}") from None
            children: BoundedChildren[tuple[str, ...], Any] = self._cap.children(
                name, lambda values: metric.labels(*values))
            custom = self._custom[name] = _Custom(kind, labelnames, metric, children)
            return custom
