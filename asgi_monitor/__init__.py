"""asgi_monitor: Prometheus metrics, health checks, alerting and a dashboard for any ASGI app.

Wrap the app in one line::

    from asgi_monitor import MonitoringMiddleware
    app = MonitoringMiddleware(app)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .config import (
    AlertSettings,
    EmailSettings,
    GateSettings,
    HealthSettings,
    HistorySettings,
    MetricsSettings,
    MonitoringConfig,
    PathSettings,
    ServiceSettings,
    SystemSettings,
    WebhookSettings,
)
from .default import build_default_with as _build_default_with
from .default import (
    get_alert_manager,
    get_health_checker,
    get_metrics_collector,
    get_monitor,
    set_default_monitor,
)
from .errors import ConfigError, LifecycleError, MetricError, MonitoringError
from .middleware import MonitoringMiddleware, add_monitoring_middleware
from .secret import Secret


def _build_default(config: MonitoringConfig | None) -> Monitor:
    # The composition root loads when the process-wide monitor is first needed, not on import;
    # the package names it here because default.py, below it, must not import it.
    from .build import build_monitor

    return build_monitor(config)


_build_default_with(_build_default)

# The components (collector, health, alerting, history) load when a monitor is first built, and
# these names when first used, so importing the package or the middleware costs little.
_LAZY = {
    "Monitor": ".monitor",
    "MetricsCollector": ".collector",
    "build_monitor": ".build",
    "instrument_sqlalchemy": ".instrumentation",
    "monitor_cache_operation": ".instrumentation",
    "monitor_database_operation": ".instrumentation",
    "__version__": "._version",
}

if TYPE_CHECKING:
    from ._version import __version__ as __version__
    from .build import build_monitor
    from .collector import MetricsCollector
    from .instrumentation import (
        instrument_sqlalchemy,
        monitor_cache_operation,
        monitor_database_operation,
    )
    from .monitor import Monitor
else:

    def __getattr__(name: str) -> Any:
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, __name__), name)
        globals()[name] = value
        return value

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
    "ServiceSettings",
    "SystemSettings",
    "WebhookSettings",
    "add_monitoring_middleware",
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

