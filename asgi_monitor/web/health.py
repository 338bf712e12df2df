"""Health API: overall and per-check status, probes, and run-a-check-now (admin).

The probes answer from state only (the monitor's lifecycle, the cached results): never a check
run, never the gate's rate limit, and no credential asked for, so a kubelet polling them every
few seconds costs nothing and is never refused. Liveness reads only the ``liveness`` group, so
a database outage makes the app unready, never restarted.

Every GET reads cached results (the scheduler runs the checks), so a flood of requests costs
nothing but JSON encoding. Status codes: 200 for HEALTHY and WARNING, 503 for CRITICAL and for
UNKNOWN (nothing known yet, or every result stale): a load balancer should not trust an app
whose health nobody has measured.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..health.models import HealthCheck, HealthStatus
from .parts import MonitorParts
from .responses import error_response, json_response, shown

__all__ = ["HealthEndpoints"]

HEALTH_JSON = "application/health+json"
_OK = {HealthStatus.HEALTHY, HealthStatus.WARNING}


def _is_admin(request: Request) -> bool:
    # Set by the admin gate for requests that carry valid admin credentials.
    return bool(getattr(request.state, "is_admin", False))


def _code(status: HealthStatus) -> int:
    return 200 if status in _OK else 503


class HealthEndpoints:
    """The handlers, bound to one monitor."""

    def __init__(self, monitor: MonitorParts) -> None:
        self.monitor = monitor
        self.checker = monitor.health
        # Set once and kept: a startup probe only matters until it first succeeds (the kubelet
        # stops probing then), and a restart makes a new process.
        self._started = False

    async def overall(self, request: Request) -> Response:
        group = request.query_params.get("group") or None
        results = self.checker.results(group)
        if group is not None and not results:
            return error_response(f"no health checks in group {shown(group)}", 404)
        status = self.checker.overall(group)
        admin = _is_admin(request)
        if HEALTH_JSON in request.headers.get("accept", ""):
            return self._ietf(status, results, admin)
        body = {
            "status": status.value,
            "timestamp": datetime.now(timezone.utc).isoformat(),
            "checks": {name: self._view(result, admin) for name, result in results.items()},
        }
        return json_response(body, _code(status))

    def _view(self, result: HealthCheck, admin: bool) -> dict[str, Any]:
        view = result.public_view(admin=admin)
        check = self.checker.checks.get(result.name)
        if check is not None:
            view["critical"] = check.critical
            view["groups"] = sorted(check.groups)
            if admin:
                view["description"] = check.description
                view["interval_seconds"] = check.interval
        return view

    def _ietf(self, status: HealthStatus, results: dict[str, HealthCheck],
              admin: bool) -> Response:
        # draft-inadarei-api-health-check: "checks" maps "component:measurement" to a list.
        checks: dict[str, list[dict[str, Any]]] = {}
        for name, result in results.items():
            entry: dict[str, Any] = {
                "componentId": name,
                "status": result.status.ietf,
                "time": result.timestamp.isoformat(),
                "output": result.message,
            }
            if result.observed_value is not None:
                entry["observedValue"] = result.observed_value
                entry["observedUnit"] = result.observed_unit
            if admin and result.details:
                entry["details"] = result.details
            checks[f"{name}:{_measurement(result)}"] = [entry]
        overall_word = "fail" if status is HealthStatus.UNKNOWN else status.ietf
        identity = self.monitor.identity
        body: dict[str, Any] = {"status": overall_word,
                                "serviceId": identity.labels()["service"]}
        # The draft's optional fields, when known: what runs, and which deploy of it.
        if identity.version:
            body["version"] = identity.version
        if identity.release:
            body["releaseId"] = identity.release
        body["checks"] = checks
        return json_response(body, _code(status), media_type=HEALTH_JSON)

    async def one(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in self.checker.checks:
            return error_response(
                f"no health check named {shown(name)}; GET the health path for the list", 404)
        result = self.checker.result(name)
        return json_response(self._view(result, _is_admin(request)), _code(result.status))

    async def run(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in self.checker.checks:
            return error_response(f"no health check named {shown(name)}", 404)
        result = await self.checker.run_check(name)
        return json_response(self._view(result, admin=True), _code(result.status))

    async def live(self, request: Request) -> Response:
        live = self.checker.is_live()
        return json_response({"status": "pass" if live else "fail"}, 200 if live else 503)

    async def startup(self, request: Request) -> Response:
        # Read from state, never by running a check: the app's startup completed (the monitor
        # turned ready) and the scheduler has a result for every check, whatever it says.
        if not self._started:
            pending = sorted(name for name, check in self.checker.checks.items()
                             if check.last is None)
            if not self.monitor.ready:
                return json_response({"status": "fail", "reason": self.monitor.not_ready_reason},
                                     503)
            if pending:
                return json_response({"status": "fail", "reason": "first health checks running",
                                      "pending": pending}, 503)
            self._started = True
        return json_response({"status": "pass"})

    async def ready(self, request: Request) -> Response:
        if not self.monitor.ready:
            return json_response({"status": "fail", "reason": self.monitor.not_ready_reason},
                                 503)
        if not self.checker.is_ready():
            failing = sorted(name for name, r in self.checker.results("readiness").items()
                             if r.status is HealthStatus.CRITICAL
                             and self.checker.checks[name].critical)
            return json_response({"status": "fail", "failing": failing}, 503)
        return json_response({"status": "pass"})


def _measurement(result: HealthCheck) -> str:
    unit = result.observed_unit or ""
    if "ms" in unit:
        return "responseTime"
    if "percent" in unit:
        return "utilization"
    return "status"
