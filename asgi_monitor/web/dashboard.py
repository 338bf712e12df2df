"""The dashboard endpoints: summary, insights, the HTML page, its history feed, static files,
the Grafana dashboard and the export.

All are admin endpoints except the static files (our CSS and JS and the vendored uPlot: the same
bytes in every install, no data), which are public so a browser's login prompt is not asked for
each of them. The page is server-rendered and useful without JavaScript; ``dashboard.js`` then
polls ``history.json`` and redraws the charts. The sub-app's Content-Security-Policy allows no
inline script or style, so every script and stylesheet is a file served here.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from .._version import __version__
from ..exports.grafana import grafana_dashboard
from ..units import duration_label
from .parts import MonitorParts
from .responses import LenientJSONResponse, error_response, shown
from .routeview import known_routes, range_choices, route_document
from .slos import slos_view
from .snapshot import (
    ROUTES_WINDOW_SECONDS,
    alert_value,
    busiest_routes,
    current_sample,
    error_window,
    export_document,
    health_view,
    history_document,
    overall_status,
    states_figure,
    status_class,
    streams_view,
    summary,
)
from .templating import environment, template_dir

__all__ = ["DashboardEndpoints", "StaticFiles"]

_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


@dataclass(frozen=True)
class _File:
    body: bytes
    media_type: str


class StaticFiles:
    """The files of ``templates/static`` (CSS and JS only), read once: nothing else is served,
    so no path from a request ever reaches the file system."""

    def __init__(self, directory: Path) -> None:
        # Missing only if neither the wheel's nor a checkout's templates exist (see
        # templating.template_dir): serve nothing, fail nothing.
        paths = sorted(directory.iterdir()) if directory.is_dir() else []
        self.files = {path.name: _File(path.read_bytes(), _TYPES[path.suffix])
                      for path in paths if path.suffix in _TYPES}

    async def __call__(self, request: Request) -> Response:
        found = self.files.get(request.path_params["file"])
        if found is None:
            return LenientJSONResponse({"error": "no such file"}, status_code=404)
        # URLs carry ?v=<version>, so a new release is fetched anew.
        return Response(found.body, media_type=found.media_type,
                        headers={"Cache-Control": "public, max-age=86400"})


def _unknown(route: str) -> str:
    return (f"route {shown(route, 200)} is not known in the history or the registry: no request "
            "matched it since start; the route list (route.json without name) names the known "
            'ones, as "METHOD /template"')


class DashboardEndpoints:
    """The handlers, bound to one monitor."""

    def __init__(self, monitor: MonitorParts) -> None:
        self.monitor = monitor
        self.static = StaticFiles(template_dir() / "static")

    async def summary(self, request: Request) -> Response:
        return LenientJSONResponse(summary(self.monitor))

    async def performance(self, request: Request) -> Response:
        return LenientJSONResponse(self.monitor.collector.get_performance_insights())

    def _range(self, request: Request) -> float | Response:
        """The ``range`` query parameter: whole seconds, at most the retention (its default)."""
        retention = self.monitor.history.retention_seconds
        raw = request.query_params.get("range")
        if not raw:
            return retention
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 9 and 0 < int(raw)):
            return error_response(f"range must be a whole number of seconds between 1 and "
                                  f"the retention ({retention:g}), e.g. 900", 400)
        return min(float(raw), retention)

    async def history(self, request: Request) -> Response:
        seconds = self._range(request)
        if isinstance(seconds, Response):
            return seconds
        raw = request.query_params.get("since")
        since: float | None = None
        if raw:
            try:
                since = float(raw)
            except ValueError:
                since = math.nan
            if not math.isfinite(since):
                return error_response("since must be a unix time in seconds, e.g. "
                                      f"{time.time():.0f}", 400)
        # The dashboard polls with the cursor of its last answer: unlike a time, it never
        # misses points when the wall clock steps back.
        raw = request.query_params.get("after")
        after: int | None = None
        if raw:
            if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
                return error_response("after must be the cursor of a previous answer, a "
                                      "whole number >= 0", 400)
            after = int(raw)
        return LenientJSONResponse(history_document(self.monitor, since, after, seconds))

    def _route(self, request: Request) -> str | None | Response:
        """The ``name`` query parameter; None without one (then the routes are listed)."""
        name = request.query_params.get("name")
        if name is None:
            return None
        method, _, template = name.partition(" ")
        if not method or not template or len(name) > 1000:
            return error_response('name must be a route as the dashboard lists it, "METHOD '
                                  '/template", e.g. "GET /items/{id}"', 400)
        return name

    async def route_json(self, request: Request) -> Response:
        """One route over ``range`` seconds, and since start as ``/api/metrics`` exports it."""
        route, seconds = self._route(request), self._range(request)
        if isinstance(route, Response):
            return route
        if isinstance(seconds, Response):
            return seconds
        if route is None:
            return LenientJSONResponse({"routes": known_routes(self.monitor, seconds)})
        # Reading the registry merges the workers' files under several: off the loop.
        registry = self.monitor.scrape_registry()
        doc = await run_in_threadpool(route_document, self.monitor, route, seconds, registry)
        if doc is None:
            return error_response(_unknown(route), 404)
        return LenientJSONResponse(doc)

    async def route_page(self, request: Request) -> Response:
        route, seconds = self._route(request), self._range(request)
        if isinstance(route, Response):
            return route
        if isinstance(seconds, Response):
            return seconds
        root_path = request.scope.get("root_path", "")
        base = root_path + self.monitor.config.paths.dashboard
        if route is None:
            return HTMLResponse(environment().get_template("routes.html").render(
                base=base, version=__version__, range_seconds=seconds,
                range_label=duration_label(seconds),
                ranges=range_choices(self.monitor.history.retention_seconds),
                routes=known_routes(self.monitor, seconds)))
        registry = self.monitor.scrape_registry()
        doc = await run_in_threadpool(route_document, self.monitor, route, seconds, registry)
        if doc is None:
            return HTMLResponse(environment().get_template("route_unknown.html").render(
                base=base, version=__version__, route=route, range_seconds=seconds,
                message=_unknown(route)), status_code=404)
        html = environment().get_template("route.html").render(
            base=base, version=__version__, doc=doc, route=route,
            refresh=self.monitor.config.history.dashboard_refresh_seconds,
            ranges=range_choices(self.monitor.history.retention_seconds),
            metrics_path=root_path + self.monitor.config.paths.metrics,
            trace_url=bool(self.monitor.config.history.trace_url), duration_label=duration_label)
        return HTMLResponse(html)

    async def grafana(self, request: Request) -> Response:
        metrics = self.monitor.config.metrics
        # The SLOs this process loaded at start and evaluates, not MONITORING_SLO_FILE read
        # again: edited since, it would show SLOs nothing evaluates; removed, a 500.
        tracker = self.monitor.slos
        slos = tuple(tracker.slos.values()) if tracker is not None else ()
        return LenientJSONResponse(grafana_dashboard(metrics.namespace,
                                                     metric_names=metrics.metric_names,
                                                     slos=slos,
                                                     request_labels=metrics.label_names))

    async def export(self, request: Request) -> Response:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        return LenientJSONResponse(export_document(self.monitor), headers={
            "Content-Disposition": f'attachment; filename="asgi-monitor-export-{stamp}.json"'})

    async def page(self, request: Request) -> Response:
        seconds = self._range(request)
        if isinstance(seconds, Response):
            return seconds
        html = environment().get_template("dashboard.html").render(
            **self.context(request.scope.get("root_path", ""), seconds))
        return HTMLResponse(html)

    def context(self, root_path: str = "", seconds: float | None = None) -> dict[str, Any]:
        """The page's values; its links start with ``root_path``, where the server is mounted
        (``uvicorn --root-path``, a proxy's prefix), since the browser asks from outside it."""
        monitor = self.monitor
        config = monitor.config
        base = root_path + config.paths.dashboard
        sample = current_sample(monitor)
        point = monitor.history.latest()
        retention = monitor.history.retention_seconds
        seconds = retention if seconds is None else seconds
        return {
            "base": base,
            "version": __version__,
            "refresh": config.history.dashboard_refresh_seconds,
            "health": health_view(monitor),
            "status": overall_status(monitor),
            "error_window": error_window(monitor),
            "alerts": [alert.to_dict() for alert in monitor.alerts.active()],
            "alert_stats": monitor.alerts.stats(),
            "sample": sample,
            "point": point,
            "routes": busiest_routes(monitor),
            "routes_seconds": ROUTES_WINDOW_SECONDS,
            "streams": streams_view(sample, monitor.history.top_routes),
            "alert_value": alert_value,
            "insights": monitor.collector.get_performance_insights(),
            "history_points": len(monitor.history.points(seconds=seconds)),
            "interval": monitor.history.interval,
            "retention": retention,
            "range_seconds": seconds,
            "range_label": duration_label(seconds),
            "ranges": range_choices(retention),
            "duration_label": duration_label,
            "metrics_path": root_path + config.paths.metrics,
            "slos": slos_view(monitor),
            "slos_url": root_path + config.paths.slos,
            "status_class": status_class,
            "states_figure": states_figure,
        }
