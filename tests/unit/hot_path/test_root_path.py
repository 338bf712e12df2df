"""Dispatch below ``scope["root_path"]``: the monitoring paths answer under a mount point
whether or not the server puts it in ``scope["path"]`` too, and the app keeps its own paths."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from support import hello

from asgi_monitor import MonitoringMiddleware

Wrap = Callable[..., MonitoringMiddleware]


def at(app: Any, root_path: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, root_path=root_path),
                             base_url="http://test")


@pytest.mark.parametrize("in_path", [True, False], ids=["path-has-root", "path-below-root"])
async def test_monitoring_paths_answer_below_the_root_path(wrap: Wrap, in_path: bool) -> None:
    mw = wrap(hello)
    # uvicorn >= 0.26 puts the root path in front of scope["path"]; others leave it out.
    lead = "/prefix" if in_path else ""
    async with at(mw, "/prefix") as c:
        metrics = await c.get(f"{lead}/api/metrics")
        assert metrics.status_code == 200 and "http_requests_total" in metrics.text
        assert (await c.get(f"{lead}/api/health/live")).status_code == 200
        assert (await c.get(f"{lead}/api/health/ready")).status_code == 200
        assert (await c.get(f"{lead}/")).text == "app"
        assert (await c.get(f"{lead}/api/metricsx")).text == "app"
    await mw.monitor.stop()


async def test_under_a_starlette_mount(wrap: Wrap) -> None:
    mw = wrap(hello)
    outer = Starlette(routes=[Mount("/sub", app=mw)])
    async with at(outer, "") as c:
        assert (await c.get("/sub/api/health/live")).status_code == 200
        assert (await c.get("/sub/api/metrics")).status_code == 200
        assert (await c.get("/sub/anything")).text == "app"
    await mw.monitor.stop()


async def test_the_dashboard_links_carry_the_root_path(wrap: Wrap) -> None:
    from asgi_monitor.config import GateSettings

    token = "root-path-admin-token-0123456789"
    mw = wrap(hello, gate=GateSettings(admin_token=token))
    async with at(mw, "/prefix") as c:
        page = await c.get("/prefix/admin/monitoring",
                           headers={"Authorization": f"Bearer {token}"})
    assert page.status_code == 200
    assert 'data-history-url="/prefix/admin/monitoring/history.json"' in page.text
    assert 'href="/prefix/admin/monitoring/export"' in page.text
    assert 'href="/prefix/api/metrics"' in page.text
    await mw.monitor.stop()


async def test_no_root_path_leaves_the_fast_test_as_it_was(wrap: Wrap) -> None:
    mw = wrap(hello)
    heads = mw._heads
    async with at(mw, "") as c:
        await c.get("/")
    assert mw._heads == heads
    await mw.monitor.stop()


async def test_serving_elsewhere_dispatches_nothing_under_a_root_path(wrap: Wrap) -> None:
    mw = MonitoringMiddleware(hello, monitor=wrap(hello).monitor, serve_endpoints=False)
    async with at(mw, "/prefix") as c:
        assert (await c.get("/prefix/api/metrics")).text == "app"
    assert mw._heads == frozenset()
    await mw.monitor.stop()


async def test_excluded_paths_match_below_the_root_path_and_in_full(wrap: Wrap) -> None:
    from asgi_monitor.config import MetricsSettings

    mw = wrap(hello, metrics=MetricsSettings(excluded_paths=("/health", "/prefix/ping")))
    async with at(mw, "/prefix") as c:
        for path in ("/prefix/health", "/prefix/ping", "/prefix/counted"):
            assert (await c.get(path)).text == "app"
        scrape = (await c.get("/prefix/api/metrics")).text
    counted = [line for line in scrape.splitlines() if line.startswith("http_requests_total{")]
    assert len(counted) == 1 and 'route="<unmatched>"' in counted[0], counted
    await mw.monitor.stop()
