"""Every query of the Grafana dashboard returns data from a real Prometheus scraping a test app
with traffic."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from support import running_prometheus, serve, wait_until

from asgi_monitor import (
    MonitoringConfig,
    MonitoringMiddleware,
    build_monitor,
    get_metrics_collector,
    monitor_database_operation,
    set_default_monitor,
)
from asgi_monitor.config import HealthSettings, MetricsSettings
from asgi_monitor.exports.grafana import grafana_dashboard, queries
from asgi_monitor.exports.metric_names import request_names

NAMESPACE = "shop"


# -- against a real Prometheus --------------------------------------------------------------------
@monitor_database_operation("select_items")
def select_items(fail: bool) -> list[int]:
    if fail:
        raise RuntimeError("db down")
    return [1, 2, 3]


async def items(request: Request) -> PlainTextResponse:
    select_items(False)
    cache = get_metrics_collector().cache
    if int(request.path_params["id"]) % 3:
        cache.hit("items")
    else:
        cache.miss("items")
    return PlainTextResponse("ok")


async def broken(request: Request) -> PlainTextResponse:
    try:
        select_items(True)
    except RuntimeError:
        pass
    return PlainTextResponse("boom", status_code=500)


@pytest.fixture(params=["classic", "otel", "both"])
def naming(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def app(naming: str) -> Iterator[MonitoringMiddleware]:
    starlette = Starlette(routes=[Route("/items/{id}", items), Route("/broken", broken)])
    config = MonitoringConfig(
        metrics=MetricsSettings(namespace=NAMESPACE, metric_names=naming,
                                header_labels=(("tenant", "X-Tenant"),)),
        health=HealthSettings(interval_seconds=1))
    monitor = build_monitor(config, CollectorRegistry())
    # The decorators and get_metrics_collector() use the process-wide monitor: this one.
    previous = set_default_monitor(monitor)
    yield MonitoringMiddleware(starlette, monitor=monitor)
    set_default_monitor(previous)


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_every_query_returns_data_from_a_real_prometheus(app: MonitoringMiddleware,
                                                         tmp_path: Path, naming: str) -> None:
    with serve(app) as base:
        target = base.removeprefix("http://")
        # The variables as Grafana fills them in with this one target (and tenant) chosen.
        expressions = [e.replace("$__rate_interval", "1m").replace("$job", "asgi")
                       .replace("$instance", target).replace("$tenant", "acme") for e in
                       queries(grafana_dashboard(NAMESPACE, metric_names=naming,
                                                 request_labels=("tenant",)))]
        with running_prometheus(tmp_path, target) as (api, client):

            def scraped() -> bool:
                body = client.get(f"{api}/api/v1/query", params={"query": "up"}).json()
                return any(r["value"][1] == "1" for r in body["data"]["result"])

            wait_until(scraped, timeout=30, what="the first scrape")
            # Traffic across several scrapes, so every rate() has two changing samples.
            with httpx.Client(base_url=base, timeout=5,
                              headers={"X-Tenant": "acme"}) as app_client:
                for round_ in range(8):
                    for i in range(6):
                        app_client.get(f"/items/{i + round_}")
                    app_client.get("/broken")
                    time.sleep(0.5)

            empty: dict[str, object] = {}
            for expr in expressions:
                def answered(expr: str = expr) -> bool:
                    body = client.get(f"{api}/api/v1/query", params={"query": expr}).json()
                    assert body["status"] == "success", (expr, body)
                    result = body["data"]["result"]
                    empty[expr] = result
                    return bool(result)

                deadline = time.monotonic() + 15
                while not answered() and time.monotonic() < deadline:
                    time.sleep(0.5)
            failing = {e: r for e, r in empty.items() if not r}
            assert failing == {}, failing
            # What the job and instance variables' label_values() queries list.
            requests = request_names(naming).requests
            for label, expected in (("job", ["asgi"]), ("instance", [target]),
                                    ("tenant", ["acme"])):
                body = client.get(f"{api}/api/v1/label/{label}/values",
                                  params={"match[]": f"{NAMESPACE}_{requests}"}
                                  ).json()
                assert body["data"] == expected

