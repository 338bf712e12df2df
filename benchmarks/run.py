"""Speed harness: asgi_monitor against a bare app and three peers, in one run.

Two floor variants ride along as references, not peers: middlewares that record nothing
(benchmarks/floor.py), so the tables show what merely standing between app and server costs.

Two measures, each reported as a ratio to the bare app measured in the same run:

- in-process: the ASGI app is called directly (no server, no client) with a prepared scope, in
  short batches visited round-robin; a variant's added cost is the median over rounds of its
  per-request time minus the bare app's in the same round, so machine noise hits both alike.
  Shapes: 2 routes, 52 routes (request to the last), a route inside a Mount (4-byte Starlette
  answers), and FastAPI with a path parameter and ~1 KB of pydantic JSON.
- uvicorn: one uvicorn worker per variant in a subprocess pinned to one core, ``wrk`` pinned to
  the other, on 127.0.0.1 only; each wrapped variant's run is paired with an adjacent run on the
  bare server, and its ratio to bare is the median over rounds, reported with its spread.
  The 2-route shape with every variant, the FastAPI shape with :data:`FASTAPI_VARIANTS`.
- instructions: the same uvicorn servers under callgrind, CPU instructions per request
  (benchmarks/instructions.py): the noise-free counterpart of the uvicorn ratio, and the
  measure the budgets are judged by.

Usage (see benchmarks/README.md)::

    python benchmarks/run.py [--quick] [--only inprocess|uvicorn|instructions] [--json PATH]
        [--variants ...] [--shapes ...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import http.client
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # `python benchmarks/run.py` and the smoke test both import apps
    sys.path.insert(0, str(HERE))

import apps  # noqa: E402
from instructions import (  # noqa: E402
    InstructionCount,
    budget_verdicts,
    instructions_table,
    measure_instructions,
)
from starlette.types import ASGIApp, Message  # noqa: E402
from which_build import measured_build  # noqa: E402

BUDGET_ADDED_US = 3.0  # the speed budget: median added cost per request, in-process
# Under uvicorn the budgets are judged by instructions (instructions.py); wrk's ratios are
# reported beside them, with their spread, as what a user would measure.
# The shapes served under uvicorn (wrk and callgrind), and the variants the FastAPI shape gets
# there besides bare: ours and the floor beside it (the peers on the 2-route shape only: on both
# they would double the uvicorn part of a full run).
SERVED_SHAPES = ("2routes", "fastapi")
FASTAPI_VARIANTS = ("asgi_monitor", "floor_wrapping")
PEER_PACKAGES = ("starlette-exporter", "prometheus-fastapi-instrumentator",
                 "opentelemetry-instrumentation-asgi", "opentelemetry-sdk")


# -- in-process ---------------------------------------------------------------------------------
def make_scope(path: str) -> dict[str, Any]:
    """The scope uvicorn would send for ``GET path`` (a template, copied for every request)."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench"),
                    (b"accept", b"*/*")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


_REQUEST: Message = {"type": "http.request", "body": b"", "more_body": False}


async def _receive() -> Message:
    # The one http.request message of a GET. Nothing here reads twice, so no disconnect follows.
    return _REQUEST


async def _send(message: Message) -> None:
    pass


async def _drive(app: ASGIApp, scope: dict[str, Any], count: int) -> None:
    for _ in range(count):
        # Routers write into the scope (route, path_params, root_path): a fresh copy each time,
        # whose cost is the same for every variant and so cancels out against the bare app.
        await app(dict(scope), _receive, _send)


def time_requests(
    loop: asyncio.AbstractEventLoop, app: ASGIApp, path: str, count: int
) -> tuple[float, float]:
    """Send ``count`` GETs to ``app``; return wall time and process CPU time per request, in µs.

    The CPU time (all threads of this process, so OpenTelemetry's export thread counts) does not
    advance while other processes have the core, which makes it the steadier of the two on a
    shared machine.
    """
    scope = make_scope(path)
    gc.collect()  # start every batch from the same heap state; GC during the batch still counts
    start, cpu_start = time.perf_counter_ns(), time.process_time_ns()
    loop.run_until_complete(_drive(app, scope, count))
    cpu, wall = time.process_time_ns() - cpu_start, time.perf_counter_ns() - start
    return wall / count / 1000, cpu / count / 1000


@dataclass
class InProcessRow:
    shape: str
    variant: str
    samples_us: list[float] = field(default_factory=list)  # per batch, µs per request
    # For a wrapped variant: the bare app's batch timed right next to each of its own batches.
    baseline_us: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)  # the same batches, process CPU time
    cpu_baseline_us: list[float] = field(default_factory=list)
    sent: int = 0
    recorded: float | None = None  # what the middleware counted for the route (None: bare)
    built: apps.Built | None = field(default=None, repr=False, compare=False)

    @property
    def median_us(self) -> float:
        return statistics.median(self.samples_us)

    def added_us(self) -> list[float]:
        """Per batch, this variant's time minus the adjacent bare batch's."""
        return [a - b for a, b in zip(self.samples_us, self.baseline_us, strict=True)]

    def cpu_added_us(self) -> list[float]:
        """As ``added_us``, in process CPU time."""
        return [a - b for a, b in zip(self.cpu_us, self.cpu_baseline_us, strict=True)]

    def ratios(self) -> list[float]:
        """Per batch, this variant's time over the adjacent bare batch's."""
        return [a / b for a, b in zip(self.samples_us, self.baseline_us, strict=True)]


def measure_inprocess(
    variants: Sequence[str] = tuple(apps.VARIANTS),
    shapes: Sequence[str] = tuple(apps.SHAPES),
    *,
    requests: int = 2_000,
    rounds: int = 50,
    warmup: int = 2_000,
    keep_apps: bool = False,
) -> list[InProcessRow]:
    """Time every variant on every shape, round-robin; the bare app is always included.

    Each round times, for every shape and wrapped variant, one batch of ``requests`` through the
    variant right next to one through the bare app (bare first or second, alternately), in an
    order rotated per round. A shared VM speeds up and slows down for seconds at a time; a pair
    of short adjacent batches sees the same speed, so the noise cancels in the paired difference
    and the median over rounds is stable.
    """
    variants = ["bare", *(v for v in variants if v != "bare")]
    loop = asyncio.new_event_loop()
    rows: dict[tuple[str, str], InProcessRow] = {}
    try:
        for shape_key in shapes:
            shape = apps.SHAPES[shape_key]
            for variant in variants:
                built = apps.build(variant, shape)
                row = rows[shape_key, variant] = InProcessRow(shape_key, variant, built=built)
                time_requests(loop, built.app, shape.path, warmup)
                row.sent += warmup
        pairs = [(rows[s, "bare"], row) for (s, v), row in rows.items() if v != "bare"]
        for repeat in range(rounds):
            shift = repeat % len(pairs)
            for index, (bare, row) in enumerate(pairs[shift:] + pairs[:shift]):
                path = apps.SHAPES[row.shape].path
                order = (bare, row) if (repeat + index) % 2 == 0 else (row, bare)
                timed = {}
                for cell in order:
                    assert cell.built is not None
                    wall, cpu = timed[cell.variant] = time_requests(
                        loop, cell.built.app, path, requests)
                    cell.samples_us.append(wall)
                    cell.cpu_us.append(cpu)
                    cell.sent += requests
                row.baseline_us.append(timed["bare"][0])
                row.cpu_baseline_us.append(timed["bare"][1])
        for row in rows.values():
            assert row.built is not None
            if row.built.recorded is not None:
                row.recorded = row.built.recorded()
            if not keep_apps:
                row.built.close()
                if row.built.aclose is not None:
                    loop.run_until_complete(row.built.aclose())
                row.built = None
    finally:
        loop.close()
    return list(rows.values())


# -- uvicorn + wrk ------------------------------------------------------------------------------
@dataclass
class UvicornRun:
    variant: str
    round: int
    requests_per_s: float
    requests: int
    p50_ms: float
    p99_ms: float
    errors: str
    # Server CPU time (all its threads) over the run / responses wrk counted: what a request
    # costs the server, which other load on the machine barely moves, unlike requests/s.
    server_cpu_us: float = float("nan")
    instance: int = 0  # which of the variant's server processes served the run
    shape: str = "2routes"


@dataclass
class ServerSetup:
    loop: str
    http: str
    server_cpu: str | None
    wrk_cpu: str | None
    wrk_args: list[str]


def _pick_server_setup(duration: int, connections: int) -> ServerSetup:
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http_impl = "httptools" if importlib.util.find_spec("httptools") else "h11"
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu = wrk_cpu = None
    if shutil.which("taskset") and len(cpus) >= 2:
        server_cpu, wrk_cpu = str(cpus[0]), str(cpus[1])
    wrk_args = ["-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    return ServerSetup(loop, http_impl, server_cpu, wrk_cpu, wrk_args)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@contextlib.contextmanager
def uvicorn_server(
    variant: str, shape: apps.Shape, setup: ServerSetup
) -> Iterator[tuple[int, int]]:
    """Serve one variant on 127.0.0.1 in a subprocess; always killed on exit.

    Yields the port and the server's pid (taskset execs, so it is uvicorn's own).
    """
    port = _free_port()
    cmd = [sys.executable, "-m", "uvicorn", "apps:uvicorn_app", "--factory",
           "--app-dir", str(HERE), "--host", "127.0.0.1", "--port", str(port),
           "--loop", setup.loop, "--http", setup.http,
           "--no-access-log", "--log-level", "warning"]
    if setup.server_cpu is not None:
        cmd = ["taskset", "-c", setup.server_cpu, *cmd]
    env = {**os.environ, "BENCH_VARIANT": variant, "BENCH_SHAPE": shape.key}
    # cwd=HERE: `python -m` puts the working directory first on sys.path, and from the repository
    # root that would serve the source tree instead of the installed (compiled) package.
    proc = subprocess.Popen(cmd, env=env, cwd=HERE, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"uvicorn for {variant} exited with {proc.returncode}")
            try:
                status, _ = _get(port, shape.path, timeout=1.0)
                if status != 200:
                    raise RuntimeError(f"{variant}: GET {shape.path} answered {status}")
                break
            except OSError:
                if time.monotonic() > deadline:
                    message = f"uvicorn for {variant} did not listen within 30 s"
                    raise RuntimeError(message) from None
                time.sleep(0.1)
        yield port, proc.pid
    finally:
        stop_group(proc)


def stop_group(proc: subprocess.Popen[Any]) -> None:
    """End a server started with ``start_new_session=True``: SIGTERM, then SIGKILL after 10 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _latency_ms(text: str, percentile: str) -> float:
    match = re.search(rf"^\s*{percentile}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if not match:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process, all threads (fields 14 and 15 of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(server: tuple[int, int], path: str, setup: ServerSetup, args: Sequence[str],
            variant: str) -> UvicornRun:
    port, pid = server
    cmd = ["wrk", *args, f"http://127.0.0.1:{port}{path}"]
    if setup.wrk_cpu is not None:
        cmd = ["taskset", "-c", setup.wrk_cpu, *cmd]
    duration = int(next(a for a in args if a.startswith("-d"))[2:-1])
    cpu_before = _cpu_seconds(pid)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60,
                         check=True).stdout
    cpu = _cpu_seconds(pid) - cpu_before
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if not rps or not total:
        raise RuntimeError(f"could not read wrk's output:\n{out}")
    errors = "; ".join(line.strip() for line in out.splitlines()
                       if "Non-2xx" in line or "Socket errors" in line)
    requests = int(total.group(1))
    return UvicornRun(variant, -1, float(rps.group(1)), requests, _latency_ms(out, "50"),
                      _latency_ms(out, "99"), errors, cpu * 1e6 / max(requests, 1))


def measure_uvicorn(
    variants: Sequence[str], *, repeats: int, duration: int, warmup: int, connections: int = 32,
    instances: int = 1, shape: apps.Shape = apps.SHAPES["2routes"],
) -> tuple[ServerSetup, list[UvicornRun], dict[str, Any]]:
    """Serve every variant at once (idle until loaded), then ``repeats`` rounds of wrk runs.

    As in-process, each wrapped variant's run sits right next to a run on the bare server (bare
    first or second, alternately), so its ratio to bare compares two windows of the same machine
    speed. Each variant runs in ``instances`` server processes, round k using instance k mod
    ``instances`` of both sides: processes of the *same* app differ by ~10 % in CPU per request
    on this machine (memory layout, hash seed; benchmarks/README.md), so one process per variant
    would turn that luck into a bias. All servers are killed on the way out.
    """
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (Debian package `wrk`); try --only inprocess")
    setup = _pick_server_setup(duration, connections)
    warm_args = ["-t1", f"-c{connections}", f"-d{warmup}s"]
    wrapped = [v for v in variants if v != "bare"]
    runs: list[UvicornRun] = []
    check: dict[str, Any] = {}
    with contextlib.ExitStack() as servers:
        ports = {v: [servers.enter_context(uvicorn_server(v, shape, setup))
                     for _ in range(instances)]
                 for v in ["bare", *wrapped]}
        for variant, instance_ports in ports.items():
            for server in instance_ports:
                run_wrk(server, shape.path, setup, warm_args, variant)
        for repeat in range(repeats):
            shift = repeat % len(wrapped)
            instance = repeat % instances
            for index, variant in enumerate(wrapped[shift:] + wrapped[:shift]):
                order = ("bare", variant) if (repeat + index) % 2 == 0 else (variant, "bare")
                scrape = variant == "asgi_monitor" and repeat == 0
                ours = ports[variant][instance]
                before = _scrape_count(ours, shape) if scrape else 0.0
                pair = {}
                for name in order:
                    run = run_wrk(ports[name][instance], shape.path, setup, setup.wrk_args, name)
                    run.round = repeat
                    run.instance = instance
                    run.shape = shape.key
                    runs.append(run)
                    pair[name] = run
                if scrape:
                    # wrk counts the responses it read; the server may also have finished up to
                    # one per connection that wrk stopped waiting for (and the bare run is not
                    # ours), so expect wrk_completed <= counted <= wrk_completed + connections.
                    check = {"wrk_completed": pair[variant].requests,
                             "asgi_monitor_counted": _scrape_count(ours, shape) - before}
                print(f"  uvicorn {shape.key} round {repeat}: {variant:<20} "
                      f"{pair[variant].requests_per_s:>8.0f} req/s "
                      f"{pair[variant].server_cpu_us:6.1f} CPU µs/req, bare "
                      f"{pair['bare'].requests_per_s:>8.0f} req/s "
                      f"{pair['bare'].server_cpu_us:6.1f} CPU µs/req", flush=True)
    return setup, runs, check


def _scrape_count(server: tuple[int, int], shape: apps.Shape) -> float:
    """Our own /api/metrics: how many requests the middleware counted for the route so far."""
    status, body = _get(server[0], "/api/metrics", timeout=10)
    label = f'http_requests_total{{method="GET",route="{shape.template}",status="200"}}'
    match = re.search(re.escape(label) + r" ([\d.e+]+)", body.decode())
    if status != 200 or not match:
        raise RuntimeError(f"/api/metrics answered {status} without {label}")
    return float(match.group(1))


# -- report -------------------------------------------------------------------------------------
def machine_facts(setup: ServerSetup | None) -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    versions = {}
    for dist in ("asgi-monitoring", "starlette", "prometheus-client", "uvicorn", "uvloop",
                 "httptools", "fastapi", "pydantic", *PEER_PACKAGES):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    wrk = "not installed"
    if shutil.which("wrk"):
        probe = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10)
        wrk = (probe.stdout + probe.stderr).split("\n", 1)[0].strip()
    facts: dict[str, Any] = {
        "cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem_gib, 1),
        "os": platform.platform(), "python": platform.python_version(),
        "wrk": wrk, "versions": versions,
        # Other work on the machine shows up here: anything near or above the core count means
        # the numbers were taken on a busy machine (the paired design absorbs part of it).
        "load_average_1_5_15_min_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    if setup is not None:
        facts["uvicorn_setup"] = asdict(setup)
    return facts


def _quartiles(values: Sequence[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


def inprocess_table(rows: Sequence[InProcessRow]) -> str:
    lines = ["| shape | variant | µs/request | added µs/request | added, p25 … p75 | "
             "ratio to bare | added CPU µs/request | recorded / sent |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        if row.variant == "bare":
            added = ratio = spread = cpu = "—"
        else:
            cpu = f"{statistics.median(row.cpu_added_us()):+.2f}"
            diffs = row.added_us()
            low, high = _quartiles(diffs)
            added = f"{statistics.median(diffs):+.2f}"
            spread = f"{low:+.2f} … {high:+.2f}"
            ratio = f"{statistics.median(row.ratios()):.2f}×"
        recorded = "—" if row.recorded is None else f"{row.recorded:.0f} / {row.sent}"
        lines.append(f"| {apps.SHAPES[row.shape].description} | {row.variant} | "
                     f"{row.median_us:.2f} | {added} | {spread} | {ratio} | {cpu} | {recorded} |")
    return "\n".join(lines)


def uvicorn_summary(runs: Sequence[UvicornRun]) -> dict[str, dict[str, Any]]:
    """Per variant: median requests/s, and the median of its ratios to the adjacent bare run."""
    by_variant: dict[str, list[UvicornRun]] = {}
    for run in runs:
        by_variant.setdefault(run.variant, []).append(run)
    # runs come in adjacent (bare, variant) pairs, in either order
    ratios: dict[str, list[float]] = {}
    cpu_ratios: dict[str, list[float]] = {}
    for first, second in zip(runs[::2], runs[1::2], strict=True):
        bare, wrapped = (first, second) if first.variant == "bare" else (second, first)
        ratios.setdefault(wrapped.variant, []).append(
            wrapped.requests_per_s / bare.requests_per_s)
        cpu_ratios.setdefault(wrapped.variant, []).append(
            bare.server_cpu_us / wrapped.server_cpu_us)
    summary = {}
    for variant, rs in by_variant.items():
        pair_ratios = ratios.get(variant) or [1.0]
        summary[variant] = {
            "server_cpu_us": statistics.median(r.server_cpu_us for r in rs),
            # bare's CPU per request over ours: the throughput ratio a saturated server would
            # show if nothing else ran on its core
            "cpu_capacity_ratio": statistics.median(cpu_ratios.get(variant) or [1.0]),
            "requests_per_s": statistics.median(r.requests_per_s for r in rs),
            "runs": len(rs),
            "ratio": statistics.median(pair_ratios),
            "ratio_quartiles": _quartiles(pair_ratios),
            "ratio_range": (min(pair_ratios), max(pair_ratios)),
            "p50_ms": statistics.median(r.p50_ms for r in rs),
            "p99_ms": statistics.median(r.p99_ms for r in rs),
            "errors": sorted({r.errors for r in rs if r.errors}),
        }
    return summary


def uvicorn_table(summary: dict[str, dict[str, Any]]) -> str:
    lines = ["| variant | requests/s (median) | runs | ratio to bare | ratio, p25 … p75 | "
             "ratio, min … max | p50 ms | p99 ms | server CPU µs/request | CPU-based ratio |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for variant, s in summary.items():
        errors = f" ({'; '.join(s['errors'])})" if s["errors"] else ""
        low, high = s["ratio_quartiles"]
        least, most = s["ratio_range"]
        spread = "—" if variant == "bare" else f"{low:.1%} … {high:.1%}"
        extent = "—" if variant == "bare" else f"{least:.1%} … {most:.1%}"
        lines.append(f"| {variant}{errors} | {s['requests_per_s']:.0f} | {s['runs']} | "
                     f"{s['ratio']:.1%} | {spread} | {extent} | {s['p50_ms']:.2f} | "
                     f"{s['p99_ms']:.2f} | {s['server_cpu_us']:.1f} | "
                     f"{s['cpu_capacity_ratio']:.1%} |")
    return "\n".join(lines)


def verdicts(rows: Sequence[InProcessRow],
             summaries: dict[str, dict[str, dict[str, Any]]] | None,
             counts: Sequence[InstructionCount] = (), *,
             compiled: bool | None = None) -> list[str]:
    out = []
    if rows:
        added = {(r.shape, r.variant): statistics.median(r.added_us())
                 for r in rows if r.variant != "bare"}
        ours = {s: cost for (s, v), cost in added.items() if v == "asgi_monitor"}
        # The µs budget is the 4-byte Starlette shapes'; FastAPI's is judged by instructions
        # (its requests are ~4x longer, and so are the swings of a paired difference).
        judged = {s: cost for s, cost in ours.items() if s in apps.STARLETTE_SHAPES}
        if judged:
            worst = max(judged.values())
            worst_cpu = max(statistics.median(r.cpu_added_us()) for r in rows
                            if r.variant == "asgi_monitor" and r.shape in judged)
            verdict = "OK" if worst <= BUDGET_ADDED_US else "OVER"
            out.append(f"in-process: asgi_monitor adds at most {worst:.2f} µs/request wall, "
                       f"{worst_cpu:.2f} µs CPU on the Starlette shapes (budget "
                       f"{BUDGET_ADDED_US} µs): {verdict}")
        if "fastapi" in ours:
            cpu = next(statistics.median(r.cpu_added_us()) for r in rows
                       if r.variant == "asgi_monitor" and r.shape == "fastapi")
            out.append(f"in-process: on FastAPI asgi_monitor adds {ours['fastapi']:.2f} "
                       f"µs/request wall, {cpu:.2f} µs CPU (reported)")
        for (shape, variant), cost in sorted(added.items()):
            if variant not in ("asgi_monitor", *apps.FLOORS) and ours.get(shape, 0) > 0:
                out.append(f"  {shape}: {variant} adds {cost / ours[shape]:.1f}× what we add")
        for row in rows:
            if row.recorded is not None and row.recorded != row.sent:
                out.append(f"  WARNING {row.shape}/{row.variant}: recorded {row.recorded:.0f} "
                           f"of {row.sent} requests")
    for shape, summary in (summaries or {}).items():
        for variant in ("asgi_monitor", *apps.FLOORS):
            if variant not in summary:
                continue
            s = summary[variant]
            least, most = s["ratio_range"]
            note = "" if variant == "asgi_monitor" else " (records nothing)"
            out.append(f"uvicorn {shape}: {variant}{note} keeps {s['ratio']:.1%} of bare "
                       f"throughput (median of {s['runs']} paired wrk runs, {least:.1%} … "
                       f"{most:.1%}), {s['cpu_capacity_ratio']:.1%} by server CPU per request")
    out += budget_verdicts(counts, compiled=compiled)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke-test run")
    parser.add_argument("--only", choices=("inprocess", "uvicorn", "instructions"),
                        help="run one measure only")
    parser.add_argument("--variants", nargs="+", choices=list(apps.VARIANTS),
                        default=list(apps.VARIANTS), help="which variants (bare is always in)")
    parser.add_argument("--shapes", nargs="+", choices=list(apps.SHAPES),
                        default=list(apps.SHAPES),
                        help=f"which app shapes (under uvicorn: those of {SERVED_SHAPES})")
    parser.add_argument("--json", type=Path, metavar="PATH", help="dump the raw results here")
    args = parser.parse_args(argv)

    if args.quick:
        ip = {"requests": 500, "rounds": 5, "warmup": 200}
        uv = {"repeats": 1, "duration": 2, "warmup": 1, "instances": 1}
        ins = {"requests": 300}
    else:
        ip = {"requests": 2_000, "rounds": 50, "warmup": 2_000}
        # Many short pairs rather than a few long runs: this machine's speed wanders by 2x
        # within seconds, and only adjacent runs see the same speed (benchmarks/README.md).
        uv = {"repeats": 24, "duration": 2, "warmup": 3, "instances": 4}
        ins = {"requests": 3_000}
    served = {key: served_variants(key, args.variants) for key in args.shapes
              if key in SERVED_SHAPES}
    served = {key: variants for key, variants in served.items() if set(variants) - {"bare"}}

    rows: list[InProcessRow] = []
    setup: ServerSetup | None = None
    summaries: dict[str, dict[str, dict[str, Any]]] = {}
    runs: list[UvicornRun] = []
    check: dict[str, Any] = {}
    counts: list[InstructionCount] = []
    started = time.time()
    build = measured_build()
    print(f"measured build: {build}", flush=True)
    if args.only in (None, "inprocess"):
        print(f"in-process: {ip}", flush=True)
        rows = measure_inprocess(args.variants, args.shapes, **ip)
        print("\n## In-process (direct ASGI calls)\n")
        print(inprocess_table(rows))
    if args.only in (None, "uvicorn"):
        for key, variants in served.items():
            print(f"\nuvicorn, {key}: {uv}", flush=True)
            setup, shape_runs, shape_check = measure_uvicorn(variants, shape=apps.SHAPES[key],
                                                             **uv)
            runs += shape_runs
            check = check or shape_check
            summaries[key] = uvicorn_summary(shape_runs)
            print(f"\n## uvicorn, {apps.SHAPES[key].description} (1 worker, loop={setup.loop}, "
                  f"http={setup.http}, server on CPU {setup.server_cpu}, wrk "
                  f"{' '.join(setup.wrk_args)} on CPU {setup.wrk_cpu})\n")
            print(uvicorn_table(summaries[key]))
        if check:
            print(f"\nasgi_monitor's own count over its first measured run: {check}")
    if args.only in (None, "instructions"):
        for key, variants in served.items():
            print(f"\ninstructions, {key}: {ins}", flush=True)
            shape_counts = measure_instructions(variants, shape=apps.SHAPES[key], **ins)
            counts += shape_counts
            print(f"\n## Instructions per request under uvicorn (callgrind), "
                  f"{apps.SHAPES[key].description}\n")
            print(instructions_table(shape_counts))
    facts = machine_facts(setup)
    print("\n" + "\n".join(verdicts(rows, summaries, counts, compiled=build.judged_as_compiled)))
    print(f"\nmeasured build: {build}")
    print(f"\nmachine: {json.dumps(facts)}\nwall time: {time.time() - started:.0f} s")
    if args.json:
        raw = {"command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
               "build": {"kind": build.kind, "location": str(build.location),
                         "version": build.version},
               "settings": {"inprocess": ip, "uvicorn": uv}, "machine": facts,
               "inprocess": [{k: v for k, v in asdict(r).items() if k != "built"} for r in rows],
               "uvicorn": {"runs": [asdict(r) for r in runs], "summary": summaries,
                           "scrape_check": check},
               "instructions": {"settings": ins, "counts": [
                   {**asdict(c), "per_request": c.per_request,
                    "cycles_per_request": c.cycles_per_request} for c in counts]}}
        args.json.write_text(json.dumps(raw, indent=2))
    return 0


def served_variants(shape: str, selected: Sequence[str]) -> list[str]:
    """The variants a shape is served with under uvicorn: all selected ones on the 2-route
    shape; on the FastAPI shape only ours and the floor (when selected)."""
    if shape == "fastapi":
        return [v for v in selected if v in ("bare", *FASTAPI_VARIANTS)]
    return list(selected)


if __name__ == "__main__":
    sys.exit(main())
