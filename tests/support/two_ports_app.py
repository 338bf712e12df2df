"""A service whose own routes sit under the default monitoring paths, as
``integration/test_two_ports.py`` runs it (and docs/deployment.md shows it).

``python two_ports_app.py PUBLIC_PORT MONITORING_PORT``: the app on one port, recorded by the
middleware but without the monitoring endpoints, and ``monitor.asgi_app()`` on the other, both
in one process so they share the monitor. ``python two_ports_app.py PUBLIC_PORT``: the app alone
with the middleware serving its paths, which shadow two of the app's routes.
"""

from __future__ import annotations

import asyncio
import sys

import uvicorn
from fastapi import FastAPI

from asgi_monitor import MonitoringMiddleware, get_monitor

api = FastAPI()


@api.get("/api/health")
def health() -> dict[str, str]:
    return {"status": "app"}


@api.get("/api/metrics/business")
def business() -> dict[str, int]:
    return {"orders": 3}


async def main(public_port: int, monitoring_port: int | None) -> None:
    # The process-wide monitor: get_metrics_collector() and the decorators record into it too.
    monitor = get_monitor()
    if monitoring_port is None:
        await uvicorn.Server(uvicorn.Config(MonitoringMiddleware(api, monitor=monitor),
                                            host="127.0.0.1", port=public_port)).serve()
        return
    app = MonitoringMiddleware(api, monitor=monitor, serve_endpoints=False)
    servers = [
        uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=public_port)),
        # The public server's lifespan starts and stops the monitor; this one has none.
        uvicorn.Server(uvicorn.Config(monitor.asgi_app(), host="127.0.0.1",
                                      port=monitoring_port, lifespan="off")),
    ]
    await asyncio.gather(*(server.serve() for server in servers))


if __name__ == "__main__":
    ports = [int(arg) for arg in sys.argv[1:]]
    asyncio.run(main(ports[0], ports[1] if len(ports) > 1 else None))
