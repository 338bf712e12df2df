"""A real Prometheus with exemplar storage keeps the trace id a request sent in `traceparent`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from support import running_prometheus, serve, starlette_app, wait_until

from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.config import HealthSettings, MetricsSettings, SystemSettings

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_query_exemplars_returns_the_trace_id_sent(tmp_path: Path) -> None:
    config = MonitoringConfig(metrics=MetricsSettings(exemplars=True),
                              health=HealthSettings(default_checks=False),
                              system=SystemSettings(metrics=False))
    app = MonitoringMiddleware(starlette_app(), monitor=build_monitor(config, CollectorRegistry()))
    with serve(app) as base:
        target = base.removeprefix("http://")
        with running_prometheus(tmp_path, target,
                                flags=("--enable-feature=exemplar-storage",)) as (api, client):
            httpx.get(f"{base}/", headers={"traceparent": f"00-{TRACE}-{SPAN}-01"})
            found = exemplars_stored(client, api, at_least=1)
            assert found == [{"trace_id": TRACE, "span_id": SPAN}]



@pytest.mark.integration
@pytest.mark.timeout(120)
def test_an_invalid_hook_answer_never_takes_the_target_down(tmp_path: Path) -> None:
    """A label name OpenMetrics refuses made Prometheus drop the whole scrape, and a bytes value
    made every OpenMetrics scrape raise: both are checked before they are kept."""
    def hook(scope: Any) -> dict[str, Any] | None:
        if scope["path"] == "/bad":
            return {"request-id": "r-1"}  # an invalid label name
        if scope["path"] == "/quoted":
            return {"note": 'say "hi"\\\n'}  # any UTF-8 text is a valid value, escaped
        return {"request_id": dict(scope["headers"])[b"x-request-id"]}  # bytes

    async def ok(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    config = MonitoringConfig(metrics=MetricsSettings(exemplars=True, exemplar=hook),
                              health=HealthSettings(default_checks=False),
                              system=SystemSettings(metrics=False))
    app = MonitoringMiddleware(
        Starlette(routes=[Route("/", ok), Route("/bad", ok), Route("/quoted", ok)]),
        monitor=build_monitor(config, CollectorRegistry()))
    with serve(app) as base:
        target = base.removeprefix("http://")
        with running_prometheus(tmp_path, target,
                                flags=("--enable-feature=exemplar-storage",)) as (api, client):
            httpx.get(f"{base}/bad")
            httpx.get(f"{base}/quoted")
            httpx.get(f"{base}/", headers={"x-request-id": "req-7"})
            found = exemplars_stored(client, api, at_least=2)
            [scraped] = client.get(f"{api}/api/v1/targets").json()["data"]["activeTargets"]
    # The invalid one is not there; the bytes one is, decoded. The quoted one is kept too:
    # this Prometheus stores exemplar values as escaped in the exposition (its parser does not
    # unescape them), so that one is compared escaped.
    assert sorted(found, key=str) == [{"note": 'say \\"hi\\"\\\\\\n'}, {"request_id": "req-7"}]
    assert scraped["health"] == "up" and scraped["lastError"] == ""


def exemplars_stored(client: httpx.Client, api: str, at_least: int) -> list[dict[str, str]]:
    """The labels of the exemplars Prometheus holds on the request duration buckets, once there
    are ``at_least`` of them (the last minute and the next; fails after 30 s)."""
    start = time.time() - 60
    found: list[dict[str, str]] = []

    def stored() -> bool:
        body = client.get(f"{api}/api/v1/query_exemplars", params={
            "query": "http_request_duration_seconds_bucket",
            "start": start, "end": time.time() + 60}).json()
        assert body["status"] == "success", body
        found[:] = [e["labels"] for series in body["data"] for e in series["exemplars"]]
        return len(found) >= at_least

    wait_until(stored, timeout=30, what=f"{at_least} exemplar(s) in Prometheus")
    return found
