"""What the decorators share: finding the collector, timing a call, never failing the call."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ..logs import RateLimitedLog

if TYPE_CHECKING:
    from ..collector import MetricsCollector

__all__ = ["Record", "current_collector", "safely", "timed"]

F = TypeVar("F", bound=Callable[..., Any])
# record(collector, duration, result, ok): what one finished call adds to the metrics.
Record = Callable[["MetricsCollector", float, Any, bool], None]

_log = RateLimitedLog(logging.getLogger("asgi_monitor.metrics"), logging.ERROR)


_get_collector: Callable[[], MetricsCollector] | None = None


def current_collector() -> MetricsCollector:
    """The collector ``get_metrics_collector()`` returns, looked up on each call so that a monitor
    created later (the middleware, a test's fresh registry) is the one recorded into."""
    global _get_collector
    if _get_collector is None:
        # Imported late (the default monitor builds the collector, which imports this package)
        # and kept: an import statement on every call would cost microseconds.
        from ..default import get_metrics_collector

        _get_collector = get_metrics_collector
    return _get_collector()


def safely(
    where: str,
    record: Record,
    duration: float,
    result: Any,
    ok: bool,
    collector: MetricsCollector | None = None,
) -> None:
    """Record a finished call; a failure inside monitoring is counted and logged, never raised."""
    try:
        if collector is None:
            collector = current_collector()
    except Exception as exc:
        _log.log(where, "asgi_monitor could not record %s: %r", where, exc, exc_info=exc)
        return
    try:
        record(collector, duration, result, ok)
    except Exception as exc:
        collector.internal_error(where, exc)


def timed(func: F, where: str, record: Record) -> F:
    """Wrap a sync or async function: time each call and record it; results and exceptions of
    the function pass through unchanged."""
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            start = perf_counter()
            try:
                result = await func(*args, **kwargs)
            except BaseException:
                safely(where, record, perf_counter() - start, None, False)
                raise
            safely(where, record, perf_counter() - start, result, True)
            return result

        return cast(F, async_wrapper)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = perf_counter()
        try:
            result = func(*args, **kwargs)
        except BaseException:
            safely(where, record, perf_counter() - start, None, False)
            raise
        safely(where, record, perf_counter() - start, result, True)
        return result

    return cast(F, wrapper)
