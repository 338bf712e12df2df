"""An example shop wrapped in MonitoringMiddleware, instrumented the way a real app would be.

Routes: a home page, items, a mounted ``/shop`` sub-app, a slow and a failing endpoint, a login
that records successes and failures, a cached lookup and a SQLite-backed order list. A fake
"payments" dependency flaps (down for 20 s of every 60 s) so a health check degrades and a custom
alert rule fires and resolves; ``/demo/webhook`` is a local sink that prints what the webhook
alert channel sends (signed deliveries only), served beside the middleware, not through it, so
the demo's figures are the shop's. Run it with ``make demo``
(``python -m asgi_monitor demo``).
"""

from __future__ import annotations

import asyncio
import hmac
import random
import sqlite3
import tempfile
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

from ..alerting.channels import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from ..alerting.models import AlertSeverity
from ..config import MonitoringConfig
from ..default import get_monitor
from ..health.builtin import cache_check, database_check
from ..health.models import HealthCheck, HealthStatus
from ..instrumentation import monitor_cache_operation, monitor_database_operation
from ..middleware import MonitoringMiddleware
from ..web.bodies import BodyError, parse_json, read_body

__all__ = ["CACHE_MAX_ENTRIES", "CACHE_MAX_KEY_LENGTH", "FLAP_PERIOD_SECONDS", "SINK_PATH",
           "DemoApp", "create_app", "payments_up"]

FLAP_PERIOD_SECONDS = 60.0
FLAP_DOWN_SECONDS = 20.0
_started = time.monotonic()
_cache: dict[str, str] = {}
# The cache endpoint stores what any client names: bounded, so a flood of keys cannot grow it.
CACHE_MAX_ENTRIES = 256
CACHE_MAX_KEY_LENGTH = 64
# A signed delivery older (or newer) than this is refused: a captured one cannot be replayed.
WEBHOOK_MAX_AGE_SECONDS = 300
WEBHOOK_MAX_BYTES = 256 * 1024
# Where the webhook channel of `asgi-monitor demo` delivers (demo/run.py).
SINK_PATH = "/demo/webhook"


def payments_up(now: float | None = None) -> bool:
    """The fake payment provider is down for the last 20 s of every minute."""
    elapsed = ((time.monotonic() if now is None else now) - _started) % FLAP_PERIOD_SECONDS
    return elapsed < FLAP_PERIOD_SECONDS - FLAP_DOWN_SECONDS


async def home(request: Request) -> Response:
    return PlainTextResponse(
        "asgi_monitor demo\n\n"
        "Dashboard: /admin/monitoring   Metrics: /api/metrics   Health: /api/health\n"
        "Routes: /items/42, /slow, /error, /login (POST), /cache/{key}, /shop/orders/7\n")


async def item(request: Request) -> Response:
    return JSONResponse({"id": request.path_params["item_id"]})


async def slow(request: Request) -> Response:
    await asyncio.sleep(random.uniform(0.2, 1.2))
    return PlainTextResponse("slow but fine\n")


async def error(request: Request) -> Response:
    # Answered, not raised, so the console shows the alert sinks rather than tracebacks; an
    # exception would be recorded as a 500 just the same.
    return JSONResponse({"error": "demo failure: this endpoint always fails"}, status_code=500)


async def login(request: Request) -> Response:
    users = request.app.state.monitor.collector.users
    form: object = {}
    if request.headers.get("content-type") == "application/json":
        try:
            form = parse_json(await read_body(request))
        except BodyError as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
    if not isinstance(form, dict):
        return JSONResponse({"error": "the body must be a JSON object such as "
                                      "{\"password\": \"demo\"}"}, status_code=400)
    if form.get("password") == "demo":
        users.login_succeeded()
        return JSONResponse({"ok": True})
    users.login_failed("bad_credentials")
    return JSONResponse({"ok": False}, status_code=401)


@monitor_cache_operation("demo", "get")
async def _cache_get(key: str) -> str | None:
    return _cache.get(key)


@monitor_cache_operation("demo", "set")
async def _cache_set(key: str, value: str) -> None:
    while len(_cache) >= CACHE_MAX_ENTRIES:
        del _cache[next(iter(_cache))]  # the oldest entry first
    _cache[key] = value


class _DemoCache:
    """The demo's in-process cache seen as a client with ``ping()``, for ``cache_check``."""

    def ping(self) -> bool:
        _cache["__ping__"] = "pong"
        return _cache.pop("__ping__", None) == "pong"


async def cached(request: Request) -> Response:
    key = request.path_params["key"]
    if len(key) > CACHE_MAX_KEY_LENGTH:
        return JSONResponse({"error": f"a cache key is at most {CACHE_MAX_KEY_LENGTH} "
                                      "characters"}, status_code=400)
    value = await _cache_get(key)
    if value is None:
        value = f"value-of-{key}"
        await _cache_set(key, value)
    return JSONResponse({"key": key, "value": value})


class Orders:
    """A real SQLite table behind ``@monitor_database_operation``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, total REAL)")
            db.executemany("INSERT OR IGNORE INTO orders VALUES (?, ?)",
                           [(i, i * 9.5) for i in range(1, 50)])

    @monitor_database_operation("get_order")
    def get(self, order_id: int) -> tuple[int, float] | None:
        with sqlite3.connect(self.path) as db:
            row = db.execute("SELECT id, total FROM orders WHERE id = ?", (order_id,)).fetchone()
        return (int(row[0]), float(row[1])) if row else None


async def order(request: Request) -> Response:
    found = request.app.state.orders.get(request.path_params["order_id"])
    if found is None:
        return JSONResponse({"error": "no such order"}, status_code=404)
    return JSONResponse({"order": found[0], "total": found[1]})


async def webhook_sink(request: Request) -> Response:
    """Print the alerts the webhook channel sends, once their signature is checked.

    Deliveries are signed with ALERT_WEBHOOK_SECRET (alerting.channels.sign over the timestamp
    and the body); without a secret configured the sink takes nothing.
    """
    secret = request.app.state.monitor.config.webhooks.secret
    if secret is None:
        return JSONResponse({"error": "the sink takes only signed deliveries: set "
                                      "ALERT_WEBHOOK_SECRET"}, status_code=403)
    try:
        content = await read_body(request, max_bytes=WEBHOOK_MAX_BYTES)
    except BodyError as exc:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)
    problem = _signature_problem(request, secret.get_secret_value(), content)
    if problem is not None:
        return JSONResponse({"error": problem}, status_code=401)
    try:
        payload = parse_json(content)
    except BodyError as exc:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)
    problem = _payload_problem(payload)
    if problem is not None:
        return JSONResponse({"error": problem}, status_code=400)
    # Escaped (repr): a label holding a newline must not print a line of its own.
    alerts = ", ".join(f"{a['labels'].get('alertname')!r} {a['status']!r}"
                       for a in payload["alerts"])
    print(f"[webhook sink] {alerts} ({len(content)} bytes, Alertmanager v4 JSON)", flush=True)
    return JSONResponse({"received": True})


def _signature_problem(request: Request, secret: str, content: bytes) -> str | None:
    timestamp = request.headers.get(TIMESTAMP_HEADER, "")
    signature = request.headers.get(SIGNATURE_HEADER, "")
    if not timestamp.isdigit() or not signature:
        return f"a signed delivery needs the {TIMESTAMP_HEADER} and {SIGNATURE_HEADER} headers"
    if abs(time.time() - int(timestamp)) > WEBHOOK_MAX_AGE_SECONDS:
        return f"the delivery is more than {WEBHOOK_MAX_AGE_SECONDS} seconds old or ahead"
    if not hmac.compare_digest(sign(secret, timestamp, content).encode(),
                               signature.encode("utf-8", "replace")):
        return "the signature does not match (ALERT_WEBHOOK_SECRET)"
    return None


def _payload_problem(payload: object) -> str | None:
    if not isinstance(payload, dict) or not isinstance(payload.get("alerts"), list):
        return "the body must be Alertmanager's v4 JSON: an object with an \"alerts\" list"
    for alert in payload["alerts"]:
        if (not isinstance(alert, dict) or not isinstance(alert.get("labels"), dict)
                or not isinstance(alert.get("status"), str)):
            return "each alert must be an object with \"labels\" (an object) and \"status\""
    return None


class DemoApp:
    """The monitored shop, with the webhook sink beside it rather than inside it: the sink
    serves the demo, not its users, so its deliveries count in no figure of the shop (busiest
    routes, rates, SLOs). Everything but ``POST /demo/webhook`` (lifespan included) goes to
    the monitored shop; ``monitor`` is the shop's."""

    def __init__(self, monitored: MonitoringMiddleware, sink: Starlette) -> None:
        self.monitored = monitored
        self.monitor = monitored.monitor
        self.sink = sink

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Under a root path (uvicorn --root-path), the scope's path starts with it.
        if scope["type"] == "http" and scope["path"].removeprefix(
                scope.get("root_path", "")) == SINK_PATH:
            await self.sink(scope, receive, send)
        else:
            await self.monitored(scope, receive, send)


def create_app(config: MonitoringConfig | None = None) -> DemoApp:
    shop = Starlette(routes=[Route("/orders/{order_id:int}", order)])
    app = Starlette(routes=[
        Route("/", home),
        Route("/items/{item_id:int}", item),
        Route("/slow", slow),
        Route("/error", error),
        Route("/login", login, methods=["POST"]),
        Route("/cache/{key}", cached),
        Mount("/shop", shop),
    ])
    monitor = get_monitor(config)
    monitored = MonitoringMiddleware(app, monitor=monitor)
    app.state.monitor = monitor
    sink = Starlette(routes=[Route(SINK_PATH, webhook_sink, methods=["POST"])])
    sink.state.monitor = monitor
    shop.state.orders = app.state.orders = Orders(Path(tempfile.gettempdir()) /
                                                  "asgi_monitor_demo.sqlite3")

    # The checks `curl /api/health/database` and `/api/health/cache` ask for (README.md).
    orders_db = app.state.orders.path
    monitor.health.register_check(
        "database", "The orders table (SQLite)",
        database_check(lambda: sqlite3.connect(orders_db), query="SELECT count(*) FROM orders"),
        groups=("readiness",))
    monitor.health.register_check("cache", "The in-process cache", cache_check(_DemoCache()),
                                  critical=False)

    def payments_check() -> HealthCheck:
        up = payments_up()
        return HealthCheck("payments", HealthStatus.HEALTHY if up else HealthStatus.CRITICAL,
                           "payment provider answers" if up else "payment provider unreachable")

    monitor.health.register_check("payments", "Fake payment provider (flaps every minute)",
                                  payments_check, interval_seconds=5, critical=False,
                                  groups=("readiness",))
    monitor.alerts.register_rule(
        "payments_unreachable", "The payment provider health check is failing",
        lambda: monitor.health.result("payments").status is HealthStatus.CRITICAL,
        AlertSeverity.WARNING, cooldown_minutes=5, for_seconds=5,
        annotations={"summary": "Payments are failing",
                     "runbook_url": "https://example.org/runbooks/payments"})
    return DemoApp(monitored, sink)
