from __future__ import annotations

import asgi_monitor
import asgi_monitor.alerting
import asgi_monitor.instrumentation


def test_all_is_sorted_and_importable() -> None:
    for module in (asgi_monitor, asgi_monitor.alerting, asgi_monitor.instrumentation):
        names = module.__all__
        assert names == sorted(names), module.__name__
        for name in names:
            assert hasattr(module, name), name


def test_instrumentation_is_exported() -> None:
    assert {"instrument_sqlalchemy", "monitor_cache_operation",
            "monitor_database_operation"} <= set(asgi_monitor.__all__)
