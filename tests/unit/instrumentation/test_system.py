from __future__ import annotations

import logging
from collections.abc import Callable

import psutil
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from asgi_monitor import ConfigError, MonitoringConfig
from asgi_monitor.config import MetricsSettings, SystemSettings
from asgi_monitor.instrumentation.system import SystemMetrics
from asgi_monitor.monitor import Monitor

SAMPLES = (
    "app_process_resident_memory_bytes", "app_process_cpu_seconds_total", "app_process_open_fds",
    "app_process_threads", "system_cpu_usage_percent", "system_memory_usage_percent",
)


def test_reads_psutil_at_scrape_time(make_monitor: Callable[..., Monitor]) -> None:
    monitor = make_monitor(
        system=SystemSettings(metrics=True, disk_paths=("/",)),
        metrics=MetricsSettings(namespace="shop"))
    value = monitor.registry.get_sample_value
    for name in SAMPLES:
        assert value(f"shop_{name}") is not None, name
    assert value("shop_app_process_resident_memory_bytes") > 1_000_000  # type: ignore[operator]
    assert 0 <= value("shop_system_disk_usage_percent", {"path": "/"}) <= 100  # type: ignore[operator]


def test_off_by_config(monitor: Monitor) -> None:
    assert monitor.registry.get_sample_value("system_memory_usage_percent") is None


def test_a_psutil_failure_leaves_that_sample_out(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    registry = CollectorRegistry()
    registry.register(SystemMetrics(disk_paths=("/", "/no/such/mount")))

    def denied(self: psutil.Process) -> int:
        raise psutil.AccessDenied(self.pid)

    monkeypatch.setattr(psutil.Process, "num_fds", denied)
    with caplog.at_level(logging.WARNING, logger="asgi_monitor.system"):
        body = generate_latest(registry).decode()  # the scrape itself succeeds
        generate_latest(registry)  # a second scrape: the warning is rate-limited

    assert "app_process_open_fds " not in body
    assert registry.get_sample_value("app_process_threads") is not None
    assert registry.get_sample_value("system_disk_usage_percent", {"path": "/"}) is not None
    assert registry.get_sample_value(
        "system_disk_usage_percent", {"path": "/no/such/mount"}) is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage().split(";")[0] for r in warnings] == [
        "asgi_monitor could not read process open fds",
        "asgi_monitor could not read disk usage of /no/such/mount",
    ]


def test_every_psutil_call_failing_still_scrapes(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = CollectorRegistry()
    registry.register(SystemMetrics())

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("no /proc")

    for name in ("memory_info", "cpu_times", "num_fds", "num_threads"):
        monkeypatch.setattr(psutil.Process, name, broken)
    for name in ("cpu_percent", "virtual_memory", "disk_usage"):
        monkeypatch.setattr(psutil, name, broken)
    body = generate_latest(registry).decode()
    assert "system_disk_usage_percent" in body  # the family's HELP/TYPE, with no samples
    for name in SAMPLES:
        assert registry.get_sample_value(name) is None


def test_settings_from_the_environment() -> None:
    config = MonitoringConfig.from_env(
        {"MONITORING_SYSTEM_METRICS": "off", "MONITORING_DISK_PATHS": "/, /var/lib/data"})
    assert config.system.metrics is False
    assert config.system.disk_paths == ("/", "/var/lib/data")
    assert MonitoringConfig().system.disk_paths == ("/",) and MonitoringConfig().system.metrics


def test_bad_settings_name_the_variable() -> None:
    with pytest.raises(ConfigError, match="MONITORING_SYSTEM_METRICS"):
        MonitoringConfig.from_env({"MONITORING_SYSTEM_METRICS": "maybe"})
    for bad in ("/", ("",), ("/", 3)):
        with pytest.raises(ConfigError, match="MONITORING_DISK_PATHS"):
            MonitoringConfig(system=SystemSettings(disk_paths=bad))  # type: ignore[arg-type]
    # An empty variable means unset (the default); no disks at all is said in code.
    assert MonitoringConfig.from_env({"MONITORING_DISK_PATHS": ""}).system.disk_paths == ("/",)
    assert SystemSettings(disk_paths=()).disk_paths == ()
