"""asgi_monitor: Prometheus metrics, health checks, alerting and a dashboard for any ASGI app.

Wrap the app in one line::

    from asgi_monitor import MonitoringMiddleware
    app = MonitoringMiddleware(app)
"""

from __future__ import annotations

from ._version import __version__ as __version__
from .collector import MetricsCollector
from .config import MonitoringConfig
from .errors import ConfigError, LifecycleError, MetricError, MonitoringError
from .instrumentation import (
    instrument_sqlalchemy,
    monitor_cache_operation,
    monitor_database_operation,
)
from .middleware import MonitoringMiddleware
from .monitor import (
    Monitor,
    get_alert_manager,
    get_health_checker,
    get_metrics_collector,
    get_monitor,
)
from .secret import Secret

__all__ = [
    "ConfigError",
    "LifecycleError",
    "MetricError",
    "MetricsCollector",
    "Monitor",
    "MonitoringConfig",
    "MonitoringError",
    "MonitoringMiddleware",
    "Secret",
    "get_alert_manager",
    "get_health_checker",
    "get_metrics_collector",
    "get_monitor",
    "instrument_sqlalchemy",
    "monitor_cache_operation",
    "monitor_database_operation",
]

