"""Request labels in the configuration: from code and from the environment, and the names a
request label must not take (a ConfigError naming the label and the setting)."""

from __future__ import annotations

from typing import Any

import pytest

from asgi_monitor.config import MetricsSettings, MonitoringConfig
from asgi_monitor.config.labels import Computed, RequestHeader, ResponseHeader, ScopeValue
from asgi_monitor.errors import ConfigError


def region(scope: Any, status: int, headers: Any) -> str | None:
    return None


def test_labels_from_code_and_the_environment_together() -> None:
    config = MonitoringConfig.from_env({
        "MONITORING_HEADER_LABELS": "tenant=X-Tenant, client=X-Client-Id",
        "MONITORING_LABEL_MAX_VALUES": "5"})
    assert config.metrics.labels == (("tenant", RequestHeader("X-Tenant")),
                                     ("client", RequestHeader("X-Client-Id")))
    assert config.metrics.label_max_values == 5
    metrics = MetricsSettings(header_labels=(("tenant", "X-Tenant"),), request_labels={
        "cache": ResponseHeader("X-Cache", allowed=("HIT", "MISS")),
        "plan": ScopeValue("state", "plan"), "region": region})
    assert [name for name, _ in metrics.labels] == ["tenant", "cache", "plan", "region"]
    # A plain callable is a Computed source; equal configurations stay equal.
    assert dict(metrics.labels)["region"] == Computed(region)
    assert metrics == MetricsSettings(header_labels=(("tenant", "X-Tenant"),), request_labels={
        "cache": ResponseHeader("X-Cache", allowed=("MISS", "HIT")),
        "plan": ScopeValue("state", "plan"), "region": Computed(region)})
    assert MetricsSettings().labels == () and MetricsSettings().label_max_values == 20


@pytest.mark.parametrize("name", ["method", "route", "status", "le", "handler", "http_route",
                                  "error_type", "job", "instance", "__meta", "service"])
def test_a_reserved_name_is_an_error_naming_the_label(name: str) -> None:
    with pytest.raises(ConfigError) as raised:
        MonitoringConfig.from_env({"MONITORING_HEADER_LABELS": f"{name}=X-Thing",
                                   "MONITORING_CONSTANT_LABELS": "service=shop"})
    assert "MONITORING_HEADER_LABELS" in str(raised.value)
    assert repr(name) in str(raised.value)


@pytest.mark.parametrize("raw", ["tenant", "9tenant=X", "ten-ant=X", "tenant=X Tenant",
                                 "tenant=", "tenant=X,tenant=Y"])
def test_malformed_header_labels_are_an_error(raw: str) -> None:
    with pytest.raises(ConfigError, match="MONITORING_HEADER_LABELS"):
        MonitoringConfig.from_env({"MONITORING_HEADER_LABELS": raw})


def test_code_labels_are_checked_too() -> None:
    with pytest.raises(ConfigError, match=r"metrics.request_labels.*'route'"):
        MetricsSettings(request_labels={"route": RequestHeader("X")})
    with pytest.raises(ConfigError, match=r"second label 'tenant'"):
        MetricsSettings(header_labels=(("tenant", "X-Tenant"),),
                        request_labels={"tenant": RequestHeader("X-Other")})
    with pytest.raises(ConfigError, match="metrics.request_labels"):
        MetricsSettings(request_labels={"tenant": "X-Tenant"})  # a header name, not a source
    with pytest.raises(ConfigError, match="MONITORING_LABEL_MAX_VALUES"):
        MonitoringConfig.from_env({"MONITORING_LABEL_MAX_VALUES": "0"})
