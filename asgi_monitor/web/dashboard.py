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

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from .._version import __version__
from ..grafana import grafana_dashboard
from .parts import MonitorParts
from .responses import LenientJSONResponse, error_response
from .slos import slos_view
from .snapshot import (
    ROUTES_WINDOW_SECONDS,
    busiest_routes,
    current_sample,
    error_window,
    export_document,
    health_view,
    history_document,
    overall_status,
    status_class,
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


class DashboardEndpoints:
    """The handlers, bound to one monitor."""

    def __init__(self, monitor: MonitorParts) -> None:
        self.monitor = monitor
        self.static = StaticFiles(template_dir() / "static")

    async def summary(self, request: Request) -> Response:
        return LenientJSONResponse(summary(self.monitor))

    async def performance(self, request: Request) -> Response:
        return LenientJSONResponse(self.monitor.collector.get_performance_insights())

    async def history(self, request: Request) -> Response:
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
        return LenientJSONResponse(history_document(self.monitor, since, after))

    async def grafana(self, request: Request) -> Response:
        metrics = self.monitor.config.metrics
        return LenientJSONResponse(grafana_dashboard(metrics.namespace,
                                                     metric_names=metrics.metric_names,
                                                     slos=self.monitor.config.slo.all()))

    async def export(self, request: Request) -> Response:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        return LenientJSONResponse(export_document(self.monitor), headers={
            "Content-Disposition": f'attachment; filename="asgi-monitor-export-{stamp}.json"'})

    async def page(self, request: Request) -> Response:
        html = environment().get_template("dashboard.html").render(
            **self.context(request.scope.get("root_path", "")))
        return HTMLResponse(html)

    def context(self, root_path: str = "") -> dict[str, Any]:
        """The page's values; its links start with ``root_path``, where the server is mounted
        (``uvicorn --root-path``, a proxy's prefix), since the browser asks from outside it."""
        monitor = self.monitor
        config = monitor.config
        base = root_path + config.paths.dashboard
        sample = current_sample(monitor)
        point = monitor.history.latest()
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
            "routes_minutes": round(ROUTES_WINDOW_SECONDS / 60),
            "insights": monitor.collector.get_performance_insights(),
            "history_points": len(monitor.history),
            "interval": monitor.history.interval,
            "retention": monitor.history.retention_seconds,
            "metrics_path": root_path + config.paths.metrics,
            "slos": slos_view(monitor),
            "slos_url": root_path + config.paths.slos,
            "status_class": status_class,
        }
