"""The metrics port for several workers: a process of its own that reads the workers' files and
serves ``/metrics``, run as ``asgi-monitor serve-metrics`` beside the server.

Under ``--workers N`` the app's ``/api/metrics`` is answered by whichever worker the connection
lands on, which merges every worker's file in that process, beside the requests it serves; and
``monitor.asgi_app()`` on a port of its own has no place there, since each worker would bind it.
This process serves the same merged families (:class:`~asgi_monitor.store.merge.MergedFiles`,
with the settings of the same environment, so the same names and labels) plus the app's own
prometheus_client metrics kept in the directory, and nothing else: it records nothing, opens no
worker file of its own and so is never counted as a worker. The gate is the app's (the metrics
token, the allowed networks, the rate limit), from the same ``MONITORING_*`` variables.

What a worker reads only in its own memory (its health checks, the alert engine's counters, its
``app_process_*`` resources, sampled session gauges) is not in the files, so not here.
"""

from __future__ import annotations

import gzip
import logging
import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import ConfigError
from ..store.merge import MergedFiles
from ..store.multiprocess import ENV_VAR
from ..store.protobuf import CONTENT_TYPE, accepts_protobuf, encode_protobuf
from ..store.settings import StoreSettings
from .gate import Gate, RejectBadQuery, SecurityHeaders
from .metrics import accepts_gzip
from .responses import NO_STORE

if TYPE_CHECKING:
    from ..config import MonitoringConfig

__all__ = ["DEFAULT_PORT", "metrics_app", "metrics_directory"]

logger = logging.getLogger("asgi_monitor")

# The port OpenTelemetry's Prometheus exporter listens on by default: a scrape config that knows
# one knows the other.
DEFAULT_PORT = 9464


class WorkerFiles(Collector):
    """Every worker's families, read fresh at each ``collect()``: asgi_monitor's files merged,
    then prometheus_client's own multiprocess files (the app's own metrics)."""

    def __init__(self, merged: MergedFiles) -> None:
        self._merged = merged
        # Constructed without a registry: it reads the directory, it registers nothing.
        self._client = MultiProcessCollector(None, path=merged.directory)  # type: ignore[no-untyped-call]

    def collect(self) -> Iterator[Metric]:
        yield from self._merged.families(custom=True)
        yield from self._client.collect()  # type: ignore[no-untyped-call]


def metrics_directory(directory: str | None) -> str:
    """``directory`` or ``PROMETHEUS_MULTIPROC_DIR``: an existing directory, else ConfigError."""
    path = directory or os.environ.get(ENV_VAR, "")
    if not path:
        raise ConfigError(f"serve-metrics reads the workers' files: pass --dir DIR or set "
                          f"{ENV_VAR} as the server's workers have it")
    if not os.path.isdir(path):
        raise ConfigError(f"serve-metrics: the metrics directory {path!r} does not exist or is "
                          f"not a directory (--dir or {ENV_VAR})")
    return path


def metrics_app(config: MonitoringConfig, directory: str) -> Starlette:
    """The metrics port's app: ``/metrics`` (and the app's metrics path) behind the gate."""
    settings = config.metrics
    merged = MergedFiles(directory, StoreSettings.of(settings))
    # A collector, not a registry: registering one would call describe(), a merge of its own.
    files = WorkerFiles(merged)

    async def scrape(request: Request) -> Response:
        accept = request.headers.get("accept", "")
        try:
            encoder, content_type = choose_encoder(accept)
        except Exception:  # a junk Accept header gets the default format, not a 500
            encoder, content_type = choose_encoder("")
        if accepts_protobuf(accept):  # Prometheus with native histograms on
            encoder, content_type = encode_protobuf, CONTENT_TYPE
        # The merge and the encoding in a thread: the loop keeps answering other scrapes.
        body = await run_in_threadpool(encoder, files)
        headers = {**NO_STORE, "Vary": "Accept, Accept-Encoding"}
        if accepts_gzip(request.headers.get("accept-encoding", "")) and len(body) > 512:
            body = gzip.compress(body, compresslevel=6)
            headers["Content-Encoding"] = "gzip"
        return Response(body, media_type=content_type, headers=headers)

    def internal_error(where: str, exc: BaseException) -> None:
        logger.warning("asgi_monitor serve-metrics failed in %s: %r", where, exc)

    gate = Gate(config.gate, clock=time.monotonic, on_error=internal_error)
    protected = gate.protect(scrape, "metrics")
    paths = dict.fromkeys(("/metrics", config.paths.metrics))
    return Starlette(routes=[Route(path, protected, methods=["GET"]) for path in paths],
                     middleware=[Middleware(SecurityHeaders), Middleware(RejectBadQuery)])
