"""Health monitoring: checks, their scheduler and the results the health API serves.

::

    from asgi_monitor import get_health_checker
    from asgi_monitor.health import HealthCheck, HealthStatus

    get_health_checker().register_check("custom_service", "Custom service availability", fn,
                                        interval_seconds=60)
"""

from __future__ import annotations

from .builtin import (
    cache_check,
    cpu_check,
    database_check,
    disk_check,
    memory_check,
    responsiveness_check,
    session_check,
)
from .checker import CheckFunction, HealthChecker, HealthMetrics
from .models import HealthCheck, HealthStatus

__all__ = [
    "CheckFunction",
    "HealthCheck",
    "HealthChecker",
    "HealthMetrics",
    "HealthStatus",
    "cache_check",
    "cpu_check",
    "database_check",
    "disk_check",
    "memory_check",
    "responsiveness_check",
    "session_check",
]
