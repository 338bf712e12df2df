"""A real Prometheus with native histograms on scrapes the protobuf format and reads the request
duration as a native histogram: its count, sum and quantiles agree with the known latencies of a
test endpoint, within the schema's error (schema 3: a bucket spans a factor of 2**(1/8)), in one
process and under ``uvicorn --workers 2`` (the workers' files merged)."""

from __future__ import annotations

import asyncio
import math
import os
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from support import SUPPORT, free_port, running_process, running_prometheus, serve, wait_until

from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.config import HealthSettings, MetricsSettings, SystemSettings
from asgi_monitor.exports.grafana import grafana_dashboard, queries

# How far a schema-3 quantile may sit from the true value: one bucket's width.
FACTOR = 2 ** (1 / 8)
# Seconds the endpoint sleeps, and how many requests sleep each.
PLAN = ((0.02, 30), (0.1, 30), (0.3, 10))
SERIES = '{route="/sleep"}'


async def sleep(request: Request) -> PlainTextResponse:
    await asyncio.sleep(float(request.query_params["s"]))
    return PlainTextResponse("ok")


def sent(base: str) -> tuple[list[float], list[float], set[str]]:
    """Every planned request, sent one at a time, each on a new connection (so several workers
    share them): the sleeps, each one's round trip seen by the client (no shorter than the
    duration the server measured), and the bodies (a worker's pid, or "ok")."""
    sleeps: list[float] = []
    trips: list[float] = []
    bodies: set[str] = set()
    with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0)) as client:
        for seconds, times in PLAN:
            for _ in range(times):
                started = time.perf_counter()
                answer = client.get(f"{base}/sleep", params={"s": seconds})
                trips.append(time.perf_counter() - started)
                assert answer.status_code == 200
                bodies.add(answer.text)
                sleeps.append(seconds)
    return sorted(sleeps), sorted(trips), bodies


def check_against_prometheus(api: str, client: httpx.Client, sleeps: list[float],
                             trips: list[float]) -> None:
    def query(expr: str) -> float | None:
        body = client.get(f"{api}/api/v1/query", params={"query": expr}).json()
        assert body["status"] == "success", body
        result = body["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    count = len(sleeps)
    wait_until(lambda: query(f"histogram_count(http_request_duration_seconds{SERIES})") == count,
               timeout=30, what=f"a native histogram of {count} requests in Prometheus")
    total = query(f"histogram_sum(http_request_duration_seconds{SERIES})")
    assert total is not None and sum(sleeps) <= total <= sum(trips)
    for q in (0.25, 0.5, 0.9, 0.99):
        # The k-th fastest request took at least the k-th shortest sleep and at most the k-th
        # shortest round trip; the quantile lies in the bucket of the k-th request.
        k = math.ceil(q * count)
        found = query(f"histogram_quantile({q}, http_request_duration_seconds{SERIES})")
        assert found is not None
        assert sleeps[k - 1] / FACTOR <= found <= trips[k - 1] * FACTOR, (q, found)
    # The time to first byte is native too.
    assert query(f"histogram_count(http_time_to_first_byte_seconds{SERIES})") == count


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_prometheus_reads_native_histograms_of_one_process(tmp_path: Path) -> None:
    config = MonitoringConfig(metrics=MetricsSettings(native_histograms=True),
                              health=HealthSettings(default_checks=False),
                              system=SystemSettings(metrics=False))
    app = MonitoringMiddleware(Starlette(routes=[Route("/sleep", sleep)]),
                               monitor=build_monitor(config, CollectorRegistry()))
    with serve(app) as base:
        with running_prometheus(tmp_path, base.removeprefix("http://"),
                                flags=("--enable-feature=native-histograms",)) as (api, client):
            sleeps, trips, _ = sent(base)
            check_against_prometheus(api, client, sleeps, trips)
            [target] = client.get(f"{api}/api/v1/targets").json()["data"]["activeTargets"]
            assert target["health"] == "up" and target["lastError"] == ""
            # The Grafana dashboard's latency panels read the native histogram (this
            # Prometheus keeps no _bucket series of it).
            panels = [e.replace("$__rate_interval", "1m").replace("$job", "asgi")
                      .replace("$instance", target["labels"]["instance"])
                      for e in queries(grafana_dashboard(""))
                      if "histogram_quantile" in e and "http_request_duration" in e]
            assert len(panels) == 4
            for expr in panels:
                body = client.get(f"{api}/api/v1/query", params={"query": expr}).json()
                assert body["status"] == "success" and body["data"]["result"], (expr, body)
                assert client.get(f"{api}/api/v1/query", params={
                    "query": "count(http_request_duration_seconds_bucket)"}).json()[
                    "data"]["result"] == []


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_prometheus_reads_native_histograms_of_two_workers(tmp_path: Path) -> None:
    directory = tmp_path / "multiproc"
    directory.mkdir(mode=0o700)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    command = [sys.executable, "-m", "uvicorn", "native_app:app", "--app-dir", str(SUPPORT),
               "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
               "--log-level", "warning"]
    with running_process(command, f"{url}/warmup", env=env, timeout=60), \
            running_prometheus(tmp_path, f"127.0.0.1:{port}",
                               flags=("--enable-feature=native-histograms",)) as (api, client):
        sleeps, trips, pids = sent(url)
        # Both workers served some: the native buckets of two files were merged.
        assert len(pids) == 2, pids
        check_against_prometheus(api, client, sleeps, trips)
