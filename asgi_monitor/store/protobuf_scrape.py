"""Whether a scrape is writing the protobuf format, and request families already written in it.

Apart from :mod:`asgi_monitor.store.protobuf`, the encoder, so the stores can ask on every
scrape without loading the encoder until a client asks for protobuf.
"""

from __future__ import annotations

from contextvars import ContextVar, Token

from prometheus_client.core import Metric

__all__ = ["RenderedBytes", "direct_protobuf", "end_protobuf_context", "protobuf_context"]

# True while asgi_monitor.store.protobuf.encode_protobuf walks a registry.
_PROTOBUF: ContextVar[bool] = ContextVar("asgi_monitor_protobuf_exposition", default=False)


class RenderedBytes(Metric):
    """Families already written as delimited protobuf messages (:func:`direct_protobuf`)."""

    def __init__(self, data: bytes) -> None:
        super().__init__("asgi_monitor_rendered", "", "unknown")
        self.data = data


def direct_protobuf() -> bool:
    """Whether the registry is being written in the protobuf format, where a request collector
    may yield one :class:`RenderedBytes` for its request families."""
    return _PROTOBUF.get()


def protobuf_context() -> Token[bool]:
    """Marks the protobuf exposition's collection (reset with ``_PROTOBUF.reset``, through
    :func:`end_protobuf_context`)."""
    return _PROTOBUF.set(True)


def end_protobuf_context(token: Token[bool]) -> None:
    _PROTOBUF.reset(token)
