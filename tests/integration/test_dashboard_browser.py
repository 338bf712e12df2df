"""The dashboard in real headless Chromium (Debian's), driven by Playwright, against uvicorn.

Charts drawn and kept current, tiles present, no console errors, no request leaving the host,
nothing from the data executed; screenshots at laptop and phone widths in ``artifacts/``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from support import ROOT, chromium, serve, wait_until

from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.alerting import Alert, AlertSeverity, AlertState
from asgi_monitor.config import GateSettings, HealthSettings, HistorySettings, SLOSettings
from asgi_monitor.health import HealthCheck, HealthStatus
from asgi_monitor.slo import SLI, SLO, Selector

ARTIFACTS = ROOT / "artifacts"
TOKEN = "browser-test-token-0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
USER, PASSWORD = "ops", "browser-test-password"
XSS_CHECK = "<script>alert('check')</script>"
XSS_ALERT = '<img src=x onerror="alert(1)">'
XSS_ROUTE_TEMPLATE = "/x/<b onmouseover=alert(3)>{id}"
XSS_ROUTE = f"GET {XSS_ROUTE_TEMPLATE}"

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


async def item(request: Request) -> PlainTextResponse:
    return PlainTextResponse("item")


async def fail(request: Request) -> PlainTextResponse:
    return PlainTextResponse("no", status_code=500)


@pytest.fixture
def app() -> Iterator[MonitoringMiddleware]:
    starlette = Starlette(routes=[Route("/items/{id}", item), Route("/fail", fail),
                                  Route(XSS_ROUTE_TEMPLATE, item)])
    config = MonitoringConfig(
        gate=GateSettings(admin_token=TOKEN, admin_username=USER, admin_password=PASSWORD,
                          rate_limit_per_second=0),
        history=HistorySettings(sample_interval_seconds=0.5, dashboard_refresh_seconds=1),
        health=HealthSettings(interval_seconds=1))
    middleware = MonitoringMiddleware(starlette, monitor=build_monitor(config, CollectorRegistry()))
    monitor = middleware.monitor
    monitor.health.register_check(
        "evil", "returns HTML", lambda: HealthCheck("evil", HealthStatus.WARNING, XSS_CHECK),
        critical=False)
    alert = Alert("xss_rule", AlertSeverity.CRITICAL, AlertState.FIRING, "Injected alert",
                  description=XSS_ALERT)
    monitor.alerts.active = lambda: [alert]  # type: ignore[method-assign]
    yield middleware


def traffic(base: str, rounds: int = 1) -> None:
    with httpx.Client(base_url=base, timeout=5) as client:
        for _ in range(rounds):
            for i in range(8):
                client.get(f"/items/{i}")
            client.get("/fail")
            client.get("/x/<b onmouseover=alert(3)>1")


def test_dashboard_in_headless_chromium(app: MonitoringMiddleware) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with serve(app) as base:
        traffic(base, rounds=3)
        wait_until(lambda: len(app.monitor.history) >= 3, timeout=20, what="history points")
        wait_until(lambda: app.monitor.health.result("evil").status is HealthStatus.WARNING,
                   timeout=20, what="the health checks to run")
        urls: list[str] = []
        with chromium() as browser:
            page, seen = watched_page(browser, extra_http_headers=BEARER)
            page.on("request", lambda request: urls.append(request.url))
            page.on("requestfailed", lambda r: seen.problems.append(f"failed: {r.url}"))

            response = page.goto(f"{base}/admin/monitoring", wait_until="load")
            assert response is not None and response.status == 200
            charts_draw_and_keep_up(page, base)
            sizes = page.eval_on_selector_all(
                "[data-chart] canvas", "els => els.map(e => [e.clientWidth, e.clientHeight])")
            assert len(sizes) == 4 and all(w > 100 and h > 100 for w, h in sizes), sizes
            assert page.locator(".chart-fallback").count() == 0

            tiles = page.locator("#health-tiles .tile")
            assert tiles.count() >= 2
            assert "status-warning" in (page.locator('[data-check="evil"]')
                                        .get_attribute("class") or "")
            assert page.locator('[data-check="evil"] .tile-message').inner_text() == XSS_CHECK
            assert XSS_ALERT in page.locator("#active-alerts").inner_text()
            assert page.locator("#system-resources meter").count() >= 2
            assert "GET /items/{id}" in page.locator("#routes-body").inner_text()
            # The route name came back as text from history.json, rendered by the script.
            assert "GET /x/<b onmouseover=alert(3)>{id}" in page.locator(
                "#routes-body").inner_text()
            assert page.locator("#routes-body b").count() == 0
            assert page.locator("#health-tiles script, #active-alerts img").count() == 0
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

            page.set_viewport_size({"width": 390, "height": 844})
            page.wait_for_timeout(600)  # the resize handler is debounced
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 1, f"{overflow}px of horizontal scrolling at 390 px"
            widths = page.eval_on_selector_all("[data-chart] canvas",
                                               "els => els.map(e => e.clientWidth)")
            assert all(0 < w <= 390 for w in widths), widths
            page.screenshot(path=str(ARTIFACTS / "dashboard-phone.png"), full_page=True)
            page.context.close()

    assert seen.problems == []
    assert seen.dialogs == []  # nothing from the data ran
    assert urls and all(urlsplit(url).hostname == "127.0.0.1" for url in urls), urls
    assert any(url.endswith("/static/uPlot.iife.min.js?v=" + _version()) for url in urls)
    assert any("/admin/monitoring/history.json?range=3600&after=" in url for url in urls)


def test_dashboard_first_paint_without_javascript(app: MonitoringMiddleware) -> None:
    with serve(app) as base:
        traffic(base)
        wait_until(lambda: len(app.monitor.history) >= 1, timeout=20, what="a history point")
        with chromium() as browser:
            context = browser.new_context(
                java_script_enabled=False, viewport={"width": 1366, "height": 900},
                extra_http_headers=BEARER)
            page = context.new_page()
            page.goto(f"{base}/admin/monitoring", wait_until="load", timeout=20_000)
            assert page.locator("#health-tiles .tile").count() >= 2
            assert page.locator(".chart-fallback").count() == 4
            assert "GET /items/{id}" in page.locator("#routes-body").inner_text()
            assert page.locator("[data-live='request_rate']").inner_text() != ""
            context.close()


# The three ways an admin opens the page: credentials in the URL, the browser's login prompt
# (Playwright answers the Basic challenge with http_credentials), and a bearer header.
WAYS_IN: dict[str, tuple[dict[str, Any], str]] = {
    "url credentials": ({}, f"{USER}:{PASSWORD}@"),
    "login prompt": ({"http_credentials": {"username": USER, "password": PASSWORD}}, ""),
    "bearer header": ({"extra_http_headers": BEARER}, ""),
}


@pytest.mark.parametrize("way", WAYS_IN.values(), ids=WAYS_IN.keys())
def test_dashboard_updates_whichever_way_it_was_opened(
    app: MonitoringMiddleware, way: tuple[dict[str, Any], str]
) -> None:
    from playwright.sync_api import Response

    context_options, userinfo = way
    with serve(app) as base:
        traffic(base, rounds=3)
        wait_until(lambda: len(app.monitor.history) >= 3, timeout=20, what="history points")
        feeds: list[int] = []

        def on_response(response: Response) -> None:
            if "/history.json" in response.url:
                feeds.append(response.status)

        with chromium() as browser:
            page, seen = watched_page(browser, **context_options)
            page.on("response", on_response)
            url = base.replace("http://", f"http://{userinfo}") + "/admin/monitoring"
            response = page.goto(url, wait_until="load")
            assert response is not None and response.status == 200
            charts_draw_and_keep_up(page, base)
            assert "failed" not in page.locator("#chart-status").inner_text()
            # A critical alert is firing (the fixture): the badge says so, not "healthy".
            badge = page.locator("#overall-status")
            assert badge.text_content() == "critical"
            assert "status-critical" in (badge.get_attribute("class") or "")
            assert "1 critical alert firing" in (badge.get_attribute("title") or "")
            # The card reads the alert's window, which holds the /fail 500s.
            card = page.locator("#error-window").inner_text()
            assert card.endswith(" %") and float(card.split()[0]) > 0, card
            page.context.close()

    assert seen.problems == [] and seen.dialogs == []
    assert len(feeds) >= 2 and set(feeds) == {200}, feeds


async def checkout(request: Request) -> PlainTextResponse:
    return PlainTextResponse("no", status_code=500 if request.path_params["id"] == "0" else 200)


def test_slo_panel_budget_bar_and_burn_rate_chart() -> None:
    starlette = Starlette(routes=[Route("/checkout/{id}", checkout), Route("/items/{id}", item)])
    config = MonitoringConfig(
        gate=GateSettings(admin_token=TOKEN, rate_limit_per_second=0),
        history=HistorySettings(sample_interval_seconds=0.5, dashboard_refresh_seconds=1),
        health=HealthSettings(default_checks=False),
        # 80 % of checkout requests good over 7 days: a budget of 20 %.
        slo=SLOSettings(objectives=(SLO("checkout", objective_percent=80, period_days=7,
                                        selector=Selector(routes=("/checkout/{id}",))),)))
    app = MonitoringMiddleware(starlette, monitor=build_monitor(config, CollectorRegistry()))
    tracker = app.monitor.slos
    assert tracker is not None

    def left() -> float | None:
        remaining: float | None = tracker.summary()[0]["budget"]["remaining_percent"]
        return remaining

    def checkouts(base: str, good: int, bad: int) -> None:
        with httpx.Client(base_url=base, timeout=5) as client:
            for i in range(good + bad):
                client.get(f"/checkout/{0 if i < bad else i}")
            client.get("/items/1")  # not selected: never counts

    with serve(app) as base:
        wait_until(lambda: len(app.monitor.history) >= 1, timeout=20, what="a first sample")
        checkouts(base, good=18, bad=2)  # 10 % bad: half the budget spent
        wait_until(lambda: left() == pytest.approx(50), timeout=20, what="the SLO's points")
        with chromium() as browser:
            page, seen = watched_page(browser, extra_http_headers=BEARER)
            page.goto(f"{base}/admin/monitoring", wait_until="load")
            panel = '[data-slo="checkout"]'
            poll(page, f"document.querySelectorAll('{panel} canvas').length === 1")
            poll(page, f"document.querySelector('{panel} [data-slo-status]')"
                       ".textContent.includes('updated')")
            assert page.locator(f"{panel} [data-budget-value]").inner_text() == "50.0 %"
            bar = page.locator(f"{panel} meter[data-budget-bar]")
            assert bar.evaluate("el => el.value") == pytest.approx(50)
            width, height = page.locator(f"{panel} canvas").evaluate(
                "el => [el.clientWidth, el.clientHeight]")
            assert width > 300 and height > 100
            legend = page.locator(f"{panel} .u-legend").inner_text()
            # The windows of its four alerts (7 days: two pages, two tickets).
            for window in ("5m", "30m", "1h", "2h", "6h", "1d", "3d"):
                assert f"burn rate {window}" in legend
            # The lowest page factor (6h/30m at 1.4 for 7 days) as a line.
            assert "pages above" in legend
            assert page.evaluate(
                f"document.querySelector('{panel} .u-legend').rows.length") == 9
            # Hovering the newest point shows each series' value in the legend.
            over = page.locator(f"{panel} .u-over")
            box = over.bounding_box()
            assert box is not None
            over.hover(position={"x": box["width"] - 1, "y": box["height"] / 2})
            poll(page, f"document.querySelector('{panel} .u-legend').rows[8].innerText"
                       " === 'pages above1.4'")
            first = _slo_points(page, panel)

            checkouts(base, good=15, bad=5)  # 7 of 40 bad: 17.5 %, 87.5 % of the budget
            poll(page, f"document.querySelector('{panel} [data-budget-value]')"
                       ".textContent === '12.5 %'")
            assert bar.evaluate("el => el.value") == pytest.approx(12.5)
            poll(page, f"parseInt(document.querySelector('{panel} [data-slo-status]')"
                       f".textContent) > {first}")
            # The newest 5m burn rate is drawn from what the server now says.
            page.screenshot(path=str(ARTIFACTS / "dashboard-slo.png"), full_page=True)
            page.context.close()
    assert seen.problems == [] and seen.dialogs == []


def test_route_view_from_the_dashboard_link(app: MonitoringMiddleware) -> None:
    """Each route name on the dashboard opens its view: charts drawn, numbers equal to
    /api/metrics, a hostile route name shown as text and never run."""

    ARTIFACTS.mkdir(exist_ok=True)
    with serve(app) as base:
        traffic(base, rounds=3)
        wait_until(lambda: len(app.monitor.history) >= 3, timeout=20, what="history points")
        traffic(base, rounds=2)
        wait_until(lambda: len(app.monitor.history) >= 5, timeout=20, what="history points")
        missing = f"{base}/admin/monitoring/route?name=GET%20/nope&range=900"
        with chromium() as browser:
            # Chromium logs the 404 of the missing route's page itself: that one is expected.
            page, seen = watched_page(browser, expected_404=missing,
                                      extra_http_headers=BEARER)
            page.goto(f"{base}/admin/monitoring?range=900", wait_until="load")
            poll(page, "document.querySelectorAll('#routes-body a.route').length >= 3")
            # Whatever the poll redrew, each name links to its own view at the page's range.
            hrefs = page.eval_on_selector_all("#routes-body a.route", "els => els.map(e => e.href)")
            assert all("/admin/monitoring/route?name=" in h and "range=900" in h for h in hrefs)
            page.locator("#routes-body a.route", has_text="GET /x/<b onmouseover=alert(3)>{id}"
                         ).click()
            page.wait_for_load_state("load")
            assert page.locator("#route-name").inner_text() == XSS_ROUTE
            assert page.locator("#route-name b").count() == 0
            page.goto(f"{base}/admin/monitoring?range=900", wait_until="load")
            page.locator("#routes-body a.route", has_text="GET /items/{id}").first.click()
            page.wait_for_load_state("load")
            assert page.locator("#route-name").inner_text() == "GET /items/{id}"
            poll(page, "document.querySelectorAll('[data-route-chart] canvas').length === 3")
            poll(page, "document.getElementById('route-status').textContent.includes('updated')")
            sizes = page.eval_on_selector_all(
                "[data-route-chart] canvas", "els => els.map(e => [e.clientWidth, e.clientHeight])")
            assert all(w > 100 and h > 100 for w, h in sizes), sizes
            # The distribution has a bar per bucket that counted requests.
            assert "requests" in page.locator("#route-chart-distribution .u-legend").inner_text()
            exposition = httpx.get(f"{base}/api/metrics",
                                   headers=BEARER).text
            exported = requests_of(exposition, "/items/{id}")
            shown = float(page.locator("#since-requests").inner_text())
            # The page was rendered before this scrape; no traffic since: the same count.
            assert shown == exported == 40, (shown, exported)
            page.screenshot(path=str(ARTIFACTS / "dashboard-route.png"), full_page=True)
            page.set_viewport_size({"width": 390, "height": 844})
            page.wait_for_timeout(600)
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 1, f"{overflow}px of horizontal scrolling at 390 px"
            page.screenshot(path=str(ARTIFACTS / "dashboard-route-phone.png"), full_page=True)
            # The range's quantiles as route.js redraws them: a figure, "≤"/">" before it at
            # most, never the script's "undefined".
            latency = page.locator("[data-range=p95]").inner_text()
            assert "undefined" not in latency and any(c.isdigit() for c in latency), latency
            # A route nobody requested: 404, said in words, with the way back to the list.
            page.set_viewport_size({"width": 1366, "height": 900})
            answer = page.goto(missing, wait_until="load")
            assert answer is not None and answer.status == 404
            assert "not known in the history or the registry" in page.locator(
                "#route-unknown").inner_text()
            page.screenshot(path=str(ARTIFACTS / "dashboard-route-missing.png"), full_page=True)
            page.get_by_text("See the routes with requests").click()
            page.wait_for_load_state("load")
            assert page.locator("#routes-index a.route", has_text="GET /items/{id}").count() == 1
            page.context.close()
    assert seen.problems == []
    assert seen.dialogs == []


def test_resource_bars_stay_inside_their_card(app: MonitoringMiddleware) -> None:
    """At widths where System resources is a narrow column beside the alerts, each bar and
    its figure stay inside the card, on one line."""
    with serve(app) as base, chromium() as browser:
        traffic(base)
        wait_until(lambda: len(app.monitor.history) >= 1, timeout=20, what="a history point")
        context = browser.new_context(viewport={"width": 1366, "height": 900},
                                      extra_http_headers=BEARER)
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.goto(f"{base}/admin/monitoring", wait_until="load")
        assert page.locator("#system-resources meter").count() >= 2
        for width in (390, 600, 700, 800, 1000, 1366):
            page.set_viewport_size({"width": width, "height": 900})
            # Each bar or figure past the card's inner right edge, and each row of two lines.
            bad = page.evaluate("""() => {
              const dl = document.getElementById("system-resources");
              const style = getComputedStyle(dl);
              const right = dl.getBoundingClientRect().right - parseFloat(style.paddingRight);
              const out = [];
              dl.querySelectorAll("dd").forEach((dd, i) => {
                const range = document.createRange();
                range.selectNodeContents(dd);
                const rects = [...dd.querySelectorAll("meter")].map(m => m.getBoundingClientRect())
                  .concat([...range.getClientRects()]);
                const over = Math.max(...rects.map(r => r.right)) - right;
                if (over > 1) out.push(`row ${i}: ${over}px past the card`);
                const lines = new Set(rects.filter(r => r.height > 0)
                                           .map(r => Math.round(r.top + r.height / 2)));
                if ([...lines].some(a => [...lines].some(b => Math.abs(a - b) > 8))) {
                  out.push(`row ${i}: on two lines`);
                }
              });
              return out;
            }""")
            assert bad == [], f"at {width} px: {bad}"
        context.close()


def test_route_view_figures_are_never_broken_across_lines() -> None:
    """"100.00 %" and "95 %" stay whole in the route view's tables, however narrow."""
    starlette = Starlette(routes=[Route("/checkout/{id}", checkout)])
    objectives = (
        SLO("checkout_availability_objective_with_a_long_name", objective_percent=99.5,
            selector=Selector(routes=("/checkout/{id}",))),
        SLO("checkout_latency_objective_with_a_long_name", objective_percent=99.5,
            sli=SLI(kind="latency", threshold_seconds=0.5),
            selector=Selector(routes=("/checkout/{id}",))))
    config = MonitoringConfig(
        gate=GateSettings(admin_token=TOKEN, rate_limit_per_second=0),
        history=HistorySettings(sample_interval_seconds=0.5, dashboard_refresh_seconds=1),
        health=HealthSettings(default_checks=False), slo=SLOSettings(objectives=objectives))
    app = MonitoringMiddleware(starlette, monitor=build_monitor(config, CollectorRegistry()))
    with serve(app) as base, chromium() as browser:
        with httpx.Client(base_url=base, timeout=5) as client:
            for i in range(1, 11):
                client.get(f"/checkout/{i}")
        wait_until(lambda: len(app.monitor.history) >= 2, timeout=20, what="history points")
        context = browser.new_context(viewport={"width": 1366, "height": 900},
                                      extra_http_headers=BEARER)
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.goto(f"{base}/admin/monitoring/route?name=GET%20/checkout/%7Bid%7D", wait_until="load")
        assert "100.00 %" in page.locator("#route-slos").inner_text()
        for width in (1366, 1000, 700, 390):
            page.set_viewport_size({"width": width, "height": 900})
            # Each figure (a cell after the first, the objective beside a name) on one line.
            broken = page.evaluate("""() => {
              const figures = [...document.querySelectorAll(
                "#route-slos td:not(:first-child), #route-slos td small")];
              return figures.filter(el => {
                const range = document.createRange();
                range.selectNodeContents(el);
                const tops = new Set([...range.getClientRects()].filter(r => r.width > 0)
                                     .map(r => Math.round(r.top)));
                return tops.size > 1;
              }).map(el => el.textContent);
            }""")
            assert broken == [], f"at {width} px, broken across lines: {broken}"
        context.close()


# Records each label a canvas draws (text, where, how wide), from its last clearing on.
RECORD_CANVAS_TEXT = """
(() => {
  const drawn = new Map();
  window.__labels = drawn;
  const proto = CanvasRenderingContext2D.prototype;
  const clear = proto.clearRect, fill = proto.fillText;
  proto.clearRect = function (...args) {
    drawn.set(this.canvas, []);
    return clear.apply(this, args);
  };
  proto.fillText = function (text, x, y, ...rest) {
    const list = drawn.get(this.canvas) || [];
    list.push({ text: String(text), x, y, width: this.measureText(String(text)).width,
                align: this.textAlign, transformed: this.getTransform().b !== 0 });
    drawn.set(this.canvas, list);
    return fill.call(this, text, x, y, ...rest);
  };
})();
"""

OVERLAPPING_LABELS = """() => {
  const out = [];
  for (const [canvas, labels] of window.__labels) {
    if (!canvas.isConnected) continue;
    const rows = new Map();
    for (const l of labels) {
      if (l.transformed || l.align !== "center") continue;  // the x axis: centred, not rotated
      const key = Math.round(l.y);
      rows.set(key, (rows.get(key) || []).concat([l]));
    }
    for (const row of rows.values()) {
      row.sort((a, b) => a.x - b.x);
      for (let i = 1; i < row.length; i++) {
        const gap = (row[i].x - row[i].width / 2) - (row[i - 1].x + row[i - 1].width / 2);
        if (gap < 0) out.push(`${row[i - 1].text} | ${row[i].text} (${gap.toFixed(1)}px)`);
      }
    }
  }
  return out;
}"""


def test_time_axis_labels_never_overlap_across_a_minute_boundary(app: MonitoringMiddleware) -> None:
    """A new app's first minutes: ticks every few seconds cross a minute boundary, where
    uPlot's default two-row labels put the first tick's date over the next minute's time."""
    import json

    from playwright.sync_api import Route as Intercepted

    start = (int(time.time()) // 60) * 60 - 20  # :40, so the axis crosses two minute boundaries
    sent = []

    def history(route: Intercepted) -> None:
        doc = route.fetch().json()
        times = [float(start + 5 * i) for i in range(24)] if not sent else []
        doc["points"] = {key: times if key == "time" else [1.0] * len(times)
                         for key in doc["columns"]}
        sent.append(len(times))
        route.fulfill(status=200, content_type="application/json", body=json.dumps(doc))

    with serve(app) as base, chromium() as browser:
        traffic(base)
        context = browser.new_context(viewport={"width": 1400, "height": 900},
                                      extra_http_headers=BEARER)
        context.add_init_script(RECORD_CANVAS_TEXT)
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.route("**/history.json*", history)
        page.goto(f"{base}/admin/monitoring", wait_until="load")
        poll(page, "document.getElementById('chart-status').textContent.startsWith('24 points')")
        poll(page, "document.querySelectorAll('[data-chart] canvas').length === 4")
        # The axes were drawn: each chart has its time labels (centred, below the plot).
        counts = page.evaluate("""() => [...document.querySelectorAll('[data-chart] canvas')]
          .map(c => (window.__labels.get(c) || []).filter(l => l.align === "center").length)""")
        assert len(counts) == 4 and all(n >= 3 for n in counts), counts
        assert page.evaluate(OVERLAPPING_LABELS) == []
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-first-minutes.png"), full_page=True)
        context.close()


def test_a_new_app_says_collecting_instead_of_drawing_a_lone_dot() -> None:
    """The first interval of a new app: no chart with one point on a made-up time axis."""
    starlette = Starlette(routes=[Route("/items/{id}", item)])
    config = MonitoringConfig(
        gate=GateSettings(admin_token=TOKEN, rate_limit_per_second=0),
        history=HistorySettings(sample_interval_seconds=3600, dashboard_refresh_seconds=1),
        health=HealthSettings(default_checks=False))
    app = MonitoringMiddleware(starlette, monitor=build_monitor(config, CollectorRegistry()))
    with serve(app) as base, chromium() as browser:
        traffic(base)
        context = browser.new_context(viewport={"width": 1366, "height": 900},
                                      extra_http_headers=BEARER)
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.goto(f"{base}/admin/monitoring", wait_until="load")
        poll(page, "document.getElementById('chart-status').textContent.includes('updated')")
        assert page.locator("[data-chart] canvas").count() == 0
        notes = page.locator("[data-chart] .chart-fallback").all_inner_texts()
        assert len(notes) == 4 and all(n.startswith("Collecting") for n in notes), notes
        assert all(n.endswith("one every 1 h.") for n in notes), notes  # not "3600 s"
        page.goto(f"{base}/admin/monitoring/route?name=GET%20/items/%7Bid%7D", wait_until="load")
        poll(page, "document.getElementById('route-status').textContent.includes('updated')")
        assert page.locator("[data-route-chart] canvas").count() == 0
        notes = page.locator("[data-route-chart] .chart-fallback").all_inner_texts()
        assert all(n.startswith(("Collecting", "No requests")) for n in notes), notes
        page.screenshot(path=str(ARTIFACTS / "dashboard-collecting.png"), full_page=True)
        context.close()


@dataclass
class Seen:
    """What a page reported that no dashboard should: console errors and warnings, uncaught
    page errors, and dialogs (which only data run as code would open)."""

    problems: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


def watched_page(browser: Any, *, expected_404: str | None = None,
                 **context_options: Any) -> tuple[Any, Seen]:
    """A laptop-sized page in a new context, with what it reports kept in a :class:`Seen`
    (dialogs dismissed). ``expected_404``: a page whose own 404 in the console is expected."""
    from playwright.sync_api import ConsoleMessage, Dialog

    seen = Seen()

    def on_console(message: ConsoleMessage) -> None:
        if (expected_404 is not None and message.location.get("url") == expected_404
                and "404" in message.text):
            return
        if message.type in ("error", "warning"):
            seen.problems.append(f"console {message.type}: {message.text}")

    def on_dialog(dialog: Dialog) -> None:
        seen.dialogs.append(dialog.message)
        dialog.dismiss()

    context = browser.new_context(**{"viewport": {"width": 1366, "height": 900},
                                     **context_options})
    page = context.new_page()
    page.on("console", on_console)
    page.on("pageerror", lambda error: seen.problems.append(f"page error: {error}"))
    page.on("dialog", on_dialog)
    page.set_default_timeout(20_000)
    return page, seen


def requests_of(exposition: str, route: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    return sum(sample.value for family in text_string_to_metric_families(exposition)
               for sample in family.samples
               if sample.name == "http_requests_total" and sample.labels.get("route") == route)


def _slo_points(page: Any, panel: str) -> int:
    return int(page.locator(f"{panel} [data-slo-status]").inner_text().split()[0])


def charts_draw_and_keep_up(page: Any, base: str) -> None:
    """The four charts draw, and keep up without a reload: after more traffic, more points
    arrive through history.json."""
    poll(page, "document.querySelectorAll('[data-chart] canvas').length === 4")
    poll(page, "document.getElementById('chart-status').textContent.includes('updated')")
    first = _points(page)
    traffic(base)
    poll(page, f"parseInt(document.getElementById('chart-status').textContent) > {first}")


def poll(page: Any, expression: str, timeout: float = 20.0) -> None:
    """Wait until ``expression`` is true in the page. Not page.wait_for_function: it evaluates
    strings with eval(), which the dashboard's CSP (rightly) forbids; page.evaluate is not
    subject to the page's CSP."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {expression}")
        page.wait_for_timeout(100)  # lets Playwright dispatch events, unlike time.sleep


def _points(page: Any) -> int:
    text: str = page.locator("#chart-status").inner_text()
    return int(text.split()[0])


def _version() -> str:
    import asgi_monitor

    return asgi_monitor.__version__
