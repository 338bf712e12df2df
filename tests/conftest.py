"""Shared fixtures: a fresh registry per test and an app factory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from asgi_monitor import MonitoringConfig, MonitoringMiddleware


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def wrap(registry: CollectorRegistry) -> Callable[..., MonitoringMiddleware]:
    """wrap(app, **config_fields) -> the app in a middleware on this test's registry."""

    def factory(app: Any, **config: Any) -> MonitoringMiddleware:
        return MonitoringMiddleware(app, MonitoringConfig(**config), registry=registry)

    return factory
