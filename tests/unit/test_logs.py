"""Logging: one start-up line with the masked configuration; the root logger left alone."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from asgi_monitor import ConfigError, MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.config import EmailSettings


async def app(scope: object, receive: object, send: object) -> None:
    return None


@pytest.fixture(autouse=True)
def clean_package_logger() -> object:
    package = logging.getLogger("asgi_monitor")
    handlers, level = list(package.handlers), package.level
    yield
    for handler in package.handlers:
        if handler not in handlers:
            handler.close()
    package.handlers[:] = handlers
    package.setLevel(level)


def test_start_up_line_with_masked_configuration(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="asgi_monitor")
    MonitoringMiddleware(
        app,
        monitor=build_monitor(
            MonitoringConfig(email=EmailSettings(password="s3cr3t-value")), CollectorRegistry()))
    lines = [r.getMessage() for r in caplog.records
             if r.getMessage().startswith("Monitoring middleware initialized")]
    assert len(lines) == 1
    assert '"password": "**********"' in lines[0]
    assert "s3cr3t-value" not in caplog.text


def test_debug_and_log_file_configure_only_the_package_logger(tmp_path: Path) -> None:
    root_handlers = list(logging.getLogger().handlers)
    root_level = logging.getLogger().level
    log_file = tmp_path / "logs" / "monitoring.log"
    config = MonitoringConfig(debug=True, log_file=str(log_file))
    MonitoringMiddleware(app, monitor=build_monitor(config, CollectorRegistry()))
    package = logging.getLogger("asgi_monitor")
    assert package.level == logging.DEBUG
    logging.getLogger("asgi_monitor.test").debug("a debug line")
    for handler in package.handlers:
        handler.flush()
    text = log_file.read_text()
    assert "Monitoring middleware initialized" in text
    assert "a debug line" in text
    assert logging.getLogger().handlers == root_handlers
    assert logging.getLogger().level == root_level


def test_unwritable_log_file_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="MONITORING_LOG_FILE"):
        MonitoringMiddleware(
            app,
            monitor=build_monitor(
                MonitoringConfig(log_file=str(blocker / "x.log")), CollectorRegistry()))
