"""The decorators and the SQLAlchemy hook: they time calls and record them into a collector.

They record into the process-wide collector (``get_metrics_collector()``), looked up at each call
so that a monitor made after the decorated function was defined is the one recorded into, or
into the ``collector`` given to :func:`instrument_sqlalchemy`. What they need of it is
:class:`Instrumented`; :mod:`asgi_monitor.default` holds the process-wide monitor without
importing the composition root, so reaching it from here closes no circle.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from time import perf_counter
from typing import Any, Literal, Protocol, TypeVar

from ..default import get_metrics_collector
from ._timing import safely, timed
from .cache import CacheMetrics, CacheOperation
from .database import DatabaseMetrics, statement_kind

__all__ = ["Instrumented", "instrument_sqlalchemy", "monitor_cache_operation",
           "monitor_database_operation"]

F = TypeVar("F", bound=Callable[..., Any])


class Instrumented(Protocol):
    """What the decorators record into (:class:`~asgi_monitor.MetricsCollector` is one)."""

    @property
    def database(self) -> DatabaseMetrics: ...
    @property
    def cache(self) -> CacheMetrics: ...
    def internal_error(self, where: str, exc: BaseException) -> None: ...


def current_collector() -> Instrumented:
    """The collector ``get_metrics_collector()`` returns now."""
    return get_metrics_collector()


def monitor_database_operation(operation: str) -> Callable[[F], F]:
    """Time every call of a sync or async function as database operation ``operation``.

    A call that raises counts as ``status="error"`` (cancellation included); the exception
    propagates unchanged.
    """
    def record(collector: Instrumented, duration: float, result: Any, ok: bool) -> None:
        collector.database.operation(operation).record(duration, ok)

    def decorate(func: F) -> F:
        return timed(func, "database", record, current_collector)

    return decorate


def monitor_cache_operation(
    cache: str,
    operation: Literal["get", "set", "delete"] = "get",
    *,
    is_hit: Callable[[Any], bool] = lambda result: result is not None,
) -> Callable[[F], F]:
    """Count and time every call of a sync or async function as an operation on ``cache``.

    For ``operation="get"`` the result decides hit or miss (``is_hit``, by default "not None").
    A call that raises counts as ``error``; the exception propagates unchanged.
    """
    def record(collector: Instrumented, duration: float, result: Any, ok: bool) -> None:
        done: CacheOperation
        if not ok:
            done = "error"
        elif operation == "get":
            done = "hit" if is_hit(result) else "miss"
        else:
            done = operation
        collector.cache.record(cache, done, duration)

    def decorate(func: F) -> F:
        return timed(func, "cache", record, current_collector)

    return decorate


_START = "asgi_monitor_statement_start"
_instrumented: weakref.WeakSet[Any] = weakref.WeakSet()


def instrument_sqlalchemy(engine: Any, *, collector: Instrumented | None = None) -> None:
    """Time every statement an Engine or AsyncEngine runs (idempotent; needs SQLAlchemy >= 2).

    Uses the ``before_cursor_execute``/``after_cursor_execute``/``handle_error`` events of the
    (sync) engine; for an AsyncEngine, those of its ``sync_engine``. The metrics go to
    ``collector``, by default the one ``get_metrics_collector()`` returns at each statement.
    """
    from sqlalchemy import event  # optional dependency: pip install 'asgi-monitoring[sqlalchemy]'

    sync_engine = getattr(engine, "sync_engine", engine)
    if sync_engine in _instrumented:
        return
    _instrumented.add(sync_engine)
    target: Callable[[], Instrumented] = (
        current_collector if collector is None else (lambda: collector))

    def record(owner: Instrumented, duration: float, statement: Any, ok: bool) -> None:
        owner.database.operation(statement_kind(statement)).record(duration, ok)

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
               executemany: bool) -> None:
        # A stack, as in SQLAlchemy's own profiling recipe: events nest on one connection.
        conn.info.setdefault(_START, []).append(perf_counter())

    def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
              executemany: bool) -> None:
        starts = conn.info.get(_START)
        if starts:
            safely("sqlalchemy", record, perf_counter() - starts.pop(), statement, True, target)

    def error(context: Any) -> None:
        conn = context.connection
        starts = conn.info.get(_START) if conn is not None else None
        if starts:  # else the failure came before a statement ran (e.g. connecting)
            safely("sqlalchemy", record, perf_counter() - starts.pop(),
                   context.statement or "", False, target)

    event.listen(sync_engine, "before_cursor_execute", before)
    event.listen(sync_engine, "after_cursor_execute", after)
    event.listen(sync_engine, "handle_error", error)
