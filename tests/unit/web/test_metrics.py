"""GET /api/metrics: prometheus_client's exposition and negotiated formats (promtool checks it in
integration/test_metrics_promtool.py)."""

from __future__ import annotations

import gzip

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from support import client, scraped_app, traffic_and_scrape

from asgi_monitor.config import PathSettings


async def test_text_format_by_default(registry: CollectorRegistry) -> None:
    r = await traffic_and_scrape(scraped_app(registry))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    totals = {(s.labels["route"], s.labels["status"]): s.value
              for s in families["http_requests"].samples}
    assert totals == {("/", "200"): 1, ("/items/{item_id}", "200"): 1, ("/", "405"): 1,
                      ("<unmatched>", "404"): 1}


async def test_openmetrics_when_asked(registry: CollectorRegistry) -> None:
    r = await traffic_and_scrape(scraped_app(registry),
                                 accept="application/openmetrics-text; version=1.0.0")
    assert r.headers["content-type"].startswith("application/openmetrics-text")
    assert r.text.rstrip().endswith("# EOF")


async def test_gzip_when_accepted(registry: CollectorRegistry) -> None:
    mw = scraped_app(registry)
    async with client(mw) as c:
        await c.get("/")
        raw = await c.get("/api/metrics", headers={"accept-encoding": "gzip"})
    # httpx decodes transparently; the header proves the body travelled compressed.
    assert raw.headers["content-encoding"] == "gzip"
    assert "http_requests_total" in raw.text
    assert gzip.decompress(gzip.compress(raw.content)) == raw.content


async def test_custom_metrics_path(registry: CollectorRegistry) -> None:
    mw = scraped_app(registry, paths=PathSettings(metrics="/internal/prom"))
    async with client(mw) as c:
        assert (await c.get("/internal/prom")).status_code == 200
        assert (await c.get("/api/metrics")).status_code == 404
