"""Instrumentation beyond HTTP: database, cache, user activity and system resources.

Each module owns its metric families and is reached through the collector
(``get_metrics_collector().database`` / ``.cache`` / ``.users``) or through the decorators
exported by :mod:`asgi_monitor`. Part of the core: nothing here imports the web layer.
"""

from __future__ import annotations

from .cache import CacheMetrics
from .database import DatabaseMetrics
from .decorators import (
    Instrumented,
    instrument_sqlalchemy,
    monitor_cache_operation,
    monitor_database_operation,
)
from .system import SystemMetrics
from .users import LOGIN_FAILURE_REASONS, UserMetrics

__all__ = [
    "CacheMetrics",
    "DatabaseMetrics",
    "Instrumented",
    "LOGIN_FAILURE_REASONS",
    "SystemMetrics",
    "UserMetrics",
    "instrument_sqlalchemy",
    "monitor_cache_operation",
    "monitor_database_operation",
]
