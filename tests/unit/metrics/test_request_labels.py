"""Request labels the user chooses: their values from each source, bounded per label, on the
request families of both stores (merged worker files too), in every naming, written directly as
prometheus_client writes them, and under the series cap."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, values
from prometheus_client.exposition import choose_encoder
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from support import PACKAGE_ROOT, SUPPORT

from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.config import AlertSettings, HealthSettings, MetricsSettings, SystemSettings
from asgi_monitor.config.labels import Computed, RequestHeader, ResponseHeader, ScopeValue
from asgi_monitor.monitor import Monitor
from asgi_monitor.request_labels import MAX_VALUE_CHARS, OTHER, LabelResolver
from asgi_monitor.store.exposition import encode
from asgi_monitor.store.merge import MergedFiles
from asgi_monitor.store.multiprocess import MultiprocessRequestMetrics
from asgi_monitor.store.settings import StoreSettings
from asgi_monitor.store.worker_file import worker_files

ACCEPTS = ("", "application/openmetrics-text;version=1.0.0")


@pytest.fixture
def multiproc_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    # multiprocess_dir() switches prometheus_client's value storage; put it back afterwards.
    monkeypatch.setattr(values, "ValueClass", values.ValueClass)
    yield monkeypatch


def monitor(**metrics: Any) -> Monitor:
    return build_monitor(
        MonitoringConfig(metrics=MetricsSettings(**metrics),
                         health=HealthSettings(default_checks=False),
                         alerts=AlertSettings(default_rules=False),
                         system=SystemSettings(metrics=False)),
        CollectorRegistry())


def assert_same(registry: CollectorRegistry) -> None:
    for accept in ACCEPTS:
        encoder, content_type = choose_encoder(accept)
        assert encode(registry, encoder, content_type) == encoder(registry), accept


def text_of(registry: CollectorRegistry) -> str:
    encoder, content_type = choose_encoder("")
    return encode(registry, encoder, content_type).decode()


# -- the resolver ----------------------------------------------------------------------------


def resolver(*labels: tuple[str, Any], max_values: int = 20,
             failed: list[tuple[str, BaseException]] | None = None) -> LabelResolver:
    sink = failed if failed is not None else []
    return LabelResolver(labels, max_values, lambda where, exc: sink.append((where, exc)))


def test_each_source_gives_its_value_and_a_missing_one_the_empty_value() -> None:
    found = resolver(
        ("tenant", RequestHeader("X-Tenant")),
        ("cache", ResponseHeader("X-Cache")),
        ("plan", ScopeValue("state", "plan")),
        ("big", Computed(lambda scope, status, headers: "yes" if status >= 500 else None)))
    scope = {"headers": [(b"x-tenant", b"acme")], "state": {"plan": "pro"}}
    assert found.resolve(scope, 503, [(b"x-cache", b"HIT")]) == ("acme", "HIT", "pro", "yes")
    assert found.resolve({"headers": []}, 200, []) == ("", "", "", "")
    assert found.needs_response_headers
    assert not resolver(("tenant", RequestHeader("X-Tenant"))).needs_response_headers


def test_several_header_labels_in_one_pass_the_first_of_a_repeated_header() -> None:
    found = resolver(("tenant", RequestHeader("X-Tenant")), ("client", RequestHeader("X-Client")))
    scope = {"headers": [(b"x-client", b"web"), (b"x-tenant", b"acme"), (b"x-tenant", b"evil")]}
    assert found.resolve(scope, 200, []) == ("acme", "web")
    assert found.resolve({"headers": [(b"x-client", b"cli")]}, 200, []) == ("", "cli")
    assert found.resolve({}, 200, []) == ("", "")


def test_the_first_n_values_keep_their_own_and_later_ones_are_other() -> None:
    found = resolver(("tenant", RequestHeader("x-tenant")), max_values=2)

    def of(value: bytes) -> str:
        return found.resolve({"headers": [(b"x-tenant", value)]}, 200, [])[0]

    assert [of(b"a"), of(b"b"), of(b"c"), of(b"a"), of(b"d"), of(b"b")] == [
        "a", "b", OTHER, "a", OTHER, "b"]
    # The empty value is no value: it never takes a place.
    assert found.resolve({"headers": []}, 200, []) == ("",)


def test_allowed_values_keep_theirs_and_others_are_other() -> None:
    found = resolver(("plan", ScopeValue("state", "plan", allowed=("free", "pro"))))
    assert found.resolve({"state": {"plan": "pro"}}, 200, []) == ("pro",)
    assert found.resolve({"state": {"plan": "gold"}}, 200, []) == (OTHER,)


def test_hostile_header_values_become_bounded_printable_text() -> None:
    found = resolver(("tenant", RequestHeader("x-tenant")))
    long, invalid, control = b"x" * 10_000, b"\xff\xfeab", b"a\nb\x1b[31m"
    assert found.resolve({"headers": [(b"x-tenant", long)]}, 200, []) == ("x" * MAX_VALUE_CHARS,)
    assert found.resolve({"headers": [(b"x-tenant", invalid)]}, 200, []) == ("\ufffd\ufffdab",)
    [value] = found.resolve({"headers": [(b"x-tenant", control)]}, 200, [])
    assert value.isprintable() and "\n" not in value and value.startswith("a")


def test_a_failing_callable_loses_its_value_and_is_counted() -> None:
    failed: list[tuple[str, BaseException]] = []

    def broken(scope: Any, status: int, headers: Any) -> str:
        raise RuntimeError("boom")

    found = resolver(("a", Computed(broken)), ("b", RequestHeader("x-b")), failed=failed)
    assert found.resolve({"headers": [(b"x-b", b"v")]}, 200, []) == ("", "v")
    assert [where for where, _ in failed] == ["request_labels"]
    # A value of the wrong type is the same failure.
    found = resolver(("a", Computed(lambda *_: object())), failed=failed)  # type: ignore[arg-type]
    assert found.resolve({}, 200, []) == ("",)
    assert len(failed) == 2


# -- through the middleware -------------------------------------------------------------------


def app_with(built: Monitor) -> MonitoringMiddleware:
    async def item(request: Request) -> PlainTextResponse:
        request.state.plan = request.query_params.get("plan", "free")
        return PlainTextResponse("ok", headers={"X-Cache": request.query_params.get("c", "MISS")})

    return MonitoringMiddleware(Starlette(routes=[Route("/items/{n}", item)]), monitor=built)


async def get_all(app: MonitoringMiddleware, requests: list[tuple[str, dict[str, str]]],
                  ) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return [await client.get(path, headers=headers) for path, headers in requests]


@pytest.mark.parametrize("naming", ["classic", "otel", "both"])
async def test_labels_from_every_source_on_the_request_families(naming: str) -> None:
    def region(scope: Any, status: int, headers: Any) -> str | None:
        return "eu" if status == 200 else None

    built = monitor(metric_names=naming, header_labels=(("tenant", "X-Tenant"),),
                    request_labels={"cache": ResponseHeader("X-Cache"),
                                    "plan": ScopeValue("state", "plan"), "region": region},
                    constant_labels={"service": "shop"})
    answers = await get_all(app_with(built), [
        ("/items/1?plan=pro&c=HIT", {"X-Tenant": "acme"}),
        ("/items/2", {"X-Tenant": "acme"}),
        ("/items/3", {}),
    ])
    assert [a.text for a in answers] == ["ok"] * 3
    registry = built.registry
    assert_same(registry)
    if naming != "otel":
        labels = {"method": "GET", "route": "/items/{n}", "status": "200", "service": "shop",
                  "region": "eu"}
        assert registry.get_sample_value("http_requests_total", {
            **labels, "tenant": "acme", "cache": "HIT", "plan": "pro"}) == 1
        assert registry.get_sample_value("http_requests_total", {
            **labels, "tenant": "acme", "cache": "MISS", "plan": "free"}) == 1
        assert registry.get_sample_value("http_requests_total", {
            **labels, "tenant": "", "cache": "MISS", "plan": "free"}) == 1
        del labels["status"]
        assert registry.get_sample_value("http_time_to_first_byte_seconds_count", {
            **labels, "tenant": "", "cache": "MISS", "plan": "free"}) == 1
    if naming != "classic":
        assert registry.get_sample_value("http_server_request_duration_seconds_count", {
            "http_request_method": "GET", "http_route": "/items/{n}",
            "http_response_status_code": "200", "url_scheme": "http", "service": "shop",
            "tenant": "acme", "cache": "HIT", "plan": "pro", "region": "eu"}) == 1
        assert registry.get_sample_value("http_server_response_body_size_bytes_count", {
            "http_request_method": "GET", "http_route": "/items/{n}",
            "http_response_status_code": "200", "url_scheme": "http", "service": "shop",
            "tenant": "", "cache": "MISS", "plan": "free", "region": "eu"}) == 1


async def test_values_past_the_limit_fold_into_other_from_the_environment() -> None:
    config = MonitoringConfig.from_env({"MONITORING_HEADER_LABELS": "tenant=X-Tenant",
                                        "MONITORING_LABEL_MAX_VALUES": "2"})
    built = build_monitor(config, CollectorRegistry())
    await get_all(app_with(built), [("/items/1", {"X-Tenant": t}) for t in "abcab"]
                  + [("/items/1", {})])
    total = {"method": "GET", "route": "/items/{n}", "status": "200"}
    read = built.registry.get_sample_value
    assert [read("http_requests_total", {**total, "tenant": t})
            for t in ("a", "b", OTHER, "")] == [2, 2, 1, 1]
    assert read("http_requests_total", {**total, "tenant": "c"}) is None


async def test_a_failing_label_never_fails_the_request() -> None:
    def broken(scope: Any, status: int, headers: Any) -> str:
        raise RuntimeError("boom")

    built = monitor(request_labels={"broken": broken})
    [answer] = await get_all(app_with(built), [("/items/1", {})])
    assert answer.status_code == 200 and answer.text == "ok"
    assert built.registry.get_sample_value("http_requests_total", {
        "method": "GET", "route": "/items/{n}", "status": "200", "broken": ""}) == 1
    assert built.registry.get_sample_value("asgi_monitor_internal_errors_total",
                                           {"where": "request_labels"}) == 1


def test_the_cap_counts_label_values_and_overflows_them_too() -> None:
    built = monitor(header_labels=(("tenant", "X-Tenant"),), max_series=2)
    store = built.collector.requests
    for tenant in ("a", "b", "c", "d"):
        store.record_labelled("GET", "/x", 200, "http", (tenant,), 0.01, 0.001, 0, 1, None)
    read = built.registry.get_sample_value
    base = {"method": "GET", "status": "200"}
    # Two label sets keep their labels; the others count under one overflow series.
    assert read("http_requests_total", {**base, "route": "/x", "tenant": "b"}) == 1
    assert read("http_requests_total", {**base, "route": "/x", "tenant": "c"}) is None
    assert read("http_requests_total", {**base, "route": "<overflow>",
                                        "tenant": "<overflow>"}) == 2
    assert store.dropped_counts()["http_requests_total"] == 2


# -- worker files ---------------------------------------------------------------------------


def worker(directory: Path, **settings: Any) -> MultiprocessRequestMetrics:
    return MultiprocessRequestMetrics(str(directory), StoreSettings(
        duration_buckets=(0.1, 1.0), size_buckets=(100.0,), max_series=50,
        label_names=("tenant",), **settings))


@pytest.mark.parametrize("naming", ["classic", "otel", "both"])
def test_worker_files_keep_and_merge_the_labels(
        multiproc_env: pytest.MonkeyPatch, tmp_path: Path, naming: str) -> None:
    multiproc_env.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    built = monitor(metric_names=naming, header_labels=(("tenant", "X-Tenant"),),
                    duration_buckets=(0.1, 1.0), size_buckets=(100.0,))
    one = built.collector.requests
    other = worker(tmp_path)
    for store in (one, other):
        store.record_labelled("GET", "/x", 200, "http", ("acme",), 0.05, 0.01, 0, 10, None)
        store.record_labelled("GET", "/x", 200, "http", ('q"\\z',), 0.5, 0.01, 0, 10, None)
        # A denied WebSocket handshake is recorded without labels.
        store.record("GET", "/ws", 403, "ws", 0.01, 0.01, 0, 0)
    registry = built.scrape_registry()
    assert_same(registry)
    read = registry.get_sample_value
    if naming != "otel":
        total = {"method": "GET", "route": "/x", "status": "200"}
        assert read("http_requests_total", {**total, "tenant": "acme"}) == 2
        assert read("http_requests_total", {**total, "tenant": 'q"\\z'}) == 2
        assert read("http_requests_total", {"method": "GET", "route": "/ws", "status": "403",
                                            "tenant": ""}) == 2
    else:
        assert read("http_server_request_duration_seconds_count", {
            "http_request_method": "GET", "http_route": "/x", "http_response_status_code": "200",
            "url_scheme": "http", "tenant": "acme"}) == 2
    # The sampler's values carry them too (OTLP exports them as attributes).
    merged = MergedFiles(str(tmp_path), StoreSettings.of(built.config.metrics), compact=False)
    snapshot = merged.request_snapshot(merged.read())
    assert {(lat.route, lat.labels, lat.count) for lat in snapshot.latency} == {
        ("/x", (("tenant", "acme"),), 2.0), ("/x", (("tenant", 'q"\\z'),), 2.0),
        ("/ws", (("tenant", ""),), 2.0)}
    other.close()


def test_the_merge_caps_label_values_across_workers(tmp_path: Path) -> None:
    first, second = worker(tmp_path), worker(tmp_path)
    first.record_labelled("GET", "/x", 200, "http", ("a",), 0.05, 0.01, 0, 10, None)
    second.record_labelled("GET", "/x", 200, "http", ("b",), 0.05, 0.01, 0, 10, None)
    second.record_labelled("GET", "/x", 200, "http", ("c",), 0.05, 0.01, 0, 10, None)
    merged = MergedFiles(str(tmp_path), StoreSettings(
        duration_buckets=(0.1, 1.0), size_buckets=(100.0,), max_series=2,
        label_names=("tenant",)), compact=False)
    rows = {(row.route, row.labels): row.requests
            for row in merged.stored_series(merged.read())}
    assert rows == {("/x", ("a",)): 1.0, ("/x", ("b",)): 1.0,
                    ("<overflow>", ("<overflow>",)): 1.0}
    first.close()
    second.close()


def test_a_compaction_keeps_the_labels(tmp_path: Path) -> None:
    # A dead worker: a real process that recorded and exited.
    plan = {"labelled": [["GET", "/x", 200, ["acme"], 2]], "requests": [["GET", "/x", 200, 1]]}
    done = subprocess.run(
        [sys.executable, str(SUPPORT / "store_worker.py"), json.dumps(plan)],
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": PACKAGE_ROOT},
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    defaults = MetricsSettings()
    settings = StoreSettings(duration_buckets=defaults.duration_buckets,
                             size_buckets=defaults.size_buckets, max_series=50,
                             label_names=("tenant",))
    merged = MergedFiles(str(tmp_path), settings, compact=False)
    before = {(row.route, row.labels): row.requests
              for row in merged.stored_series(merged.read())}
    assert merged.compact() == 1
    assert not worker_files(str(tmp_path))  # folded into the retired file
    again = MergedFiles(str(tmp_path), settings, compact=False)
    after = {(row.route, row.labels): row.requests for row in again.stored_series(again.read())}
    assert before == after == {("/x", ("acme",)): 2.0, ("/x", ("",)): 1.0}


def test_otlp_carries_the_labels_as_attributes() -> None:
    pytest.importorskip("opentelemetry.sdk.metrics.export")
    from asgi_monitor.exports.otlp import metrics_data

    built = monitor(header_labels=(("tenant", "X-Tenant"),))
    built.requests.record_labelled("GET", "/a", 200, "http", ("acme",), 0.02, 0.01, 0, 10, None)
    built.requests.record_labelled("GET", "/a", 200, "http", ("",), 0.2, 0.01, 0, 10, None)
    data = metrics_data(built.sampler.read(), resource={"service.name": "shop"},
                        start_ns=1, now_ns=2)
    metrics = {m.name: m for m in data.resource_metrics[0].scope_metrics[0].metrics}
    points = {(p.attributes["http.route"], p.attributes["tenant"]): p.count
              for p in metrics["http.server.request.duration"].data.data_points}
    assert points == {("/a", "acme"): 1, ("/a", ""): 1}
