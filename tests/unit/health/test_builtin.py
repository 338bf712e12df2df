"""The built-in checks against real things: the system, a blocked loop, SQLite, SQLAlchemy
engines and an app's session callable (Redis is in integration/test_redis.py)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from asgi_monitor.health import (
    HealthChecker,
    HealthStatus,
    database_check,
    disk_check,
    memory_check,
    responsiveness_check,
    session_check,
)


# -- built-in checks against real things -------------------------------------------------------
async def test_builtin_system_checks_report_observed_values(tmp_path: Path) -> None:
    checker = HealthChecker()
    checker.register_check("memory", "", memory_check())
    checker.register_check("disk", "", disk_check(str(tmp_path)))
    checker.register_check("lag", "", responsiveness_check())
    results = await checker.run_all()
    assert 0 < results["memory"].observed_value <= 100  # type: ignore[operator]
    assert results["disk"].observed_unit == "percent free"
    assert results["lag"].observed_unit == "ms"
    # Thresholds at 0 % free / 0 % used make the same machine read as failing.
    checker.register_check("full", "", memory_check(warning_percent=0, critical_percent=0.001))
    assert (await checker.run_check("full")).status is HealthStatus.CRITICAL


async def test_responsiveness_detects_a_blocked_loop() -> None:
    checker = HealthChecker()
    checker.register_check("lag", "", responsiveness_check(warning_ms=20, critical_ms=100,
                                                           probe_seconds=0.001))
    # While the probe sleeps, block the loop as sync code in an async endpoint would.
    asyncio.get_running_loop().call_later(0.0005, time.sleep, 0.2)
    result = await checker.run_check("lag")
    assert result.status is HealthStatus.CRITICAL
    assert result.observed_value is not None and result.observed_value >= 150


async def test_database_check_against_a_real_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    sqlite3.connect(path).close()
    checker = HealthChecker()
    checker.register_check("db", "", database_check(lambda: sqlite3.connect(path)))
    checker.register_check("absent", "", database_check(
        lambda: sqlite3.connect(f"file:{tmp_path}/missing/none.db?mode=ro", uri=True)))
    results = await checker.run_all()
    assert results["db"].status is HealthStatus.HEALTHY
    assert results["db"].observed_unit == "ms"
    assert results["absent"].status is HealthStatus.CRITICAL
    assert "unable to open" in results["absent"].details["error"]


async def test_database_check_with_sqlalchemy_engines(tmp_path: Path) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_engine(f"sqlite:///{tmp_path}/sync.db")
    async_engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/async.db")
    gone = create_engine(f"sqlite:///{tmp_path}/no/such/dir.db")
    checker = HealthChecker()
    checker.register_check("sync", "", database_check(engine))
    checker.register_check("async", "", database_check(async_engine))
    checker.register_check("gone", "", database_check(gone))

    async def query() -> None:
        async with async_engine.connect() as connection:
            await connection.exec_driver_sql("SELECT 1")

    checker.register_check("callable", "", database_check(query))
    results = await checker.run_all()
    assert {n: r.status for n, r in results.items()} == {
        "sync": HealthStatus.HEALTHY, "async": HealthStatus.HEALTHY,
        "gone": HealthStatus.CRITICAL, "callable": HealthStatus.HEALTHY}
    await async_engine.dispose()
    engine.dispose()


async def test_session_check_uses_the_app_callable() -> None:
    state = {"ok": True}
    checker = HealthChecker()
    checker.register_check("sessions", "", session_check(lambda: state["ok"]))
    assert (await checker.run_check("sessions")).status is HealthStatus.HEALTHY
    state["ok"] = False
    assert (await checker.run_check("sessions")).status is HealthStatus.CRITICAL
