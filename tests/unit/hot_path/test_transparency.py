"""The middleware never changes what the app sends or raises: byte-identical ASGI messages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from asgi_monitor import MonitoringMiddleware, build_monitor


async def normal(request: Request) -> Response:
    return PlainTextResponse("hello", headers={"x-custom": "1", "set-cookie": "a=b"})


async def streaming(request: Request) -> Response:
    async def parts() -> Any:
        for i in range(5):
            yield f"chunk-{i};".encode()

    return StreamingResponse(parts(), media_type="text/plain")


async def no_content(request: Request) -> Response:
    return Response(status_code=204)


async def not_modified(request: Request) -> Response:
    return Response(status_code=304, headers={"etag": '"v1"'})


async def echo(request: Request) -> Response:
    return Response(await request.body(), media_type="application/octet-stream")


async def raising(request: Request) -> Response:
    raise LookupError("the app's own error")


async def ws(websocket: WebSocket) -> None:
    await websocket.accept(subprotocol=None, headers=[(b"x-ws", b"1")])
    message = await websocket.receive_bytes()
    await websocket.send_bytes(message[::-1])
    await websocket.close(code=4001, reason="done")


APP = Starlette(routes=[
    Route("/", normal, methods=["GET", "HEAD"]),
    Route("/stream", streaming),
    Route("/204", no_content),
    Route("/304", not_modified),
    Route("/echo", echo, methods=["POST"]),
    Route("/raise", raising),
    WebSocketRoute("/ws", ws),
])


Sent = list[dict[str, Any]]


async def drive(
    app: Callable[..., Any], scope: dict[str, Any], incoming: list[dict[str, Any]]
) -> tuple[Sent, BaseException | None]:
    sent: list[dict[str, Any]] = []
    queue = list(incoming)

    async def receive() -> dict[str, Any]:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    error: BaseException | None = None
    try:
        await app(dict(scope), receive, send)
    except Exception as exc:  # compared below
        error = exc
    return sent, error


def http_scope(method: str, path: str) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
            "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
            "query_string": b"", "headers": [(b"host", b"test")],
            "client": ("127.0.0.1", 5000), "server": ("test", 80)}


CASES = [
    ("GET", "/", b""),
    ("HEAD", "/", b""),
    ("GET", "/stream", b""),
    ("GET", "/204", b""),
    ("GET", "/304", b""),
    ("POST", "/echo", b"\x00\x01binary body" * 100),
    ("GET", "/missing", b""),
    ("DELETE", "/", b""),
]


@pytest.mark.parametrize(("method", "path", "body"), CASES)
async def test_http_responses_are_identical(method: str, path: str, body: bytes) -> None:
    wrapped = MonitoringMiddleware(APP, monitor=build_monitor(None, CollectorRegistry()))
    request = [{"type": "http.request", "body": body, "more_body": False}]
    bare_sent, bare_error = await drive(APP, http_scope(method, path), request)
    wrapped_sent, wrapped_error = await drive(wrapped, http_scope(method, path), request)
    assert wrapped_sent == bare_sent
    assert bare_error is None and wrapped_error is None
    assert bare_sent[0]["type"] == "http.response.start"


async def test_raising_app_raises_the_same_exception() -> None:
    wrapped = MonitoringMiddleware(APP, monitor=build_monitor(None, CollectorRegistry()))
    request = [{"type": "http.request", "body": b"", "more_body": False}]
    bare_sent, bare_error = await drive(APP, http_scope("GET", "/raise"), request)
    wrapped_sent, wrapped_error = await drive(wrapped, http_scope("GET", "/raise"), request)
    assert wrapped_sent == bare_sent
    assert type(wrapped_error) is type(bare_error) is LookupError
    assert str(wrapped_error) == str(bare_error)


async def test_websocket_session_is_identical() -> None:
    wrapped = MonitoringMiddleware(APP, monitor=build_monitor(None, CollectorRegistry()))
    scope = {"type": "websocket", "asgi": {"version": "3.0"}, "scheme": "ws", "path": "/ws",
             "raw_path": b"/ws", "root_path": "", "query_string": b"", "headers": [],
             "client": ("127.0.0.1", 5000), "server": ("test", 80), "subprotocols": []}
    incoming = [{"type": "websocket.connect"},
                {"type": "websocket.receive", "bytes": b"abc"}]
    bare = await drive(APP, scope, incoming)
    monitored = await drive(wrapped, scope, incoming)
    assert monitored == bare
    assert [m["type"] for m in bare[0]] == ["websocket.accept", "websocket.send",
                                          "websocket.close"]
