"""Shared fixtures: a fresh registry per test, an app factory and a monitor factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from asgi_monitor import (
    MonitoringConfig,
    MonitoringMiddleware,
    SystemSettings,
    build_monitor,
    set_default_monitor,
)
from asgi_monitor.monitor import Monitor


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def wrap(registry: CollectorRegistry) -> Callable[..., MonitoringMiddleware]:
    """wrap(app, **config_sections) -> the app in a middleware with a monitor on this test's
    registry."""

    def factory(app: Any, **config: Any) -> MonitoringMiddleware:
        return MonitoringMiddleware(app, monitor=build_monitor(MonitoringConfig(**config),
                                                               registry))

    return factory


@pytest.fixture
def make_monitor() -> Iterator[Callable[..., Monitor]]:
    """A factory: a Monitor on a fresh registry that ``get_metrics_collector()`` returns."""
    made: list[Monitor] = []
    previous = None

    def make(**config: Any) -> Monitor:
        nonlocal previous
        config.setdefault("system", SystemSettings(metrics=False))
        monitor = build_monitor(MonitoringConfig(**config), CollectorRegistry())
        replaced = set_default_monitor(monitor)
        if not made:
            previous = replaced
        made.append(monitor)
        return monitor

    yield make
    if made:
        set_default_monitor(previous)


@pytest.fixture
def monitor(make_monitor: Callable[..., Monitor]) -> Monitor:
    return make_monitor()
