"""The default rules, over the sampled metrics (:mod:`asgi_monitor.sampling`) and health.

Every rate comes from a :class:`~asgi_monitor.sampling.samples.Window` of the samples the monitor
already takes (differences of cumulative totals, like PromQL's ``increase()``), so alerting adds
nothing to the request path. Thresholds come from the configuration (``ALERT_*`` variables).
The conditions are async and only read memory, so they run on the event loop, next to the
sampler that appends to the same buffer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..config.alerts import AlertSettings
from ..config.health import SystemSettings
from ..health.checker import HealthChecker
from ..health.models import HealthStatus
from ..sampling.samples import SampleBuffer
from ..units import duration_label
from .manager import AlertManager
from .models import AlertSeverity

__all__ = ["DEFAULT_RULES", "install_default_rules"]

Result = tuple[float | None, bool]
DEFAULT_RULES = ("high_error_rate", "slow_responses", "high_memory_usage", "database_issues",
                 "login_failure_spike", "low_disk_space")


def install_default_rules(manager: AlertManager, alerts: AlertSettings, system: SystemSettings,
                          samples: SampleBuffer, health: HealthChecker) -> None:
    """Register the six default rules (the table in docs/alerting.md)."""
    window = alerts.window_seconds
    minutes = duration_label(window)

    async def error_rate() -> Result:
        w = samples.window(window)
        if w is None or w.increase("requests") < alerts.min_requests:
            return None, False
        ratio = w.ratio("errors", "requests") or 0.0
        percent = ratio * 100
        return percent, percent > alerts.error_rate_percent

    async def response_time() -> Result:
        w = samples.window(window)
        if w is None or w.increase("duration_count") < alerts.min_requests:
            return None, False
        average = w.ratio("duration_sum", "duration_count")
        return average, average is not None and average > alerts.response_time_seconds

    async def memory() -> Result:
        latest = samples.latest()
        used = latest.memory_percent if latest is not None else None
        return used, used is not None and used > system.memory_warning_percent

    async def database() -> Result:
        if "database" in health.checks and (
                health.result("database").status is HealthStatus.CRITICAL):
            return None, True
        w = samples.window(window)
        if w is None or w.increase("db_queries") < alerts.min_requests:
            return None, False
        percent = (w.ratio("db_errors", "db_queries") or 0.0) * 100
        return percent, percent > alerts.db_error_rate_percent

    async def login_failures() -> Result:
        w = samples.window(window)
        if w is None:
            return None, False
        failures = w.increase("login_failures")
        return failures, failures > alerts.login_failures

    async def disk() -> Result:
        latest = samples.latest()
        if latest is None or not latest.disk_percent:
            return None, False
        free = min(100.0 - used for used in latest.disk_percent.values())
        return free, free < system.disk_warning_free_percent

    rules: list[tuple[str, str, Callable[[], Awaitable[Result]], AlertSeverity]] = [
        ("high_error_rate",
         f"HTTP 5xx error rate above {alerts.error_rate_percent:g}% over {minutes}",
         error_rate, AlertSeverity.CRITICAL),
        ("slow_responses",
         f"Average response time above {alerts.response_time_seconds:g}s over {minutes}",
         response_time, AlertSeverity.WARNING),
        ("high_memory_usage", f"System memory usage above {system.memory_warning_percent:g}%",
         memory, AlertSeverity.WARNING),
        ("database_issues",
         f"Database health check critical or query error rate above "
         f"{alerts.db_error_rate_percent:g}% over {minutes}",
         database, AlertSeverity.CRITICAL),
        ("login_failure_spike",
         f"More than {alerts.login_failures} failed logins over {minutes}",
         login_failures, AlertSeverity.WARNING),
        ("low_disk_space", f"Less than {system.disk_warning_free_percent:g}% disk space free",
         disk, AlertSeverity.WARNING),
    ]
    for name, description, condition, severity in rules:
        manager.register_rule(name, description, condition, severity,
                              cooldown_seconds=alerts.cooldown_seconds)
