"""``GET /api/metrics``: Prometheus exposition, by prometheus_client's own encoders.

The text format by default, OpenMetrics when the Accept header asks for it
(``prometheus_client.exposition.choose_encoder``), gzip when the client accepts it.
"""

from __future__ import annotations

import gzip
from collections.abc import Awaitable, Callable

from prometheus_client.exposition import choose_encoder
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..monitor import Monitor
from .responses import NO_STORE

__all__ = ["metrics_endpoint"]


def metrics_endpoint(monitor: Monitor) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        except Exception:
            # prometheus_client compares the version parameter's parts with ints: "version=abc"
            # raises TypeError. A junk Accept header gets the default format, not a 500.
            encoder, content_type = choose_encoder("")
        registry = monitor.scrape_registry()
        # Encoding a large registry takes milliseconds; off the event loop it does not stall
        # the app's other requests.
        body = await run_in_threadpool(encoder, registry)
        headers = {**NO_STORE, "Vary": "Accept, Accept-Encoding"}
        if "gzip" in request.headers.get("accept-encoding", "") and len(body) > 512:
            body = gzip.compress(body, compresslevel=6)
            headers["Content-Encoding"] = "gzip"
        return Response(body, media_type=content_type, headers=headers)

    return endpoint
