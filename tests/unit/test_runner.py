"""The runner for user callables (health checks and alert conditions run through it)."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from asgi_monitor.runner import Failed, Failure, Returned, Runner


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at the end of the test, so a hung sync callable's thread ends too."""
    event = threading.Event()
    yield event
    event.set()


async def test_a_sync_callable_runs_in_a_named_thread_off_the_loop() -> None:
    def where() -> str:
        return threading.current_thread().name

    outcome = await Runner("prefix").run("key", where, 1.0)
    assert outcome == Returned("prefix:key")


class AsyncCall:
    async def __call__(self, suffix: str = "") -> str:
        return "called" + suffix


async def join(a: str, b: str) -> str:
    return a + b


@pytest.mark.parametrize("function", [
    AsyncCall(), functools.partial(AsyncCall(), ""), functools.partial(join, "call", "ed"),
], ids=["async __call__", "partial of async __call__", "partial of async def"])
async def test_async_callables_are_awaited_on_the_loop(
    function: Callable[[], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_thread(*args: Any) -> None:
        raise AssertionError("an async callable was sent to a thread")

    monkeypatch.setattr(Runner, "_in_thread", no_thread)
    assert await Runner("p").run("k", function, 1.0) == Returned("called")


async def test_a_sync_callable_that_returns_a_coroutine_has_it_awaited() -> None:
    outcome = await Runner("p").run("k", lambda: asyncio.sleep(0, "slept"), 1.0)
    assert outcome == Returned("slept")


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_an_exception_is_a_failure_with_its_message(kind: str) -> None:
    def sync_boom() -> None:
        raise ConnectionRefusedError("refused")

    async def async_boom() -> None:
        sync_boom()

    outcome = await Runner("p").run("k", sync_boom if kind == "sync" else async_boom, 1.0)
    assert isinstance(outcome, Failed)
    assert (outcome.reason, outcome.message) == (Failure.RAISED,
                                                 "ConnectionRefusedError: refused")
    assert isinstance(outcome.error, ConnectionRefusedError)


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_callable_that_overruns_times_out(kind: str, release: threading.Event) -> None:
    async def async_hang() -> None:
        await asyncio.sleep(3600)

    function = release.wait if kind == "sync" else async_hang
    outcome = await asyncio.wait_for(Runner("p").run("k", function, 0.05), 2)
    assert outcome == Failed(Failure.TIMED_OUT, "timed out after 0.05s")


async def test_a_hung_sync_callable_holds_one_thread_and_starves_nothing(
    release: threading.Event,
) -> None:
    runner = Runner("p")
    # More hung callables than a default thread pool has threads on a small machine.
    hung = await asyncio.gather(*(runner.run(f"hung{i}", release.wait, 0.05) for i in range(40)))
    assert {o.reason for o in hung if isinstance(o, Failed)} == {Failure.TIMED_OUT}
    assert await runner.run("fine", lambda: 42, 1.0) == Returned(42)
    # The hung run is not piled on: its key fails fast while the thread is busy.
    again = await runner.run("hung0", release.wait, 1.0)
    assert again == Failed(Failure.STILL_RUNNING, "previous run is still hung in its thread")
    release.set()
    for _ in range(100):
        outcome = await runner.run("hung0", lambda: "free", 1.0)
        if outcome == Returned("free"):
            break
        await asyncio.sleep(0.01)
    assert outcome == Returned("free")
