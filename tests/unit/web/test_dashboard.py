"""Dashboard endpoints: summary, performance, the page, history.json, static files, Grafana JSON
and the export; and that everything rendered from data is escaped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from support import hello

from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.alerting import Alert, AlertSeverity, AlertState
from asgi_monitor.config import (
    AlertSettings,
    EmailSettings,
    GateSettings,
    HealthSettings,
    MetricsSettings,
    SLOSettings,
    SystemSettings,
)
from asgi_monitor.health import HealthCheck, HealthStatus
from asgi_monitor.web.app import endpoints

TOKEN = "dashboard-test-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
XSS_CHECK = "<script>alert('check')</script>"
XSS_ALERT = '<img src=x onerror="alert(1)">'
XSS_ROUTE = "/items/<svg onload=alert(2)>"


def middleware(**sections: Any) -> MonitoringMiddleware:
    sections.setdefault("system", SystemSettings(metrics=False))
    config = MonitoringConfig(gate=GateSettings(admin_token=TOKEN), **sections)
    return MonitoringMiddleware(hello, monitor=build_monitor(config, CollectorRegistry()))


def client(app: MonitoringMiddleware) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("10.0.0.1", 1)),
                             base_url="http://testserver", headers=AUTH)


def traffic(app: MonitoringMiddleware, route: str = "/items/{id}", status: int = 200,
            times: int = 5) -> None:
    series = app.monitor.collector.requests.series("GET", route, status, "http")
    for _ in range(times):
        series.observe(0.03, 0.01, 0, 100)


def samples(app: MonitoringMiddleware, count: int) -> None:
    for _ in range(count):
        traffic(app)
        app.monitor.take_sample()


async def test_admin_endpoints_need_credentials() -> None:
    app = middleware()
    paths = ["/api/metrics/summary", "/api/metrics/performance", "/admin/monitoring",
             "/admin/monitoring/history.json", "/admin/monitoring/grafana",
             "/admin/monitoring/export"]
    declared = {e.path: e.access for e in endpoints(app.monitor)}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://testserver") as anonymous:
        for path in paths:
            assert declared[path] == "admin"
            assert (await anonymous.get(path)).status_code == 401, path
        # The static files are public (the same bytes in every install, no data).
        assert declared["/admin/monitoring/static/{file}"] == "public"
        assert (await anonymous.get("/admin/monitoring/static/dashboard.js")).status_code == 200


async def test_summary_is_the_current_numbers() -> None:
    app = middleware()
    traffic(app, times=3)
    traffic(app, status=503, times=1)
    async with client(app) as c:
        first = (await c.get("/api/metrics/summary")).json()
        assert first["totals"]["requests"] == 4 and first["totals"]["errors_5xx"] == 1
        assert first["last_interval"] is None  # no interval measured yet: said, not invented
        samples(app, 2)
        body = (await c.get("/api/metrics/summary")).json()
    assert body["totals"]["requests"] == 14
    assert body["last_interval"]["requests"] == 5
    assert body["health"]["status"] in {"unknown", "healthy", "warning", "critical"}
    assert body["alerts"] == {"firing": 0, "pending": 0}
    assert body["history"]["points"] == 1
    # The metrics endpoint itself is untouched by the new paths under its prefix.
    async with client(app) as c:
        assert "http_requests_total" in (await c.get("/api/metrics")).text


async def test_performance_is_the_collectors_insights() -> None:
    app = middleware()
    async with client(app) as c:
        body = (await c.get("/api/metrics/performance")).json()
    assert 0 <= body["health_score"] <= 100
    assert body["rules"]["latency_trend"]["status"] == "insufficient_data"


async def test_history_json_columns_and_since() -> None:
    app = middleware()
    samples(app, 4)
    async with client(app) as c:
        body = (await c.get("/admin/monitoring/history.json")).json()
        times = body["points"]["time"]
        assert len(times) == 3
        assert set(body["columns"]) == set(body["points"])
        assert body["routes"][0]["route"] == "GET /items/{id}"
        later = (await c.get("/admin/monitoring/history.json", params={"since": times[0]}))
        assert later.json()["points"]["time"] == times[1:]
        for bad in ("yesterday", "nan", "inf"):
            response = await c.get("/admin/monitoring/history.json", params={"since": bad})
            assert response.status_code == 400
            assert "unix time" in response.json()["error"]


async def test_static_files_are_an_allowlist() -> None:
    app = middleware()
    async with client(app) as c:
        js = await c.get("/admin/monitoring/static/uPlot.iife.min.js")
        assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
        assert "uPlot" in js.text
        css = await c.get("/admin/monitoring/static/dashboard.css")
        assert css.headers["content-type"].startswith("text/css")
        for name in ("uPlot.LICENSE", "..%2Fdashboard.html", "memory", "%2Fetc%2Fpasswd"):
            assert (await c.get(f"/admin/monitoring/static/{name}")).status_code == 404, name


async def test_export_holds_everything_and_no_secret() -> None:
    app = middleware(
        email=EmailSettings(
            password="export-smtp-secret", server="smtp.example.com", from_address="m@example.com"))
    samples(app, 3)
    async with client(app) as c:
        response = await c.get("/admin/monitoring/export")
    assert response.status_code == 200
    assert response.headers["content-disposition"].startswith("attachment;")
    body = response.json()
    assert set(body) >= {"metrics", "history", "health", "alerts", "insights", "configuration"}
    assert len(body["history"]["points"]) == 2
    assert body["history"]["points"][0]["routes"][0]["route"] == "GET /items/{id}"
    assert set(body["alerts"]) == {"active", "history", "stats"}
    assert body["configuration"]["gate"]["admin_token"] == "**********"
    assert body["configuration"]["email"]["password"] == "**********"
    assert TOKEN not in response.text and "export-smtp-secret" not in response.text


async def test_grafana_endpoint_honours_the_namespace() -> None:
    app = middleware(metrics=MetricsSettings(namespace="shop"))
    async with client(app) as c:
        body = (await c.get("/admin/monitoring/grafana")).json()
    assert body["uid"] == "asgi-monitor-shop"
    exprs = [t["expr"] for p in body["panels"] for t in p.get("targets", [])]
    assert exprs and all("shop_" in e for e in exprs)


def _slo_file(path: Path, name: str) -> str:
    path.write_text(json.dumps({"slos": [{"name": name, "objective_percent": 99.5}]}))
    return str(path)


def _grafana_slos(body: dict[str, Any]) -> set[str]:
    exprs = [t["expr"] for p in body["panels"] for t in p.get("targets", [])]
    return {name for name in ("checkout", "search") if any(f'slo="{name}"' in e for e in exprs)}


@pytest.mark.parametrize("change", ["edited", "removed", "broken"])
async def test_grafana_shows_the_slos_loaded_at_start(tmp_path: Path, change: str) -> None:
    """The file is read once, when the monitor is built: changed since, the export still shows
    what the process evaluates, and a missing or broken file is no 500."""
    path = tmp_path / "slos.json"
    app = middleware(slo=SLOSettings(file=_slo_file(path, "checkout")))
    if change == "edited":
        _slo_file(path, "search")
    elif change == "removed":
        path.unlink()
    else:
        path.write_text("{not json")
    async with client(app) as c:
        response = await c.get("/admin/monitoring/grafana")
    assert response.status_code == 200
    assert _grafana_slos(response.json()) == {"checkout"}


async def test_dashboard_first_paint_has_tiles_alerts_resources_and_routes() -> None:
    app = middleware(system=SystemSettings(metrics=True))
    await app.monitor.health.run_all()
    samples(app, 3)
    async with client(app) as c:
        response = await c.get("/admin/monitoring")
    assert response.status_code == 200
    html = response.text
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "<script>" not in html and " style=" not in html  # no inline script or style
    assert 'id="health-tiles"' in html and 'data-check="memory"' in html
    assert "status-healthy" in html or "status-warning" in html
    assert 'id="system-resources"' in html and "<meter" in html
    assert 'id="alert-stats"' in html and "No active alerts." in html
    assert "GET /items/{id}" in html  # the busiest routes table
    assert 'data-history-url="/admin/monitoring/history.json"' in html
    assert "/admin/monitoring/static/uPlot.iife.min.js?v=" in html


async def test_sub_millisecond_latencies_read_with_their_precision() -> None:
    # A 0.3 ms endpoint must not read "0 ms" on the page the buckets below 1 ms were made for.
    app = middleware()
    app.monitor.take_sample()
    series = app.monitor.collector.requests.series("GET", "/fast", 200, "http")
    for _ in range(20):
        series.observe(0.0003, 0.0001, 0, 10)
    app.monitor.take_sample()
    async with client(app) as c:
        html = (await c.get("/admin/monitoring")).text
    point = app.monitor.history.latest()
    assert point is not None and point.p50 is not None and point.p50 < 0.001
    assert f'<span data-live="p50_ms">{point.p50 * 1000:.2f}</span>' in html
    assert f"<td>{point.routes[0].p95 * 1000:.2f}</td>" in html


async def test_everything_rendered_from_data_is_escaped() -> None:
    app = middleware()
    app.monitor.health.register_check(
        "evil", "returns HTML", lambda: HealthCheck("evil", HealthStatus.WARNING, XSS_CHECK))
    await app.monitor.health.run_all()
    alert = Alert("xss_rule", AlertSeverity.CRITICAL, AlertState.FIRING, XSS_ALERT,
                  description=XSS_ALERT)
    app.monitor.alerts.active = lambda: [alert]  # type: ignore[method-assign]
    traffic(app, route=XSS_ROUTE, times=1)
    samples(app, 2)
    traffic(app, route=XSS_ROUTE, status=500, times=50)
    app.monitor.take_sample()
    async with client(app) as c:
        html = (await c.get("/admin/monitoring")).text
        history = (await c.get("/admin/monitoring/history.json")).json()
    for payload in (XSS_CHECK, XSS_ALERT, XSS_ROUTE):
        assert payload not in html
    assert "&lt;script&gt;alert(&#39;check&#39;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in html
    assert "GET /items/&lt;svg onload=alert(2)&gt;" in html
    # JSON carries the raw text (the page's script writes it with textContent only).
    assert any(r["route"] == f"GET {XSS_ROUTE}" for r in history["routes"])


def test_history_and_insights_serialise_as_strict_json(registry: CollectorRegistry) -> None:
    app = MonitoringMiddleware(
        hello,
        monitor=build_monitor(MonitoringConfig(system=SystemSettings(metrics=False)), registry))
    samples(app, 3)
    report = app.monitor.collector.get_performance_insights()
    json.dumps(report, allow_nan=False)
    json.dumps([p.to_dict() for p in app.monitor.history], allow_nan=False)


@pytest.mark.parametrize("path", ["/api/metrics/summary", "/api/metrics/performance"])
async def test_new_paths_under_the_metrics_prefix_are_not_counted_as_app_traffic(
        path: str) -> None:
    app = middleware()
    async with client(app) as c:
        assert (await c.get(path)).status_code == 200
    assert app.monitor.sampler.take().requests == 0


# -- the header badge and the 5xx card agree with the alerts ---------------------------------------
def _alert(severity: AlertSeverity, state: AlertState = AlertState.FIRING) -> Alert:
    return Alert(f"{severity.value}_rule", severity, state, "summary")


@pytest.mark.parametrize(("health", "alerts", "expected"), [
    (HealthStatus.HEALTHY, [], "healthy"),
    (HealthStatus.HEALTHY, [_alert(AlertSeverity.CRITICAL)], "critical"),
    (HealthStatus.HEALTHY, [_alert(AlertSeverity.WARNING)], "warning"),
    (HealthStatus.HEALTHY, [_alert(AlertSeverity.INFO)], "healthy"),
    (HealthStatus.HEALTHY, [_alert(AlertSeverity.CRITICAL, AlertState.PENDING)], "healthy"),
    (HealthStatus.CRITICAL, [_alert(AlertSeverity.WARNING)], "critical"),
    (HealthStatus.WARNING, [_alert(AlertSeverity.WARNING), _alert(AlertSeverity.CRITICAL)],
     "critical"),
], ids=["healthy", "critical alert", "warning alert", "info alert", "pending alert",
        "critical health", "two alerts"])
async def test_badge_shows_the_worst_of_health_and_firing_alerts(
    health: HealthStatus, alerts: list[Alert], expected: str
) -> None:
    # Only this check: the default ones read the machine, which may be busy or full.
    app = middleware(health=HealthSettings(default_checks=False))
    app.monitor.health.register_check("svc", "", lambda: HealthCheck("svc", health, "x"))
    await app.monitor.health.run_all()
    app.monitor.alerts.active = lambda: alerts  # type: ignore[method-assign]
    async with client(app) as c:
        html = (await c.get("/admin/monitoring")).text
        status = (await c.get("/admin/monitoring/history.json")).json()["status"]
    assert status["status"] == expected and status["health"] == health.value
    badge = html.split('id="overall-status"', 1)[1].split("</span>", 1)[0]
    assert badge.endswith(f">{expected}")
    firing = [a for a in alerts if a.state is AlertState.FIRING]
    assert f'title="health {health.value}' in badge
    if firing:
        assert "firing" in badge


async def test_5xx_card_reads_the_window_of_the_error_rate_alert() -> None:
    app = middleware(alerts=AlertSettings(window_seconds=300, min_requests=20))
    app.monitor.take_sample()
    traffic(app, status=200, times=50)
    traffic(app, status=500, times=50)
    app.monitor.take_sample()
    traffic(app, status=200, times=100)  # the last interval is clean...
    app.monitor.take_sample()
    assert app.monitor.history.latest().error_ratio == 0  # type: ignore[union-attr]
    percent, firing = await app.monitor.alerts.rules["high_error_rate"].condition()
    assert (percent, firing) == (pytest.approx(25.0), True)  # ...but the alert fires on 300 s
    async with client(app) as c:
        html = (await c.get("/admin/monitoring")).text
        window = (await c.get("/admin/monitoring/history.json")).json()["error_window"]
    assert window == {"seconds": 300, "requests": 200, "error_ratio": pytest.approx(0.25)}
    card = html.split('id="error-window"', 1)[1].split("</span>", 1)[0]
    assert card.endswith(">25.00 %")
    assert "5xx ratio (last 5 min, as the high_error_rate alert reads it)" in html


async def test_5xx_card_before_two_samples_says_nothing() -> None:
    app = middleware()
    async with client(app) as c:
        html = (await c.get("/admin/monitoring")).text
        window = (await c.get("/admin/monitoring/history.json")).json()["error_window"]
    assert window["error_ratio"] is None
    assert html.split('id="error-window"', 1)[1].split("</span>", 1)[0].endswith(">–")


async def test_alert_values_carry_the_rules_unit_and_times_one_format() -> None:
    from datetime import datetime, timezone

    app = middleware()
    since = datetime(2026, 3, 1, 12, 30, 5, 123456, tzinfo=timezone.utc)
    alerts = [Alert("high_error_rate", AlertSeverity.CRITICAL, AlertState.FIRING, "5xx",
                    value=12.4712, active_since=since),
              Alert("slow_responses", AlertSeverity.WARNING, AlertState.FIRING, "slow",
                    value=0.731, active_since=since),
              Alert("slo_api_burn_1h_5m", AlertSeverity.PAGE, AlertState.FIRING, "burn",
                    value=14.4)]
    app.monitor.alerts.active = lambda: alerts  # type: ignore[method-assign]
    async with client(app) as c:
        page = (await c.get("/admin/monitoring")).text
    assert "value 12.47 % 5xx at its last evaluation" in page
    assert "value 0.731 s mean at its last evaluation" in page
    assert "value 14.40× burn rate (long window)" in page
    # UTC on the server, made local by the script; never raw ISO with microseconds.
    assert '<time datetime="2026-03-01T12:30:05+00:00" data-local>12:30:05 UTC</time>' in page
    assert "123456" not in page


async def test_a_health_tile_states_its_figure_once() -> None:
    # The built-in checks write their figure into the message ("memory 7.0% used"); the tile
    # then leaves out the observed value, which would say it again ("7.0 percent").
    app = middleware(health=HealthSettings(default_checks=False))
    checks = {
        "memory": HealthCheck("memory", HealthStatus.HEALTHY, "memory 7.0% used",
                              observed_value=7.0, observed_unit="percent"),
        "disk": HealthCheck("disk", HealthStatus.HEALTHY, "75.5% free on /",
                            observed_value=75.50000000000001, observed_unit="percent free"),
        "lag": HealthCheck("lag", HealthStatus.HEALTHY, "event loop lag 0.3 ms",
                           observed_value=0.312, observed_unit="ms"),
        "queue": HealthCheck("queue", HealthStatus.WARNING, "queue is backing up",
                             observed_value=1200, observed_unit="jobs"),
    }
    for name, result in checks.items():
        app.monitor.health.register_check(name, "", lambda result=result: result)
    await app.monitor.health.run_all()
    async with client(app) as c:
        html = (await c.get("/admin/monitoring")).text
    tiles = {name: html[html.index(f'data-check="{name}"'):].split("</li>", 1)[0]
             for name in checks}
    for name in ("memory", "disk", "lag"):
        assert "tile-value" not in tiles[name], tiles[name]
        assert checks[name].message in tiles[name]
    assert '<span class="tile-value">1200 jobs</span>' in tiles["queue"]
    assert "queue is backing up" in tiles["queue"]


async def test_streams_are_shown_apart_and_escaped() -> None:
    app = middleware()
    async with client(app) as c:
        html = (await c.get("/admin/monitoring")).text
    assert 'id="streams-table"' not in html  # no stream yet: no section
    requests = app.monitor.collector.requests
    for lifetime in (20.0, 40.0, 50.0, 1000.0):
        requests.record_stream("GET", "/events", lifetime)
    requests.record_stream("GET", XSS_ROUTE, 1.0)
    requests.streams_open.add(2)
    app.monitor.take_sample()
    async with client(app) as c:
        response = await c.get("/admin/monitoring")
    html = response.text
    assert "<script>" not in html and " style=" not in html
    assert 'open now <strong id="streams-open">2</strong>' in html
    table = html[html.index('id="streams-table"'):]
    table = table[:table.index("</table>")]
    rows = table.split("<tr>")[2:]
    # Most streams first. 20, 40, 50 and 1000 s on the long bounds (.. 10, 30, 60, 300, 900,
    # 3600): p50 interpolated in 30-60 s; p95 in 900-3600 s, where an interpolation the sum
    # (1110 s) rules out is stated as "at most" the bucket's bound.
    assert "GET /events" in rows[0]
    cells = [cell.split("</td>")[0] for cell in rows[0].split("<td>")[1:]]
    assert cells == ["4", "45 s", "≤ 1 h"]
    assert XSS_ROUTE not in html and "GET /items/&lt;svg onload=alert(2)&gt;" in rows[1]
