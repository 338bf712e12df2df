"""What the decorators share: timing a call and recording it without ever failing the call."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from time import perf_counter
from typing import Any, Protocol, TypeVar, cast

from ..logs import RateLimitedLog

__all__ = ["ErrorSink", "safely", "timed"]

F = TypeVar("F", bound=Callable[..., Any])


class ErrorSink(Protocol):
    def internal_error(self, where: str, exc: BaseException) -> None: ...


T = TypeVar("T", bound=ErrorSink)

_log = RateLimitedLog(logging.getLogger("asgi_monitor.metrics"), logging.ERROR)


def safely(
    where: str,
    record: Callable[[T, float, Any, bool], None],
    duration: float,
    result: Any,
    ok: bool,
    target: Callable[[], T],
) -> None:
    """Record a finished call into ``target()``; a failure inside monitoring is counted and
    logged, never raised."""
    try:
        collector = target()
    except Exception as exc:
        _log.log(where, "asgi_monitor could not record %s: %r", where, exc, exc_info=exc)
        return
    try:
        record(collector, duration, result, ok)
    except Exception as exc:
        collector.internal_error(where, exc)


def timed(func: F, where: str, record: Callable[[T, float, Any, bool], None],
          target: Callable[[], T]) -> F:
    """Wrap a sync or async function: time each call and record it; results and exceptions of
    the function pass through unchanged."""
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            start = perf_counter()
            try:
                result = await func(*args, **kwargs)
            except BaseException:
                safely(where, record, perf_counter() - start, None, False, target)
                raise
            safely(where, record, perf_counter() - start, result, True, target)
            return result

        return cast(F, async_wrapper)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = perf_counter()
        try:
            result = func(*args, **kwargs)
        except BaseException:
            safely(where, record, perf_counter() - start, None, False, target)
            raise
        safely(where, record, perf_counter() - start, result, True, target)
        return result

    return cast(F, wrapper)
