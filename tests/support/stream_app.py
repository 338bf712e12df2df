"""The app ``integration/test_streams_servers.py`` serves with uvicorn: Server-Sent Events and an
NDJSON route declared as a stream (``MONITORING_STREAM_ROUTES``), configured from the
environment as a user's app is.

- ``/events``: the first event at once, then ``EVENTS`` more, ``GAP`` seconds apart;
- ``/forever``: an event every ``GAP`` seconds until the client leaves;
- ``/ndjson``: like ``/events``, as ``application/x-ndjson``;
- ``/plain``: an ordinary request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from asgi_monitor import MonitoringConfig, MonitoringMiddleware

EVENTS = 10
GAP = 0.1


async def _events(count: int | None) -> AsyncIterator[bytes]:
    n = 0
    yield b"data: 0\n\n"
    while count is None or n < count:
        await asyncio.sleep(GAP)
        n += 1
        yield f"data: {n}\n\n".encode()


async def events(request: Request) -> Response:
    return StreamingResponse(_events(EVENTS), media_type="text/event-stream")


async def forever(request: Request) -> Response:
    return StreamingResponse(_events(None), media_type="text/event-stream")


async def ndjson(request: Request) -> Response:
    return StreamingResponse((line.replace(b"data: ", b'{"n": ').replace(b"\n\n", b"}\n")
                              async for line in _events(EVENTS)),
                             media_type="application/x-ndjson")


async def plain(request: Request) -> Response:
    return PlainTextResponse("ok")


app = MonitoringMiddleware(Starlette(routes=[
    Route("/events", events), Route("/forever", forever), Route("/ndjson", ndjson),
    Route("/plain", plain)]), MonitoringConfig.from_env())
