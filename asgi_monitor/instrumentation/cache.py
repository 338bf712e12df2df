"""Cache metrics: hits, misses, sets and deletes with their latency, by cache name.

``cache_operations_total{cache,operation}`` and
``cache_operation_duration_seconds{cache,operation}``, where ``operation`` is ``hit``, ``miss``,
``set``, ``delete`` (or ``error`` for a decorated call that raised). Plain calls, or the decorator
from :mod:`asgi_monitor.instrumentation.decorators`::

    metrics = get_metrics_collector()
    metrics.cache.hit("sessions", duration=0.0004)   # duration is optional
    metrics.cache.hit_rate("sessions")               # 0.0 .. 1.0, None before any lookup

    @monitor_cache_operation("users")                 # a get: None means a miss
    async def cached_user(user_id: int) -> User | None: ...

Cache names are capped like every label from user input (``max_series_per_metric``).
The hit rate is computed in this process: under several workers, each reports its own.
"""

from __future__ import annotations

from typing import Any, Literal

from prometheus_client import CollectorRegistry

from ..labels import BoundedChildren, SeriesCap
from ..sampling.inputs import CacheSnapshot
from ..store.metric_kinds import PROMETHEUS_KINDS, MetricKinds

__all__ = ["CACHE_DURATION_BUCKETS", "CACHE_OPERATIONS", "CacheMetrics", "CacheOperation"]

CacheOperation = Literal["hit", "miss", "set", "delete", "error"]
_OPERATIONS: tuple[CacheOperation, ...] = ("hit", "miss", "set", "delete", "error")
# The counter the sampler reads back from the merged files under several workers.
CACHE_OPERATIONS = "cache_operations"

# In-process caches answer in microseconds, networked ones in about a millisecond.
CACHE_DURATION_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
)


class _Cache:
    """One cache name's children, plus hit/miss counts this process can read back cheaply."""

    __slots__ = ("counters", "durations", "hits", "misses")

    def __init__(self, counters: dict[str, Any], durations: dict[str, Any]) -> None:
        self.counters = counters
        self.durations = durations
        self.hits = 0
        self.misses = 0

    def record(self, operation: CacheOperation, duration: float | None) -> None:
        self.counters[operation].inc()
        if duration is not None:
            self.durations[operation].observe(duration)
        if operation == "hit":
            self.hits += 1
        elif operation == "miss":
            self.misses += 1


class CacheMetrics:
    """``collector.cache``: hit/miss/set/delete calls and the hit rate."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        prefix: str,
        cap: SeriesCap,
        kinds: MetricKinds = PROMETHEUS_KINDS,
    ) -> None:
        self._total = kinds.counter(f"{prefix}{CACHE_OPERATIONS}", "Cache operations by cache "
                                    "name and operation (hit, miss, set, delete, error).",
                                    ("cache", "operation"), registry=registry)
        self._duration = kinds.histogram(f"{prefix}cache_operation_duration_seconds",
                                         "Cache operation latency by cache name and operation.",
                                         ("cache", "operation"), buckets=CACHE_DURATION_BUCKETS,
                                         registry=registry)
        self._caches: BoundedChildren[tuple[str], _Cache] = cap.children(
            f"{CACHE_OPERATIONS}_total", self._make)

    def _make(self, key: tuple[str]) -> _Cache:
        (name,) = key
        return _Cache({op: self._total.labels(name, op) for op in _OPERATIONS},
                      {op: self._duration.labels(name, op) for op in _OPERATIONS})

    def record(self, cache: str, operation: CacheOperation, duration: float | None = None) -> None:
        self._caches.get((cache,)).record(operation, duration)

    def hit(self, cache: str, duration: float | None = None) -> None:
        self._caches.get((cache,)).record("hit", duration)

    def miss(self, cache: str, duration: float | None = None) -> None:
        self._caches.get((cache,)).record("miss", duration)

    def set(self, cache: str, duration: float | None = None) -> None:
        self._caches.get((cache,)).record("set", duration)

    def delete(self, cache: str, duration: float | None = None) -> None:
        self._caches.get((cache,)).record("delete", duration)

    def hit_rate(self, cache: str | None = None) -> float | None:
        """Hits / (hits + misses) for one cache or all of them; None before any lookup."""
        hits = misses = 0
        for (name,), counts in self._caches.items():
            if cache is None or name == cache:
                hits += counts.hits
                misses += counts.misses
        return hits / (hits + misses) if hits + misses else None

    def lookup_counts(self) -> dict[str, tuple[int, int]]:
        """(hits, misses) by cache name, counted in this process (what :meth:`hit_rate` uses)."""
        return {name: (counts.hits, counts.misses) for (name,), counts in self._caches.items()}

    def snapshot(self) -> CacheSnapshot:
        """Hits and misses so far over every cache, counted in this process."""
        counts = self.lookup_counts().values()
        return CacheSnapshot(hits=float(sum(h for h, _ in counts)),
                             misses=float(sum(m for _, m in counts)))
