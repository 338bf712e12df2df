"""Metrics that tell the truth about what reached the client.

- A response is complete when its last body chunk (``more_body=False``) was sent before the
  client was known to be gone; otherwise the request is a 499, whether the app streamed or
  answered in one piece (http.disconnect received first, or the server's send raised).
- ``http.response.pathsend`` and ``http.response.zerocopysend`` (ASGI extensions) count the
  file's bytes and end the response like a last body chunk.
- A WebSocket denial response (``websocket.http.response.*``) is recorded as a GET with its
  status under the route.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from support import sample

from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.config import MetricsSettings

Wrap = Callable[..., MonitoringMiddleware]
Message = dict[str, Any]

START = {"type": "http.response.start", "status": 200, "headers": []}


def _scope(path: str = "/x", *, extensions: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1", "method": "GET", "scheme": "http", "path": path,
            "raw_path": path.encode(), "root_path": "", "query_string": b"", "headers": [],
            "client": ("127.0.0.1", 1234), "server": ("test", 80),
            "extensions": extensions or {}}


class Server:
    """A test server: hands out ``incoming`` then http.disconnect, and fails sends from the
    ``fail_from``-th message on (as uvicorn's send raises an OSError once the client is gone)."""

    def __init__(self, incoming: list[Message] | None = None, fail_from: int | None = None):
        self.incoming = list(incoming if incoming is not None else
                             [{"type": "http.request", "body": b"", "more_body": False}])
        self.fail_from = fail_from
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        return self.incoming.pop(0) if self.incoming else {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if self.fail_from is not None and len(self.sent) >= self.fail_from:
            raise ConnectionResetError("the client went away")
        self.sent.append(message)


def _status(registry: CollectorRegistry, status: str, route: str = "<unmatched>") -> float:
    return sample(registry, "http_requests_total", method="GET", route=route,
                  status=status) or 0


def _bytes(registry: CollectorRegistry) -> float | None:
    return sample(registry, "http_response_size_bytes_sum", method="GET", route="<unmatched>")


# -- disconnects: one rule for both shapes ---------------------------------------------------
async def _reads_until_gone_then_answers(scope: Any, receive: Any, send: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    await send(START)
    await send({"type": "http.response.body", "body": b"too late"})


async def _reads_until_gone_then_streams(scope: Any, receive: Any, send: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    await send(START)
    await send({"type": "http.response.body", "body": b"a", "more_body": True})
    await send({"type": "http.response.body", "body": b"b", "more_body": False})


async def _streams_until_gone(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send(START)
    await send({"type": "http.response.body", "body": b"a", "more_body": True})
    await receive()  # http.disconnect: stop streaming


async def _answers_in_one_piece(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send(START)
    await send({"type": "http.response.body", "body": b"whole"})


async def _streams(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send(START)
    for last, part in ((False, b"a"), (False, b"b"), (True, b"c")):
        await send({"type": "http.response.body", "body": part, "more_body": not last})


async def _starlette_answers_after_disconnect(scope: Any, receive: Any, send: Any) -> None:
    # What a handler awaiting request.is_disconnected() in a loop, then answering, sends.
    while (await receive())["type"] != "http.disconnect":
        pass
    await PlainTextResponse("late")(scope, receive, send)


@pytest.mark.parametrize("app", [_reads_until_gone_then_answers, _reads_until_gone_then_streams,
                                 _streams_until_gone, _starlette_answers_after_disconnect])
async def test_gone_before_the_last_chunk_is_499(wrap: Wrap, registry: CollectorRegistry,
                                                 app: Any) -> None:
    server = Server()
    await wrap(app)(_scope(), server.receive, server.send)
    assert _status(registry, "499") == 1
    assert _status(registry, "200") == 0


@pytest.mark.parametrize(("app", "fail_from"), [
    (_answers_in_one_piece, 0),  # the start
    (_answers_in_one_piece, 1),  # the only (last) chunk
    (_streams, 1),  # a chunk before the last
    (_streams, 3),  # the last chunk
])
async def test_a_send_that_fails_is_499_in_both_shapes(
    wrap: Wrap, registry: CollectorRegistry, app: Any, fail_from: int
) -> None:
    server = Server(fail_from=fail_from)
    with pytest.raises(ConnectionResetError):
        await wrap(app)(_scope(), server.receive, server.send)
    assert _status(registry, "499") == 1


@pytest.mark.parametrize("app", [_answers_in_one_piece, _streams])
async def test_gone_after_the_last_chunk_keeps_the_status(wrap: Wrap, registry: CollectorRegistry,
                                                           app: Any) -> None:
    async def then_listens(scope: Any, receive: Any, send: Any) -> None:
        await app(scope, receive, send)
        assert (await receive())["type"] == "http.disconnect"  # a server's normal "done"

    server = Server()
    await wrap(then_listens)(_scope(), server.receive, server.send)
    assert _status(registry, "200") == 1
    assert _status(registry, "499") == 0


# -- files the server sends itself -----------------------------------------------------------
@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(b"x" * 12_345)
    return path


async def test_pathsend_counts_the_file_and_ends_the_response(
    wrap: Wrap, registry: CollectorRegistry, data_file: Path
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send(START)
        await send({"type": "http.response.pathsend", "path": str(data_file)})
        await receive()  # http.disconnect after the end: still a 200

    server = Server()
    await wrap(app)(_scope(extensions={"http.response.pathsend": {}}), server.receive,
                    server.send)
    assert _status(registry, "200") == 1
    assert _bytes(registry) == 12_345


async def test_pathsend_after_the_client_left_is_499(
    wrap: Wrap, registry: CollectorRegistry, data_file: Path
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        await send(START)
        await send({"type": "http.response.pathsend", "path": str(data_file)})

    server = Server()
    await wrap(app)(_scope(), server.receive, server.send)
    assert _status(registry, "499") == 1


@pytest.mark.parametrize(("fields", "expected"), [
    ({"count": 100}, 100),
    ({"offset": 345}, 12_000),  # fstat from the offset
    ({"offset": 20_000}, 0),  # past the end: nothing
    ({"offset": 45, "count": 300}, 300),
    ({}, 12_345 - 5),  # no offset: from the file's current position (5, see below)
])
@pytest.mark.parametrize("as_fd", [False, True])
async def test_zerocopysend_counts_its_bytes(
    wrap: Wrap, registry: CollectorRegistry, data_file: Path, fields: dict[str, int],
    expected: int, as_fd: bool
) -> None:
    with open(data_file, "rb") as file:
        file.seek(5)

        async def app(scope: Any, receive: Any, send: Any) -> None:
            await receive()
            await send(START)
            await send({"type": "http.response.zerocopysend",
                        "file": file.fileno() if as_fd else file, **fields})
            await receive()

        server = Server()
        await wrap(app)(_scope(extensions={"http.response.zerocopysend": {}}), server.receive,
                        server.send)
    assert _status(registry, "200") == 1
    assert _bytes(registry) == expected


async def test_zerocopysend_in_parts_ends_with_the_last(
    wrap: Wrap, registry: CollectorRegistry, data_file: Path
) -> None:
    fd = os.open(data_file, os.O_RDONLY)
    try:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            await receive()
            await send(START)
            await send({"type": "http.response.zerocopysend", "file": fd, "offset": 0,
                        "count": 1000, "more_body": True})
            await receive()  # gone between the parts: the second reaches no one
            await send({"type": "http.response.zerocopysend", "file": fd, "offset": 1000,
                        "count": 2000})

        server = Server()
        await wrap(app)(_scope(), server.receive, server.send)
    finally:
        os.close(fd)
    assert _status(registry, "499") == 1
    assert sample(registry, "http_response_size_bytes_sum", method="GET",
                  route="<unmatched>") == 3000


async def test_a_file_that_cannot_be_read_is_an_internal_error_not_a_failure(
    wrap: Wrap, registry: CollectorRegistry, tmp_path: Path
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send(START)
        await send({"type": "http.response.pathsend", "path": str(tmp_path / "gone")})

    server = Server()
    await wrap(app)(_scope(), server.receive, server.send)
    assert server.sent[-1]["type"] == "http.response.pathsend"  # passed on unchanged
    assert _status(registry, "200") == 1
    assert sample(registry, "asgi_monitor_internal_errors_total", where="send") == 1


# -- WebSocket denial responses --------------------------------------------------------------
def _ws_scope(path: str = "/ws") -> dict[str, Any]:
    return {"type": "websocket", "asgi": {"version": "3.0", "spec_version": "2.4"},
            "scheme": "ws", "path": path, "raw_path": path.encode(), "root_path": "",
            "query_string": b"", "headers": [], "client": ("127.0.0.1", 1234),
            "server": ("test", 80), "subprotocols": [],
            "extensions": {"websocket.http.response": {}}}


async def _ws_receive_connect() -> Callable[[], Any]:
    messages = [{"type": "websocket.connect"}]

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "websocket.disconnect", "code": 1006}

    return receive


async def _refuses(websocket: WebSocket) -> None:
    await websocket.send_denial_response(PlainTextResponse("no entry", status_code=403))


async def _accepts(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.close()


async def test_a_denial_is_recorded_with_its_status_under_the_route(
    wrap: Wrap, registry: CollectorRegistry
) -> None:
    app = Starlette(routes=[WebSocketRoute("/rooms/{room}", _refuses)])
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await wrap(app)(_ws_scope("/rooms/7"), await _ws_receive_connect(), send)
    assert [m["type"] for m in sent] == ["websocket.http.response.start",
                                         "websocket.http.response.body"]
    assert _status(registry, "403", route="/rooms/{room}") == 1
    assert sample(registry, "http_response_size_bytes_sum", method="GET",
                  route="/rooms/{room}") == len(b"no entry")
    assert sample(registry, "http_request_duration_seconds_count", method="GET",
                  route="/rooms/{room}") == 1
    # Not a connection: nothing was opened.
    assert sample(registry, "websocket_connections_total", route="/rooms/{room}") is None
    assert sample(registry, "websocket_connections_active") == 0


async def test_an_accepted_socket_is_no_http_request(wrap: Wrap,
                                                      registry: CollectorRegistry) -> None:
    app = Starlette(routes=[WebSocketRoute("/rooms/{room}", _accepts)])

    async def send(message: Message) -> None:
        return None

    await wrap(app)(_ws_scope("/rooms/7"), await _ws_receive_connect(), send)
    assert sample(registry, "websocket_connections_total", route="/rooms/{room}") == 1
    assert not [s for m in registry.collect() for s in m.samples
                if s.name == "http_requests_total"]


async def test_a_denial_the_app_fails_to_finish_keeps_its_status(
    wrap: Wrap, registry: CollectorRegistry
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.http.response.start", "status": 401, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b"a", "more_body": True})
        raise RuntimeError("boom")

    async def send(message: Message) -> None:
        return None

    with pytest.raises(RuntimeError):
        await wrap(app)(_ws_scope(), await _ws_receive_connect(), send)
    assert _status(registry, "401") == 1


async def test_the_scope_scheme_is_the_url_scheme(registry: CollectorRegistry) -> None:
    """https and wss are recorded as such (OTel's url_scheme); a scope without a scheme is
    http, the ASGI default. Classic names sum over the scheme."""
    monitor = build_monitor(MonitoringConfig(metrics=MetricsSettings(metric_names="both")),
                            registry)
    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    mw = MonitoringMiddleware(
        Starlette(routes=[Route("/", hello), WebSocketRoute("/rooms/{room}", _refuses)]),
        monitor=monitor)
    no_scheme = {k: v for k, v in _scope("/").items() if k != "scheme"}
    for scope in (_scope("/"), {**_scope("/"), "scheme": "https"},
                  {**_scope("/"), "scheme": "https"}, no_scheme):
        server = Server()
        await mw(scope, server.receive, server.send)

    async def send(message: Message) -> None:
        pass

    await mw({**_ws_scope("/rooms/7"), "scheme": "wss"}, await _ws_receive_connect(), send)

    def count(scheme: str, route: str = "/", status: str = "200") -> float | None:
        return sample(registry, "http_server_request_duration_seconds_count",
                      http_request_method="GET", http_route=route,
                      http_response_status_code=status, url_scheme=scheme)

    assert (count("http"), count("https")) == (2, 2)
    assert count("wss", "/rooms/{room}", "403") == 1
    assert _status(registry, "200", route="/") == 4
