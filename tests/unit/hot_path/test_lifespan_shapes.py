"""Readiness for every shape an app's lifespan can take, driven by hand-written lifespan messages
the way uvicorn sends them (docs/health.md has the table these tests hold)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from starlette.applications import Starlette
from support import client

from asgi_monitor import MonitoringMiddleware
from asgi_monitor.monitor import State

Wrap = Callable[..., MonitoringMiddleware]


class LifespanServer:
    """The server's side of the lifespan protocol: send an event, then wait (like uvicorn) for
    the app's answer or for its lifespan call to end."""

    def __init__(self, mw: MonitoringMiddleware) -> None:
        self.mw = mw
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: list[str] = []
        self._answered = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def _send(self, message: dict[str, Any]) -> None:
        self.sent.append(message["type"])
        self._answered.set()

    async def _event(self, message_type: str) -> None:
        self._answered.clear()
        await self.incoming.put({"type": message_type})
        assert self.task is not None
        answered = asyncio.ensure_future(self._answered.wait())
        await asyncio.wait({self.task, answered}, return_when=asyncio.FIRST_COMPLETED)
        answered.cancel()

    async def startup(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self.task = asyncio.ensure_future(self.mw(scope, self.incoming.get, self._send))
        await self._event("lifespan.startup")

    async def shutdown(self) -> None:
        await self._event("lifespan.shutdown")

    def error(self) -> BaseException | None:
        """What the app's lifespan raised (passed on unchanged), once it ended."""
        assert self.task is not None and self.task.done()
        return self.task.exception()


@contextlib.asynccontextmanager
async def lifespan_of(mw: MonitoringMiddleware) -> AsyncIterator[LifespanServer]:
    server = LifespanServer(mw)
    try:
        yield server
    finally:
        if server.task is not None and not server.task.done():
            server.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await server.task
        await mw.monitor.stop()


async def probe(mw: MonitoringMiddleware) -> tuple[int, str]:
    async with client(mw) as c:
        r = await c.get("/api/health/ready")
    return r.status_code, r.json().get("reason", "")


# -- apps, one per shape: each answers HTTP, and its lifespan is what its name says -------------
LifespanApp = Callable[[Any, Any, Any], Awaitable[None]]


def serves_http(lifespan: LifespanApp) -> LifespanApp:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return await lifespan(scope, receive, send)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"app"})

    app.__name__ = lifespan.__name__
    return app


@serves_http
async def supports_lifespan(scope: Any, receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        else:
            await send({"type": "lifespan.shutdown.complete"})
            return


@serves_http
async def raises_on_the_scope(scope: Any, receive: Any, send: Any) -> None:
    # Django's ASGIHandler.
    raise ValueError("Django can only handle ASGI/HTTP connections, not lifespan.")


@serves_http
async def reads_then_raises(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    raise RuntimeError("no lifespan here")


@serves_http
async def returns_at_once(scope: Any, receive: Any, send: Any) -> None:
    # A raw app that serves "http" only and returns on anything else.
    return


@serves_http
async def startup_fails(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "lifespan.startup.failed", "message": "database unreachable"})


@serves_http
async def startup_fails_and_raises(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "lifespan.startup.failed", "message": "database unreachable"})
    raise RuntimeError("database unreachable")


@contextlib.asynccontextmanager
async def _failing_lifespan(app: Starlette) -> AsyncIterator[None]:
    raise RuntimeError("database unreachable")
    yield  # pragma: no cover


# Starlette answers startup.failed and re-raises when its lifespan raises.
starlette_startup_fails = Starlette(lifespan=_failing_lifespan)


# -- (a) lifespan off ---------------------------------------------------------------------------
@pytest.mark.parametrize("first", ["/api/health/ready", "/api/metrics", "/anything"])
async def test_lifespan_off_any_first_request_starts_the_monitor_and_makes_it_ready(
        wrap: Wrap, first: str) -> None:
    mw = wrap(supports_lifespan)
    assert mw.monitor.state is State.CREATED and not mw.monitor.ready
    async with lifespan_of(mw):
        async with client(mw) as c:
            await c.get(first)
        assert mw.monitor.state is State.RUNNING
        assert mw.monitor.task_names == ["alert_channels", "alerts", "health", "sampler"]
        assert await probe(mw) == (200, "")


# -- (b) an app without lifespan support --------------------------------------------------------
@pytest.mark.parametrize("app", [raises_on_the_scope, reads_then_raises, returns_at_once])
async def test_app_without_lifespan_support_is_ready_as_with_lifespan_off(
        wrap: Wrap, app: Any) -> None:
    mw = wrap(app)
    async with lifespan_of(mw) as server:
        await server.startup()
        assert server.task is not None and server.task.done()
        error = server.error()
        # Passed on unchanged: the server decides (uvicorn --lifespan auto serves on).
        if app is returns_at_once:
            assert error is None
        else:
            assert isinstance(error, (ValueError, RuntimeError))
        assert server.sent == []
        # Running and ready before any request: the probes are all a gated balancer sends.
        assert mw.monitor.state is State.RUNNING and mw.monitor.ready
        assert await probe(mw) == (200, "")


# -- (c) the app's startup fails ----------------------------------------------------------------
@pytest.mark.parametrize("app", [startup_fails, startup_fails_and_raises,
                                 starlette_startup_fails],
                         ids=["sends-failed", "sends-failed-and-raises", "starlette"])
async def test_failed_startup_is_not_ready_for_good(wrap: Wrap, app: Any) -> None:
    mw = wrap(app)
    async with lifespan_of(mw) as server:
        await server.startup()
        assert server.sent == ["lifespan.startup.failed"]
        await asyncio.sleep(0)
        # What the app raised after saying so is passed on unchanged.
        error = server.error()
        assert error is None if app is startup_fails else isinstance(error, RuntimeError)
        assert mw.monitor.state is State.FAILED and mw.monitor.task_names == []
        # Until the server exits, and for good if it serves on: a request does not start it.
        assert await probe(mw) == (503, "the app's startup failed")
        async with client(mw) as c:
            await c.get("/anything")
        assert mw.monitor.state is State.FAILED
        assert await probe(mw) == (503, "the app's startup failed")


# -- (d) a normal lifespan ----------------------------------------------------------------------
async def test_normal_lifespan_ready_from_startup_complete_until_shutdown(wrap: Wrap) -> None:
    seen: list[tuple[int, str]] = []

    @serves_http
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        seen.append(await probe(mw))  # the app's own startup is running
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        assert message["type"] == "lifespan.shutdown"
        seen.append(await probe(mw))  # shutting down, tasks not yet stopped
        await send({"type": "lifespan.shutdown.complete"})

    mw = wrap(app)
    async with lifespan_of(mw) as server:
        await server.startup()
        assert server.sent == ["lifespan.startup.complete"]
        assert await probe(mw) == (200, "")
        await server.shutdown()
        assert server.sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
        assert seen == [(503, "starting up"), (503, "shutting down")]
        assert mw.monitor.state is State.STOPPED and mw.monitor.task_names == []
        # A late request does not start a monitor the lifespan stopped.
        assert await probe(mw) == (503, "shutting down")
        assert mw.monitor.state is State.STOPPED


async def test_lifespan_raising_during_shutdown_still_stops_the_monitor(wrap: Wrap) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        raise RuntimeError("cleanup failed")

    mw = wrap(app)
    async with lifespan_of(mw) as server:
        await server.startup()
        assert mw.monitor.ready
        await server.shutdown()
        assert isinstance(server.error(), RuntimeError)
        assert mw.monitor.state is State.STOPPED and not mw.monitor.ready
        assert await probe(mw) == (503, "shutting down")


async def test_lifespan_ending_after_startup_complete_stays_ready(wrap: Wrap) -> None:
    # Returned after its startup (it needs no shutdown): the server serves on.
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})

    mw = wrap(app)
    async with lifespan_of(mw) as server:
        await server.startup()
        await asyncio.sleep(0)
        assert server.task is not None and server.task.done() and server.error() is None
        assert await probe(mw) == (200, "")
