"""The speed harness still runs: our middleware only, a few requests, no timing assertion.

Timing thresholds are never asserted in tests (benchmarks/README.md has the numbers); this only
checks that the harness drives real requests through the wrapped app and that every one of them
is recorded. The peers are not installed here, so nothing below needs more than Starlette.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("asgi_monitor_bench_run", BENCHMARKS / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building fields
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("shape", ["2routes", "52routes", "mounted"])
def test_inprocess_measurement_records_every_request(harness: ModuleType, shape: str) -> None:
    rows = harness.measure_inprocess(["asgi_monitor"], [shape], requests=20, rounds=2, warmup=5,
                                     keep_apps=True)

    ours = next(r for r in rows if r.variant == "asgi_monitor")
    bare = next(r for r in rows if r.variant == "bare")
    assert len(ours.samples_us) == 2
    assert ours.median_us > 0 and bare.median_us > 0
    assert ours.sent == 5 + 2 * 20
    template = harness.apps.SHAPES[shape].template
    labels = {"method": "GET", "route": template, "status": "200"}
    assert ours.built.registry.get_sample_value("http_requests_total", labels) == ours.sent
    assert ours.recorded == ours.sent


def test_inprocess_table_lists_bare_and_ours(harness: ModuleType) -> None:
    rows = harness.measure_inprocess(["asgi_monitor"], ["2routes"], requests=10, rounds=2,
                                     warmup=2)

    table = harness.inprocess_table(rows)

    assert "| bare |" in table and "| asgi_monitor |" in table
    assert "22 / 22" in table  # recorded / sent
