"""asgi_monitor: Prometheus metrics, health checks, alerting and a dashboard for any ASGI app.

Wrap the app in one line::

    from asgi_monitor import MonitoringMiddleware
    app = MonitoringMiddleware(app)
"""

from __future__ import annotations

from ._version import __version__ as __version__
from .build import build_monitor
from .collector import MetricsCollector
from .config import (
    AlertSettings,
    EmailSettings,
    GateSettings,
    HealthSettings,
    HistorySettings,
    MetricsSettings,
    MonitoringConfig,
    PathSettings,
    SystemSettings,
    WebhookSettings,
)
from .default import (
    get_alert_manager,
    get_health_checker,
    get_metrics_collector,
    get_monitor,
    set_default_monitor,
)
from .errors import ConfigError, LifecycleError, MetricError, MonitoringError
from .instrumentation import (
    instrument_sqlalchemy,
    monitor_cache_operation,
    monitor_database_operation,
)
from .middleware import MonitoringMiddleware
from .monitor import Monitor
from .secret import Secret

__all__ = [
    "AlertSettings",
    "ConfigError",
    "EmailSettings",
    "GateSettings",
    "HealthSettings",
    "HistorySettings",
    "LifecycleError",
    "MetricError",
    "MetricsCollector",
    "MetricsSettings",
    "Monitor",
    "MonitoringConfig",
    "MonitoringError",
    "MonitoringMiddleware",
    "PathSettings",
    "Secret",
    "SystemSettings",
    "WebhookSettings",
    "build_monitor",
    "get_alert_manager",
    "get_health_checker",
    "get_metrics_collector",
    "get_monitor",
    "instrument_sqlalchemy",
    "monitor_cache_operation",
    "monitor_database_operation",
    "set_default_monitor",
]

