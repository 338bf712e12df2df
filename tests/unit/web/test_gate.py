"""The admin gate: authentication, authorization, rate limits, audit and security headers.

Admin endpoints are discovered from ``endpoints()``, so every endpoint later issues add is held
to the same table of expectations.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import MutableMapping
from typing import Any

import anyio
import httpx
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp
from support import Clock, concrete_path, hello

from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.config import GateSettings
from asgi_monitor.web.app import build_app, endpoints
from asgi_monitor.web.gate import AUDIT_LOGGER, CONTENT_SECURITY_POLICY, Access, Gate

TOKEN = "test-admin-token-0123456789"
USER, PASSWORD = "ops", "correct horse battery staple"
METRICS_TOKEN = "test-metrics-token-9876543210"
CLIENT = "1.2.3.4"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _admin_endpoints() -> list[tuple[str, str]]:
    monitor = build_monitor(MonitoringConfig(), CollectorRegistry())
    # Templates: each test fills them in (see support.concrete_path).
    return [(e.methods[0], e.path)
            for e in endpoints(monitor) if e.access == "admin"]


ADMIN_ENDPOINTS = _admin_endpoints()


def wrap(config: MonitoringConfig) -> MonitoringMiddleware:
    return MonitoringMiddleware(hello, monitor=build_monitor(config, CollectorRegistry()))


def client_for(app: ASGIApp, address: str = CLIENT) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 123))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def basic(user: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def full_config(**overrides: Any) -> MonitoringConfig:
    settings: dict[str, Any] = {"admin_token": TOKEN, "admin_username": USER,
                                "admin_password": PASSWORD, **overrides}
    return MonitoringConfig(gate=GateSettings(**settings))


def audit_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == AUDIT_LOGGER]


def test_there_is_an_admin_endpoint_to_test() -> None:
    assert ("GET", "/admin/monitoring/config") in ADMIN_ENDPOINTS
    assert ("DELETE", "/api/alerts/silences/{id}") in ADMIN_ENDPOINTS


# -- deny by default ------------------------------------------------------------------------------
@pytest.mark.anyio
@pytest.mark.parametrize(("method", "path"), ADMIN_ENDPOINTS)
async def test_admin_endpoint_forbidden_until_configured(method: str, path: str) -> None:
    async with client_for(wrap(MonitoringConfig())) as client:
        response = await client.request(method, concrete_path(path), headers=bearer(TOKEN))
    assert response.status_code == 403
    message = response.json()["error"]
    for setting in ("MONITORING_ADMIN_TOKEN", "MONITORING_ADMIN_USERNAME",
                    "MONITORING_ADMIN_PASSWORD", "authorize"):
        assert setting in message
    assert "www-authenticate" not in response.headers
    assert response.headers["cache-control"] == "no-store"


# -- 401 for missing or wrong credentials ---------------------------------------------------------
WRONG_CREDENTIALS = {
    "none": {},
    "wrong token": bearer("not-the-token"),
    "empty bearer": {"Authorization": "Bearer"},
    "wrong password": basic(USER, "guess"),
    "wrong user": basic("root", PASSWORD),
    "no colon": {"Authorization": "Basic " + base64.b64encode(USER.encode()).decode()},
    "not base64": {"Authorization": "Basic !!!"},
    "not utf-8": {"Authorization": "Basic " + base64.b64encode(b"\xff:\xfe").decode()},
    "unknown scheme": {"Authorization": f"Token {TOKEN}"},
    "password as token": bearer(PASSWORD),
}


@pytest.mark.anyio
@pytest.mark.parametrize(("method", "path"), ADMIN_ENDPOINTS)
@pytest.mark.parametrize("headers", WRONG_CREDENTIALS.values(), ids=WRONG_CREDENTIALS.keys())
async def test_admin_endpoint_401_without_valid_credentials(
    method: str, path: str, headers: dict[str, str]
) -> None:
    async with client_for(wrap(full_config())) as client:
        response = await client.request(method, concrete_path(path), headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Basic realm="asgi_monitor", charset="UTF-8"'
    assert response.json() == {"error": "admin credentials are required"}


@pytest.mark.anyio
async def test_bearer_challenge_when_only_a_token_is_configured() -> None:
    async with client_for(wrap(MonitoringConfig(gate=GateSettings(admin_token=TOKEN)))) as client:
        response = await client.get("/admin/monitoring/config", headers=basic(USER, PASSWORD))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="asgi_monitor"'


# -- the three ways in ----------------------------------------------------------------------------
def sync_hook(scope: MutableMapping[str, Any]) -> bool:
    return dict(scope["headers"]).get(b"x-role") == b"admin"


async def async_hook(scope: MutableMapping[str, Any]) -> bool:
    return sync_hook(scope)


WAYS_IN: dict[str, tuple[MonitoringConfig, dict[str, str], str]] = {
    "token": (MonitoringConfig(gate=GateSettings(admin_token=TOKEN)), bearer(TOKEN), "token"),
    "token, lower-case scheme": (MonitoringConfig(gate=GateSettings(admin_token=TOKEN)),
                                 {"Authorization": f"bearer {TOKEN}"}, "token"),
    "basic": (full_config(), basic(USER, PASSWORD), USER),
    "sync hook": (MonitoringConfig(gate=GateSettings(authorize=sync_hook)), {"X-Role": "admin"},
                  "hook"),
    "async hook": (MonitoringConfig(gate=GateSettings(authorize=async_hook)), {"X-Role": "admin"},
                   "hook"),
    # An app using its own bearer tokens (checked by the hook) is not a failed admin login.
    "hook next to a token": (full_config(authorize=async_hook),
                             {"X-Role": "admin", "Authorization": "Bearer app-jwt"}, "hook"),
}


@pytest.mark.anyio
@pytest.mark.parametrize(("method", "path"), ADMIN_ENDPOINTS)
@pytest.mark.parametrize("way", WAYS_IN.values(), ids=WAYS_IN.keys())
async def test_admin_endpoint_200_with_each_way_in(
    method: str, path: str, way: tuple[MonitoringConfig, dict[str, str], str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    config, headers, who = way
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    app = wrap(config)
    path = concrete_path(path, app.monitor)
    async with client_for(app) as client:
        response = await client.request(method, path, headers=headers)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    [record] = audit_records(caplog)
    assert (record.who, record.client, record.method, record.path, record.outcome) == (  # type: ignore[attr-defined]
        who, CLIENT, method, path, "allowed")


@pytest.mark.anyio
@pytest.mark.parametrize("result", [False, None, 1, "yes", object()])
async def test_hook_must_return_true(result: object) -> None:
    # A hook-only configuration cannot challenge a browser, so its refusal is a 403.
    config = MonitoringConfig(gate=GateSettings(authorize=lambda scope: result))
    async with client_for(wrap(config)) as client:
        response = await client.get("/admin/monitoring/config")
    assert response.status_code == 403
    assert "authorize hook" in response.json()["error"]


@pytest.mark.anyio
async def test_a_failing_hook_denies_and_is_counted() -> None:
    def broken(scope: MutableMapping[str, Any]) -> bool:
        raise RuntimeError("session store down")

    middleware = wrap(MonitoringConfig(gate=GateSettings(authorize=broken)))
    async with client_for(middleware) as client:
        response = await client.get("/admin/monitoring/config")
    assert response.status_code == 403
    assert middleware.monitor.collector.internal_errors["authorize"] == 1


class RoleHeaderBackend(AuthenticationBackend):
    """Stands in for an app's real login: the role comes from a header."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser]:
        role = conn.headers.get("x-role", "")
        return AuthCredentials(["authenticated", role]), SimpleUser("alice")


@pytest.mark.anyio
async def test_documented_starlette_authentication_example() -> None:
    # As in docs/security.md: AuthenticationMiddleware outside the monitoring middleware.
    def is_admin(scope: MutableMapping[str, Any]) -> bool:
        return "auth" in scope and "admin" in scope["auth"].scopes

    app = Starlette(
        routes=[Route("/", lambda request: PlainTextResponse("home"))],
        middleware=[
            Middleware(AuthenticationMiddleware, backend=RoleHeaderBackend()),
            Middleware(
                MonitoringMiddleware,
                monitor=build_monitor(
                    MonitoringConfig(gate=GateSettings(authorize=is_admin)), CollectorRegistry()))])
    async with client_for(app) as client:
        assert (await client.get("/admin/monitoring/config",
                                 headers={"X-Role": "admin"})).status_code == 200
        assert (await client.get("/admin/monitoring/config",
                                 headers={"X-Role": "viewer"})).status_code == 403


@pytest.mark.anyio
async def test_documented_fastapi_example() -> None:
    from fastapi import FastAPI

    async def is_admin(scope: MutableMapping[str, Any]) -> bool:
        user = scope.get("user")
        return bool(user and user.is_authenticated and "admin" in scope["auth"].scopes)

    app = FastAPI()
    app.add_middleware(
        MonitoringMiddleware,
        monitor=build_monitor(
                    MonitoringConfig(gate=GateSettings(authorize=is_admin)), CollectorRegistry()))
    app.add_middleware(AuthenticationMiddleware, backend=RoleHeaderBackend())
    async with client_for(app) as client:
        assert (await client.get("/admin/monitoring/config",
                                 headers={"X-Role": "admin"})).status_code == 200
        assert (await client.get("/admin/monitoring/config")).status_code == 403


# -- rate limits and lock-out ---------------------------------------------------------------------
def sub_app(config: MonitoringConfig, clock: Clock) -> ASGIApp:
    return build_app(build_monitor(config, CollectorRegistry()), clock=clock)


@pytest.mark.anyio
async def test_rate_limit_gives_429_with_retry_after(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    clock = Clock(1000.0)
    app = sub_app(full_config(rate_limit_per_second=0.5, rate_limit_burst=3), clock)
    async with client_for(app) as client, client_for(app, "5.6.7.8") as other:
        statuses = [(await client.get("/api/metrics")).status_code for _ in range(3)]
        assert statuses == [200, 200, 200]
        limited = await client.get("/admin/monitoring/config", headers=bearer(TOKEN))
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "2"
        assert "error" in limited.json()
        assert (await other.get("/api/metrics")).status_code == 200
        clock.advance(2)
        assert (await client.get("/admin/monitoring/config",
                                 headers=bearer(TOKEN))).status_code == 200
    outcomes = [r.outcome for r in audit_records(caplog)]  # type: ignore[attr-defined]
    assert outcomes == ["rate_limited", "allowed"]


@pytest.mark.anyio
async def test_default_limits_let_a_dashboard_and_prometheus_through() -> None:
    async with client_for(wrap(full_config())) as client:
        for _ in range(50):
            response = await client.get("/api/metrics")
            assert response.status_code == 200


@pytest.mark.anyio
async def test_lockout_after_failed_logins(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    clock = Clock(1000.0)
    app = sub_app(full_config(login_max_failures=3, login_lockout_seconds=60), clock)
    async with client_for(app) as client, client_for(app, "5.6.7.8") as other:
        for _ in range(3):
            wrong = await client.get("/admin/monitoring/config", headers=basic(USER, "guess"))
            assert wrong.status_code == 401
        # Locked: even the right password is refused, so guessing gains nothing.
        locked = await client.get("/admin/monitoring/config", headers=basic(USER, PASSWORD))
        assert locked.status_code == 429
        assert locked.headers["retry-after"] == "60"
        assert "failed logins" in locked.json()["error"]
        assert (await other.get("/admin/monitoring/config",
                                headers=bearer(TOKEN))).status_code == 200
        clock.advance(60)
        assert (await client.get("/admin/monitoring/config",
                                 headers=basic(USER, PASSWORD))).status_code == 200
    outcomes = [r.outcome for r in audit_records(caplog)]  # type: ignore[attr-defined]
    assert outcomes == ["denied"] * 3 + ["locked", "allowed", "allowed"]


@pytest.mark.anyio
async def test_requests_without_credentials_are_not_failed_logins() -> None:
    # A browser's first request carries no credentials; that must not lock its user out.
    app = sub_app(full_config(login_max_failures=2), Clock(1000.0))
    async with client_for(app) as client:
        for _ in range(5):
            assert (await client.get("/admin/monitoring/config")).status_code == 401
        assert (await client.get("/admin/monitoring/config",
                                 headers=bearer(TOKEN))).status_code == 200


PROBES = ("/api/health/live", "/api/health/ready", "/api/health", "/livez", "/readyz", "/startupz")


@pytest.mark.anyio
async def test_probes_are_never_rate_limited() -> None:
    # A kubelet polling liveness restarts the pod on a 429.
    app = sub_app(full_config(rate_limit_per_second=1, rate_limit_burst=5), Clock(1000.0))
    async with client_for(app) as client:
        for path in PROBES:
            statuses = {(await client.get(path)).status_code for _ in range(70)}
            assert 429 not in statuses, path
        # The probes took no tokens: the bucket is still full for everything else...
        assert [(await client.get("/api/metrics")).status_code for _ in range(6)] == [200] * 5 + [
            429]
        # ...and the other health endpoints are limited as before.
        assert (await client.get("/api/health/some-check")).status_code == 429


def test_only_the_probes_are_unlimited() -> None:
    monitor = build_monitor(MonitoringConfig(), CollectorRegistry())
    assert sorted(e.path for e in endpoints(monitor) if not e.limited) == sorted(PROBES)


@pytest.mark.anyio
@pytest.mark.parametrize("path", [*PROBES, "/api/metrics", "/api/health/some-check"])
@pytest.mark.parametrize("headers", [basic(USER, "stale"), bearer("stale-token")],
                         ids=["basic", "bearer"])
async def test_wrong_credentials_on_public_endpoints_lock_nobody_out(
    path: str, headers: dict[str, str]
) -> None:
    app = sub_app(full_config(login_max_failures=3, rate_limit_per_second=0), Clock(1000.0))
    async with client_for(app) as client:
        for _ in range(10):
            assert (await client.get(path, headers=headers)).status_code != 429
        assert (await client.get("/admin/monitoring/config",
                                 headers=basic(USER, PASSWORD))).status_code == 200
        assert (await client.get("/admin/monitoring/config",
                                 headers=bearer(TOKEN))).status_code == 200


@pytest.mark.anyio
async def test_lockout_is_per_address_and_identity() -> None:
    # Behind one load balancer, one admin's typo must not lock the others out.
    app = sub_app(full_config(login_max_failures=3, login_lockout_seconds=60), Clock(1000.0))
    async with client_for(app) as client:
        for _ in range(3):
            assert (await client.get("/admin/monitoring/config",
                                     headers=basic(USER, "typo"))).status_code == 401
        locked = await client.get("/admin/monitoring/config", headers=basic(USER, PASSWORD))
        assert (locked.status_code, locked.headers["retry-after"]) == (429, "60")
        assert (await client.get("/admin/monitoring/config",
                                 headers=bearer(TOKEN))).status_code == 200
        for _ in range(3):
            await client.get("/admin/monitoring/config", headers=bearer("old-token"))
        assert (await client.get("/admin/monitoring/config",
                                 headers=bearer("old-token"))).status_code == 429
        assert (await client.get("/admin/monitoring/config",
                                 headers=bearer(TOKEN))).status_code == 200
        # No credentials at all is its own identity, never locked.
        assert (await client.get("/admin/monitoring/config")).status_code == 401


@pytest.mark.anyio
async def test_a_successful_login_clears_the_count() -> None:
    app = sub_app(full_config(login_max_failures=3), Clock(1000.0))
    async with client_for(app) as client:
        for attempt in ("typo", "typo", PASSWORD, "typo", "typo", PASSWORD):
            response = await client.get("/admin/monitoring/config", headers=basic(USER, attempt))
            assert response.status_code == (200 if attempt == PASSWORD else 401)


@pytest.mark.anyio
async def test_a_success_between_typos_resets_the_count_to_zero() -> None:
    # 4 typos, a success, 1 typo: the count is 1, not 5, so the next correct login is let in.
    app = sub_app(full_config(login_max_failures=5), Clock(1000.0))
    async with client_for(app) as client:
        for attempt in ("typo",) * 4 + (PASSWORD, "typo", PASSWORD):
            response = await client.get("/admin/monitoring/config", headers=basic(USER, attempt))
            assert response.status_code == (200 if attempt == PASSWORD else 401), attempt


class SlowHook:
    """An async ``authorize`` hook that takes ``delay`` seconds and counts its calls."""

    def __init__(self, delay: float, answer: bool = False) -> None:
        self.delay, self.answer, self.calls = delay, answer, 0

    async def __call__(self, scope: MutableMapping[str, Any]) -> bool:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return self.answer


@pytest.mark.anyio
async def test_concurrent_wrong_guesses_beside_an_async_hook_all_count() -> None:
    hook = SlowHook(0.05)
    app = sub_app(full_config(authorize=hook, login_max_failures=5, rate_limit_per_second=0),
                  Clock(1000.0))
    async with client_for(app) as client:
        responses = await asyncio.gather(*(
            client.get("/admin/monitoring/config", headers=bearer(f"guess-{TOKEN}"))
            for _ in range(50)))
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [401] * 5 + [429] * 45
        assert hook.calls == 5
        # The guessed identity stays locked, and the hook is not asked again.
        again = await client.get("/admin/monitoring/config", headers=bearer(f"guess-{TOKEN}"))
        assert again.status_code == 429
        assert hook.calls == 5


@pytest.mark.anyio
async def test_concurrent_requests_the_hook_accepts_are_never_locked_out() -> None:
    # An app's own bearer tokens, checked by the hook: many at once are no failed logins.
    hook = SlowHook(0.02, answer=True)
    app = sub_app(full_config(authorize=hook, login_max_failures=3, rate_limit_per_second=0),
                  Clock(1000.0))
    async with client_for(app) as client:
        responses = await asyncio.gather(*(
            client.get("/admin/monitoring/config", headers=bearer("app-jwt"))
            for _ in range(20)))
    assert [r.status_code for r in responses] == [200] * 20
    assert hook.calls == 20


PUBLIC_ENDPOINTS = (*("/api/health/live", "/api/health/ready", "/api/health"), "/api/metrics")


@pytest.mark.anyio
@pytest.mark.parametrize("path", PUBLIC_ENDPOINTS)
async def test_public_endpoints_do_not_wait_for_a_slow_hook(path: str) -> None:
    hook = SlowHook(5.0, answer=True)
    app = wrap(MonitoringConfig(gate=GateSettings(authorize=hook)))
    async with client_for(app) as client:
        await client.get("/api/health/live")  # the first request starts the monitor
        with anyio.fail_after(2):
            for _ in range(3):
                response = await client.get(path)
                assert response.status_code in (200, 503), response.text
    assert hook.calls == 0


@pytest.mark.anyio
async def test_public_endpoint_asks_the_hook_when_a_cookie_is_presented() -> None:
    hook = SlowHook(0.0, answer=True)
    app = gated_app(MonitoringConfig(gate=GateSettings(authorize=hook)))
    async with client_for(app) as client:
        response = await client.get("/whoami", headers={"Cookie": "session=abc"})
    assert response.json() == {"is_admin": True, "admin_user": "hook"}
    assert hook.calls == 1


@pytest.mark.anyio
async def test_lockout_table_holds_fingerprints_never_credentials() -> None:
    gate = Gate(full_config(login_max_failures=10).gate, clock=Clock(1000.0))
    app = Starlette(routes=[Route("/x", gate.protect(hello_endpoint, "admin"))])
    async with client_for(app) as client:
        await client.get("/x", headers=bearer(TOKEN + "-typo"))
        await client.get("/x", headers=basic(USER, "typo-password"))
    keys = " ".join(gate.logins.clients._entries)
    assert keys.startswith(CLIENT) and keys.count(CLIENT) == 2
    for secret in (TOKEN, "typo-password", USER):
        assert secret not in keys


async def hello_endpoint(request: Request) -> Response:
    return PlainTextResponse("hello")


@pytest.mark.anyio
async def test_x_forwarded_for_is_never_trusted() -> None:
    # Only the server (uvicorn --forwarded-allow-ips) may rewrite scope["client"].
    config = full_config(rate_limit_per_second=1, rate_limit_burst=1,
                         metrics_allowed_networks=("10.0.0.0/8",))
    app = sub_app(config, Clock(1000.0))
    spoof = {"X-Forwarded-For": "10.0.0.1", "X-Real-IP": "10.0.0.1", "Forwarded": "for=10.0.0.1"}
    async with client_for(app) as client:
        assert (await client.get("/api/metrics", headers=spoof)).status_code == 403
        assert (await client.get("/api/metrics", headers=spoof)).status_code == 429
    async with client_for(app, "10.0.0.1") as inside:
        assert (await inside.get("/api/metrics")).status_code == 200


# -- public endpoints can ask "is this an admin?" --------------------------------------------------
def gated_app(
    config: MonitoringConfig, access: Access = "public", path: str = "/whoami"
) -> ASGIApp:
    async def whoami(request: Request) -> Response:
        return JSONResponse({"is_admin": request.state.is_admin,
                             "admin_user": request.state.admin_user})

    gate = Gate(config.gate, clock=Clock(1000.0))
    return Starlette(routes=[Route(path, gate.protect(whoami, access))])


@pytest.mark.anyio
@pytest.mark.parametrize(("config", "headers", "expected"), [
    (MonitoringConfig(), {}, {"is_admin": False, "admin_user": None}),
    (MonitoringConfig(), bearer(TOKEN), {"is_admin": False, "admin_user": None}),
    (full_config(), {}, {"is_admin": False, "admin_user": None}),
    (full_config(), bearer("wrong"), {"is_admin": False, "admin_user": None}),
    (full_config(), bearer(TOKEN), {"is_admin": True, "admin_user": "token"}),
    (full_config(), basic(USER, PASSWORD), {"is_admin": True, "admin_user": USER}),
    # The hook is asked on a public endpoint only when a cookie or Authorization is presented.
    (MonitoringConfig(gate=GateSettings(authorize=sync_hook)),
     {"X-Role": "admin", "Cookie": "session=1"}, {"is_admin": True, "admin_user": "hook"}),
    (MonitoringConfig(gate=GateSettings(authorize=sync_hook)), {"X-Role": "admin"},
     {"is_admin": False, "admin_user": None}),
    (MonitoringConfig(gate=GateSettings(metrics_token=METRICS_TOKEN)), bearer(METRICS_TOKEN),
     {"is_admin": False, "admin_user": "metrics_token"}),
], ids=["unconfigured", "unconfigured with token", "no header", "wrong", "token", "basic", "hook",
        "hook without cookie", "metrics token"])
async def test_public_endpoint_sees_is_admin(
    config: MonitoringConfig, headers: dict[str, str], expected: dict[str, object]
) -> None:
    async with client_for(gated_app(config)) as client:
        response = await client.get("/whoami", headers=headers)
    assert response.status_code == 200
    assert response.json() == expected


@pytest.mark.anyio
async def test_public_endpoint_is_no_guessing_oracle() -> None:
    app = gated_app(full_config(login_max_failures=2))
    async with client_for(app) as client:
        for _ in range(2):
            await client.get("/whoami", headers=basic(USER, "guess"))
        response = await client.get("/whoami", headers=basic(USER, PASSWORD))
    assert response.status_code == 200  # public stays public...
    assert response.json()["is_admin"] is False  # ...but a locked-out identity is never admin


# -- /api/metrics: optional token and network allowlist --------------------------------------------
@pytest.mark.anyio
@pytest.mark.parametrize(("headers", "status"), [
    ({}, 401),
    (bearer("wrong"), 401),
    (basic(USER, "guess"), 401),
    (bearer(METRICS_TOKEN), 200),
    (bearer(TOKEN), 200),
    (basic(USER, PASSWORD), 200),
])
async def test_metrics_token(headers: dict[str, str], status: int) -> None:
    async with client_for(wrap(full_config(metrics_token=METRICS_TOKEN))) as client:
        response = await client.get("/api/metrics", headers=headers)
    assert response.status_code == status
    if status == 401:
        assert response.headers["www-authenticate"] == 'Bearer realm="asgi_monitor"'
    else:
        assert "# TYPE" in response.text


@pytest.mark.anyio
async def test_metrics_token_is_no_admin_credential() -> None:
    async with client_for(wrap(full_config(metrics_token=METRICS_TOKEN))) as client:
        response = await client.get("/admin/monitoring/config", headers=bearer(METRICS_TOKEN))
    assert response.status_code == 403
    assert response.json() == {"error": "the metrics token does not grant admin access"}


@pytest.mark.anyio
@pytest.mark.parametrize(("address", "status"), [
    ("10.1.2.3", 200), ("192.168.7.7", 200), ("::1", 200), ("1.2.3.4", 403), ("::2", 403),
    ("testclient", 403),
])
async def test_metrics_network_allowlist(address: str, status: int) -> None:
    config = MonitoringConfig(
        gate=GateSettings(metrics_allowed_networks=("10.0.0.0/8", "192.168.7.7", "::1/128")))
    async with client_for(wrap(config), address) as client:
        response = await client.get("/api/metrics")
    assert response.status_code == status
    if status == 403:
        assert "MONITORING_METRICS_ALLOWED_NETWORKS" in response.json()["error"]


@pytest.mark.anyio
@pytest.mark.parametrize(("address", "networks", "status"), [
    # A dual-stack socket shows IPv4 clients as IPv4-mapped IPv6 addresses.
    ("::ffff:127.0.0.1", ("127.0.0.0/8",), 200),
    ("::ffff:10.9.8.7", ("10.0.0.0/8",), 200),
    ("::ffff:8.8.8.8", ("127.0.0.0/8",), 403),
    # ...and the other way round: a mapped network in the list matches a plain IPv4 client.
    ("127.0.0.1", ("::ffff:127.0.0.0/104",), 200),
    ("::ffff:127.0.0.1", ("::ffff:127.0.0.1",), 200),
    ("8.8.8.8", ("::ffff:127.0.0.0/104",), 403),
    ("::ffff:127.0.0.1", ("::/0",), 200),
    ("::1", ("127.0.0.0/8",), 403),
])
async def test_metrics_allowlist_matches_ipv4_mapped_addresses(
    address: str, networks: tuple[str, ...], status: int
) -> None:
    config = MonitoringConfig(gate=GateSettings(metrics_allowed_networks=networks))
    async with client_for(wrap(config), address) as client:
        response = await client.get("/api/metrics")
    assert response.status_code == status


@pytest.mark.anyio
async def test_metrics_allowlist_and_token_both_apply() -> None:
    config = MonitoringConfig(
        gate=GateSettings(metrics_allowed_networks=("10.0.0.0/8",), metrics_token=METRICS_TOKEN))
    app = wrap(config)
    async with client_for(app, "10.0.0.5") as inside, client_for(app) as outside:
        assert (await inside.get("/api/metrics")).status_code == 401
        assert (await inside.get("/api/metrics", headers=bearer(METRICS_TOKEN))).status_code == 200
        assert (await outside.get("/api/metrics",
                                  headers=bearer(METRICS_TOKEN))).status_code == 403


@pytest.mark.anyio
async def test_metrics_public_by_default() -> None:
    async with client_for(wrap(MonitoringConfig())) as client:
        response = await client.get("/api/metrics")
    assert response.status_code == 200


# -- security headers -----------------------------------------------------------------------------
@pytest.mark.anyio
@pytest.mark.parametrize(("path", "headers"), [
    ("/api/metrics", {}),
    ("/admin/monitoring/config", bearer(TOKEN)),
    ("/admin/monitoring/config", {}),
    ("/admin/monitoring/no-such-page", {}),
])
async def test_security_headers_on_every_sub_app_response(
    path: str, headers: dict[str, str]
) -> None:
    async with client_for(wrap(full_config())) as client:
        response = await client.get(path, headers=headers)
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_content_security_policy_allows_no_third_party_origin() -> None:
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert "default-src 'self'" in CONTENT_SECURITY_POLICY
    for forbidden in ("http:", "https:", "*", "unsafe-inline", "unsafe-eval"):
        assert forbidden not in CONTENT_SECURITY_POLICY


@pytest.mark.anyio
async def test_app_responses_are_untouched() -> None:
    async with client_for(wrap(full_config())) as client:
        response = await client.get("/")
    assert response.text == "app"
    assert "content-security-policy" not in response.headers


# -- audit ----------------------------------------------------------------------------------------
@pytest.mark.anyio
async def test_audit_lines_name_who_and_never_a_credential(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with client_for(wrap(full_config())) as client:
        await client.get("/admin/monitoring/config", headers=bearer(TOKEN))
        await client.get("/admin/monitoring/config", headers=basic(USER, PASSWORD))
        await client.get("/admin/monitoring/config", headers=basic(PASSWORD, PASSWORD))
        await client.get("/admin/monitoring/config", headers=bearer(TOKEN[:-1]))
        await client.get("/api/metrics", headers=bearer(TOKEN))
    records = audit_records(caplog)
    assert [(r.who, r.outcome) for r in records] == [  # type: ignore[attr-defined]
        ("token", "allowed"), (USER, "allowed"), ("anonymous", "denied"),
        ("anonymous", "denied")]
    assert records[0].getMessage() == (
        "allowed GET /admin/monitoring/config who=token client=1.2.3.4")
    assert [r.levelname for r in records] == ["INFO", "INFO", "WARNING", "WARNING"]
    logged = caplog.text + "".join(repr(r.__dict__) for r in caplog.records)
    for secret in (TOKEN, TOKEN[:-1], PASSWORD):
        assert secret not in logged


@pytest.mark.anyio
async def test_audit_line_cannot_be_forged_through_the_path(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = gated_app(MonitoringConfig(), access="admin", path="/items/{name}")
    async with client_for(app) as client:
        await client.get("/items/x%0Aallowed GET who=token")
    [record] = audit_records(caplog)
    assert "\n" not in record.getMessage()
    assert record.path == "/items/x\\nallowed GET who=token"  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_refused_metrics_requests_are_audited(caplog: pytest.LogCaptureFixture) -> None:
    config = MonitoringConfig(gate=GateSettings(metrics_token=METRICS_TOKEN))
    async with client_for(wrap(config)) as client:
        await client.get("/api/metrics", headers=bearer(METRICS_TOKEN))
        await client.get("/api/metrics")
    assert [r.outcome for r in audit_records(caplog)] == ["denied"]  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_a_kubelet_polling_liveness_through_the_middleware_never_gets_429() -> None:
    # The default limits (10/s, burst 50): 70 quick probes from one address used to get 429s.
    async with client_for(wrap(full_config())) as client:
        statuses = [(await client.get("/api/health/live")).status_code for _ in range(70)]
    assert statuses == [200] * 70
