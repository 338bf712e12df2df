"""promtool accepts the exposition GET /api/metrics serves."""

from __future__ import annotations

import subprocess

from prometheus_client import CollectorRegistry
from support import require_binary, scraped_app, traffic_and_scrape

from asgi_monitor.config import MetricsSettings


async def test_output_passes_promtool_check_metrics(registry: CollectorRegistry) -> None:
    promtool = require_binary("promtool")
    r = await traffic_and_scrape(scraped_app(registry, metrics=MetricsSettings(namespace="shop")))
    result = subprocess.run([promtool, "check", "metrics"], input=r.content,
                            capture_output=True, timeout=60)
    problems = (result.stdout + result.stderr).decode()
    assert result.returncode == 0, problems


async def test_otel_names_pass_promtool_check_metrics(registry: CollectorRegistry) -> None:
    promtool = require_binary("promtool")
    r = await traffic_and_scrape(scraped_app(
        registry, metrics=MetricsSettings(namespace="shop", metric_names="both")))
    assert b"# TYPE shop_http_server_request_duration_seconds histogram" in r.content
    assert b"# TYPE shop_http_requests_total counter" in r.content
    result = subprocess.run([promtool, "check", "metrics"], input=r.content,
                            capture_output=True, timeout=60)
    problems = (result.stdout + result.stderr).decode()
    assert result.returncode == 0, problems
