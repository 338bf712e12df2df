"""MonitoringMiddleware: the hot path.

Everything here runs on every request, so it does as little as possible: no Request objects, no
route re-matching, no regex, no label formatting on a cache hit. Per-request state lives in
locals and closures (concurrent requests share this instance). Recording happens in ``finally``
so an exception still counts, and is itself wrapped so that a failure inside monitoring is counted
and logged but never changes what the app sends or raises.
"""

from __future__ import annotations

import asyncio
import json
import logging
from time import perf_counter

from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .config import MonitoringConfig
from .monitor import Monitor, State, monitor_for, set_monitor
from .request_metrics import STANDARD_METHODS
from .routes import resolve_route

__all__ = ["MonitoringMiddleware"]

logger = logging.getLogger("asgi_monitor")

_METHODS = {m: m for m in STANDARD_METHODS}
# Status recorded for a request the client abandoned (nginx's convention, widely understood).
CLIENT_CLOSED = 499


class MonitoringMiddleware:
    """Wraps any ASGI app: records request metrics and serves the monitoring endpoints.

    ``MonitoringMiddleware(app)`` uses the process-wide monitor configured from the environment,
    the one ``get_metrics_collector()`` returns. Pass ``config`` to configure it in code, or
    ``registry`` (tests) for an isolated monitor on its own prometheus registry.
    """

    def __init__(
        self,
        app: ASGIApp,
        config: MonitoringConfig | None = None,
        *,
        registry: CollectorRegistry | None = None,
        monitor: Monitor | None = None,
    ) -> None:
        self.app = app
        self.monitor = _choose_monitor(config, registry, monitor)
        config = self.monitor.config
        self._enabled = config.enabled
        self._own_prefixes = (config.metrics_path, config.health_path, config.alerts_path,
                              config.dashboard_path)
        self._excluded = frozenset(config.excluded_paths)
        self._resolver = config.route_resolver
        self._requests = self.monitor.collector.requests
        self._in_progress = self._requests.in_progress
        self._sub_app: ASGIApp | None = None
        logger.info("Monitoring middleware initialized: %s",
                    json.dumps(config.public_dict(), sort_keys=True, default=str))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if scope_type != "http" or not self._enabled:
            if not self._enabled:
                return await self.app(scope, receive, send)
            if scope_type == "websocket":
                return await self._websocket(scope, receive, send)
            if scope_type == "lifespan":
                return await self._lifespan(scope, receive, send)
            return await self.app(scope, receive, send)

        path = scope["path"]
        if path.startswith(self._own_prefixes) and self._is_own_path(path):
            return await self._own_app()(scope, receive, send)
        if path in self._excluded:
            return await self.app(scope, receive, send)
        if self.monitor.state is not State.RUNNING:
            self.monitor.start_lazily()

        method = _METHODS.get(scope["method"], "OTHER")
        in_progress = self._in_progress[method]
        in_progress[0] += 1
        entry_root_path = scope.get("root_path", "")
        status = 0
        first_byte = 0.0
        end = 0.0
        request_bytes = 0
        response_bytes = 0
        disconnected = False
        # Only an OSError from the server's send() means the client is gone; one the app raises
        # itself (a database refusing connections, a TimeoutError) is the app's failure: 500, not
        # 499, or a dependency outage would hide from the error rate (found by issue 9's suite).
        client_gone = False
        start = perf_counter()

        async def receive_wrapper() -> Message:
            nonlocal request_bytes, disconnected
            message = await receive()
            try:
                if message["type"] == "http.request":
                    request_bytes += len(message.get("body", b""))
                elif message["type"] == "http.disconnect":
                    disconnected = True
            except Exception as exc:  # a malformed message is the server's business, not ours
                self.monitor.collector.internal_error("receive", exc)
            return message

        async def send_wrapper(message: Message) -> None:
            nonlocal status, first_byte, end, response_bytes, client_gone
            ended = end
            try:
                message_type = message["type"]
                if message_type == "http.response.body":
                    response_bytes += len(message.get("body", b""))
                    if not message.get("more_body", False):
                        end = perf_counter()
                elif message_type == "http.response.start":
                    status = message["status"]
                    first_byte = perf_counter()
            except Exception as exc:
                self.monitor.collector.internal_error("send", exc)
            try:
                await send(message)
            except OSError:
                # The server could not write (uvicorn's ClientDisconnected is an OSError): the
                # client went away; if this was the last chunk, the response did not complete.
                client_gone = True
                end = ended
                raise

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        except asyncio.CancelledError:
            # Cancelled by the server: the client went away.
            if not end:
                status = CLIENT_CLOSED
            raise
        except BaseException:
            if not status:
                status = 500
            raise
        finally:
            in_progress[0] -= 1
            try:
                finished = end or perf_counter()
                if (disconnected or client_gone) and not end:
                    status = CLIENT_CLOSED
                elif not status:
                    status = 500  # the app returned without a response; servers answer 500
                route = resolve_route(scope, entry_root_path, self._resolver)
                self._requests.series(method, route, status).observe(
                    finished - start, (first_byte or finished) - start,
                    request_bytes, response_bytes)
            except Exception as exc:
                self.monitor.collector.internal_error("record", exc)

    def _is_own_path(self, path: str) -> bool:
        for prefix in self._own_prefixes:
            if path == prefix or path.startswith(prefix + "/"):
                return True
        return False

    def _own_app(self) -> ASGIApp:
        if self._sub_app is None:
            # Imported here so apps that never hit a monitoring path never load the web layer.
            from .web.app import build_app

            self._sub_app = build_app(self.monitor)
        return self._sub_app

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] in self._excluded:
            return await self.app(scope, receive, send)
        if self.monitor.state is not State.RUNNING:
            self.monitor.start_lazily()
        entry_root_path = scope.get("root_path", "")
        route: str | None = None
        accepted_at = 0.0

        async def send_wrapper(message: Message) -> None:
            nonlocal route, accepted_at
            await send(message)
            if message.get("type") == "websocket.accept" and route is None:
                try:
                    # Routing has happened by the time the app accepts.
                    template = resolve_route(scope, entry_root_path, self._resolver)
                    route = self._requests.websocket_accepted(template)
                    accepted_at = perf_counter()
                except Exception as exc:
                    self.monitor.collector.internal_error("websocket", exc)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if route is not None:
                try:
                    self._requests.websocket_closed(route, perf_counter() - accepted_at)
                except Exception as exc:
                    self.monitor.collector.internal_error("websocket", exc)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        monitor = self.monitor

        async def receive_wrapper() -> Message:
            message = await receive()
            message_type = message.get("type")
            if message_type == "lifespan.startup" and monitor.state is not State.RUNNING:
                monitor.start_lazily()
                monitor.ready = False  # ready only once the app says its startup completed
            elif message_type == "lifespan.shutdown":
                monitor.begin_shutdown()
            return message

        async def send_wrapper(message: Message) -> None:
            message_type = message.get("type")
            if message_type == "lifespan.startup.complete":
                monitor.ready = True
            elif message_type in ("lifespan.shutdown.complete", "lifespan.shutdown.failed",
                                  "lifespan.startup.failed"):
                await monitor.stop()
            await send(message)

        await self.app(scope, receive_wrapper, send_wrapper)


def _choose_monitor(
    config: MonitoringConfig | None, registry: CollectorRegistry | None, monitor: Monitor | None
) -> Monitor:
    if monitor is not None:
        return monitor
    if registry is not None:
        # An isolated monitor (tests, several apps in one process); it becomes the one get_*()
        # return, since it is the latest app wrapped.
        chosen = Monitor(config, registry=registry)
        set_monitor(chosen)
        return chosen
    return monitor_for(config)
