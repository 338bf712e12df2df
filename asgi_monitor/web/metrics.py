"""``GET /api/metrics``: Prometheus exposition.

The text format by default, OpenMetrics when the Accept header asks for it
(``prometheus_client.exposition.choose_encoder``), the protobuf format when it prefers that (a
Prometheus with native histograms on: :mod:`asgi_monitor.store.protobuf`), gzip when the client
accepts it. The request
families are written directly from the stores (:mod:`asgi_monitor.store.exposition`), the rest by
prometheus_client's encoder.
"""

from __future__ import annotations

import gzip
from collections.abc import Awaitable, Callable

from prometheus_client.exposition import choose_encoder
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..store.exposition import encode
from ..store.protobuf import CONTENT_TYPE, accepts_protobuf, encode_protobuf
from .parts import MonitorParts
from .responses import NO_STORE

__all__ = ["accepts_gzip", "metrics_endpoint"]


def metrics_endpoint(monitor: MonitorParts) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        accept = request.headers.get("accept", "")
        protobuf = accepts_protobuf(accept)
        try:
            encoder, content_type = choose_encoder(accept)
        except Exception:
            # prometheus_client compares the version parameter's parts with ints: "version=abc"
            # raises TypeError. A junk Accept header gets the default format, not a 500.
            encoder, content_type = choose_encoder("")
        if protobuf:
            content_type = CONTENT_TYPE
        gzipped = accepts_gzip(request.headers.get("accept-encoding", ""))

        def render() -> tuple[bytes, bool]:
            # All of it in a thread: building the scrape registry, merging the workers' files,
            # writing and compressing megabytes of text. On the event loop any of these would
            # hold every other request of this worker.
            registry = monitor.scrape_registry()
            body = (encode_protobuf(registry) if protobuf else
                    encode(registry, encoder, content_type))
            if gzipped and len(body) > 512:
                return gzip.compress(body, compresslevel=6), True
            return body, False

        body, compressed = await run_in_threadpool(render)
        headers = {**NO_STORE, "Vary": "Accept, Accept-Encoding"}
        if compressed:
            headers["Content-Encoding"] = "gzip"
        return Response(body, media_type=content_type, headers=headers)

    return endpoint


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an ``Accept-Encoding`` value allows gzip (RFC 9110, section 12.5.3).

    Codings are case-insensitive; ``gzip;q=0`` (or ``*;q=0`` with no ``gzip`` entry) refuses
    it, an explicit ``gzip`` entry wins over ``*``, and a q-value that is not a number counts
    as 0: a header we cannot read gets the body as it is, which every client can take.
    """
    star: float | None = None
    for entry in accept_encoding.split(","):
        coding, _, params = entry.partition(";")
        coding = coding.strip().lower()
        if coding not in ("gzip", "x-gzip", "*"):
            continue
        q = _quality(params)
        if coding == "*":
            star = q
        else:
            return q > 0
    return star is not None and star > 0


def _quality(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value.strip())
            except ValueError:
                return 0.0
            # "q=nan" or "q=inf" is no weight RFC 9110 allows (0 to 1, three decimals).
            return q if 0.0 <= q <= 1.0 else 0.0
    return 1.0
