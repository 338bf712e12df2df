"""Database metrics: ``collector.database``, recorded by hand or by the decorators.

``db_query_duration_seconds{operation}`` (histogram) and ``db_queries_total{operation,status}``
(status ``success`` or ``error``). The decorator and the SQLAlchemy hook live in
:mod:`asgi_monitor.instrumentation.decorators`::

    @monitor_database_operation("load_user")
    async def load_user(user_id: int) -> User: ...

    instrument_sqlalchemy(engine)   # sync Engine or AsyncEngine: every statement, by kind

The SQLAlchemy hook labels statements by their first keyword (SELECT, INSERT, UPDATE, DELETE,
else OTHER), never by their text: SQL text (with literals in it) would be a new series per query.
A function decorated *and* run through an instrumented engine is counted twice, once under its
name and once per statement kind; filter on ``operation`` when summing.
Operation names are capped like every label from user input (``max_series_per_metric``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry

from ..labels import BoundedChildren, SeriesCap
from ..sampling.inputs import DatabaseSnapshot
from ..store.metric_kinds import PROMETHEUS_KINDS, MetricKinds

__all__ = [
    "DB_DURATION_BUCKETS", "DB_QUERIES", "DatabaseMetrics", "DatabaseOperation", "statement_kind",
]

# Queries: 1 ms .. 10 s.
DB_DURATION_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)
# The counter the sampler reads back from the merged files under several workers.
DB_QUERIES = "db_queries"
_KINDS = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE"})  # all six letters long


class DatabaseOperation:
    """The children one operation name records into, resolved once, plus the counts this
    process can read back cheaply (:meth:`DatabaseMetrics.snapshot`)."""

    __slots__ = ("duration", "success", "error", "calls", "failures")

    def __init__(self, duration: Any, success: Any, error: Any) -> None:
        self.duration = duration
        self.success = success
        self.error = error
        self.calls = 0
        self.failures = 0

    def record(self, duration: float, ok: bool = True) -> None:
        self.duration.observe(duration)
        (self.success if ok else self.error).inc()
        self.calls += 1
        if not ok:
            self.failures += 1


class DatabaseMetrics:
    """``collector.database``: ``record("load_user", 0.012)`` or ``record(..., ok=False)``."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        prefix: str,
        cap: SeriesCap,
        kinds: MetricKinds = PROMETHEUS_KINDS,
        buckets: Sequence[float] = DB_DURATION_BUCKETS,
    ) -> None:
        self._duration = kinds.histogram(f"{prefix}db_query_duration_seconds",
                                         "Database operation duration by operation name or "
                                         "statement kind.", ("operation",), buckets=buckets,
                                         registry=registry)
        self._total = kinds.counter(f"{prefix}{DB_QUERIES}", "Database operations by operation "
                                    "and status (success or error).", ("operation", "status"),
                                    registry=registry)
        self._operations: BoundedChildren[tuple[str], DatabaseOperation] = cap.children(
            f"{DB_QUERIES}_total", self._make)

    def _make(self, key: tuple[str]) -> DatabaseOperation:
        (name,) = key
        return DatabaseOperation(self._duration.labels(name), self._total.labels(name, "success"),
                                 self._total.labels(name, "error"))

    def operation(self, name: str) -> DatabaseOperation:
        return self._operations.get((name,))

    def record(self, operation: str, duration: float, *, ok: bool = True) -> None:
        self._operations.get((operation,)).record(duration, ok)

    def snapshot(self) -> DatabaseSnapshot:
        """Operations and failed ones so far, counted in this process (the database rule)."""
        operations = [operation for _, operation in self._operations.items()]
        return DatabaseSnapshot(queries=float(sum(o.calls for o in operations)),
                                errors=float(sum(o.failures for o in operations)))


def statement_kind(statement: str) -> str:
    """SELECT, INSERT, UPDATE or DELETE from a statement's first keyword, else OTHER."""
    text = statement.lstrip()
    head = text[:6].upper()
    if head in _KINDS and not text[6:7].isalnum() and text[6:7] != "_":
        return head
    return "OTHER"
