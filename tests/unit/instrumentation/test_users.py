from __future__ import annotations

from collections.abc import Callable

import pytest

from asgi_monitor import MetricError, get_metrics_collector
from asgi_monitor.config import MetricsSettings
from asgi_monitor.instrumentation.users import LOGIN_FAILURE_REASONS
from asgi_monitor.monitor import Monitor


def test_login_counters_and_unknown_reason_is_other(monitor: Monitor) -> None:
    users = get_metrics_collector().users
    users.login_succeeded()
    users.login_succeeded()
    users.login_failed("bad_credentials")
    users.login_failed("no such user alice@example.com")  # never becomes a label
    users.login_failed()

    value = monitor.registry.get_sample_value
    assert value("user_logins_total", {"result": "success"}) == 2
    assert value("user_logins_total", {"result": "failure"}) == 3
    assert value("user_login_failures_total", {"reason": "bad_credentials"}) == 1
    assert value("user_login_failures_total", {"reason": "other"}) == 2
    reasons = {s.labels["reason"] for m in monitor.registry.collect()
               if m.name == "user_login_failures" for s in m.samples}
    assert reasons == set(LOGIN_FAILURE_REASONS)


def test_active_sessions_set_by_the_app(monitor: Monitor) -> None:
    users = monitor.collector.users
    users.set_active_sessions(12)
    users.set_active_sessions(7)
    assert monitor.registry.get_sample_value("user_active_sessions") == 7
    with pytest.raises(MetricError):
        users.sample_active_sessions(lambda: 1)


def test_active_sessions_sampled_at_scrape_time(monitor: Monitor) -> None:
    sessions = [3]
    monitor.collector.users.sample_active_sessions(lambda: sessions[0])
    assert monitor.registry.get_sample_value("user_active_sessions") == 3
    sessions[0] = 5
    assert monitor.registry.get_sample_value("user_active_sessions") == 5
    with pytest.raises(MetricError):
        monitor.collector.users.set_active_sessions(1)


def test_a_failing_sessions_callable_leaves_the_sample_out(
    monitor: Monitor, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> int:
        raise ConnectionError("session store down")

    monitor.collector.users.sample_active_sessions(broken)
    assert monitor.registry.get_sample_value("user_active_sessions") is None
    assert "session store down" in caplog.text


def test_audit_events_by_type_are_bounded(make_monitor: Callable[..., Monitor]) -> None:
    monitor = make_monitor(metrics=MetricsSettings(max_series=2))
    users = monitor.collector.users
    for event in ("password_changed", "password_changed", "role_granted", "x", "y"):
        users.audit_event(event)
    value = monitor.registry.get_sample_value
    assert value("audit_events_total", {"event_type": "password_changed"}) == 2
    assert value("audit_events_total", {"event_type": "role_granted"}) == 1
    assert value("audit_events_total", {"event_type": "<overflow>"}) == 2
