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
