"""Streams under a real uvicorn: a Server-Sent Events response whose first event goes out at once
is recorded by its first byte, its lifetime apart; a client that leaves mid-stream is a 499 with
its lifetime recorded, and the open-streams gauge is back to 0."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import PACKAGE_ROOT, SUPPORT, free_port, running_process, wait_until
from support.stream_app import EVENTS, GAP

pytestmark = pytest.mark.integration

ENV = {**{k: v for k, v in os.environ.items()
          if not k.startswith(("MONITORING_", "ALERT", "PROMETHEUS_MULTIPROC_DIR"))},
       "PYTHONPATH": PACKAGE_ROOT, "MONITORING_STREAM_ROUTES": "/ndjson"}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _scrape(base: str) -> Samples:
    text = httpx.get(f"{base}/api/metrics", timeout=10).text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _get(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def _serve(tmp_path: Path, workers: int) -> tuple[list[str], dict[str, str]]:
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "stream_app:app", "--app-dir", str(SUPPORT),
               "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    env = dict(ENV)
    if workers > 1:
        directory = tmp_path / "metrics"
        directory.mkdir(mode=0o700)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    return command, env


@pytest.mark.parametrize("workers", [1, 2])
def test_streams_under_uvicorn(tmp_path: Path, workers: int) -> None:
    command, env = _serve(tmp_path, workers)
    base = f"http://127.0.0.1:{command[command.index('--port') + 1]}"
    with running_process(command, f"{base}/plain", env=env):
        with httpx.Client(base_url=base, timeout=30) as client:
            for path in ("/events", "/ndjson"):
                body = client.get(path).text
                assert body.count("\n") >= EVENTS + 1 and f"{EVENTS}" in body

            # A client that leaves mid-stream: open while it listens, then a 499.
            with client.stream("GET", "/forever") as response:
                lines = response.iter_lines()
                assert next(lines) == "data: 0"
                wait_until(lambda: _get(_scrape(base), "http_streams_open") == 1,
                           timeout=20, what="the stream counted open")
        after = wait_until(
            lambda: (lambda s: s if _get(s, "http_requests_total", method="GET",
                                         route="/forever", status="499") == 1 else None)(
                _scrape(base)), timeout=20, what="the abandoned stream recorded as a 499")

    stream_length = EVENTS * GAP
    for route in ("/events", "/ndjson"):
        labels = {"method": "GET", "route": route}
        duration = _get(after, "http_request_duration_seconds_sum", **labels)
        ttfb = _get(after, "http_time_to_first_byte_seconds_sum", **labels)
        lifetime = _get(after, "http_stream_duration_seconds_sum", **labels)
        assert _get(after, "http_stream_duration_seconds_count", **labels) == 1
        assert duration is not None and ttfb is not None and lifetime is not None
        # The request's duration is its first byte: the whole stream came after it.
        assert duration == ttfb
        assert lifetime - duration >= stream_length
        assert _get(after, "http_requests_total", status="200", **labels) == 1

    forever = {"method": "GET", "route": "/forever"}
    assert _get(after, "http_stream_duration_seconds_count", **forever) == 1
    assert (_get(after, "http_stream_duration_seconds_sum", **forever) or 0) > 0
    assert _get(after, "http_requests_total", status="200", **forever) is None
    assert _get(after, "http_streams_open") == 0
    # Nothing in progress once the streams ended (the scrape itself is not recorded).
    assert sum(value for (name, _), value in after.items()
               if name == "http_requests_in_progress") == 0
    # An ordinary request is no stream.
    assert _get(after, "http_stream_duration_seconds_count", method="GET",
                route="/plain") is None
