"""Hostile input to the endpoints that take input, with valid admin credentials: a 4xx with a
message, never a 500, and every error response carries the security headers of a success.

The classes: numbers out of range (overflowing a date or a float, inf, nan, negative, huge
integers) in every numeric query parameter and JSON field, deeply nested JSON, oversized
bodies, oversized path parameters; and an exception inside a handler, which Starlette's
ServerErrorMiddleware (outside every user middleware) would answer without the headers.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck as HypothesisHealthCheck
from hypothesis import example, given, settings
from hypothesis import strategies as st
from support.hostile import CONFIGS, TOKEN, call, monitored

from asgi_monitor.web.bodies import MAX_BODY_BYTES
from asgi_monitor.web.gate import CONTENT_SECURITY_POLICY

ADMIN = [(b"authorization", b"Bearer " + TOKEN.encode())]
JSON_TYPE = [(b"content-type", b"application/json")]
SECURITY = {b"content-security-policy": CONTENT_SECURITY_POLICY.encode(),
            b"x-frame-options": b"DENY", b"x-content-type-options": b"nosniff",
            b"referrer-policy": b"no-referrer"}
MW = monitored(CONFIGS["token"])
# The silence limit, written here rather than imported: a test that imported it would follow
# the limit wherever it moved.
YEAR_SECONDS = 365 * 24 * 3600

# Every number a client can write that is no sane value, as text (query) and as JSON.
HOSTILE_NUMBERS = ["1e308", "-1e308", "1e309", "inf", "-inf", "Infinity", "-Infinity", "nan",
                   "NaN", "-1", "0", "-0", "1e-320", "99999999999999999999", "9" * 400,
                   "9" * 5000, "1e12", "0x10", "", " ", "1_000", "١٢", "true", "null"]


def assert_error(status: int, headers: dict[bytes, bytes], body: bytes,
                 statuses: tuple[int, ...] = (400,)) -> dict[str, Any]:
    assert status in statuses, (status, body[:300])
    assert headers[b"content-type"] == b"application/json"
    assert headers[b"cache-control"] == b"no-store"
    for name, value in SECURITY.items():
        assert headers[name] == value, name
    document = json.loads(body)
    assert isinstance(document["error"], str) and document["error"]
    assert len(document["error"]) < 400  # no echo of a huge input
    return document


def assert_headers(headers: dict[bytes, bytes]) -> None:
    for name, value in SECURITY.items():
        assert headers[name] == value, name


# -- query parameters -------------------------------------------------------------------------
# Each numeric query parameter: (path, name, values it accepts).
NUMERIC_QUERIES = [("/api/alerts/history", "limit"),
                   ("/admin/monitoring/history.json", "since")]


@pytest.mark.parametrize(("path", "name"), NUMERIC_QUERIES)
@pytest.mark.parametrize("value", HOSTILE_NUMBERS)
async def test_numeric_query_parameters(path: str, name: str, value: str) -> None:
    status, headers, body = await call(MW, path, query=f"{name}={value}".encode(),
                                       headers=ADMIN)
    assert status in (200, 400), (status, body[:200])
    assert_headers(headers)
    if status == 400:
        assert_error(status, headers, body)
    else:
        json.loads(body)  # a document, whatever was asked


@pytest.mark.parametrize("value", ["inf", "nan", "1e309", "9" * 5000, "x", "0x10"])
async def test_since_that_is_no_time_is_refused(value: str) -> None:
    status, headers, body = await call(MW, "/admin/monitoring/history.json",
                                       query=f"since={value}".encode(), headers=ADMIN)
    assert "unix time" in assert_error(status, headers, body)["error"]


@pytest.mark.parametrize("value", ["0", "-1", "1e308", "nan", "9" * 5000, ""])
async def test_limit_that_is_no_count_is_refused(value: str) -> None:
    status, headers, body = await call(MW, "/api/alerts/history",
                                       query=f"limit={value}".encode(), headers=ADMIN)
    assert "limit" in assert_error(status, headers, body)["error"]


@pytest.mark.parametrize("value", ["x" * 10_000, "\x00", "%ff", "../..", ""])
async def test_group_query(value: str) -> None:
    status, headers, body = await call(MW, "/api/health", query=f"group={value}".encode(),
                                       headers=ADMIN)
    assert status in (200, 404, 503)
    assert_headers(headers)
    if status == 404:
        assert_error(status, headers, body, (404,))


# -- path parameters --------------------------------------------------------------------------
@pytest.mark.parametrize(("template", "method"), [("/api/health/{}", "GET"),
                                                  ("/api/health/{}/run", "POST"),
                                                  ("/api/alerts/silences/{}", "DELETE")])
@pytest.mark.parametrize("value", ["x" * 10_000, "1e308", "nan", "%00", "ü" * 2000])
async def test_path_parameters(template: str, method: str, value: str) -> None:
    status, headers, body = await call(MW, template.format(value), method=method, headers=ADMIN)
    assert_error(status, headers, body, (404,))


# -- JSON bodies: silences --------------------------------------------------------------------
async def post_silence(raw: bytes | list[bytes], headers: list[tuple[bytes, bytes]] | None = None
                       ) -> tuple[int, dict[bytes, bytes], bytes]:
    chunks = raw if isinstance(raw, list) else [raw]
    return await call(MW, "/api/alerts/silences", method="POST", body=chunks,
                      headers=[*ADMIN, *JSON_TYPE, *(headers or [])])


@pytest.mark.parametrize("field", ["duration_seconds", "duration_minutes"])
@pytest.mark.parametrize("value", [v for v in HOSTILE_NUMBERS if v.strip()] + [
    '"60"', "[60]", '{"a": 1}', "1e20", "31536001", "525601", "true"])
async def test_silence_durations_out_of_range(field: str, value: str) -> None:
    raw = f'{{"rule": "high_error_rate", "{field}": {value}}}'.encode()
    status, headers, body = await post_silence(raw)
    if status == 201:  # a sane value after all: within (0, 365 days], and stored as sent
        document = json.loads(body)
        assert document["matchers"] == {"alertname": "high_error_rate"}
        assert_headers(headers)
        assert_stored_duration(body, field, json.loads(value))
        return
    message = assert_error(status, headers, body)["error"]
    assert field in message or "JSON" in message


def assert_stored_duration(body: bytes, field: str, value: Any) -> None:
    """The created silence lasts what ``field`` asked, which is within (0, 365 days]."""
    assert isinstance(value, (int, float)) and not isinstance(value, bool), value
    seconds = float(value) * (60 if field == "duration_minutes" else 1)
    assert 0 < seconds <= YEAR_SECONDS, (field, value)
    document = json.loads(body)
    stored = (datetime.fromisoformat(document["ends_at"])
              - datetime.fromisoformat(document["starts_at"]))
    assert stored == timedelta(seconds=seconds)


@pytest.mark.parametrize(("field", "value"), [("duration_seconds", YEAR_SECONDS + 1),
                                              ("duration_minutes", YEAR_SECONDS // 60 + 1),
                                              ("duration_seconds", YEAR_SECONDS + 1e-6)])
async def test_silence_durations_just_past_a_year_are_refused(field: str, value: float) -> None:
    status, headers, body = await post_silence(json.dumps({"rule": "r", field: value}).encode())
    assert field in assert_error(status, headers, body)["error"]


@pytest.mark.parametrize(("field", "value"), [("duration_seconds", YEAR_SECONDS),
                                              ("duration_minutes", YEAR_SECONDS // 60),
                                              ("duration_seconds", 0.5)])
async def test_silence_durations_at_the_bounds_are_accepted(field: str, value: float) -> None:
    status, headers, body = await post_silence(json.dumps({"rule": "r", field: value}).encode())
    assert status == 201, body
    assert_headers(headers)
    assert_stored_duration(body, field, value)
    expired = await call(MW, f"/api/alerts/silences/{json.loads(body)['id']}", method="DELETE",
                         headers=ADMIN)
    assert expired[0] == 200


@pytest.mark.parametrize("depth", [1_000, 20_000, 100_000])
@pytest.mark.parametrize("shape", ["[{}]", '{{"a":{}}}'])
@pytest.mark.parametrize("where", ["top", "matchers", "comment"])
async def test_deeply_nested_json(depth: int, shape: str, where: str) -> None:
    nested = "1"
    opening, closing = shape.split("{}")
    nested = opening * depth + nested + closing * depth
    raw = {"top": nested,
           "matchers": '{"rule": "r", "duration_seconds": 60, "matchers": ' + nested + "}",
           "comment": '{"rule": "r", "duration_seconds": 60, "comment": ' + nested + "}",
           }[where].encode()
    status, headers, body = await post_silence(raw)
    assert_error(status, headers, body, (400, 413))
    if len(raw) <= MAX_BODY_BYTES:
        assert status == 400


# Around the limit too, in both units: a limit moved must show up here.
numbers = st.one_of(st.integers(), st.integers(min_value=10**300, max_value=10**1000),
                    st.integers(min_value=YEAR_SECONDS - 2, max_value=YEAR_SECONDS + 2),
                    st.integers(min_value=YEAR_SECONDS // 60 - 2, max_value=YEAR_SECONDS // 60 + 2),
                    st.floats(min_value=YEAR_SECONDS - 1, max_value=YEAR_SECONDS * 100),
                    st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none())
json_values = st.recursive(
    numbers | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                  max_size=4),
    max_leaves=20)
silence_bodies = st.fixed_dictionaries({}, optional={
    "rule": json_values, "matchers": json_values, "comment": json_values,
    "duration_seconds": numbers | json_values, "duration_minutes": numbers | json_values,
    "extra": json_values})


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HypothesisHealthCheck.too_slow,
                                 HypothesisHealthCheck.function_scoped_fixture])
@given(body=silence_bodies | json_values)
@example(body={"rule": "r", "duration_seconds": YEAR_SECONDS + 1})
@example(body={"rule": "r", "duration_minutes": YEAR_SECONDS // 60 + 1})
def test_any_json_silence_is_created_or_refused_with_a_message(body: Any) -> None:
    # allow_nan: Python's json writes NaN/Infinity, and reads them back, as clients may send.
    raw = json.dumps(body, allow_nan=True).encode()
    status, headers, response = asyncio.run(post_silence(raw))
    if status == 201:
        assert_headers(headers)
        assert isinstance(body, dict)
        [field] = [f for f in ("duration_seconds", "duration_minutes") if f in body]
        assert_stored_duration(response, field, body[field])
        silence_id = json.loads(response)["id"]
        asyncio.run(call(MW, f"/api/alerts/silences/{silence_id}", method="DELETE",
                         headers=ADMIN))
        return
    assert_error(status, headers, response, (400, 413))


@pytest.mark.parametrize("body", [
    [b"{" + b" " * (MAX_BODY_BYTES + 1) + b"}"],  # one chunk
    [b'{"comment": "', *[b"x" * 4096] * 20, b'"}'],  # streamed past the cap
])
async def test_oversized_bodies_are_413(body: list[bytes]) -> None:
    status, headers, response = await post_silence(body)
    assert "larger than" in assert_error(status, headers, response, (413,))["error"]


async def test_an_oversized_declared_length_is_refused_before_reading() -> None:
    status, headers, body = await post_silence(
        b"{}", headers=[(b"content-length", str(10**12).encode())])
    assert_error(status, headers, body, (413,))


@pytest.mark.parametrize("raw", [b"", b"\xff\xfe", b"{", b"[]", b"null", b'"x"', b"1e999",
                                 b'{"rule": "r", "duration_seconds": 60, "x": 1}',
                                 b'{"rule": "", "duration_seconds": 60}',
                                 b'{"matchers": {"a": 1}, "duration_seconds": 60}',
                                 b'{"rule": "r", "duration_seconds": 60, "comment": 5}',
                                 b'{"rule": "r", "duration_seconds": 1, "duration_minutes": 1}'])
async def test_malformed_silences(raw: bytes) -> None:
    assert_error(*await post_silence(raw))


async def test_a_body_on_run_is_ignored_whatever_it_is() -> None:
    status, headers, _ = await call(MW, "/api/health/memory/run", method="POST",
                                    body=[b"[" * 100_000], headers=ADMIN)
    assert status in (200, 503)
    assert_headers(headers)


# -- an exception inside a handler ------------------------------------------------------------
async def test_an_exception_in_a_handler_is_a_500_with_the_headers(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    mw = MW

    def broken(limit: int) -> Any:
        raise RuntimeError("a bug in the history")

    monkeypatch.setattr(mw.monitor.alerts, "history", broken)
    sent: list[dict[str, Any]] = []
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/api/alerts/history",
             "raw_path": b"/api/alerts/history", "root_path": "", "query_string": b"",
             "headers": [(b"host", b"test"), *ADMIN], "client": ("10.9.9.9", 1),
             "server": ("test", 80)}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    # Re-raised, so the server logs the traceback; the client gets no traceback.
    with pytest.raises(RuntimeError, match="a bug in the history"):
        await mw(scope, receive, send)
    start = sent[0]
    headers = dict(start["headers"])
    body = b"".join(m.get("body", b"") for m in sent[1:])
    assert_error(start["status"], headers, body, (500,))
    assert b"Traceback" not in body and b"a bug" not in body
    assert len([m for m in sent if m["type"] == "http.response.start"]) == 1
