"""Shared fixtures: a fresh registry per test, an app factory and a monitor factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from asgi_monitor import MonitoringConfig, MonitoringMiddleware
from asgi_monitor import monitor as monitor_module
from asgi_monitor.monitor import Monitor, set_monitor


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def wrap(registry: CollectorRegistry) -> Callable[..., MonitoringMiddleware]:
    """wrap(app, **config_fields) -> the app in a middleware on this test's registry."""

    def factory(app: Any, **config: Any) -> MonitoringMiddleware:
        return MonitoringMiddleware(app, MonitoringConfig(**config), registry=registry)

    return factory


@pytest.fixture
def make_monitor() -> Iterator[Callable[..., Monitor]]:
    """A factory: a Monitor on a fresh registry that ``get_metrics_collector()`` returns."""
    previous = monitor_module._default

    def make(**config: Any) -> Monitor:
        config.setdefault("system_metrics", False)
        monitor = Monitor(MonitoringConfig(**config), registry=CollectorRegistry())
        set_monitor(monitor)
        return monitor

    yield make
    monitor_module._default = previous


@pytest.fixture
def monitor(make_monitor: Callable[..., Monitor]) -> Monitor:
    return make_monitor()
