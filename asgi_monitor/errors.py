"""Exceptions raised by asgi_monitor.

All of them derive from one root, so ``except MonitoringError`` catches anything we raise::

    MonitoringError
    ├── ConfigError      a setting (argument or environment variable) has a bad value
    ├── MetricError      a custom metric was misused (bad name, changed labels, negative increment)
    └── LifecycleError   start/stop called in the wrong state
"""

from __future__ import annotations

__all__ = ["ConfigError", "LifecycleError", "MetricError", "MonitoringError"]


class MonitoringError(Exception):
    """Root of every exception asgi_monitor raises."""


class ConfigError(MonitoringError, ValueError):
    """A configuration value is invalid; the message names the setting and the accepted form."""


class MetricError(MonitoringError, ValueError):
    """A custom metric call is invalid (name, label set, type or value)."""


class LifecycleError(MonitoringError, RuntimeError):
    """The monitor was started or stopped in a state that does not allow it."""
