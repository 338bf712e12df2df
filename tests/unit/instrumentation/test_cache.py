from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from asgi_monitor import get_metrics_collector, monitor_cache_operation
from asgi_monitor.config import MetricsSettings
from asgi_monitor.monitor import Monitor


def ops(monitor: Monitor, cache: str, operation: str) -> float | None:
    return monitor.registry.get_sample_value(
        "cache_operations_total", {"cache": cache, "operation": operation})


def test_plain_calls_and_hit_rate(monitor: Monitor) -> None:
    cache = get_metrics_collector().cache
    assert cache.hit_rate() is None
    for _ in range(3):
        cache.hit("sessions", duration=0.0002)
    cache.miss("sessions")
    cache.set("sessions", duration=0.001)
    cache.delete("sessions")
    cache.miss("pages")

    assert ops(monitor, "sessions", "hit") == 3
    assert ops(monitor, "sessions", "miss") == 1
    assert ops(monitor, "sessions", "set") == 1
    assert ops(monitor, "sessions", "delete") == 1
    assert monitor.registry.get_sample_value(
        "cache_operation_duration_seconds_count", {"cache": "sessions", "operation": "hit"}) == 3
    assert cache.hit_rate("sessions") == 0.75
    assert cache.hit_rate("pages") == 0.0
    assert cache.hit_rate() == 0.6
    assert cache.hit_rate("unknown") is None


def test_decorated_get_set_delete_sync_and_async(monitor: Monitor) -> None:
    store: dict[str, str] = {"a": "1"}

    @monitor_cache_operation("users")
    def get(key: str) -> str | None:
        return store.get(key)

    @monitor_cache_operation("users", "set")
    async def put(key: str, value: str) -> None:
        store[key] = value

    @monitor_cache_operation("users", "delete")
    def delete(key: str) -> None:
        del store[key]

    assert get("a") == "1"
    assert get("b") is None
    asyncio.run(put("b", "2"))
    assert get("b") == "2"
    delete("a")
    with pytest.raises(KeyError):
        delete("a")

    assert ops(monitor, "users", "hit") == 2
    assert ops(monitor, "users", "miss") == 1
    assert ops(monitor, "users", "set") == 1
    assert ops(monitor, "users", "delete") == 1
    assert ops(monitor, "users", "error") == 1
    assert monitor.collector.cache.hit_rate("users") == pytest.approx(2 / 3)


def test_custom_hit_predicate(monitor: Monitor) -> None:
    @monitor_cache_operation("flags", is_hit=lambda found: found[0])
    async def lookup(key: str) -> tuple[bool, object]:
        return (key == "on", None)

    asyncio.run(lookup("on"))
    asyncio.run(lookup("off"))
    assert ops(monitor, "flags", "hit") == 1
    assert ops(monitor, "flags", "miss") == 1


def test_a_failing_predicate_never_breaks_the_call(monitor: Monitor) -> None:
    @monitor_cache_operation("broken", is_hit=lambda result: 1 / 0 > 0)
    def lookup() -> str:
        return "value"

    assert lookup() == "value"
    assert monitor.collector.internal_errors == {"cache": 1}


def test_cache_names_stay_bounded(make_monitor: Callable[..., Monitor]) -> None:
    monitor = make_monitor(metrics=MetricsSettings(max_series=10))
    for i in range(50):
        monitor.collector.cache.hit(f"cache-{i}")
    assert ops(monitor, "<overflow>", "hit") == 40
    assert monitor.registry.get_sample_value(
        "asgi_monitor_series_dropped_total", {"metric": "cache_operations_total"}) == 40
