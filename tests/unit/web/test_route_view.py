"""The route view: one route over a time range (from the history) and since start (equal to
what /api/metrics exports), reached from every route name on the dashboard, escaped, behind
the admin gate."""

from __future__ import annotations

import asyncio
import html
import math
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.config import (
    GateSettings,
    HealthSettings,
    HistorySettings,
    MetricsSettings,
    SLOSettings,
    SystemSettings,
)
from asgi_monitor.errors import ConfigError
from asgi_monitor.sampling.samples import quantile_shown
from asgi_monitor.slo import SLO, Selector

TOKEN = "route-view-test-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
XSS_TEMPLATE = "/x/<b onmouseover=alert(3)>{id}"
XSS_ROUTE = f"GET {XSS_TEMPLATE}"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


async def item(request: Request) -> PlainTextResponse:
    return PlainTextResponse("item " * 40)


async def fail(request: Request) -> PlainTextResponse:
    return PlainTextResponse("no", status_code=500)


async def tiny(request: Request) -> PlainTextResponse:
    return PlainTextResponse("four")


async def upload(request: Request) -> PlainTextResponse:
    body = await request.body()
    return PlainTextResponse(str(len(body)), status_code=201)


def middleware(**sections: Any) -> MonitoringMiddleware:
    sections.setdefault("system", SystemSettings(metrics=False))
    sections.setdefault("health", HealthSettings(default_checks=False))
    # The first request starts the monitor, whose sampler samples at once and then only once
    # an hour: the tests take the samples that make the points (see started()).
    sections.setdefault("history", HistorySettings(sample_interval_seconds=3600,
                                                   retention_seconds=7200))
    app = Starlette(routes=[Route("/items/{id}", item), Route("/fail", fail),
                            Route("/upload", upload, methods=["POST"]), Route("/tiny", tiny),
                            Route(XSS_TEMPLATE, item)])
    config = MonitoringConfig(gate=GateSettings(admin_token=TOKEN, rate_limit_per_second=0),
                              **sections)
    return MonitoringMiddleware(app, monitor=build_monitor(config, CollectorRegistry()))


async def started(c: httpx.AsyncClient) -> None:
    """Start the monitor (its first request) and let the sampler's first sample happen."""
    await c.get("/api/health/live")
    await asyncio.sleep(0.1)


def client(app: MonitoringMiddleware) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver",
                             headers=AUTH)


async def traffic(c: httpx.AsyncClient, rounds: int = 1) -> None:
    for i in range(rounds):
        for n in range(4):
            await c.get(f"/items/{n}", headers={
                "traceparent": f"00-{TRACE_ID[:-2]}{i:02x}-00f067aa0ba902b7-01"})
        await c.get("/fail")
        await c.post("/upload", content=b"x" * 3000)
        await c.get("/x/<b onmouseover=alert(3)>1")


def url(route: str, seconds: int | None = None, page: str = "route.json") -> str:
    out = f"/admin/monitoring/{page}?name={quote(route)}"
    return out if seconds is None else f"{out}&range={seconds}"


def exported(text: str) -> dict[str, list[Any]]:
    """The /api/metrics samples by name (classic names)."""
    out: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def histogram(samples: dict[str, list[Any]], name: str, method: str, route: str
              ) -> tuple[tuple[tuple[float, float], ...], float]:
    buckets = tuple(sorted((float(s.labels["le"]), s.value) for s in samples[f"{name}_bucket"]
                           if s.labels["method"] == method and s.labels["route"] == route))
    total = next(s.value for s in samples[f"{name}_sum"]
                 if s.labels["method"] == method and s.labels["route"] == route)
    return buckets, total


async def test_route_view_needs_credentials() -> None:
    app = middleware()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://testserver") as anonymous:
        for path in (url("GET /items/{id}"), url("GET /items/{id}", page="route"),
                     "/admin/monitoring/route"):
            assert (await anonymous.get(path)).status_code == 401, path


async def test_since_start_equals_what_api_metrics_exports() -> None:
    app = middleware()
    async with client(app) as c:
        await traffic(c, rounds=3)
        app.monitor.take_sample()
        doc = (await c.get(url("GET /items/{id}"))).json()
        post = (await c.get(url("POST /upload"))).json()
        samples = exported((await c.get("/api/metrics")).text)
    since = doc["since_start"]
    statuses = {s.labels["status"]: s.value for s in samples["http_requests_total"]
                if s.labels["route"] == "/items/{id}" and s.labels["method"] == "GET"}
    assert statuses == {"200": 12.0}
    assert {s["status"]: s["requests"] for s in since["statuses"]} == statuses
    assert since["requests"] == 12
    for key, name, scale in (("duration", "http_request_duration_seconds", 1000),
                             ("ttfb", "http_time_to_first_byte_seconds", 1000),
                             ("response_size", "http_response_size_bytes", 1)):
        buckets, total = histogram(samples, name, "GET", "/items/{id}")
        assert since[key]["count"] == buckets[-1][1] == 12
        assert since[key]["mean"] == pytest.approx(total / 12 * scale)
        for q, field in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
            value, bound = quantile_shown(q, buckets, total)  # type: ignore[misc]
            assert since[key][field] == pytest.approx(value * scale)
            assert since[key]["bounds"][field] == bound
    assert since["response_size"]["mean"] == len("item " * 40)
    buckets, total = histogram(samples, "http_request_size_bytes", "POST", "/upload")
    assert post["since_start"]["request_size"]["mean"] == total / 3 == 3000
    assert post["since_start"]["statuses"] == [{"status": "201", "requests": 3.0}]


async def test_the_range_counts_from_the_history() -> None:
    app = middleware()
    async with client(app) as c:
        await started(c)  # the sampler's first sample: where the first point starts
        await traffic(c, rounds=2)
        app.monitor.take_sample()
        await traffic(c, rounds=1)
        app.monitor.take_sample()
        doc = (await c.get(url("GET /fail", 900))).json()
        items = (await c.get(url("GET /items/{id}", 99999))).json()
    assert doc["points"] == doc["known_points"] == 2
    assert doc["columns"]["requests"] == [2.0, 1.0]
    assert doc["columns"]["errors"] == [2.0, 1.0]
    assert doc["range"]["requests"] == 3 and doc["range"]["error_ratio"] == 1.0
    assert doc["range"]["statuses"] == [{"status": 500, "requests": 3.0}]
    assert sum(b["requests"] for b in doc["range"]["distribution"]) == 3
    assert doc["range_seconds"] == 900 and doc["range_label"] == "15 min"
    # A range longer than the retention is the retention.
    assert items["range_seconds"] == 7200
    assert items["range"]["requests"] == 12
    assert items["range"]["latency_ms"]["p95"] is not None


async def test_a_route_left_out_of_a_full_point_is_a_gap_not_a_zero() -> None:
    app = middleware(history=HistorySettings(top_routes=1, sample_interval_seconds=3600,
                                             retention_seconds=7200))
    async with client(app) as c:
        await started(c)
        await traffic(c)  # /items/{id} is the busiest: the only route the point keeps
        app.monitor.take_sample()
        await c.get("/fail")  # alone in this interval: kept
        app.monitor.take_sample()
        doc = (await c.get(url("GET /fail"))).json()
    assert doc["columns"]["requests"] == [None, 1.0]
    assert doc["known_points"] == 1 and doc["points"] == 2


async def test_bad_names_and_ranges_are_400_with_a_message() -> None:
    app = middleware()
    async with client(app) as c:
        for path in ("/admin/monitoring/route.json?name=nospace",
                     url("GET /items/{id}") + "&range=abc",
                     url("GET /items/{id}") + "&range=0",
                     "/admin/monitoring/history.json?range=-5",
                     "/admin/monitoring?range=1e3"):
            response = await c.get(path)
            assert response.status_code == 400, path
            assert response.json()["error"], path


async def test_hostile_route_names_are_escaped_and_linked() -> None:
    app = middleware()
    async with client(app) as c:
        await started(c)
        app.monitor.take_sample()
        await traffic(c)
        app.monitor.take_sample()
        page = (await c.get(url(XSS_ROUTE, page="route"))).text
        dashboard = (await c.get("/admin/monitoring")).text
        index = (await c.get("/admin/monitoring/route")).text
    assert "<b onmouseover" not in page
    assert html.escape(XSS_ROUTE, quote=False) in page
    assert "<b onmouseover" not in dashboard + index
    link = f'href="/admin/monitoring/route?name={quote(XSS_ROUTE, safe="/")}&amp;range=7200"'
    assert link in dashboard and link in index
    for route in ("GET /items/{id}", "GET /fail", "POST /upload"):
        assert f'?name={quote(route, safe="/")}&amp;range=7200"' in dashboard, route


async def test_exemplars_link_to_the_trace_url() -> None:
    app = middleware(metrics=MetricsSettings(exemplars=True),
                     history=HistorySettings(trace_url="https://tempo.example/trace/{trace_id}",
                                             sample_interval_seconds=3600,
                                             retention_seconds=7200))
    async with client(app) as c:
        await traffic(c, rounds=2)
        doc = (await c.get(url("GET /items/{id}"))).json()
        page = (await c.get(url("GET /items/{id}", page="route"))).text
    listed = doc["since_start"]["exemplars"]
    assert listed and listed[0]["trace_id"].startswith(TRACE_ID[:-2])
    assert all(e["url"] == f"https://tempo.example/trace/{e['trace_id']}" for e in listed)
    assert f'<a href="https://tempo.example/trace/{listed[0]["trace_id"]}"' in page


async def test_without_a_trace_url_the_ids_are_text() -> None:
    app = middleware(metrics=MetricsSettings(exemplars=True))
    async with client(app) as c:
        await traffic(c)
        doc = (await c.get(url("GET /items/{id}"))).json()
        page = (await c.get(url("GET /items/{id}", page="route"))).text
    assert doc["since_start"]["exemplars"][0]["url"] is None
    assert f"<code>{doc['since_start']['exemplars'][0]['trace_id']}</code>" in page
    assert "MONITORING_TRACE_URL" in page


@pytest.mark.parametrize("value", [
    "javascript:alert(1)//{trace_id}", "https://tempo.example/trace/", "ftp://x/{trace_id}",
    "https://x/{trace_id}/{span_id}", "https:///{trace_id}", "https://x/{trace_id:>9}"])
def test_a_trace_url_must_be_http_with_the_trace_id(value: str) -> None:
    with pytest.raises(ConfigError, match="MONITORING_TRACE_URL"):
        MonitoringConfig.from_env({"MONITORING_TRACE_URL": value})


async def test_a_routes_share_of_the_slos_that_select_it() -> None:
    slos = (SLO("items", objective_percent=99, selector=Selector(routes=("/items/{id}",))),
            SLO("everything", objective_percent=90),
            SLO("uploads", objective_percent=99, selector=Selector(routes=("/upload",))))
    app = middleware(slo=SLOSettings(objectives=slos))
    async with client(app) as c:
        await started(c)
        app.monitor.take_sample()
        await traffic(c, rounds=2)
        app.monitor.take_sample()
        doc = (await c.get(url("GET /fail"))).json()
        items = (await c.get(url("GET /items/{id}"))).json()
    [everything] = doc["slos"]  # only the SLO selecting every route takes /fail
    assert everything["name"] == "everything"
    assert everything["slo_requests"] == 14  # 8 items + 2 fail + 2 upload + 2 xss
    assert everything["share_of_requests"] == pytest.approx(2 / 14)
    assert everything["share_of_bad"] == 1.0  # every bad request was /fail's
    assert everything["route_sli_percent"] == 0.0
    assert [s["name"] for s in items["slos"]] == ["items", "everything"]
    assert items["slos"][0]["share_of_requests"] == 1.0
    assert items["slos"][0]["share_of_bad"] is None  # no bad requests to share


async def test_an_empty_history_says_collecting() -> None:
    app = middleware()
    async with client(app) as c:
        await c.get("/items/1")  # known since start, no point yet
        page = (await c.get(url("GET /items/{id}", page="route"))).text
        dashboard = (await c.get("/admin/monitoring")).text
    assert "Collecting: a chart needs two intervals" in page
    assert dashboard.count("Collecting: a chart needs two points") == 4


def test_durations_are_said_in_the_unit_people_use() -> None:
    from asgi_monitor.units import duration_label
    from asgi_monitor.web.routeview import range_choices

    assert [duration_label(s) for s in (0.5, 30, 90, 300, 900, 3600, 5400, 7200)] == [
        "0.5 s", "30 s", "90 s", "5 min", "15 min", "1 h", "90 min", "2 h"]
    assert [c["label"] for c in range_choices(3600)] == ["15 min", "1 h"]
    assert [c["label"] for c in range_choices(21600)] == ["15 min", "1 h", "6 h"]
    assert [c["label"] for c in range_choices(600)] == ["10 min"]
    assert not math.isnan(range_choices(600)[0]["seconds"])


async def test_a_route_nobody_requested_is_404_with_a_message() -> None:
    app = middleware()
    async with client(app) as c:
        await started(c)
        await traffic(c)
        app.monitor.take_sample()
        data = await c.get(url("GET /nope"))
        page = await c.get(url("GET /nope", 900, page="route"))
        hostile = await c.get(url("GET /nope/<b onmouseover=alert(3)>", page="route"))
    assert data.status_code == 404
    assert "GET /nope" in data.json()["error"]
    assert "not known" in data.json()["error"]
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "not known in the history or the registry" in page.text
    assert 'href="/admin/monitoring/route?range=900"' in page.text
    assert "Requests (since start)" not in page.text  # no page of zeros
    assert "<b onmouseover" not in hostile.text and hostile.status_code == 404


async def test_a_route_known_only_since_start_is_shown() -> None:
    # Requests before the first sample: the registry counts them, the history has no point yet.
    app = middleware()
    async with client(app) as c:
        await c.get("/fail")
        doc = await c.get(url("GET /fail"))
        page = await c.get(url("GET /fail", page="route"))
    assert doc.status_code == 200 and page.status_code == 200
    assert doc.json()["points"] == 0
    assert doc.json()["since_start"]["requests"] == 1
    assert 'id="since-requests">1<' in page.text


async def test_a_route_known_only_from_the_history_is_shown() -> None:
    # A fresh scrape registry (as under several workers, after a restart of one) may not hold
    # the route the history saw: the history alone makes it known.
    app = middleware()
    async with client(app) as c:
        await started(c)
        await c.get("/fail")
        app.monitor.take_sample()
        app.monitor.scrape_registry = CollectorRegistry  # type: ignore[method-assign,assignment]
        doc = await c.get(url("GET /fail"))
    assert doc.status_code == 200
    assert doc.json()["range"]["requests"] == 1
    assert doc.json()["since_start"]["requests"] == 0


async def test_body_sizes_are_never_shown_above_what_the_buckets_prove() -> None:
    # Duration buckets every test request falls in the first of.
    app = middleware(metrics=MetricsSettings(duration_buckets=(10.0, 20.0)))
    async with client(app) as c:
        await started(c)
        for _ in range(20):
            await c.get("/tiny")  # no request body, a 4-byte response
        app.monitor.take_sample()
        doc = (await c.get(url("GET /tiny"))).json()
        page = (await c.get(url("GET /tiny", page="route"))).text
    since = doc["since_start"]
    # A sum of 0 proves every body was empty; 4-byte bodies only that p95 <= the first bound.
    assert (since["request_size"]["p95"], since["request_size"]["bounds"]["p95"]) == (0, None)
    assert (since["response_size"]["p95"], since["response_size"]["bounds"]["p95"]) == (100, "le")
    assert since["response_size"]["mean"] == 4
    assert 'id="since-request-size">0 B / 0 B<' in page
    assert 'id="since-response-size">4 B / ≤ 100 B<' in page
    # The range's latencies: in the first duration bucket, at most its bound, never interpolated.
    assert doc["range"]["latency_ms"] == {"p50": 10000, "p95": 10000, "p99": 10000}
    assert doc["range"]["latency_bounds"] == {"p50": "le", "p95": "le", "p99": "le"}
    assert 'data-range="p95">≤ 10000<' in page
    assert 'id="since-latency">≤ 10000 / ≤ 10000<' in page
