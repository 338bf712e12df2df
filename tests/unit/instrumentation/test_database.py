from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import create_async_engine

from asgi_monitor import instrument_sqlalchemy, monitor_database_operation
from asgi_monitor.config import MetricsSettings
from asgi_monitor.instrumentation.database import statement_kind
from asgi_monitor.monitor import Monitor


def total(monitor: Monitor, operation: str, status: str) -> float | None:
    return monitor.registry.get_sample_value(
        "db_queries_total", {"operation": operation, "status": status})


def count(monitor: Monitor, operation: str) -> float | None:
    return monitor.registry.get_sample_value(
        "db_query_duration_seconds_count", {"operation": operation})


def test_sync_function_success_and_error(monitor: Monitor) -> None:
    @monitor_database_operation("load_user")
    def load_user(user_id: int) -> dict[str, int]:
        if user_id < 0:
            raise LookupError(user_id)
        return {"id": user_id}

    assert load_user(1) == {"id": 1}
    assert load_user(2) == {"id": 2}
    error = LookupError("x")
    with pytest.raises(LookupError) as raised:
        load_user(-1)
    assert type(raised.value) is type(error) and raised.value.args == (-1,)

    assert total(monitor, "load_user", "success") == 2
    assert total(monitor, "load_user", "error") == 1
    assert count(monitor, "load_user") == 3
    assert load_user.__name__ == "load_user"


def test_async_function_success_and_error(monitor: Monitor) -> None:
    failure = RuntimeError("db down")

    @monitor_database_operation("save_order")
    async def save_order(ok: bool) -> str:
        await asyncio.sleep(0)
        if not ok:
            raise failure
        return "saved"

    async def main() -> None:
        assert await save_order(True) == "saved"
        with pytest.raises(RuntimeError) as raised:
            await save_order(False)
        assert raised.value is failure  # the very same exception object

    asyncio.run(main())
    assert total(monitor, "save_order", "success") == 1
    assert total(monitor, "save_order", "error") == 1
    assert count(monitor, "save_order") == 2


def test_decorator_records_into_the_current_monitor(make_monitor: Callable[..., Monitor]) -> None:
    @monitor_database_operation("op")
    def op() -> None:
        pass

    first = make_monitor()
    op()
    second = make_monitor()
    op()
    op()
    assert total(first, "op", "success") == 1
    assert total(second, "op", "success") == 2


@pytest.mark.parametrize(("statement", "kind"), [
    ("SELECT 1", "SELECT"),
    ("  select * from t", "SELECT"),
    ("insert into t values (1)", "INSERT"),
    ("UPDATE t SET a = 1", "UPDATE"),
    ("delete\nfrom t", "DELETE"),
    ("CREATE TABLE t (a int)", "OTHER"),
    ("WITH x AS (SELECT 1) SELECT * FROM x", "OTHER"),
    ("SELECTED", "OTHER"),
    ("", "OTHER"),
])
def test_statement_kind(statement: str, kind: str) -> None:
    assert statement_kind(statement) == kind


def test_sqlalchemy_sync_engine_on_sqlite_file(monitor: Monitor, tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    instrument_sqlalchemy(engine)
    instrument_sqlalchemy(engine)  # idempotent: statements are not counted twice
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)"))
        conn.execute(text("INSERT INTO users (name) VALUES ('a')"))
        conn.execute(text("INSERT INTO users (name) VALUES ('b')"))
        conn.execute(text("UPDATE users SET name = 'c' WHERE id = 1"))
        assert conn.execute(text("SELECT count(*) FROM users")).scalar() == 2
        conn.execute(text("DELETE FROM users WHERE id = 2"))
    with pytest.raises(OperationalError), engine.connect() as conn:
        conn.execute(text("SELECT * FROM missing_table"))
    engine.dispose()

    assert total(monitor, "OTHER", "success") == 1
    assert total(monitor, "INSERT", "success") == 2
    assert total(monitor, "UPDATE", "success") == 1
    assert total(monitor, "SELECT", "success") == 1
    assert total(monitor, "SELECT", "error") == 1
    assert total(monitor, "DELETE", "success") == 1
    assert count(monitor, "SELECT") == 2


def test_sqlalchemy_async_engine_with_aiosqlite(monitor: Monitor, tmp_path: Path) -> None:
    async def main() -> None:
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'app.db'}")
        instrument_sqlalchemy(engine)
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
            for _ in range(3):
                await conn.execute(text("INSERT INTO t DEFAULT VALUES"))
            rows = (await conn.execute(text("SELECT id FROM t"))).all()
            assert len(rows) == 3
        with pytest.raises(OperationalError):
            async with engine.connect() as conn:
                await conn.execute(text("DELETE FROM nope"))
        await engine.dispose()

    asyncio.run(main())
    assert total(monitor, "INSERT", "success") == 3
    assert total(monitor, "SELECT", "success") == 1
    assert total(monitor, "DELETE", "error") == 1
    assert total(monitor, "OTHER", "success") == 1


def test_operation_names_from_user_input_stay_bounded(make_monitor: Callable[..., Monitor]) -> None:
    monitor = make_monitor(metrics=MetricsSettings(max_series=100))
    for i in range(5000):
        monitor_database_operation(f"user-op-{i}")(lambda: None)()
    families = {m.name: m for m in monitor.registry.collect()}
    operations = {s.labels["operation"] for s in families["db_queries"].samples}
    assert len(operations) == 101 and "<overflow>" in operations
    assert total(monitor, "<overflow>", "success") == 4900
    assert monitor.registry.get_sample_value(
        "asgi_monitor_series_dropped_total", {"metric": "db_queries_total"}) == 4900
