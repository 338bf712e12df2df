"""Hostile input to the monitoring sub-app, through the middleware: never a 500, never a traceback.

Requests are raw ASGI scopes, so they can hold what httpx refuses to build (bytes that are not
UTF-8 in a header or the query string, NUL and CR/LF in header values, lower-case or made-up
methods). Every sub-app response must have a status below 500, except the documented 503 of the
health endpoints, and no body may contain a traceback. The middleware must never raise.
"""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from hypothesis import HealthCheck as HypothesisHealthCheck
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from support.hostile import (
    CONFIGS,
    METRICS_TOKEN,
    TOKEN,
    XSS,
    answering_app,
    call,
    monitored,
)

from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.config import MetricsSettings, PathSettings
from asgi_monitor.store.single import STANDARD_METHODS
from asgi_monitor.web.app import endpoints

PREFIXES = ("/api/metrics", "/api/health", "/api/alerts", "/admin/monitoring")
SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HypothesisHealthCheck.too_slow,
                                           HypothesisHealthCheck.data_too_large])


MIDDLEWARES = {name: monitored(config) for name, config in CONFIGS.items()}
# The HTML pages: the dashboard and its route view (its escaping of hostile route names is
# tested in test_route_view); every other endpoint answers JSON or text.
HTML_PAGES = {"/admin/monitoring", "/admin/monitoring/route"}


def assert_handled(path: str, status: int, headers: dict[bytes, bytes], body: bytes) -> None:
    # The health API and the probes say 503 when the app is not healthy or not ready.
    documented_503 = status == 503 and (path.startswith("/api/health")
                                        or path.split("?")[0] in PathSettings().probes())
    assert status < 500 or documented_503, (status, body[:300])
    assert b"Traceback" not in body
    if b"text/html" in headers.get(b"content-type", b""):
        # Its escaping is tested in test_dashboard and test_route_view.
        assert path.split("?")[0] in HTML_PAGES, path


# Big values are drawn as placeholders and expanded just before the request, so hypothesis does
# not print megabytes when it reports an example.
_BIG = {"@LONG@": "a" * 70_000, "@PERCENTS@": "%" * 5000, "@BIG@": "v" * 65_536,
        "@HUGE@": "x" * 1_000_000}


def expand(value: str) -> str:
    for placeholder, big in _BIG.items():
        value = value.replace(placeholder, big)
    return value


def expand_bytes(value: bytes) -> bytes:
    return expand(value.decode("latin-1")).encode("latin-1")


# -- strategies -------------------------------------------------------------------------------
path_tails = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "/", "/..", "/../../etc/passwd", "/%2e%2e/%2f", "//", "/live/",
                     "/ready/x", "/memory/run", "/memory/run/", "/config", "/config/",
                     "/%00", "/%ff%fe", "/\x00", "/\r\nSet-Cookie: a=b", "/down", "/xss",
                     "/" + XSS, "/@LONG@", "/@PERCENTS@", "/ü/ß/中文/🙂"]),
    st.lists(st.sampled_from(["..", ".", "%2e", "%", "x", "memory", "run", "", "😀"]),
             max_size=6).map(lambda parts: "/" + "/".join(parts)),
)
queries = st.one_of(
    st.binary(max_size=80),
    st.sampled_from([b"limit=abc", b"limit=-1", b"limit=" + str(10**12).encode(),
                     b"limit=1e309", b"limit=NaN", b"group=", b"group=%ff", b"group=\xff\xfe",
                     "group=ü&limit=٣".encode(), b"limit=1&limit=2&limit=abc",
                     b"group=readiness&group=liveness", b"a=@HUGE@",
                     b"&&&==&=", b"%", b"%zz", b"limit"]),
)
authorizations = st.sampled_from([
    b"Bearer " + TOKEN.encode(), b"Bearer " + METRICS_TOKEN.encode(), b"Bearer wrong",
    b"Bearer", b"Bearer \xff\xfe", b"bearer  " + TOKEN.encode() + b"  ", b"Basic",
    b"Basic !!!notbase64", b"Basic " + base64.b64encode(b"admin:pw-0123456789"),
    b"Basic " + base64.b64encode(b"admin"), b"Basic " + base64.b64encode(b"\xff\xfe:\x00"),
    b"Basic \xe9\xe9\xe9", b"Basic " + base64.b64encode("admin:pässword".encode()),
    b"Basic =", b"Digest username=x", b"\x00", b"@BIG@",
])
header_pairs = st.one_of(
    st.tuples(st.just(b"authorization"), authorizations),
    st.tuples(st.just(b"accept"), st.sampled_from([
        b"application/health+json;;;", b"application/openmetrics-text; version=abc",
        b"application/openmetrics-text; version=1.x.0", b"application/openmetrics-text;version=",
        b"application/openmetrics-text; version=0.0.1", b"text/plain; version=x",
        b"text/plain; version=1.0.0; escaping=bogus", b"*/*;q=abc", b";;;,,,", b"\xff\xfe",
        b"application/openmetrics-text; version=1.0.0; escaping=allow-utf-8",
    ]) | st.binary(max_size=60)),
    st.tuples(st.just(b"accept-encoding"), st.sampled_from([
        b"gzip;q=0", b"gzip, gzip, gzip", b"*", b"br;q=abc", b"\xff", b"identity;q=0",
    ]) | st.binary(max_size=30)),
    st.tuples(st.sampled_from([b"host", b"content-length", b"content-type", b"x-forwarded-for",
                               b"cookie", b"x-big"]),
              st.binary(max_size=60) | st.just(b"@BIG@")),
    st.tuples(st.binary(min_size=1, max_size=20), st.binary(max_size=40)),
)
methods = st.one_of(
    st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT",
                     "TRACE", "get", "post", "Get", "PROPFIND", "BREW", "", " ", "G\x00T",
                     "@LONG@"]),
    st.text(min_size=1, max_size=12),
)
bodies = st.lists(st.binary(max_size=200), max_size=3) | st.just([b"@HUGE@"] * 3)


@SETTINGS
@given(config=st.sampled_from(sorted(CONFIGS)), prefix=st.sampled_from(PREFIXES),
       tail=path_tails, query=queries, headers=st.lists(header_pairs, max_size=5),
       method=methods, body=bodies)
def test_fuzzed_requests_never_fail(config: str, prefix: str, tail: str, query: bytes,
                                    headers: list[tuple[bytes, bytes]], method: str,
                                    body: list[bytes]) -> None:
    path = prefix + expand(tail)
    status, response_headers, content = asyncio.run(call(
        MIDDLEWARES[config], path, method=expand(method), query=expand_bytes(query),
        headers=[(name, expand_bytes(value)) for name, value in headers],
        body=[expand_bytes(part) for part in body]))
    assert_handled(path, status, response_headers, content)


def concrete(template: str) -> str:
    return template.replace("{name}", "memory")


ALL_ENDPOINTS = [(e.path, method) for e in endpoints(MIDDLEWARES["token"].monitor)
                 for method in e.methods]


@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize(("template", "method"), ALL_ENDPOINTS)
@pytest.mark.parametrize(("header", "value"), [
    (b"authorization", b"Basic \xe9\xe9\xe9"),  # not ASCII: base64 decoding raises ValueError
    (b"authorization", b"Basic " + base64.b64encode(b"admin:\xff")),
    (b"authorization", b"Bearer \xff\x00"),
    (b"authorization", b"Bearer " + b"\xff" * 65_536),
    (b"accept", b"application/openmetrics-text; version=abc"),  # prometheus_client TypeError
    (b"accept", b"text/plain; version=1.x"),
    (b"accept", b"application/health+json;;;"),
    (b"accept-encoding", b"\xff, gzip;q=abc"),
])
async def test_each_endpoint_survives_each_nasty_header(
    config: str, template: str, method: str, header: bytes, value: bytes
) -> None:
    path = concrete(template)
    headers = [(header, value), (b"authorization", b"Bearer " + TOKEN.encode())]
    for both in (headers[:1], headers):  # alone, and duplicated next to a valid credential
        status, response_headers, body = await call(MIDDLEWARES[config], path, method=method,
                                                    headers=both)
        assert_handled(path, status, response_headers, body)


@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("query", [b"\xff", b"a=\xff\xfe", b"limit=abc&\xc3"])
@pytest.mark.parametrize("path", ["/api/health/", "/api/metrics/", "/api/health/live/",
                                  "/admin/monitoring/config/"])
async def test_trailing_slash_with_a_query_that_is_not_utf8(
    config: str, query: bytes, path: str
) -> None:
    # Starlette's redirect_slashes builds the redirect URL with query_string.decode(): this was a
    # UnicodeDecodeError (500) for any path one slash away from an endpoint.
    status, headers, body = await call(MIDDLEWARES[config], path, query=query)
    assert_handled(path, status, headers, body)


async def test_clients_httpx_could_not_describe() -> None:
    mw = MIDDLEWARES["token"]
    for client in (None, ("", 0), ("not-an-address", 1), ("::1", 0), ("\x00\n", 0)):
        status, headers, body = await call(mw, "/api/health", client=client)
        assert_handled("/api/health", status, headers, body)
        status, headers, body = await call(mw, "/admin/monitoring/config", client=client,
                                           headers=[(b"authorization", b"Bearer wrong")])
        assert status == 401


# -- junk methods and junk paths under a Mount: label sets stay bounded ------------------------
async def item(request: Request) -> Response:
    return PlainTextResponse("item")


async def test_junk_methods_and_mounted_junk_paths_add_bounded_series() -> None:
    registry = CollectorRegistry()
    inner = Starlette(routes=[Route("/items/{item_id}", item, methods=["GET", "POST"])])
    app = Starlette(routes=[Mount("/v1", app=inner), Route("/", item)])
    mw = MonitoringMiddleware(app, monitor=build_monitor(None, registry))
    junk_methods = ["BREW", "get", "PROPFIND", "X" * 100, "M-SEARCH", "\x00", "Ω"]
    for i in range(3000):
        method = junk_methods[i % len(junk_methods)] if i % 3 else "GET"
        path = (f"/v1/junk/{i}/{'x' * (i % 40)}", f"/v1/items/{i}", f"/nope/{i}")[i % 3]
        status, _, _ = await call(mw, path, method=method)
        assert status in (200, 404, 405)
    await mw.monitor.stop()
    labels = [s.labels for m in registry.collect() for s in m.samples
              if s.name == "http_requests_total"]
    assert {labels["method"] for labels in labels} <= {*STANDARD_METHODS, "OTHER"}
    assert {labels["route"] for labels in labels} <= {"/v1/{path}", "/v1/items/{item_id}",
                                                      "<unmatched>", "/"}
    assert len(labels) <= 6
    assert sum(registry.get_sample_value("http_requests_total", labels) or 0
               for labels in labels) == 3000


# -- XSS payloads come back escaped (JSON or Prometheus text; never HTML) -----------------------
async def test_xss_in_check_messages_and_names_stays_data() -> None:
    mw = MIDDLEWARES["token"]
    admin = [(b"authorization", b"Bearer " + TOKEN.encode())]
    for accept, media_type in ((b"application/json", b"application/json"),
                               (b"application/health+json", b"application/health+json")):
        _, headers, body = await call(mw, "/api/health", headers=[(b"accept", accept), *admin])
        assert headers[b"content-type"] == media_type
        assert headers[b"x-content-type-options"] == b"nosniff"
        assert XSS.encode() not in body  # JSON escapes the quote, backslash and newline
        document = json.loads(body)
        if media_type == b"application/json":
            assert document["checks"]["xss"]["message"] == XSS
        else:
            assert document["checks"]["xss:status"][0]["output"] == XSS
    _, headers, body = await call(mw, "/api/health/xss")
    assert headers[b"content-type"] == b"application/json"
    assert json.loads(body)["message"] == XSS
    # A check name taken from the path is echoed only inside JSON.
    payload = "<img src=x onerror=alert(1)>"
    status, headers, body = await call(mw, "/api/health/" + payload)
    assert status == 404 and headers[b"content-type"] == b"application/json"
    assert payload in json.loads(body)["error"]


async def test_xss_in_a_route_name_is_escaped_in_the_exposition() -> None:
    registry = CollectorRegistry()
    mw = MonitoringMiddleware(
        answering_app,
        monitor=build_monitor(
            MonitoringConfig(metrics=MetricsSettings(route_resolver=lambda scope: XSS)), registry))
    assert (await call(mw, "/anything"))[0] == 200
    status, headers, body = await call(mw, "/api/metrics")
    await mw.monitor.stop()
    assert status == 200 and headers[b"content-type"].startswith(b"text/plain")
    assert headers[b"x-content-type-options"] == b"nosniff"
    assert XSS.encode() not in body  # newline, quote and backslash are escaped
    routes = {s.labels.get("route") for family in text_string_to_metric_families(body.decode())
              for s in family.samples if family.name == "http_requests"}
    assert routes == {XSS}  # ... and parse back to exactly the payload


async def test_only_the_dashboard_page_serves_html() -> None:
    # Every other endpoint answers JSON or text, so the dashboard and the route view (whose
    # autoescaping test_dashboard and test_route_view check with XSS payloads) are the only
    # pages a payload could be rendered in.
    admin = [(b"authorization", b"Bearer " + TOKEN.encode())]
    html = set()
    for template, method in ALL_ENDPOINTS:
        _, headers, _ = await call(MIDDLEWARES["token"], concrete(template), method=method,
                                   headers=admin)
        if b"html" in headers[b"content-type"]:
            html.add(template)
    assert html == HTML_PAGES
