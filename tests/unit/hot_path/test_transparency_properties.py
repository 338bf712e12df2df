"""Property-based transparency: for any app, the middleware changes nothing the server or the app
can observe, and records exactly one request with the status the rules give.

Hypothesis generates a *script* (status, headers, body chunks, reads, exceptions, disconnects, a
WebSocket session) and a plain ASGI app that follows it. Each script runs twice, bare and wrapped
by ``MonitoringMiddleware(app, registry=CollectorRegistry())``, against the same incoming messages;
everything both sides see is compared: the messages sent (status, headers, body bytes, order), the
messages and scope the app received, and the exception the server caught (type, args, context).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from asgi_monitor import MonitoringMiddleware, build_monitor

Message = dict[str, Any]


class AppError(Exception):
    """An exception type of the app's own, with arbitrary args."""


# OSError subclasses matter: an app's own ConnectionRefusedError or TimeoutError (a database
# down) is an app failure (500), not a client that went away.
EXCEPTION_TYPES: tuple[type[Exception], ...] = (
    AppError, ValueError, RuntimeError, KeyError, ZeroDivisionError, ConnectionRefusedError,
    TimeoutError, FileNotFoundError, OSError,
)
SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@dataclass(frozen=True)
class Raise:
    type: type[Exception]
    args: tuple[Any, ...]

    def build(self) -> Exception:
        return self.type(*self.args)


raises = st.builds(Raise, st.sampled_from(EXCEPTION_TYPES),
                   st.tuples() | st.tuples(st.text(max_size=10)) | st.tuples(st.integers(),
                                                                              st.text(max_size=5)))
# What the app does when receive() says the client has gone.
reactions = st.sampled_from(["return", "raise", "ignore"])
header_names = st.sampled_from([b"content-type", b"Content-Type", b"SET-COOKIE", b"set-cookie",
                                b"x-custom", b"X-Custom", b"content-length", b"etag"]) | st.binary(
    min_size=1, max_size=12)
headers = st.lists(st.tuples(header_names, st.binary(max_size=40)), max_size=6)
# more_body: True, False, or the key left out (ASGI's default, False).
body_chunks = st.lists(st.tuples(st.binary(max_size=64), st.sampled_from([True, False, None])),
                       max_size=5)


@dataclass(frozen=True)
class HttpScript:
    reads_before: int  # receive() calls before the response starts
    on_disconnect: str
    disconnect_error: Raise
    early_error: Raise | None  # raised before http.response.start
    returns_without_response: bool
    status: int
    headers: list[tuple[bytes, bytes]]
    trailers: bool
    chunks: list[tuple[bytes, bool | None]]
    reads_mid_body: frozenset[int]  # receive() before sending chunk i
    late_error: tuple[int, Raise] | None  # raised after sending i chunks (0: right after start)
    swallow_send_errors: bool  # an OSError from send() ends the app quietly


@dataclass(frozen=True)
class HttpServer:
    request_chunks: list[tuple[bytes, bool]]
    disconnect_after_body: bool  # receive() gives http.disconnect once the chunks are used up
    send_fails_from: int | None  # the n-th send() and every later one raise (client gone)


http_scripts = st.builds(
    HttpScript,
    reads_before=st.integers(0, 4),
    on_disconnect=reactions,
    disconnect_error=raises,
    early_error=st.none() | raises,
    returns_without_response=st.booleans(),
    status=st.sampled_from([200, 204, 304, 404, 500]) | st.integers(200, 599),
    headers=headers,
    trailers=st.booleans(),
    chunks=body_chunks,
    reads_mid_body=st.frozensets(st.integers(0, 5), max_size=3),
    late_error=st.none() | st.tuples(st.integers(0, 5), raises),
    swallow_send_errors=st.booleans(),
)
http_servers = st.builds(
    HttpServer,
    request_chunks=st.lists(st.tuples(st.binary(max_size=32), st.booleans()), max_size=4),
    disconnect_after_body=st.booleans(),
    send_fails_from=st.none() | st.integers(0, 6),
)


class _Stop(Exception):
    """Ends the app quietly (the script's "return")."""


def http_app(script: HttpScript) -> Any:
    """A plain ASGI app that follows ``script``; it records what it receives in ``seen``."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen: dict[str, Any] = scope["test.seen"]
        seen["scope"] = copy.deepcopy({k: v for k, v in scope.items() if k != "test.seen"})
        seen["received"] = []

        async def read() -> None:
            message = await receive()
            seen["received"].append(copy.deepcopy(message))
            if message["type"] == "http.disconnect":
                if script.on_disconnect == "return":
                    raise _Stop
                if script.on_disconnect == "raise":
                    raise script.disconnect_error.build()

        async def emit(message: Message) -> None:
            try:
                await send(message)
            except OSError:
                if script.swallow_send_errors:
                    raise _Stop from None
                raise

        try:
            for _ in range(script.reads_before):
                await read()
            if script.early_error is not None:
                raise script.early_error.build()
            if script.returns_without_response:
                return
            start: Message = {"type": "http.response.start", "status": script.status,
                              "headers": list(script.headers)}
            if script.trailers:
                start["trailers"] = True
            await emit(start)
            for i, (body, more) in enumerate([*script.chunks, (b"", None)]):
                if script.late_error is not None and script.late_error[0] == i:
                    raise script.late_error[1].build()
                if i == len(script.chunks):
                    break
                if i in script.reads_mid_body:
                    await read()
                message: Message = {"type": "http.response.body"}
                if body:
                    message["body"] = body
                if more is not None:
                    message["more_body"] = more
                await emit(message)
            if script.trailers:
                await emit({"type": "http.response.trailers", "headers": [(b"x-t", b"1")],
                            "more_trailers": False})
        except _Stop:
            return

    return app


@dataclass
class Run:
    sent: list[Message] = field(default_factory=list)
    error: tuple[Any, ...] | None = None
    seen: dict[str, Any] = field(default_factory=dict)
    gave_disconnect: bool = False
    send_failed: bool = False
    completed: bool = False  # a final body chunk was delivered before any http.disconnect
    offered_bytes: int = 0  # response body bytes handed to send(), delivered or not


def http_scope(seen: dict[str, Any]) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1", "method": "POST", "scheme": "http", "path": "/x/y",
            "raw_path": b"/x/y", "root_path": "", "query_string": b"a=1",
            "headers": [(b"host", b"test"), (b"X-Dup", b"1"), (b"x-dup", b"2")],
            "client": ("127.0.0.1", 5000), "server": ("test", 80), "state": {},
            "test.seen": seen}


def describe(exc: BaseException) -> tuple[Any, ...]:
    context = exc.__context__
    return (type(exc), exc.args, type(context), context.args if context else None,
            exc.__cause__ is None)


async def drive_http(app: Any, server: HttpServer) -> Run:
    run = Run()
    queue: list[Message] = [{"type": "http.request", "body": body, "more_body": more}
                            for body, more in server.request_chunks]
    if not server.request_chunks or server.request_chunks[-1][1]:
        queue.append({"type": "http.request", "body": b"", "more_body": False})
    if server.disconnect_after_body:
        queue.append({"type": "http.disconnect"})

    async def receive() -> Message:
        # Once the request is read, a real server waits for the client to go away; a test
        # server that answers "gone" at once keeps every example finite.
        message = queue.pop(0) if queue else {"type": "http.disconnect"}
        run.gave_disconnect |= message["type"] == "http.disconnect"
        return message

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body":
            run.offered_bytes += len(message.get("body", b""))
        if server.send_fails_from is not None and len(run.sent) >= server.send_fails_from:
            run.send_failed = True
            raise ConnectionResetError("the client went away")  # what uvicorn raises: OSError
        run.sent.append(copy.deepcopy(message))
        if (message["type"] == "http.response.body" and not message.get("more_body", False)
                and not run.gave_disconnect):
            run.completed = True  # a last chunk sent after http.disconnect reaches no one

    try:
        await app(http_scope(run.seen), receive, send)
    except Exception as exc:
        run.error = describe(exc)
    return run


def expected_status(run: Run) -> int:
    """The documented rules, from what the server saw."""
    if (run.gave_disconnect or run.send_failed) and not run.completed:
        return 499  # the client went away before the response was complete
    starts = [m for m in run.sent if m["type"] == "http.response.start"]
    if starts:
        return int(starts[0]["status"])
    return 500  # raised before the response started, or returned without one


async def bare_and_wrapped(
    app: Any, drive: Callable[[Any], Awaitable[Run]]
) -> tuple[Run, CollectorRegistry]:
    """Run ``app`` bare, then wrapped; assert both runs saw the same; the wrapped run and its
    registry for the metric checks."""
    bare = await drive(app)
    registry = CollectorRegistry()
    mw = MonitoringMiddleware(app, monitor=build_monitor(None, registry))
    try:
        wrapped = await drive(mw)
    finally:
        await mw.monitor.stop()
    assert wrapped.sent == bare.sent
    assert wrapped.error == bare.error
    assert wrapped.seen == bare.seen
    return wrapped, registry


def samples(registry: CollectorRegistry, name: str) -> list[tuple[dict[str, str], float]]:
    return [(s.labels, s.value) for m in registry.collect() for s in m.samples if s.name == name]


async def compare_http(script: HttpScript, server: HttpServer) -> None:
    wrapped, registry = await bare_and_wrapped(http_app(script),
                                               lambda app: drive_http(app, server))
    totals = samples(registry, "http_requests_total")
    assert sum(value for _, value in totals) == 1
    [(labels, _)] = [(labels, value) for labels, value in totals if value]
    assert labels == {"method": "POST", "route": "<unmatched>",
                      "status": str(expected_status(wrapped))}
    assert {value for _, value in samples(registry, "http_requests_in_progress")} == {0.0}
    read_bytes = sum(len(m.get("body", b"")) for m in wrapped.seen.get("received", [])
                     if m["type"] == "http.request")
    labels = {"method": "POST", "route": "<unmatched>"}
    assert registry.get_sample_value("http_response_size_bytes_sum", labels) == (
        wrapped.offered_bytes)
    assert registry.get_sample_value("http_request_size_bytes_sum", labels) == read_bytes


@SETTINGS
@given(script=http_scripts, server=http_servers)
def test_http_apps_are_unchanged_and_counted_once(script: HttpScript, server: HttpServer) -> None:
    asyncio.run(compare_http(script, server))


# -- WebSocket --------------------------------------------------------------------------------
ws_actions = st.lists(st.one_of(
    st.tuples(st.just("accept"), st.none() | st.sampled_from(["chat", "v2"]), headers),
    st.tuples(st.just("send_text"), st.text(max_size=20)),
    st.tuples(st.just("send_bytes"), st.binary(max_size=20)),
    st.just(("receive",)),
    st.tuples(st.just("close"), st.sampled_from([1000, 1001, 1008, 4000, 4999]),
              st.text(max_size=10)),
    # Denial response (ASGI websocket.http.response extension), only meaningful before accept.
    st.tuples(st.just("deny"), st.integers(400, 599), st.binary(max_size=20)),
    st.tuples(st.just("raise"), raises),
), max_size=8)
ws_incoming = st.lists(st.one_of(
    st.builds(lambda t: {"type": "websocket.receive", "text": t}, st.text(max_size=20)),
    st.builds(lambda b: {"type": "websocket.receive", "bytes": b}, st.binary(max_size=20)),
    st.builds(lambda c: {"type": "websocket.disconnect", "code": c},
              st.sampled_from([1000, 1001, 1006])),
), max_size=5)


def ws_app(actions: list[tuple[Any, ...]]) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen: dict[str, Any] = scope["test.seen"]
        seen["scope"] = copy.deepcopy({k: v for k, v in scope.items() if k != "test.seen"})
        seen["received"] = [copy.deepcopy(await receive())]  # websocket.connect
        for action in actions:
            kind = action[0]
            if kind == "accept":
                message: Message = {"type": "websocket.accept", "headers": list(action[2])}
                if action[1] is not None:
                    message["subprotocol"] = action[1]
                await send(message)
            elif kind == "send_text":
                await send({"type": "websocket.send", "text": action[1]})
            elif kind == "send_bytes":
                await send({"type": "websocket.send", "bytes": action[1]})
            elif kind == "receive":
                received = await receive()
                seen["received"].append(copy.deepcopy(received))
                if received["type"] == "websocket.disconnect":
                    return
            elif kind == "close":
                await send({"type": "websocket.close", "code": action[1], "reason": action[2]})
                return
            elif kind == "deny":
                await send({"type": "websocket.http.response.start", "status": action[1],
                            "headers": [(b"content-type", b"text/plain")]})
                await send({"type": "websocket.http.response.body", "body": action[2]})
                return
            else:
                raise action[1].build()

    return app


async def drive_ws(app: Any, incoming: list[Message]) -> Run:
    run = Run()
    queue = [{"type": "websocket.connect"}, *copy.deepcopy(incoming)]

    async def receive() -> Message:
        return queue.pop(0) if queue else {"type": "websocket.disconnect", "code": 1006}

    async def send(message: Message) -> None:
        run.sent.append(copy.deepcopy(message))

    scope = {"type": "websocket", "asgi": {"version": "3.0"}, "scheme": "ws", "path": "/ws",
             "raw_path": b"/ws", "root_path": "", "query_string": b"", "headers": [],
             "client": ("127.0.0.1", 5000), "server": ("test", 80), "subprotocols": ["chat"],
             "test.seen": run.seen}
    try:
        await app(scope, receive, send)
    except Exception as exc:
        run.error = describe(exc)
    return run


async def compare_ws(actions: list[tuple[Any, ...]], incoming: list[Message]) -> None:
    wrapped, registry = await bare_and_wrapped(ws_app(actions),
                                               lambda app: drive_ws(app, incoming))
    accepted = any(m["type"] == "websocket.accept" for m in wrapped.sent)
    assert sum(v for _, v in samples(registry, "websocket_connections_total")) == int(accepted)
    assert registry.get_sample_value("websocket_connections_active") == 0
    assert sum(v for _, v in samples(registry, "websocket_session_duration_seconds_count")) == (
        int(accepted))
    # A denial response before any accept is an HTTP answer to the handshake: one GET with its
    # status (docs/metrics.md); after an accept it is ignored, as servers ignore it.
    denials = [m["status"] for m in wrapped.sent if m["type"] == "websocket.http.response.start"]
    expected = {} if accepted or not denials else {("GET", "<unmatched>", str(denials[0])): 1.0}
    recorded = {(labels["method"], labels["route"], labels["status"]): v
                for labels, v in samples(registry, "http_requests_total")}
    assert recorded == expected


@SETTINGS
@given(actions=ws_actions, incoming=ws_incoming)
def test_websocket_sessions_are_unchanged(actions: list[tuple[Any, ...]],
                                          incoming: list[Message]) -> None:
    asyncio.run(compare_ws(actions, incoming))

