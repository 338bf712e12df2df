"""Accept-Encoding on /api/metrics: gzip only when the client gives it a q-value above 0."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from support import client, scraped_app

from asgi_monitor.web.metrics import accepts_gzip

CASES = [
    (None, False),
    ("", False),
    ("gzip", True),
    ("GZIP", True),
    ("Gzip;Q=0.5", True),
    ("gzip;q=0.5", True),
    ("gzip;q=1", True),
    ("gzip;q=0.001", True),
    ("gzip;q=0", False),
    ("gzip; q=0.000", False),
    ("GZIP;Q=0", False),
    ("deflate, gzip;q=0", False),
    ("gzip;q=0, *", False),  # the explicit entry wins over the wildcard
    ("*", True),
    ("*;q=0.3", True),
    ("*;q=0", False),
    ("*;q=0, gzip", True),
    ("br, deflate", False),
    ("identity", False),
    ("x-gzip", True),
    ("gzip;q=abc", False),  # unreadable weights count as a refusal
    ("gzip;q=nan", False),
    ("gzip;q=inf", False),
    ("gzip;q=-1", False),
    ("gzip;level=1", True),
    ("gzipped", False),
]


@pytest.mark.parametrize(("header", "expected"), CASES)
def test_accepts_gzip(header: str | None, expected: bool) -> None:
    assert accepts_gzip(header or "") is expected


@pytest.mark.parametrize(("header", "expected"), CASES)
async def test_the_endpoint_follows_the_negotiation(registry: CollectorRegistry,
                                                    header: str | None, expected: bool) -> None:
    mw = scraped_app(registry)
    headers = {"accept-encoding": header} if header is not None else {}
    async with client(mw) as c:
        del c.headers["accept-encoding"]  # httpx's default; None means no header at all
        await c.get("/")
        r = await c.get("/api/metrics", headers=headers)
    assert r.status_code == 200
    assert ("content-encoding" in r.headers) is expected
    if expected:
        assert r.headers["content-encoding"] == "gzip"
    assert "http_requests_total" in r.text
    assert "Accept-Encoding" in r.headers["vary"]
