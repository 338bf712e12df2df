"""The process-wide default monitor: the one ``get_metrics_collector()`` and the decorators use.

It is set in one of two visible ways, and nowhere else:

- :func:`get_monitor` builds it on first use, from ``config`` or from the environment, on
  prometheus_client's default registry (``MonitoringMiddleware(app)`` and
  ``MonitoringMiddleware(app, config)`` go through here);
- :func:`set_default_monitor` makes a monitor you built with :func:`~asgi_monitor.build_monitor`
  the default (and returns the previous one, so tests can put it back).

``MonitoringMiddleware(app, monitor=m)`` uses ``m`` and never changes the default.

This module sits below the composition root and never imports it: the middleware and the
decorators reach the default through here, and :mod:`asgi_monitor` (the package, imported before
any of its modules) names the builder with :func:`build_default_with`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from .errors import LifecycleError

if TYPE_CHECKING:
    from .alerting.manager import AlertManager
    from .collector import MetricsCollector
    from .config import MonitoringConfig
    from .health.checker import HealthChecker
    from .monitor import Monitor

__all__ = ["get_alert_manager", "get_health_checker", "get_metrics_collector", "get_monitor",
           "set_default_monitor"]

_default: Monitor | None = None
_lock = threading.Lock()
_build: Callable[[MonitoringConfig | None], Monitor] | None = None


def build_default_with(build: Callable[[MonitoringConfig | None], Monitor]) -> None:
    """How the default is built on first use (the package passes ``build_monitor`` here)."""
    global _build
    _build = build


def get_monitor(config: MonitoringConfig | None = None) -> Monitor:
    """The process-wide monitor, built with ``config`` (default: the environment) on first use.

    It lives on prometheus_client's default registry, which cannot hold two of them, so asking
    for it with a configuration other than the one it was built with is an error rather than a
    silent split of the metrics.
    """
    found = _default  # lock-free once it exists: the decorators look it up on every call
    if found is not None and (config is None or config == found.config):
        return found
    with _lock:
        return _get_or_build(config)


def _get_or_build(config: MonitoringConfig | None) -> Monitor:
    global _default
    if _default is None:
        if _build is None:
            raise LifecycleError("asgi_monitor.default is used before asgi_monitor was imported")
        _default = _build(config)
    elif config is not None and config != _default.config:
        raise LifecycleError(
            "the process-wide monitor already exists with another configuration (something "
            "called get_metrics_collector() or wrapped an app first); configure it once, or "
            "pass monitor=build_monitor(config, registry) for a separate monitor")
    return _default


def set_default_monitor(monitor: Monitor | None) -> Monitor | None:
    """Make ``monitor`` the one ``get_*()`` return; returns the one it replaces."""
    global _default
    with _lock:
        previous, _default = _default, monitor
    return previous


def get_metrics_collector() -> MetricsCollector:
    """The collector the middleware records into; add custom metrics here."""
    return get_monitor().collector


def get_health_checker() -> HealthChecker:
    """The health checker whose results ``/api/health`` serves; register checks here."""
    return get_monitor().health


def get_alert_manager() -> AlertManager:
    """The alert manager that evaluates rules and notifies; register rules here."""
    return get_monitor().alerts
