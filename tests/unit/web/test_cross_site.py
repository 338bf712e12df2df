"""State-changing requests a browser could be tricked into sending from another site.

A cross-site ``<form>`` can POST ``text/plain`` whose text parses as JSON, with the admin's
Basic credentials or session cookie; the gate refuses every state-changing method unless its
body is JSON and the browser's own ``Sec-Fetch-Site`` / ``Origin`` say same-origin. Clients
that send neither header (curl, scripts) still work.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from support import concrete_path, hello

from asgi_monitor import ConfigError, MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.config import GateSettings
from asgi_monitor.web.app import endpoints
from asgi_monitor.web.gate import CONTENT_SECURITY_POLICY

TOKEN = "test-admin-token-0123456789"
USER, PASSWORD = "ops", "correct horse battery staple"
BASE = "http://testserver"
SILENCE = '{"rule": "high_error_rate", "duration_minutes": 525600}'


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _state_changing() -> list[tuple[str, str]]:
    monitor = build_monitor(MonitoringConfig(), CollectorRegistry())
    return [(method, e.path) for e in endpoints(monitor) for method in e.methods
            if method not in ("GET", "HEAD", "OPTIONS")]


STATE_CHANGING = _state_changing()


def test_every_state_changing_endpoint_is_covered() -> None:
    assert ("POST", "/api/alerts/silences") in STATE_CHANGING
    assert ("POST", "/api/health/{name}/run") in STATE_CHANGING
    assert ("DELETE", "/api/alerts/silences/{id}") in STATE_CHANGING


def cookie_hook(scope: MutableMapping[str, Any]) -> bool:
    return dict(scope["headers"]).get(b"cookie") == b"session=admin"


def wrap() -> MonitoringMiddleware:
    config = MonitoringConfig(gate=GateSettings(
        admin_token=TOKEN, admin_username=USER, admin_password=PASSWORD, authorize=cookie_hook))
    return MonitoringMiddleware(hello, monitor=build_monitor(config, CollectorRegistry()))


def client_for(app: MonitoringMiddleware, base_url: str = BASE) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


BASIC = {"Authorization": "Basic b3BzOmNvcnJlY3QgaG9yc2UgYmF0dGVyeSBzdGFwbGU="}
COOKIE = {"Cookie": "session=admin"}
JSON = {"Content-Type": "application/json"}

# (headers besides the credentials, allowed?)
MATRIX: dict[str, tuple[dict[str, str], bool]] = {
    # Non-browser clients: neither Origin nor Sec-Fetch-Site.
    "script, json": (JSON, True),
    "script, json with charset": ({"Content-Type": "Application/JSON; charset=utf-8"}, True),
    "script, no body": ({}, True),
    # The dashboard's own fetch(): same origin.
    "same origin": ({**JSON, "Origin": BASE, "Sec-Fetch-Site": "same-origin"}, True),
    "same origin, explicit default port": ({**JSON, "Origin": "http://testserver:80"}, True),
    "same origin, no fetch metadata": ({**JSON, "Origin": BASE}, True),
    "fetch metadata only": ({**JSON, "Sec-Fetch-Site": "same-origin"}, True),
    # What a cross-site form can send: a simple content type.
    "form text/plain": ({"Content-Type": "text/plain"}, False),
    "form urlencoded": ({"Content-Type": "application/x-www-form-urlencoded"}, False),
    "form multipart": ({"Content-Type": "multipart/form-data; boundary=x"}, False),
    "text/plain from a cross-site page": (
        {"Content-Type": "text/plain", "Origin": "http://evil.example",
         "Sec-Fetch-Site": "cross-site"}, False),
    "json-like type": ({"Content-Type": "application/json-patch+json"}, False),
    # A JSON body with a foreign origin (a CORS preflight the sub-app never grants).
    "cross-site": ({**JSON, "Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
                   False),
    "sibling origin, same site": ({**JSON, "Origin": "http://admin.testserver",
                                   "Sec-Fetch-Site": "same-site"}, False),
    "same-site fetch metadata only": ({**JSON, "Sec-Fetch-Site": "same-site"}, False),
    "user-initiated fetch metadata": ({**JSON, "Sec-Fetch-Site": "none"}, False),
    "cross-site metadata, same origin claimed": (
        {**JSON, "Origin": BASE, "Sec-Fetch-Site": "cross-site"}, False),
    "other port": ({**JSON, "Origin": "http://testserver:8080"}, False),
    "other scheme": ({**JSON, "Origin": "https://testserver"}, False),
    "opaque origin": ({**JSON, "Origin": "null"}, False),
}


@pytest.mark.anyio
@pytest.mark.parametrize(("method", "path"), STATE_CHANGING)
@pytest.mark.parametrize("credentials", [BASIC, COOKIE], ids=["basic", "cookie"])
@pytest.mark.parametrize("case", MATRIX.values(), ids=MATRIX.keys())
async def test_state_changing_requests_header_matrix(
    method: str, path: str, credentials: dict[str, str], case: tuple[dict[str, str], bool]
) -> None:
    headers, allowed = case
    app = wrap()
    url = concrete_path(path, app.monitor)  # a DELETE's silence exists before the request
    before = [s.id for s in app.monitor.alerts.silences.list()]
    has_json_type = "json" in headers.get("Content-Type", "").lower()
    body = SILENCE if "silences" in path and method == "POST" else ""
    # A script sending no body: the gate lets it through, and the silence handler, given no
    # JSON, refuses it itself (400, not the gate's 403).
    empty_silence = bool(body) and "Content-Type" not in headers
    if empty_silence:
        body = ""
    async with client_for(app) as client:
        response = await client.request(method, url, content=body or None,
                                        headers={**credentials, **headers})
    after = [s.id for s in app.monitor.alerts.silences.list()]
    if allowed and empty_silence:
        assert response.status_code == 400, response.text
        assert "JSON" in response.json()["error"]
        assert after == before == []
    elif allowed:
        assert response.status_code in (200, 201), response.text
        if method == "DELETE":
            assert before and after == []  # the silence was expired
        elif "silences" in path:
            assert before == [] and len(after) == 1  # the silence was created
    else:
        assert response.status_code == 403, (has_json_type, response.text)
        assert response.json()["error"]
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"
        # Nothing changed: no silence created, and a DELETE's silence still in place.
        assert after == before
        assert len(before) == (1 if method == "DELETE" else 0)


@pytest.mark.anyio
async def test_a_body_without_a_content_type_is_refused() -> None:
    app = wrap()
    async with client_for(app) as client:
        response = await client.post("/api/alerts/silences", content=SILENCE, headers=BASIC)
    assert response.status_code == 403
    assert "application/json" in response.json()["error"]
    assert app.monitor.alerts.silences.list() == []


@pytest.mark.anyio
async def test_a_cross_site_refusal_runs_no_hook_and_is_no_failed_login() -> None:
    calls: list[object] = []

    def hook(scope: MutableMapping[str, Any]) -> bool:
        calls.append(scope)
        return False

    config = MonitoringConfig(gate=GateSettings(admin_token=TOKEN, authorize=hook,
                                                login_max_failures=1))
    app = MonitoringMiddleware(hello, monitor=build_monitor(config, CollectorRegistry()))
    async with client_for(app) as client:
        refused = await client.post("/api/alerts/silences", content=SILENCE, headers={
            "Authorization": "Bearer wrong", "Content-Type": "text/plain"})
        assert refused.status_code == 403
        assert calls == []
        # Not counted: the next wrong guess is a 401, not a lock-out.
        wrong = await client.get("/admin/monitoring/config",
                                 headers={"Authorization": "Bearer wrong"})
        assert wrong.status_code == 401


@pytest.mark.anyio
async def test_the_origin_is_compared_with_the_requests_own_host() -> None:
    app = wrap()
    async with client_for(app, "https://monitor.example:8443") as client:
        same = await client.post("/api/alerts/silences", content=SILENCE, headers={
            **BASIC, **JSON, "Origin": "https://Monitor.example:8443"})
        other = await client.post("/api/alerts/silences", content=SILENCE, headers={
            **BASIC, **JSON, "Origin": "https://monitor.example"})
    assert same.status_code == 201
    assert other.status_code == 403
    assert "https://monitor.example:8443" in other.json()["error"]


@pytest.mark.anyio
async def test_safe_methods_are_not_checked() -> None:
    # Reading is harmless cross-site: CORS keeps the answer from the foreign page.
    async with client_for(wrap()) as client:
        response = await client.get("/api/alerts/silences", headers={
            **BASIC, "Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site",
            "Content-Type": "text/plain"})
    assert response.status_code == 200


# -- the Host header: DNS rebinding -------------------------------------------------------------


def office_hook(scope: MutableMapping[str, Any]) -> bool:
    """An authorize hook that trusts the office network: what DNS rebinding abuses."""
    return bool(scope["client"]) and scope["client"][0].startswith("10.")


def office(allowed_hosts: tuple[str, ...] = ()) -> MonitoringMiddleware:
    config = MonitoringConfig(gate=GateSettings(authorize=office_hook,
                                                allowed_hosts=allowed_hosts))
    return MonitoringMiddleware(hello, monitor=build_monitor(config, CollectorRegistry()))


def office_client(app: MonitoringMiddleware, host: str) -> httpx.AsyncClient:
    # The admin's browser, on the office network, on a page whose name now points here.
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("10.0.0.7", 1)),
                             base_url=f"http://{host}")


REBOUND = {**JSON, "Origin": "http://evil.example:8000", "Sec-Fetch-Site": "same-origin"}


@pytest.mark.anyio
async def test_without_allowed_hosts_a_rebound_page_passes_a_hook_that_trusts_addresses(
) -> None:
    """Why the setting exists: Origin and Host agree (both the attacker's name), so the
    cross-site check passes, and the hook sees an office address."""
    app = office()
    async with office_client(app, "evil.example:8000") as client:
        response = await client.post("/api/alerts/silences", content=SILENCE, headers=REBOUND)
    assert response.status_code == 201


@pytest.mark.anyio
@pytest.mark.parametrize(("method", "path"), STATE_CHANGING)
async def test_allowed_hosts_refuse_a_rebound_page(method: str, path: str) -> None:
    app = office(("monitor.internal",))
    url = concrete_path(path, app.monitor)
    before = [s.id for s in app.monitor.alerts.silences.list()]
    body = SILENCE if method == "POST" and "silences" in path else None
    async with office_client(app, "evil.example:8000") as client:
        response = await client.request(method, url, content=body, headers=REBOUND)
    assert response.status_code == 403
    assert "MONITORING_ALLOWED_HOSTS" in response.json()["error"]
    assert [s.id for s in app.monitor.alerts.silences.list()] == before


@pytest.mark.anyio
@pytest.mark.parametrize(("allowed", "host", "taken"), [
    (("monitor.internal",), "monitor.internal", True),
    (("monitor.internal",), "monitor.internal:8000", True),  # no port in the entry: any port
    (("monitor.internal",), "MONITOR.Internal.", True),  # case and a final dot do not matter
    (("localhost:8000",), "localhost:8000", True),
    (("localhost:8000",), "localhost:9000", False),
    (("[::1]:8000",), "[::1]:8000", True),
    (("[::1]",), "[::2]:8000", False),
    (("monitor.internal",), "monitor.internal.evil.example", False),
    (("monitor.internal",), "evil.example", False),
])
async def test_allowed_hosts_match(allowed: tuple[str, ...], host: str, taken: bool) -> None:
    app = office(allowed)
    async with office_client(app, "placeholder") as client:
        response = await client.post("/api/alerts/silences", content=SILENCE,
                                     headers={**JSON, "Host": host})
    assert response.status_code == (201 if taken else 403), response.text
    assert len(app.monitor.alerts.silences.list()) == (1 if taken else 0)


@pytest.mark.anyio
async def test_allowed_hosts_leave_reads_alone() -> None:
    app = office(("monitor.internal",))
    async with office_client(app, "evil.example") as client:
        assert (await client.get("/api/alerts")).status_code == 200


@pytest.mark.parametrize("entry", ["http://monitor", "a b", "monitor:99999", "monitor/x",
                                   "user@monitor", "[::1", ""])
def test_a_bad_allowed_host_names_the_variable(entry: str) -> None:
    with pytest.raises(ConfigError, match="MONITORING_ALLOWED_HOSTS"):
        GateSettings(allowed_hosts=(entry,))


def test_an_authorize_hook_without_allowed_hosts_warns_at_start(
        caplog: pytest.LogCaptureFixture) -> None:
    def warned(**gate: Any) -> bool:
        caplog.clear()
        build_monitor(MonitoringConfig(gate=GateSettings(**gate)), CollectorRegistry())
        return any("MONITORING_ALLOWED_HOSTS" in r.getMessage() and r.levelname == "WARNING"
                   for r in caplog.records)

    assert warned(authorize=office_hook)
    assert not warned(authorize=office_hook, allowed_hosts=("monitor.internal",))
    assert not warned(admin_token=TOKEN)


def test_allowed_hosts_from_the_environment() -> None:
    config = MonitoringConfig.from_env({"MONITORING_ALLOWED_HOSTS": "monitor.internal, "
                                                                    "localhost:8000"})
    assert config.gate.allowed_hosts == ("monitor.internal", "localhost:8000")
