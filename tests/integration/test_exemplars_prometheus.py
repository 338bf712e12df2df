"""A real Prometheus with exemplar storage keeps the trace id a request sent in `traceparent`."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
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
            start = time.time() - 60
            found: list[dict[str, str]] = []

            def stored() -> bool:
                body = client.get(f"{api}/api/v1/query_exemplars", params={
                    "query": "http_request_duration_seconds_bucket",
                    "start": start, "end": time.time() + 60}).json()
                assert body["status"] == "success", body
                found[:] = [e["labels"] for series in body["data"]
                            for e in series["exemplars"]]
                return bool(found)

            wait_until(stored, timeout=30, what="an exemplar in Prometheus")
            assert found == [{"trace_id": TRACE, "span_id": SPAN}]

