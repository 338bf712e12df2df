"""Exemplars on the duration histogram: where the trace id comes from, and the exposition that
carries it (OpenMetrics only)."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.exposition import generate_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from support import client, sample, scraped_app

from asgi_monitor.config import MetricsSettings
from asgi_monitor.exemplars import exemplar_problem, from_traceparent

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE}-{SPAN}-01"


@pytest.mark.parametrize(("value", "expected"), [
    (TRACEPARENT, {"trace_id": TRACE, "span_id": SPAN}),
    (f"00-{TRACE}-{SPAN}-00", {"trace_id": TRACE, "span_id": SPAN}),  # not sampled: still ours
    (f" {TRACEPARENT} ", {"trace_id": TRACE, "span_id": SPAN}),
    (f"01-{TRACE}-{SPAN}-01-later", {"trace_id": TRACE, "span_id": SPAN}),  # a later version
    (f"00-{TRACE}-{SPAN}-01-later", None),  # version 00 has exactly four fields
    (f"ff-{TRACE}-{SPAN}-01", None),
    (f"00-{'0' * 32}-{SPAN}-01", None),
    (f"00-{TRACE}-{'0' * 16}-01", None),
    (f"00-{TRACE.upper()}-{SPAN}-01", None),
    (f"00-{TRACE[:-1]}-{SPAN}-01", None),
    (f"00_{TRACE}_{SPAN}_01", None),
    ("", None),
])
def test_traceparent(value: str, expected: dict[str, str] | None) -> None:
    assert from_traceparent(value) == expected


def exemplars(text: str, route: str = "/") -> dict[str, dict[str, str]]:
    """le -> exemplar labels of the duration histogram of GET ``route``."""
    families = {f.name: f for f in text_string_to_metric_families(text)}
    return {s.labels["le"]: s.exemplar.labels
            for s in families["http_request_duration_seconds"].samples
            if s.name.endswith("_bucket") and s.labels["route"] == route
            and s.exemplar is not None}


async def scrape(mw: Any, headers: dict[str, str] | None = None, times: int = 1,
                 accept: str = OPENMETRICS) -> str:
    async with client(mw) as c:
        for _ in range(times):
            await c.get("/", headers=headers or {})
        return (await c.get("/api/metrics", headers={"accept": accept})).text


async def test_off_by_default_and_nothing_kept(registry: CollectorRegistry) -> None:
    mw = scraped_app(registry)
    assert mw._exemplar is None
    assert exemplars(await scrape(mw, {"traceparent": TRACEPARENT})) == {}


async def test_traceparent_trace_on_the_bucket_of_the_request(
        registry: CollectorRegistry) -> None:
    mw = scraped_app(registry, metrics=MetricsSettings(exemplars=True))
    found = exemplars(await scrape(mw, {"traceparent": TRACEPARENT}))
    assert list(found.values()) == [{"trace_id": TRACE, "span_id": SPAN}]
    # On the bucket the request was counted in first (its cumulative count goes 0 -> 1 there).
    (le,) = found
    assert sample(registry, "http_request_duration_seconds_bucket", method="GET", route="/",
                  le=le) == 1


async def test_the_last_exemplar_per_bucket_is_kept(registry: CollectorRegistry) -> None:
    mw = scraped_app(registry, metrics=MetricsSettings(exemplars=True))
    store = mw.monitor.collector.requests
    other = "0af7651916cd43dd8448eb211c80319c"
    # Durations given, so the buckets are known: two in (0.25, 0.5] ms, one in (5, 10] ms.
    for trace, duration in ((TRACE, 0.0003), (other, 0.0004), (TRACE, 0.007)):
        store.record_exemplar("GET", "/", 200, "http", duration, duration, 0, 2,
                              {"trace_id": trace})
    store.record_exemplar("GET", "/", 200, "http", 0.0003, 0.0003, 0, 2, None)  # keeps the last one
    families = {f.name: f for f in text_string_to_metric_families(
        generate_latest(registry).decode())}
    kept = {s.labels["le"]: (s.exemplar.labels["trace_id"], s.exemplar.value)
            for s in families["http_request_duration_seconds"].samples
            if s.name.endswith("_bucket") and s.exemplar is not None}
    assert kept == {"0.0005": (other, 0.0004), "0.01": (TRACE, 0.007)}


async def test_prometheus_text_format_has_no_exemplars(registry: CollectorRegistry) -> None:
    mw = scraped_app(registry, metrics=MetricsSettings(exemplars=True))
    text = await scrape(mw, {"traceparent": TRACEPARENT}, accept="text/plain")
    assert TRACE not in text and " # {" not in text
    assert 'http_request_duration_seconds_bucket{le="+Inf",method="GET",route="/"} 1.0' in text


async def test_a_recording_opentelemetry_span_comes_first(registry: CollectorRegistry) -> None:
    mw = scraped_app(registry, metrics=MetricsSettings(exemplars=True))
    tracer = TracerProvider().get_tracer("test")

    async def traced(scope: Any, receive: Any, send: Any) -> None:
        with tracer.start_as_current_span("request") as span:
            context = span.get_span_context()
            ids.append({"trace_id": f"{context.trace_id:032x}",
                        "span_id": f"{context.span_id:016x}"})
            await mw(scope, receive, send)

    ids: list[dict[str, str]] = []
    async with client(traced) as c:
        await c.get("/", headers={"traceparent": TRACEPARENT})
    text = await scrape(mw)
    assert list(exemplars(text).values()) == ids


async def test_the_hook_when_nothing_else_knows_the_trace(registry: CollectorRegistry) -> None:
    def hook(scope: Any) -> dict[str, str] | None:
        return {"trace_id": "from-hook"} if scope["path"] == "/" else None

    mw = scraped_app(registry, metrics=MetricsSettings(exemplars=True, exemplar=hook))
    assert list(exemplars(await scrape(mw)).values()) == [{"trace_id": "from-hook"}]
    # A header still wins over the hook.
    found = exemplars(await scrape(mw, {"traceparent": TRACEPARENT}))
    assert {"trace_id": TRACE, "span_id": SPAN} in found.values()


async def test_a_failing_hook_loses_the_exemplar_not_the_request(
        registry: CollectorRegistry) -> None:
    def hook(scope: Any) -> dict[str, str] | None:
        raise RuntimeError("broken hook")

    mw = scraped_app(registry, metrics=MetricsSettings(exemplars=True, exemplar=hook))
    assert exemplars(await scrape(mw)) == {}
    assert sample(registry, "http_requests_total", method="GET", route="/", status="200") == 1
    assert mw.monitor.collector.internal_errors.get("exemplar") == 1


async def test_labels_over_the_openmetrics_limit_are_dropped(
        registry: CollectorRegistry) -> None:
    mw = scraped_app(registry, metrics=MetricsSettings(exemplars=True,
                                                       exemplar=lambda scope: {"t": "x" * 200}))
    assert exemplars(await scrape(mw)) == {}


def test_the_setting_from_the_environment() -> None:
    from asgi_monitor import MonitoringConfig

    assert MonitoringConfig.from_env({"MONITORING_EXEMPLARS": "true"}).metrics.exemplars
    assert not MonitoringConfig().metrics.exemplars


@pytest.mark.parametrize(("answer", "expected", "why"), [
    ({"trace_id": b"abc"}, {"trace_id": "abc"}, None),  # bytes from scope["headers"]: decoded
    ({"trace_id": "é" * 120}, {"trace_id": "é" * 120}, None),  # 8 + 120: 128 characters
    ({}, None, None),  # no labels: no exemplar, nothing wrong
    ({"request-id": "1"}, None, "label name 'request-id'"),
    ({"1st": "1"}, None, "label name '1st'"),
    ({"trace_id\n": "1"}, None, "label name"),
    ({b"trace_id": "1"}, None, "label name"),
    ({"trace_id": b"\xff\xfe"}, None, "bytes that are not UTF-8"),
    ({"trace_id": "\ud800"}, None, "not valid UTF-8"),
    ({"trace_id": 42}, None, "int, not str"),
    ({"trace_id": "é" * 121}, None, "129 characters"),
    ([("trace_id", "1")], None, "not a dict"),
])
def test_the_hook_answer_is_checked_against_openmetrics(
        answer: object, expected: dict[str, str] | None, why: str | None) -> None:
    labels, problem = exemplar_problem(answer)
    assert labels == expected
    if why is None:
        assert problem is None
    else:
        assert problem is not None and why in problem


@pytest.mark.parametrize("answer", [
    {"request-id": "abc"}, {"trace_id": b"\xff"}, {"trace_id": 7}, {"t": "x" * 200}])
async def test_an_invalid_hook_answer_is_dropped_with_one_log_line(
        registry: CollectorRegistry, answer: dict[str, Any],
        caplog: pytest.LogCaptureFixture) -> None:
    mw = scraped_app(registry, metrics=MetricsSettings(exemplars=True,
                                                       exemplar=lambda scope: answer))
    # The OpenMetrics scrape still works (a bytes value used to raise in it on every scrape).
    assert exemplars(await scrape(mw, times=5)) == {}
    assert sample(registry, "http_requests_total", method="GET", route="/", status="200") == 5
    dropped = [r for r in caplog.records if "exemplar dropped" in r.getMessage()]
    assert len(dropped) == 1 and dropped[0].levelname == "WARNING"


async def test_a_bytes_value_is_kept_decoded(registry: CollectorRegistry) -> None:
    def hook(scope: Any) -> dict[str, Any]:
        return {"request_id": dict(scope["headers"])[b"x-request-id"]}

    mw = scraped_app(registry, metrics=MetricsSettings(exemplars=True, exemplar=hook))
    found = exemplars(await scrape(mw, {"x-request-id": "req-42"}))
    assert list(found.values()) == [{"request_id": "req-42"}]
