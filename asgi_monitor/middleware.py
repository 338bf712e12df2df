"""MonitoringMiddleware: the hot path.

Everything here runs on every request, so it does as little as possible: no Request objects, no
route re-matching, no regex (unless the user configured an excluded pattern), no label formatting
on a cache hit. Per-request state lives in one small :class:`_Exchange` object (concurrent
requests share the middleware instance). Recording happens in ``finally`` so an exception still
counts, and is itself wrapped so that a failure inside monitoring is counted and logged but never
changes what the app sends or raises.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import Callable
from time import perf_counter
from typing import Any, Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .config import MonitoringConfig
from .errors import LifecycleError
from .routes import resolve_route
from .store.single import RequestStore

__all__ = ["MonitorHooks", "MonitoringMiddleware", "add_monitoring_middleware"]

logger = logging.getLogger("asgi_monitor")

_MAX_CACHED_ROUTES = 10_000
# The response headers a request label reads when none of them reads any.
_NO_HEADERS: list[tuple[bytes, bytes]] = []
# Status recorded for a request the client abandoned (nginx's convention, widely understood).
CLIENT_CLOSED = 499


class MonitorHooks(Protocol):
    """What the hot path needs of a monitor (:class:`asgi_monitor.monitor.Monitor` is one):
    its settings, its request store, an error sink, the lifecycle and the monitoring sub-app."""

    config: MonitoringConfig

    @property
    def requests(self) -> RequestStore: ...
    def internal_error(self, where: str, exc: BaseException) -> None: ...
    def name_after(self, app: object) -> None: ...
    def start_lazily(self) -> None: ...
    def lifespan_startup(self) -> None: ...
    def lifespan_startup_complete(self) -> None: ...
    def lifespan_unsupported(self) -> None: ...
    async def lifespan_startup_failed(self) -> None: ...
    def begin_shutdown(self) -> None: ...
    async def stop(self) -> None: ...
    def asgi_app(self) -> ASGIApp: ...


class MonitoringMiddleware:
    """Wraps any ASGI app: records request metrics and serves the monitoring endpoints.

    ``MonitoringMiddleware(app)`` uses the process-wide monitor configured from the environment,
    the one ``get_metrics_collector()`` returns; ``MonitoringMiddleware(app, config)`` builds that
    one from ``config``. ``monitor=build_monitor(config, registry)`` uses a monitor of your own
    (another registry, several apps in one process) and leaves the process-wide one alone.
    ``serve_endpoints=False`` records requests but leaves the monitoring paths to the app, for
    when ``monitor.asgi_app()`` is served on a port of its own.
    """

    def __init__(
        self,
        app: ASGIApp,
        config: MonitoringConfig | None = None,
        *,
        monitor: MonitorHooks | None = None,
        serve_endpoints: bool = True,
    ) -> None:
        self.app = app
        if monitor is None:
            # Imported here: the hot path's module imports none of the components.
            from .default import get_monitor

            monitor = get_monitor(config)
        elif config is not None and config != monitor.config:
            raise LifecycleError("pass either config or monitor (a monitor has its config)")
        self.monitor = monitor
        monitor.name_after(app)
        config = monitor.config
        self._enabled = config.enabled
        self._own_prefixes = config.paths.all()
        # The probes (/livez, ...) are whole paths, not prefixes: short as they are, cut to a
        # common length they would make the first test below pass for most /api/... paths.
        self._own_exact = frozenset(config.paths.probes())
        # A first, cheap test for "maybe ours": the prefixes cut to the shortest one's length. A
        # path that starts with a prefix starts with its cut, so a miss here is a sure miss.
        # A probe path shorter than the cut is there whole: only that very path slices to it.
        # Compiled, a slice and a set lookup cost fewer instructions than str.startswith(tuple),
        # a generic method call there (benchmarks/README.md, "Where the server-side cost comes
        # from", has the callgrind figures).
        self._head = min(len(prefix) for prefix in self._own_prefixes)
        self._heads = frozenset(prefix[:self._head]
                                for prefix in self._own_prefixes + tuple(self._own_exact))
        # serve_endpoints=False: the monitoring sub-app is served elsewhere (monitor.asgi_app()
        # on an internal port), so its paths are the app's like any other; no head ever matches,
        # which costs the request path nothing.
        self._serving = serve_endpoints
        if not serve_endpoints:
            self._heads = frozenset()
        metrics = config.metrics
        self._excluded = frozenset(p for p in metrics.excluded_paths if not p.endswith("*"))
        self._excluded_prefixes = tuple(p[:-1] for p in metrics.excluded_paths if p.endswith("*"))
        # Compiled once, and only when the user configured a pattern.
        self._excluded_pattern = (re.compile(metrics.excluded_pattern)
                                  if metrics.excluded_pattern else None)
        self._skip_methods = frozenset(metrics.skip_methods)
        # One precomputed flag keeps the unconfigured request path at a single test.
        self._filtering = bool(self._excluded or self._excluded_prefixes
                               or self._excluded_pattern is not None or self._skip_methods)
        self._resolver = config.metrics.route_resolver
        # Routes declared as streams: templates, and prefixes (an entry ending with `*`). One
        # flag keeps the undeclared request path at a single test.
        routes = metrics.stream_routes
        self._stream_exact = frozenset(r for r in routes if not r.endswith("*"))
        self._stream_prefixes = tuple(r[:-1] for r in routes if r.endswith("*"))
        self._declared_streams = bool(routes)
        # None unless exemplars are on: the request path then tests this one attribute.
        self._exemplar: Callable[[dict[str, Any]], dict[str, str] | None] | None = None
        if metrics.exemplars:
            # Imported here: OpenTelemetry is looked up only when exemplars are wanted.
            from .exemplars import exemplar_source

            self._exemplar = exemplar_source(metrics.exemplar)
        # None unless request labels are configured, like the exemplar hook.
        # One request-header label: its header's name (as ASGI has it) and the values the
        # resolver already knows by raw bytes, so that a request with a known value is
        # resolved here (compiled) without calling the resolver.
        self._label_header: bytes | None = None
        self._label_known: dict[object, str] = {}
        self._label_blank: tuple[str, ...] = ()
        # resolve(scope, status, response headers) -> the labels' values.
        self._request_labels: Callable[[dict[str, Any], int, list[tuple[bytes, bytes]]],
                                       tuple[str, ...]] | None = None
        # Whether the response's headers are kept for a request label that reads one.
        self._keep_headers = False
        if metrics.labels:
            # Imported here: the module is loaded only when labels are wanted.
            from .request_labels import LabelResolver

            resolver = LabelResolver(metrics.labels, metrics.label_max_values,
                                     monitor.internal_error)
            self._request_labels = resolver.resolve
            self._keep_headers = resolver.needs_response_headers
            if resolver.single_header is not None and self._exemplar is None:
                self._label_header = resolver.single_header
                self._label_known = resolver.single_known
                self._label_blank = resolver.blank
        # One test on the request path when neither is configured.
        self._plain = self._exemplar is None and self._request_labels is None
        # The resolver again when the labels need neither exemplars nor the response's
        # headers: the common case, recorded without _record_more's extra call.
        self._labels_only = (self._request_labels if self._exemplar is None
                             and not self._keep_headers else None)
        self._requests: RequestStore = monitor.requests
        # route id, or (route id, root_path before, after) under a Mount -> (route, label).
        self._labels: dict[object, tuple[object, str]] = {}
        self._on_error = monitor.internal_error
        self._started = False
        logger.info("Monitoring middleware initialized: %s",
                    json.dumps(config.public_dict(), sort_keys=True, default=str))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        # ASGI scopes are dicts; narrowing to dict lets the compiled build use C dict lookups.
        # Anything else is not a server we know: pass it through unrecorded.
        if scope_type != "http" or not self._enabled or not isinstance(scope, dict):
            if not self._enabled or not isinstance(scope, dict):
                return await self.app(scope, receive, send)
            if scope_type == "websocket":
                return await self._websocket(scope, receive, send)
            if scope_type == "lifespan":
                return await self._lifespan(scope, receive, send)
            return await self.app(scope, receive, send)

        path: str = scope["path"]
        if not self._started:
            # Any first request, a probe's too: behind a readiness-gated load balancer the
            # probes are all that arrive until the app is ready.
            self._start(scope)
        if path[:self._head] in self._heads and self._is_own_path(scope, path):
            return await self.monitor.asgi_app()(scope, receive, send)
        if self._filtering and (self._skipped(scope, path)
                                or scope["method"] in self._skip_methods):
            return await self.app(scope, receive, send)

        requests = self._requests
        method = requests.begin(scope["method"])
        entry_root_path = scope.get("root_path", "")
        exchange = (_Exchange(receive, send, self, method) if not self._keep_headers
                    else _HeadersExchange(receive, send, self, method))
        if self._declared_streams:
            # Maybe a stream by its route: the first chunk of several (_Exchange.may_stream)
            # or the record below reads the route.
            exchange.stream = -1
            exchange.scope = scope
            exchange.root_path = entry_root_path
        start = perf_counter()
        try:
            await self.app(scope, exchange.receive, exchange)
        except asyncio.CancelledError:
            # Cancelled by the server: the client went away.
            if not exchange.end:
                exchange.status = CLIENT_CLOSED
            raise
        except BaseException:
            # An OSError the app raises itself (a database refusing connections, a TimeoutError)
            # is the app's failure: 500 here; only one from the server's send() marks the client
            # gone (499, in finally), or a dependency outage would hide from the error rate.
            if not exchange.status:
                exchange.status = 500
            raise
        finally:
            try:
                if exchange.method:
                    requests.end(method)  # no last body chunk went out: in progress until now
                finished = exchange.end or perf_counter()
                status = exchange.status
                if exchange.gone and not exchange.end:
                    status = CLIENT_CLOSED
                elif not status:
                    status = 500  # the app returned without a response; servers answer 500
                # ASGI: "http" when the server leaves the scheme out.
                scheme: str = scope.get("scheme", "http")
                label = self._label(scope, entry_root_path)
                duration = finished - start
                ttfb = (exchange.first_byte or finished) - start
                if exchange.stream:
                    duration = self._stream_ended(exchange, method, label, duration, ttfb)
                if self._plain:
                    requests.record(method, label, status, scheme, duration, ttfb,
                                    exchange.request_bytes, exchange.response_bytes)
                elif self._labels_only is not None:
                    requests.record_labelled(
                        method, label, status, scheme,
                        self._labels_only(scope, status, _NO_HEADERS)
                        if self._label_header is None else self._header_label(scope),
                        duration, ttfb, exchange.request_bytes, exchange.response_bytes, None)
                else:
                    self._record_more(requests, scope, exchange, method, label, status, scheme,
                                      duration, ttfb)
            except Exception as exc:
                if exchange.stream == 1:
                    # Recording failed before the stream was closed: close it all the same.
                    exchange.stream = 2
                    requests.streams_open.add(-1)
                self._on_error("record", exc)

    def _record_more(self, requests: RequestStore, scope: dict[str, Any], exchange: _Exchange,
                     method: str, route: str, status: int, scheme: str, duration: float,
                     ttfb: float) -> None:
        # A request with an exemplar, request labels or both: off the plain path.
        exemplar = (None if self._exemplar is None
                    else self._exemplar_labels(self._exemplar, scope))
        resolver = self._request_labels
        if resolver is None:
            requests.record_exemplar(method, route, status, scheme, duration, ttfb,
                                     exchange.request_bytes, exchange.response_bytes, exemplar)
            return
        headers = exchange.response_headers if isinstance(exchange, _HeadersExchange) else []
        requests.record_labelled(method, route, status, scheme,
                                 resolver(scope, status, headers), duration, ttfb,
                                 exchange.request_bytes, exchange.response_bytes, exemplar)

    def _header_label(self, scope: dict[str, Any]) -> tuple[str, ...]:
        # One request-header label: its value as the resolver resolved it before; a value not
        # met yet (or not bytes) goes to the resolver, which learns it.
        name = self._label_header
        for key, value in scope.get("headers", ()):
            if key == name:
                if type(value) is bytes:
                    found = self._label_known.get(value)
                    if found is not None:
                        return (found,)
                resolve = self._labels_only
                return self._label_blank if resolve is None else resolve(scope, 0, _NO_HEADERS)
        return self._label_blank

    def _exemplar_labels(self, source: Callable[[dict[str, Any]], dict[str, str] | None],
                         scope: dict[str, Any]) -> dict[str, str] | None:
        # A failing user hook loses the exemplar, never the request's metrics.
        try:
            return source(scope)
        except Exception as exc:
            self._on_error("exemplar", exc)
            return None

    def _label(self, scope: dict[str, Any], entry_root_path: str) -> str:
        # A cached label per matched route object (and mount prefix): templates are fixed, so
        # resolve_route runs once per route. Keyed by id, since Starlette routes define __eq__
        # (unhashable); each entry keeps its route alive, so the id is not reused. FastAPI's
        # label is read from its own per-route context by resolve_route.
        route = scope.get("route")
        if route is None or "fastapi" in scope:
            return resolve_route(scope, entry_root_path, self._resolver)
        root_path = scope.get("root_path", "")
        key: object = (id(route) if root_path is entry_root_path
                       else (id(route), entry_root_path, root_path))
        cached = self._labels.get(key)
        if cached is not None and cached[0] is route:
            return cached[1]
        label = resolve_route(scope, entry_root_path, self._resolver)
        if len(self._labels) >= _MAX_CACHED_ROUTES:
            self._labels.clear()  # mounts with path parameters, routes on the fly
        self._labels[key] = (route, label)
        return label

    def _stream_ended(self, exchange: _Exchange, method: str, label: str, duration: float,
                      ttfb: float) -> float:
        """The duration to record for a request that was or may be a stream
        (``exchange.stream``): a stream's latency is its first byte (what a client waits for
        before the events flow), and its lifetime goes to the stream histogram, so a feed open
        for minutes does not read as a slow request. An open stream is closed here."""
        stream = exchange.stream
        if stream == -1 and not self._is_stream_route(label):
            return duration
        if stream == 1:
            exchange.stream = 2
            self._requests.streams_open.add(-1)
        self._requests.record_stream(method, label, duration)
        return ttfb

    def _is_stream_route(self, label: str) -> bool:
        """Whether ``label`` is a route declared as a stream (``metrics.stream_routes``)."""
        if label in self._stream_exact:
            return True
        for prefix in self._stream_prefixes:
            if label.startswith(prefix):
                return True
        return False

    def _start(self, scope: Scope) -> None:
        # First request: without a lifespan startup, start the background services now.
        self.monitor.start_lazily()
        self._started = True
        self._learn_root_path(scope.get("root_path"))
        self._check_routes()

    def _learn_root_path(self, root_path: object) -> None:
        # Mounted under a root path (uvicorn --root-path, a Starlette Mount), servers put the
        # mount point in front of scope["path"] too (uvicorn >= 0.26, Starlette >= 0.33). The
        # root path is fixed per server or mount, so it is read once, from the first request,
        # and its heads join the others: the fast test stays one slice and one set lookup, and
        # costs nothing more without a root path.
        if not self._heads or not isinstance(root_path, str) or not root_path:
            return
        self._heads = self._heads | frozenset(
            (root_path + prefix)[:self._head]
            for prefix in self._own_prefixes + tuple(self._own_exact))

    def _check_routes(self) -> None:
        # Once at startup and again on the first request (routes added in between count): warn
        # about the app's routes the monitoring paths hide. Its own module, loaded only here.
        if not self._serving:
            return
        try:
            from .shadowing import warn_shadowed_routes

            warn_shadowed_routes(self.app, self.monitor.config.paths)
        except Exception as exc:
            self._on_error("shadowing", exc)

    def _skipped(self, scope: Scope, path: str) -> bool:
        # Excluded paths are written as the app sees them, below a root path; the full path
        # still counts, as it did before the root path was stripped.
        below = _below_root(scope, path)
        return self._skipped_path(path) or (below is not path and self._skipped_path(below))

    def _skipped_path(self, path: str) -> bool:
        if path in self._excluded:
            return True
        for prefix in self._excluded_prefixes:
            if path.startswith(prefix):
                return True
        pattern = self._excluded_pattern
        return pattern is not None and pattern.search(path) is not None

    def _is_own_path(self, scope: dict[str, Any], path: str) -> bool:
        path = _below_root(scope, path)
        if path in self._own_exact:
            return True
        for prefix in self._own_prefixes:
            if path == prefix or path.startswith(prefix + "/"):
                return True
        return False

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._filtering and self._skipped(scope, scope["path"]):
            return await self.app(scope, receive, send)
        if not self._started:
            self._start(scope)
        entry_root_path = scope.get("root_path", "")
        route: str | None = None
        accepted_at = 0.0
        # A denial response (the ASGI websocket denial response extension): an HTTP answer to
        # the handshake, recorded as a GET with its status, like any refused request.
        denial = _Exchange(receive, send, self, "")
        opened_at = perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal route, accepted_at
            await send(message)
            message_type = message.get("type")
            if message_type == "websocket.accept" and route is None:
                try:
                    # Routing has happened by the time the app accepts.
                    template = resolve_route(scope, entry_root_path, self._resolver)
                    route = self._requests.websocket_accepted(template)
                    accepted_at = perf_counter()
                except Exception as exc:
                    self._on_error("websocket", exc)
            elif message_type == "websocket.http.response.start":
                denial.status = message["status"]
                denial.first_byte = perf_counter()
            elif message_type == "websocket.http.response.body":
                denial.response_bytes += len(message.get("body", b""))
                if not message.get("more_body", False):
                    denial.end = perf_counter()

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            try:
                if route is not None:
                    self._requests.websocket_closed(route, perf_counter() - accepted_at)
                elif denial.status:
                    finished = denial.end or perf_counter()
                    self._requests.record(
                        "GET", resolve_route(scope, entry_root_path, self._resolver),
                        denial.status, scope.get("scheme", "ws"), finished - opened_at,
                        denial.first_byte - opened_at, 0, denial.response_bytes)
            except Exception as exc:
                self._on_error("websocket", exc)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        monitor = self.monitor
        # Under app.add_middleware() the middleware wraps the inner stack, not the app: Starlette,
        # FastAPI and Litestar put the app itself in scope["app"], with its title.
        monitor.name_after(scope.get("app"))
        # Whether the app answered the startup (complete or failed) and whether shutdown began:
        # how its lifespan ends then says what readiness becomes (docs/health.md, the table).
        answered = False
        shutting_down = False

        async def receive_wrapper() -> Message:
            nonlocal shutting_down
            message = await receive()
            message_type = message.get("type")
            if message_type == "lifespan.startup":
                monitor.lifespan_startup()
            elif message_type == "lifespan.shutdown":
                shutting_down = True
                monitor.begin_shutdown()
            return message

        async def send_wrapper(message: Message) -> None:
            nonlocal answered
            message_type = message.get("type")
            if message_type == "lifespan.startup.complete":
                answered = True
                monitor.lifespan_startup_complete()
                # After the app's own startup, which may still add routes.
                self._check_routes()
            elif message_type == "lifespan.startup.failed":
                answered = True
                await monitor.lifespan_startup_failed()
            elif message_type in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await monitor.stop()
            await send(message)

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        except Exception:
            await self._lifespan_ended(answered, shutting_down)
            raise
        await self._lifespan_ended(answered, shutting_down)

    async def _lifespan_ended(self, answered: bool, shutting_down: bool) -> None:
        if shutting_down:
            # Raised or returned during its shutdown without saying complete: stop anyway.
            await self.monitor.stop()
        elif not answered:
            # No startup answer: an app without lifespan support. The ASGI spec lets the server
            # go on serving (uvicorn's --lifespan auto does), so readiness is lifespan off's.
            self.monitor.lifespan_unsupported()

def _below_root(scope: Scope, path: str) -> str:
    """The path below ``scope["root_path"]``, read as Starlette's routing (get_route_path) reads
    it, so the sub-app routes what the middleware dispatches to it. Servers that leave the root
    path out of ``scope["path"]`` get the path as it is (the same object)."""
    root_path = scope.get("root_path")
    if isinstance(root_path, str) and root_path and path.startswith(root_path):
        rest = path[len(root_path):]
        if not rest or rest[0] == "/":
            return rest
    return path


def add_monitoring_middleware(
    app: Any, config: MonitoringConfig | None = None, *, monitor: MonitorHooks | None = None,
) -> Any:
    """``app.add_middleware(MonitoringMiddleware, ...)`` and return ``app`` (Starlette, FastAPI).

    One line for apps that have ``add_middleware``: ``app = add_monitoring_middleware(app)``.
    The app keeps its type, routes and state; its middleware stack, built on the first request,
    then has the monitoring middleware outside the app's own. An app without ``add_middleware``
    (Litestar, a raw ASGI callable) is wrapped instead: ``app = MonitoringMiddleware(app,
    config)``.
    """
    add_middleware = getattr(app, "add_middleware", None)
    if not callable(add_middleware):
        raise TypeError(f"{type(app).__name__} has no add_middleware(): wrap it instead, "
                        "app = MonitoringMiddleware(app, config)")
    add_middleware(MonitoringMiddleware, config=config, monitor=monitor)
    return app


class _Exchange:
    """One request's bookkeeping, and the receive/send the app gets instead of the server's.

    The object itself is the ``send`` the app calls (``__call__``) and ``receive`` is a bound
    method: one allocation per request instead of two closures over eight cell variables. Send
    is a coroutine because only a frame in the await chain sees the server's OSError when the
    client has gone, even if the app then swallows it; a plain function returning the server's
    awaitable measured no cheaper (benchmarks/README.md, "Where the server-side cost comes from").
    """

    __slots__ = ("_receive", "_send", "_owner", "method", "status", "first_byte", "end",
                 "request_bytes", "response_bytes", "gone", "start", "stream", "scope",
                 "root_path")

    scope: dict[str, Any]  # set by the middleware only when routes are declared as streams
    root_path: str

    def __init__(self, receive: Receive, send: Send, owner: MonitoringMiddleware,
                 method: str) -> None:
        self._receive = receive
        self._send = send
        self._owner = owner
        # The method label while the request counts as in progress, "" once it no longer does
        # (or never did: a WebSocket's denial response).
        self.method = method
        self.status = 0
        self.first_byte = 0.0
        self.end = 0.0
        self.request_bytes = 0
        self.response_bytes = 0
        # The client went away: http.disconnect received, or the server failed to send.
        self.gone = False
        # The response start message, kept until a body chunk says more follows: only then is
        # the response read for a stream, so a response sent in one piece never pays for it.
        self.start: dict[str, Any] | None = None
        # 0: not a stream (as far as known); -1: maybe one, by a declared route; 1: a stream,
        # counted open until the record; 2: a stream, closed.
        self.stream = 0

    async def receive(self) -> Message:
        message = await self._receive()
        try:
            # Messages are dicts (ASGI); the narrowing lets the compiled build use C lookups.
            fields = message if isinstance(message, dict) else dict(message)
            message_type: str = fields["type"]
            if message_type == "http.request":
                self.request_bytes += len(fields.get("body", b""))
            elif message_type == "http.disconnect":
                self.gone = True
        except Exception as exc:  # a malformed message is the server's business, not ours
            self._owner._on_error("receive", exc)
        return message

    async def __call__(self, message: Message) -> None:
        ended = self.end
        try:
            fields = message if isinstance(message, dict) else dict(message)
            message_type: str = fields["type"]
            if message_type == "http.response.body":
                self.response_bytes += len(fields.get("body", b""))
                if fields.get("more_body", False):
                    if self.start is not None:
                        self.may_stream()
                # A last chunk sent after http.disconnect reaches no one: not an end, so the
                # request is a 499 whether the app streamed or answered in one piece.
                elif not self.gone:
                    self.end = perf_counter()
                    # answered(), inlined: every request passes here.
                    method = self.method
                    if method:
                        self.method = ""
                        self._owner._requests.end(method)
            elif message_type == "http.response.start":
                self.status = fields["status"]
                self.first_byte = perf_counter()
                self.start = fields
            elif (message_type == "http.response.pathsend"
                  or message_type == "http.response.zerocopysend"):
                self._file_sent(fields, message_type)
        except Exception as exc:
            self._owner._on_error("send", exc)
        try:
            await self._send(message)
        except OSError:
            # The server could not write (uvicorn's ClientDisconnected is an OSError): the client
            # went away, and if this was the last chunk the response did not complete. Noted
            # here because the app may swallow the error.
            self.gone = True
            self.end = ended
            raise

    def answered(self) -> None:
        """The response is complete (its last body chunk went out): the request is no longer
        in progress. Background tasks that run after it are not: the client has its answer."""
        method = self.method
        if method:
            self.method = ""
            self._owner._requests.end(method)

    def may_stream(self) -> None:
        """The first body chunk with more to follow: whether the response is a stream, read
        once, from its content type or its declared route (routing is over by now)."""
        start = self.start
        self.start = None
        if start is None or self.stream > 0:
            return
        owner = self._owner
        if is_event_stream(start.get("headers")) or (
                self.stream == -1
                and owner._is_stream_route(owner._label(self.scope, self.root_path))):
            self.stream = 1
            owner._requests.streams_open.add(1)
        else:
            self.stream = 0  # its route, if any was declared, is not one either

    def _file_sent(self, fields: dict[str, Any], message_type: str) -> None:
        # The ASGI path send and zero-copy send extensions: the server writes the file itself,
        # so its size is the body. A path send is the whole body; a zero-copy send may be one
        # part of it (more_body), its size the count field, else the file from the offset on.
        if message_type == "http.response.pathsend":
            final = True
        else:
            final = not fields.get("more_body", False)
        if final and not self.gone:
            self.end = perf_counter()
            self.answered()
        if message_type == "http.response.pathsend":
            self.response_bytes += os.stat(fields["path"]).st_size
            return
        count = fields.get("count")
        if count is None:
            file = fields["file"]
            fd: int = file if isinstance(file, int) else file.fileno()
            offset = fields.get("offset")
            if offset is None:
                offset = os.lseek(fd, 0, os.SEEK_CUR)  # the spec: from the current position
            count = max(os.fstat(fd).st_size - offset, 0)
        self.response_bytes += count


def is_event_stream(headers: Any) -> bool:
    """Whether response ``headers`` (ASGI: name and value byte strings) give the content type
    ``text/event-stream``, parameters and case aside."""
    if not headers:
        return False
    for name, value in headers:
        if len(name) == 12 and name.lower() == b"content-type":
            return bytes(value).split(b";", 1)[0].strip().lower() == b"text/event-stream"
    return False


class _HeadersExchange(_Exchange):
    """An :class:`_Exchange` that also keeps the response's headers: used only when a request
    label reads one, so that no other request pays for it."""

    __slots__ = ("response_headers",)

    def __init__(self, receive: Receive, send: Send, owner: MonitoringMiddleware,
                 method: str) -> None:
        super().__init__(receive, send, owner, method)
        self.response_headers: list[tuple[bytes, bytes]] = []

    async def __call__(self, message: Message) -> None:
        if message.get("type") == "http.response.start":
            try:
                self.response_headers = list(message.get("headers", ()))
            except Exception as exc:
                self._owner._on_error("send", exc)
        await super().__call__(message)
