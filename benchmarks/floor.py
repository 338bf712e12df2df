"""Two reference middlewares that record nothing: the floor under any ASGI metrics middleware.

A middleware that reports a request's status and duration has to put itself between the app and
the server: its own coroutine around the app, a ``send`` the app awaits instead of
the server's (a coroutine, so that it also sees the ``OSError`` a server raises once the client
has gone), a ``receive`` likewise, and two clock readings. :class:`Wrapping` does exactly that
and records nothing, so its cost is what every such middleware pays before its first counter.
:class:`PassThrough` only awaits the app. Both are benchmark variants (``floor_passthrough``,
``floor_wrapping`` in ``apps.py``); they are not part of the package.
"""

from __future__ import annotations

from time import perf_counter

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["PassThrough", "Wrapping"]


class PassThrough:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class _Exchange:
    """The app's ``receive`` (a bound method) and ``send`` (the object), as asgi_monitor's."""

    __slots__ = ("_receive", "_send", "status", "gone")

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self.status = 0
        self.gone = False

    async def receive(self) -> Message:
        return await self._receive()

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        try:
            await self._send(message)
        except OSError:
            self.gone = True
            raise


class Wrapping:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.last: tuple[int, float] = (0, 0.0)  # kept so the readings are not dead code

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        exchange = _Exchange(receive, send)
        start = perf_counter()
        try:
            await self.app(scope, exchange.receive, exchange)
        finally:
            self.last = (exchange.status, perf_counter() - start)

