"""Running a user's callable (a health check, an alert condition) with a timeout.

:meth:`Runner.run` awaits async callables (coroutine functions, objects whose ``__call__`` is
async, ``functools.partial`` of either) on the event loop, and runs sync ones in a thread, never
on the loop. Every run ends in an :data:`Outcome`: :class:`Returned` with the value, or
:class:`Failed` with a short message (the callable raised, overran the timeout, or its previous
run is still hung in its thread).

Sync callables get a new daemon thread per run, not a ThreadPoolExecutor: the executor's threads
are joined at interpreter exit, so one callable hung forever kept the process from exiting after
the server had shut down, and a few hung callables filled the pool so that healthy ones timed out
behind them. A key (a check's or a rule's name) never has two runs in threads at once, so there
is at most one thread per key.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import inspect
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Failed", "Failure", "Outcome", "Returned", "Runner"]


class Failure(enum.Enum):
    RAISED = "raised"
    TIMED_OUT = "timed_out"
    STILL_RUNNING = "still_running"  # the key's previous run still holds its thread


@dataclass(frozen=True)
class Returned:
    value: Any


@dataclass(frozen=True)
class Failed:
    reason: Failure
    message: str  # "timed out after 2s", "ConnectionError: refused", ...
    error: Exception | None = None  # what the callable raised (reason RAISED)


Outcome = Returned | Failed


class Runner:
    """Runs user callables with a timeout; sync ones in threads named ``{thread_prefix}:{key}``."""

    def __init__(self, thread_prefix: str) -> None:
        self._thread_prefix = thread_prefix
        self._threads: dict[str, asyncio.Future[Any]] = {}  # by key: the run still in a thread

    async def run(self, key: str, function: Callable[[], Any], timeout: float) -> Outcome:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            if _is_async(function):
                value = await asyncio.wait_for(_awaited(function()), timeout)
            else:
                running = self._threads.get(key)
                if running is not None and not running.done():
                    return Failed(Failure.STILL_RUNNING, "previous run is still hung in its thread")
                future = self._in_thread(key, function)
                value = await asyncio.wait_for(asyncio.shield(future), timeout)
                if inspect.isawaitable(value):  # a sync callable that returned a coroutine
                    value = await asyncio.wait_for(_awaited(value), deadline - loop.time())
        except asyncio.TimeoutError:
            return Failed(Failure.TIMED_OUT, f"timed out after {timeout:g}s")
        except Exception as exc:
            return Failed(Failure.RAISED, f"{type(exc).__name__}: {exc}", exc)
        return Returned(value)

    def _in_thread(self, key: str, function: Callable[[], Any]) -> asyncio.Future[Any]:
        """Run ``function`` in a new daemon thread; a future on the running loop gets its
        result, and holds the key until the thread ends (even after the caller gave up)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._threads[key] = future

        def finished(done: asyncio.Future[Any]) -> None:
            if self._threads.get(key) is done:
                del self._threads[key]
            # A run that raises after its timeout has no awaiter left: its exception is seen here.
            if not done.cancelled():
                done.exception()

        future.add_done_callback(finished)

        def settle(result: Any, error: BaseException | None) -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

        def run() -> None:
            try:
                outcome: tuple[Any, BaseException | None] = (function(), None)
            except BaseException as exc:  # handed to the event loop, which re-raises it
                outcome = (None, exc)
            try:
                loop.call_soon_threadsafe(settle, *outcome)
            except RuntimeError:  # the loop closed while the callable ran: nobody is waiting
                pass

        name = f"{self._thread_prefix}:{key}"
        threading.Thread(target=run, name=name, daemon=True).start()
        return future


def _is_async(function: Callable[..., Any]) -> bool:
    while isinstance(function, functools.partial):
        function = function.func
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        type(function).__call__)


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    # wait_for wants a coroutine or future; a callable may return any awaitable.
    return await awaitable
