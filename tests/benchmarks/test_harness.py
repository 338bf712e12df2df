"""The speed harness still runs: our middleware only, a few requests, no timing assertion.

Timing thresholds are never asserted in tests (benchmarks/README.md has the numbers); this only
checks that the harness drives real requests through the wrapped app and that every one of them
is recorded. The peers are not installed here, so nothing below needs more than Starlette.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from types import ModuleType

import pytest
from support import ROOT, require_binary

BENCHMARKS = ROOT / "benchmarks"


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


def test_instruction_count_covers_the_measured_requests_only() -> None:
    """The callgrind measure runs real uvicorn servers and counts only the measured window.

    Asserted: every request answered 200 (checked inside count_instructions), counts are
    positive, the idle rate was measured, and doubling the requests roughly doubles the count (so
    warm-up, start-up and the idle window are outside it). Whether ours costs more than bare is
    not asserted here: a server's count carries its idle rate's error (timers and collections
    falling in or out of the window), several thousand instructions a request on a busy host,
    the size of the middleware's whole cost. The in-process count below answers that exactly.
    """
    require_binary("valgrind")
    spec = importlib.util.spec_from_file_location("asgi_monitor_bench_instructions",
                                                  BENCHMARKS / "instructions.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)

    bare = module.count_instructions("bare", requests=60, warmup=20, idle_seconds=3)
    ours = module.count_instructions("asgi_monitor", requests=60, warmup=20, idle_seconds=3)
    ours_twice = module.count_instructions("asgi_monitor", requests=120, warmup=20,
                                           idle_seconds=3)

    assert bare.instructions > 0 and ours.instructions > 0
    # The idle part was counted (an idle uvicorn still ticks) and taken off a real window.
    assert ours.idle_per_second > 0 and ours.window_seconds > 0
    assert 1.6 < ours_twice.instructions / ours.instructions < 2.4
    table = module.instructions_table([bare, ours])
    assert "| bare |" in table and "| asgi_monitor |" in table


def test_in_process_count_sees_the_middleware(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hot path's in-process callgrind count (no server, no timers, a fixed hash seed) is
    repeatable, so the middleware's added instructions show whole: a raw app wrapped costs more
    per request than the raw app, by more than a bucket scan's worth."""
    require_binary("valgrind")
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the script imports its sibling modules
    spec = importlib.util.spec_from_file_location("asgi_monitor_bench_store",
                                                  BENCHMARKS / "multiprocess_store.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)

    counts = module.count_hot_path(100, variants=("raw", "raw+single"))

    assert counts["raw"] > 0
    assert counts["raw+single"] - counts["raw"] > 1_000 * 100


@pytest.mark.parametrize("variant", ["floor_passthrough", "floor_wrapping"])
async def test_floor_variants_pass_the_apps_response_through(harness: ModuleType,
                                                             variant: str) -> None:
    """The floors are references only if they stand between app and server and change nothing:
    the same messages reach the server as from the bare app, and the wrapping floor has read the
    status it would report."""
    shape = harness.apps.SHAPES["2routes"]

    async def serve(app: object) -> list[dict[str, object]]:
        sent: list[dict[str, object]] = []

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, object]) -> None:
            sent.append(message)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "GET", "scheme": "http", "path": shape.path,
                 "raw_path": shape.path.encode(), "root_path": "", "query_string": b"",
                 "headers": [(b"host", b"bench")], "client": ("127.0.0.1", 1),
                 "server": ("bench", 80)}
        await app(scope, receive, send)  # type: ignore[operator]
        return sent

    floor = harness.apps.build(variant, shape).app
    expected = await serve(harness.apps.build("bare", shape).app)

    assert await serve(floor) == expected
    assert expected[0]["status"] == 200 and expected[1]["body"] == b"item 42"
    if variant == "floor_wrapping":
        status, duration = floor.last
        assert status == 200 and duration > 0


@pytest.mark.frameworks
async def test_fastapi_shape_answers_a_kilobyte_of_json_through_every_wrapper(
        harness: ModuleType) -> None:
    """The realistic shape is what it claims: FastAPI validates the path parameter and answers
    about 1 KB of JSON from its pydantic model, the same bytes bare, under the floor and under
    asgi_monitor, which records the request under the route template."""
    import fastapi  # noqa: F401  (the shape is a FastAPI app; the harness imports it lazily)

    shape = harness.apps.SHAPES["fastapi"]

    async def serve(app: object) -> list[dict[str, object]]:
        sent: list[dict[str, object]] = []

        async def send(message: dict[str, object]) -> None:
            sent.append(message)

        await app(harness.make_scope(shape.path), harness._receive, send)  # type: ignore[operator]
        return sent

    expected = await serve(harness.apps.build("bare", shape).app)
    ours = harness.apps.build("asgi_monitor", shape)
    try:
        assert await serve(ours.app) == expected
        assert await serve(harness.apps.build("floor_wrapping", shape).app) == expected
        assert ours.recorded() == 1
    finally:
        await ours.aclose()

    assert expected[0]["status"] == 200
    assert (b"content-type", b"application/json") in expected[0]["headers"]  # type: ignore[operator]
    body = expected[1]["body"]
    assert isinstance(body, bytes) and 900 <= len(body) <= 1100
    item = json.loads(body)
    assert item["id"] == 42 and len(item["variants"]) == 9


@pytest.mark.frameworks
def test_fastapi_shape_in_process_records_every_request(harness: ModuleType) -> None:
    import fastapi  # noqa: F401

    rows = harness.measure_inprocess(["asgi_monitor"], ["fastapi"], requests=20, rounds=2,
                                     warmup=5)

    ours = next(r for r in rows if r.variant == "asgi_monitor")
    assert ours.sent == 5 + 2 * 20 and ours.recorded == ours.sent
    assert "FastAPI" in harness.inprocess_table(rows)


def test_budget_lines_judge_the_floor_ratio_and_the_fastapi_share(harness: ModuleType) -> None:
    count = harness.InstructionCount

    def of(variant: str, shape: str, per_request: int) -> object:
        return count(variant, 10, per_request * 10, 1, 1, 1, shape)

    lines = harness.budget_verdicts([
        of("bare", "2routes", 200_000), of("floor_wrapping", "2routes", 210_000),
        of("asgi_monitor", "2routes", 212_000),
        of("bare", "fastapi", 500_000), of("floor_wrapping", "fastapi", 510_000),
        of("asgi_monitor", "fastapi", 511_000)])

    starlette = next(line for line in lines if line.startswith("2routes:"))
    assert "+12,000" in starlette and "+10,000" in starlette and "1.20x" in starlette
    assert "compiled budget <= 1.25x: OK" in starlette
    assert "pure-Python target <= 2x: OK" in starlette
    share = next(line for line in lines if "of bare's 500,000" in line)
    assert share.startswith("fastapi: asgi_monitor adds +11,000")
    assert "2.20% of bare's" in share and "OVER" in share
    fastapi_floor = next(line for line in lines if line.startswith("fastapi:") and "1.10x" in line)
    assert "reported" in fastapi_floor and "budget <= 1.25x" not in fastapi_floor
    compiled_only = harness.budget_verdicts([of("bare", "2routes", 200_000),
                                             of("floor_wrapping", "2routes", 210_000),
                                             of("asgi_monitor", "2routes", 230_000)],
                                            compiled=True)
    assert "3.00x" in compiled_only[0] and "compiled budget <= 1.25x: OVER" in compiled_only[0]
    assert "pure-Python" not in compiled_only[0]
