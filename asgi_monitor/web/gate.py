"""The gate: the one place that decides who may use each monitoring endpoint.

:func:`~asgi_monitor.web.app.build_app` passes every endpoint through :meth:`Gate.protect` by its
access level (``"public"``, ``"metrics"`` or ``"admin"``), so a new endpoint only declares its
level and is covered. Each request meets, in order, the rate limit, the cross-site check (with
``MONITORING_ALLOWED_HOSTS``, the Host of state-changing requests, against DNS rebinding), then its
level's credentials and lock-out; :class:`SecurityHeaders` wraps every response. What each step
answers, who is let in, the lock-out and the audit log: docs/security.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import inspect
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Literal

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..config.gate import GateSettings
from .crosssite import cross_site_refusal, host_refusal
from .ratelimit import Clock, LoginGuard, LoginLocked, RateLimiter
from .responses import NO_STORE, error_response

__all__ = ["AUDIT_LOGGER", "Access", "Gate", "RejectBadQuery", "SecurityHeaders"]

# "public": anyone (health probes). "metrics": public unless the metrics token or network
# allowlist is configured. "admin": denied until admin credentials are configured.
Access = Literal["public", "metrics", "admin"]
Handler = Callable[[Request], Awaitable[Response]]
ErrorHook = Callable[[str, BaseException], None]

AUDIT_LOGGER = "asgi_monitor.audit"
audit_logger = logging.getLogger(AUDIT_LOGGER)

REALM = "asgi_monitor"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
_SECURITY_HEADERS = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
)
_DISABLED = (
    "admin endpoints are disabled until a way in is configured: set MONITORING_ADMIN_TOKEN "
    "(or MONITORING_ADMIN_TOKEN_FILE), or MONITORING_ADMIN_USERNAME and "
    "MONITORING_ADMIN_PASSWORD, or pass authorize= to MonitoringConfig"
)


class Gate:
    """Authentication, authorization, rate limits and audit for the sub-app's endpoints."""

    def __init__(
        self,
        settings: GateSettings,
        *,
        clock: Clock = time.monotonic,
        on_error: ErrorHook | None = None,
    ) -> None:
        self.settings = settings
        self.limiter = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst,
                                   settings.rate_limit_max_clients, clock)
        self.logins = LoginGuard(settings.login_max_failures, settings.login_lockout_seconds,
                                 settings.rate_limit_max_clients, clock)
        # Failures on public endpoints: they only stop credentials being evaluated there.
        self.public_logins = LoginGuard(settings.login_max_failures,
                                        settings.login_lockout_seconds,
                                        settings.rate_limit_max_clients, clock)
        self._on_error = on_error
        self._networks = _unmapped_networks(settings.metrics_allowed_networks)
        # The metrics token is recognised everywhere (so Prometheus presenting it to a health
        # endpoint is no failed login) but makes no one an admin.
        self._tokens = tuple((name, token) for name, token in (
            ("token", settings.admin_token), ("metrics_token", settings.metrics_token)) if token)
        self._basic = bool(settings.admin_username and settings.admin_password)
        self._challenge = (f'Basic realm="{REALM}", charset="UTF-8"' if self._basic
                           else f'Bearer realm="{REALM}"' if settings.admin_token else None)

    def protect(self, handler: Handler, access: Access, *, limited: bool = True) -> Handler:
        """``handler`` behind the checks its access level asks for; ``limited=False`` skips the
        rate limit (the probes)."""
        check = {"public": self._public, "metrics": self._metrics, "admin": self._admin}[access]

        async def gated(request: Request) -> Response:
            client = _client(request.scope)
            request.state.is_admin = False
            request.state.admin_user = None
            wait = self.limiter.acquire(client) if limited else 0
            if wait:
                if access == "admin":
                    _audit(request, client, None, "rate_limited")
                return error_response("too many requests to the monitoring endpoints; retry "
                                      "later", 429, {"Retry-After": str(wait)})
            cross_site = (host_refusal(request, self.settings.allowed_hosts)
                          or cross_site_refusal(request))
            if cross_site is not None:
                if access == "admin":
                    _audit(request, client, None, "denied")
                return error_response(cross_site, 403)
            refused = await check(request, client)
            if refused is not None:
                return refused
            response = await handler(request)
            if access == "admin":
                response.headers.update(NO_STORE)
            return response

        return gated

    # -- the three access levels: None lets the request through, a response refuses it ---------
    async def _public(self, request: Request, client: str) -> Response | None:
        # The hook may be slow (a session lookup): a probe or a scrape, which presents neither a
        # cookie nor an Authorization header, has nothing it could use, so it is not asked.
        headers = request.headers
        if "authorization" in headers or (self.settings.authorize is not None
                                          and "cookie" in headers):
            key = _login_key(request, client)
            if not self.public_logins.locked(key):
                try:
                    await self._identify(request, key, self.public_logins)
                except LoginLocked:
                    pass  # locked meanwhile: not evaluated, served as anyone
        return None

    async def _metrics(self, request: Request, client: str) -> Response | None:
        if self._networks and not self._in_networks(client):
            _audit(request, client, None, "denied")
            return error_response("this address may not read metrics "
                                  "(MONITORING_METRICS_ALLOWED_NETWORKS)", 403)
        if not self.settings.metrics_token:
            return await self._public(request, client)
        who, refused = await self._identify_unless_locked(request, client)
        if refused is not None:
            return refused
        if who is None:
            _audit(request, client, None, "denied")
            return error_response("a valid bearer token is required (MONITORING_METRICS_TOKEN)",
                                  401, {"WWW-Authenticate": f'Bearer realm="{REALM}"'})
        return None

    async def _admin(self, request: Request, client: str) -> Response | None:
        if not self.settings.admin_configured:
            _audit(request, client, None, "denied")
            return error_response(_DISABLED, 403)
        who, refused = await self._identify_unless_locked(request, client)
        if refused is not None:
            return refused
        if request.state.is_admin:
            _audit(request, client, who, "allowed")
            return None
        _audit(request, client, who, "denied")
        if who is not None:
            return error_response("the metrics token does not grant admin access", 403)
        if self._challenge is None:
            return error_response("this request was not authorized by the application's "
                                  "authorize hook", 403)
        return error_response("admin credentials are required", 401,
                              {"WWW-Authenticate": self._challenge})

    # -- credentials ----------------------------------------------------------------------------
    async def _identify_unless_locked(
        self, request: Request, client: str
    ) -> tuple[str | None, Response | None]:
        """``(who, None)`` as :meth:`_identify` finds it, or ``(None, 429)`` while this address
        and identity are locked out (checked before the credentials, and again after waiting)."""
        key = _login_key(request, client)
        wait = self.logins.locked(key)
        if not wait:
            try:
                return await self._identify(request, key, self.logins), None
            except LoginLocked as locked:
                wait = locked.wait
        _audit(request, client, None, "locked")
        return None, _locked(wait)

    async def _identify(self, request: Request, key: str, logins: LoginGuard) -> str | None:
        """Who the credentials prove (``"token"``, the Basic user name, ``"hook"`` or
        ``"metrics_token"``), recorded on ``request.state``.

        A wrong token or password for a configured scheme counts as a failed login of ``key``
        (:func:`_login_key`) in ``logins``; a right one clears its count. Raises
        :class:`LoginLocked` if ``key`` got locked out while this request waited its turn.
        """
        who: str | None = None
        attempted = False
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        scheme, value = scheme.lower(), value.strip()
        if scheme == "bearer" and self._tokens:
            attempted = True
            for name, token in self._tokens:
                if token.matches(value):
                    who = name
                    break
        elif scheme == "basic" and self._basic:
            attempted = True
            who = self._check_basic(value)
        if who is None and attempted and self.settings.authorize is not None:
            # The hook may await (a session lookup): without a bound, every concurrent wrong
            # guess would pass the lock-out check before the first one was counted.
            async with logins.attempt(key):
                if await self._hook(request):
                    who = "hook"
                _record(logins, key, who)
        else:
            if who is None and self.settings.authorize is not None and await self._hook(request):
                who = "hook"
            if attempted:
                _record(logins, key, who)
        request.state.admin_user = who
        request.state.is_admin = who is not None and who != "metrics_token"
        return who

    def _check_basic(self, value: str) -> str | None:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except ValueError:
            # binascii.Error, UnicodeDecodeError, and the plain ValueError b64decode raises for
            # a str that is not ASCII (header bytes >= 0x80 arrive as latin-1): all a 401, never
            # a 500 (found by tests/unit/web/test_hostile_input.py).
            return None
        username, sep, password = decoded.partition(":")
        expected = self.settings.admin_username
        assert self.settings.admin_password is not None  # self._basic says so
        # Both compared in constant time and both always compared, so timing reveals neither.
        user_ok = hmac.compare_digest(username.encode(), expected.encode())
        password_ok = self.settings.admin_password.matches(password)
        return expected if sep and user_ok and password_ok else None

    async def _hook(self, request: Request) -> bool:
        authorize = self.settings.authorize
        assert authorize is not None
        try:
            result = authorize(request.scope)
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            # A broken hook denies (never allows) and is counted like any failure inside us.
            if self._on_error is not None:
                self._on_error("authorize", exc)
            return False
        # Only a real True lets a request in: a truthy user object or a forgotten await does not.
        return result is True

    def _in_networks(self, client: str) -> bool:
        try:
            address = ipaddress.ip_address(client)
        except ValueError:
            return False
        addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [address]
        # A dual-stack socket shows an IPv4 client as ::ffff:a.b.c.d.
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            addresses.append(address.ipv4_mapped)
        return any(a in network for a in addresses for network in self._networks)


class RejectBadQuery:
    """ASGI wrapper answering 400 to a query string that is not UTF-8.

    Starlette decodes ``query_string`` as UTF-8 when it builds the redirect for a path one slash
    away from a route (``/api/health/`` with a raw 0xFF byte in the query): without this, a
    UnicodeDecodeError and a 500. Servers pass the raw bytes of the request line through, so
    any client can send them (found by tests/unit/web/test_hostile_input.py).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            try:
                scope.get("query_string", b"").decode("utf-8")
            except UnicodeDecodeError:
                response = error_response("the query string is not valid UTF-8", 400)
                return await response(scope, receive, send)
        await self.app(scope, receive, send)


class SecurityHeaders:
    """ASGI wrapper adding the security headers to every response of the sub-app.

    Error responses too: Starlette's ServerErrorMiddleware, which turns an exception into a 500,
    sits outside every user middleware, so its response would go out without these headers.
    An exception before the response started is answered here instead (a JSON 500 with the
    headers, no traceback) and re-raised, so the server still logs it; ServerErrorMiddleware
    sees a response already started and only re-raises.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                for name, value in _SECURITY_HEADERS:
                    headers[name] = value
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            if not started:
                response = error_response("internal error in the monitoring endpoints", 500)
                await response(scope, receive, send_with_headers)
            raise


_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _unmapped_networks(entries: Iterable[str]) -> tuple[_Network, ...]:
    """The allow-list with IPv4-mapped IPv6 networks (``::ffff:10.0.0.0/104``) written as IPv4,
    so that they and plain IPv4 entries match a client however its socket shows it."""
    networks: list[_Network] = []
    for entry in entries:
        network = ipaddress.ip_network(entry, strict=False)
        if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_IPV4_MAPPED):
            mapped = network.network_address.ipv4_mapped
            assert mapped is not None  # inside ::ffff:0:0/96
            network = ipaddress.IPv4Network((mapped, network.prefixlen - 96))
        networks.append(network)
    return tuple(networks)


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _login_key(request: Request, client: str) -> str:
    """The client address and a fingerprint of the identity the request presents: the Basic
    user name, or the whole bearer value. Hashed, so the table never holds a credential, and
    bounded in size whatever an attacker sends."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if scheme == "basic":
        try:
            value = base64.b64decode(value, validate=True).decode("utf-8").partition(":")[0]
        except ValueError:
            pass  # undecodable: fingerprint the raw value, as for a token
    elif scheme != "bearer":
        return client
    digest = hashlib.sha256(f"{scheme}:{value}".encode()).hexdigest()
    return f"{client} {scheme}:{digest[:16]}"


def _record(logins: LoginGuard, key: str, who: str | None) -> None:
    if who is None:
        logins.failed(key)
    else:
        logins.succeeded(key)


def _locked(wait: int) -> Response:
    return error_response("too many failed logins for these credentials from this address; "
                          "retry later", 429,
                          {"Retry-After": str(wait)})


def _audit(request: Request, client: str, who: str | None, outcome: str) -> None:
    who = who or "anonymous"
    method = request.method
    # Escaped: a decoded path can hold newlines, which would forge audit lines.
    path = str(request.scope["path"]).encode("unicode_escape").decode("ascii")
    level = logging.INFO if outcome == "allowed" else logging.WARNING
    audit_logger.log(level, "%s %s %s who=%s client=%s", outcome, method, path, who, client,
                     extra={"who": who, "client": client, "method": method, "path": path,
                            "outcome": outcome})
