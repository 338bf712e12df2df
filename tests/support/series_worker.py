"""A worker process for ``integration/test_worker_loop_lag.py``: with ``PROMETHEUS_MULTIPROC_DIR``
set, it sends one request to each of ``N`` routes through the middleware (so the workers' files
hold N series of its own, written the way a real worker writes them), prints ``ready`` and
waits, alive, until its standard input closes.

    python series_worker.py N
"""

from __future__ import annotations

import asyncio
import sys

import httpx
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.config import MetricsSettings, SystemSettings


async def ok(request: Request) -> Response:
    return PlainTextResponse("ok")


async def main(routes: int) -> None:
    monitor = build_monitor(MonitoringConfig(metrics=MetricsSettings(max_series=2 * routes),
                                             system=SystemSettings(metrics=False)),
                            CollectorRegistry())
    app = MonitoringMiddleware(
        Starlette(routes=[Route(f"/r{n}/{{item}}", ok) for n in range(routes)]),
        monitor=monitor)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://worker") as client:
        for n in range(routes):
            assert (await client.get(f"/r{n}/1")).status_code == 200
    # The first request started the monitor; stopping it releases the alert lock, which the
    # process under test takes.
    await monitor.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
    print("ready", flush=True)
    sys.stdin.read()
