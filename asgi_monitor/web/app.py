"""The monitoring sub-app: a small Starlette app the middleware dispatches its own paths to.

Every endpoint is declared once as an :class:`Endpoint` with its access level; the sub-app is
built from that list, so a new endpoint only says "admin" or "public" and the gate (one place)
decides what that means.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from .alerts import AlertEndpoints
from .dashboard import DashboardEndpoints
from .gate import Access, Gate, Handler, RejectBadQuery, SecurityHeaders
from .health import HealthEndpoints
from .metrics import metrics_endpoint
from .parts import MonitorParts
from .ratelimit import Clock
from .settings import config_endpoint
from .slos import slos_endpoint

__all__ = ["Access", "Endpoint", "build_app", "endpoints"]


@dataclass(frozen=True)
class Endpoint:
    path: str
    handler: Handler
    methods: tuple[str, ...] = ("GET",)
    access: Access = "admin"
    # False for the probes: a kubelet or load balancer polling them must never get a 429.
    limited: bool = True


def endpoints(monitor: MonitorParts) -> list[Endpoint]:
    """Every endpoint of the sub-app, with its access level."""
    config = monitor.config
    health = HealthEndpoints(monitor)
    alerts = AlertEndpoints(monitor)
    dashboard = DashboardEndpoints(monitor)
    hp, mp, dp = config.paths.health, config.paths.metrics, config.paths.dashboard
    ap = config.paths.alerts
    return [
        # Under the metrics prefix but their own paths (the middleware sends {mp}/... here too).
        Endpoint(f"{mp}/summary", dashboard.summary, access="admin"),
        Endpoint(f"{mp}/performance", dashboard.performance, access="admin"),
        # Left out when a metrics port serves them (asgi-monitor serve-metrics): the path 404s.
        *([Endpoint(mp, metrics_endpoint(monitor), access="metrics")]
          if config.paths.serve_metrics else []),
        Endpoint(hp, health.overall, access="public", limited=False),
        # The probes come before {name} so they win the match; no check may be named so.
        Endpoint(f"{hp}/live", health.live, access="public", limited=False),
        Endpoint(f"{hp}/ready", health.ready, access="public", limited=False),
        Endpoint(f"{hp}/{{name}}", health.one, access="public"),
        # The Kubernetes names, beside the health API's (those switched off left out).
        *(Endpoint(path, handler, access="public", limited=False)
          for path, handler in ((config.paths.livez, health.live),
                                (config.paths.readyz, health.ready),
                                (config.paths.startupz, health.startup)) if path),
        Endpoint(f"{hp}/{{name}}/run", health.run, methods=("POST",), access="admin"),
        Endpoint(ap, alerts.active),
        Endpoint(f"{ap}/history", alerts.history),
        Endpoint(f"{ap}/stats", alerts.stats),
        Endpoint(f"{ap}/silences", alerts.silences, methods=("GET", "POST")),
        Endpoint(f"{ap}/silences/{{id}}", alerts.delete_silence, methods=("DELETE",)),
        Endpoint(config.paths.slos, slos_endpoint(monitor), access="admin"),
        Endpoint(dp, dashboard.page, access="admin"),
        Endpoint(f"{dp}/history.json", dashboard.history, access="admin"),
        Endpoint(f"{dp}/route", dashboard.route_page, access="admin"),
        Endpoint(f"{dp}/route.json", dashboard.route_json, access="admin"),
        # Our own CSS/JS and the vendored uPlot: identical in every install, so public.
        Endpoint(f"{dp}/static/{{file}}", dashboard.static, access="public"),
        Endpoint(f"{dp}/grafana", dashboard.grafana, access="admin"),
        Endpoint(f"{dp}/export", dashboard.export, access="admin"),
        Endpoint(f"{dp}/config", config_endpoint(monitor), access="admin"),
    ]


def build_app(monitor: MonitorParts, *, clock: Clock = time.monotonic) -> Starlette:
    """The sub-app: every endpoint behind the gate, every response with the security headers.

    ``clock`` drives the rate limits (tests pass a fake one).
    """
    gate = Gate(monitor.config.gate, clock=clock, on_error=monitor.collector.internal_error)
    routes = [Route(e.path, gate.protect(e.handler, e.access, limited=e.limited),
                    methods=list(e.methods))
              for e in endpoints(monitor)]
    return Starlette(routes=routes,
                     middleware=[Middleware(SecurityHeaders), Middleware(RejectBadQuery)])
