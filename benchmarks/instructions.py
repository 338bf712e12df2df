"""The uvicorn measure without the noise: CPU instructions per request, counted by callgrind.

This machine's speed wanders by 2x from one second to the next (benchmarks/README.md, "Why
instructions"), so a throughput ratio needs many paired runs to settle. An instruction count
does not wander: with a fixed hash seed, asgi_monitor's periodic work kept out of the window and
the idle rate taken off (:data:`QUIET_ENV`, :data:`IDLE_SECONDS`), repeated runs agree within
~0.3 %. Each variant's uvicorn server (the same command, app and request as the wrk measure)
runs under ``valgrind --tool=callgrind`` with counting off; a keep-alive client on loopback
warms it up, the server is counted idle for :data:`IDLE_SECONDS`, then counting is switched on
(``callgrind_control -i on``), ``requests`` requests are sent over ``connections``
connections, counting is switched off, and the server's total instructions (all threads), less
its idle rate over the window's wall time, divided by the requests is the figure. bare's count
over a variant's is the *instruction-based ratio*: the throughput a CPU-bound server would keep
if every instruction cost the same time. They do not: callgrind also simulates the caches and
the branch predictor over the same window, and their misses per request show what the count
leaves out; the *cycle estimate* weighs them in (:data:`MISS_CYCLES` per miss, see
:attr:`InstructionCount.cycles`).

The budgets judged here (benchmarks/README.md), bare and the floor measured in the same run:

- on the 4-byte ``2routes`` shape, asgi_monitor adds at most :data:`FLOOR_BUDGET_COMPILED` times
  the instructions ``floor_wrapping`` (a middleware that wraps ``send``/``receive`` and records
  nothing) adds, compiled; the pure-Python build's target is :data:`FLOOR_TARGET_PURE` times;
- on the ``fastapi`` shape, asgi_monitor adds at most :data:`FASTAPI_BUDGET` of the bare
  request's instructions.

    python benchmarks/instructions.py [--requests 3000] [--shapes 2routes fastapi]
        [--variants bare floor_wrapping asgi_monitor]

Needs valgrind (Debian package ``valgrind``; ``make system-deps`` installs it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # run as a script, or imported by run.py
    sys.path.insert(0, str(HERE))

import apps  # noqa: E402  (benchmarks/ is not a package)
from which_build import measured_build  # noqa: E402

__all__ = ["FASTAPI_BUDGET", "FLOOR_BUDGET_COMPILED", "FLOOR_TARGET_PURE", "MISS_CYCLES",
           "IDLE_SECONDS", "QUIET_ENV", "InstructionCount", "budget_verdicts", "count_instructions",
           "instructions_table", "measure_instructions"]

# asgi_monitor's added instructions over floor_wrapping's, same run, 2-route shape.
FLOOR_BUDGET_COMPILED = 1.25
FLOOR_TARGET_PURE = 2.0  # a target, not a blocker
# asgi_monitor's added instructions as a share of the bare FastAPI request's.
FASTAPI_BUDGET = 0.02
# Cycles charged per simulated L1 miss (instruction or data) and per mispredicted branch in the
# cycle estimate: Cachegrind's manual puts an L1 miss at about 10 cycles and a mispredicted branch
# at 10 to 30. On the run at commit 6f8de98 this estimate gave asgi_monitor 91.0 % of bare where
# wrk measured 89.8 % by server CPU (benchmarks/README.md), close enough to compare builds.
MISS_CYCLES = 10


@dataclass
class InstructionCount:
    variant: str
    requests: int
    instructions: int
    # callgrind's simulated caches and branch predictor, over the same window: instruction-cache
    # and data-cache (L1) misses, and mispredicted branches (conditional + indirect).
    i1_misses: int = 0
    d1_misses: int = 0
    mispredicts: int = 0
    shape: str = "2routes"
    # Last-level cache misses (instruction and data): in the raw dump, not in the estimate.
    ll_misses: int = 0
    # The server's instructions per second of wall time while idle (the amount taken off), and
    # the wall time the measured window lasted.
    idle_per_second: float = 0.0
    window_seconds: float = 0.0

    @property
    def per_request(self) -> float:
        return self.instructions / self.requests

    @property
    def cycles(self) -> int:
        """The cycle estimate: every instruction one cycle, every L1 miss and mispredicted
        branch :data:`MISS_CYCLES` more (the estimate benchmarks/README.md has used throughout,
        so figures stay comparable; last-level misses are recorded beside it, not in it)."""
        return self.instructions + MISS_CYCLES * (self.i1_misses + self.d1_misses
                                                  + self.mispredicts)

    @property
    def cycles_per_request(self) -> float:
        return self.cycles / self.requests

    def per_request_of(self, events: int) -> float:
        return events / self.requests


# Set for every server under callgrind unless the caller's environment sets them. A fixed hash
# seed: the seed changes dict and set layouts, which moved bare's count by up to 0.7 % from one
# process to the next. No periodic work of asgi_monitor's inside the window (alert rules, history
# samples, the built-in health checks): callgrind slows the server ~50 times, so work done once
# every few seconds of wall time would land on ~50 times fewer requests than natively and be
# charged to the request path, more so the busier the host. The wrk measure keeps the defaults:
# there that work is the small per-second cost it is in production.
QUIET_ENV = {"PYTHONHASHSEED": "0", "ALERT_CHECK_INTERVAL": "3600",
             "METRICS_COLLECTION_INTERVAL": "3600", "HEALTH_CHECK_INTERVAL": "3600",
             "HEALTH_DEFAULT_CHECKS": "false"}
# What is left runs at a steady rate per second of wall time whatever the load (uvicorn's 0.1 s
# tick, the health scheduler's 1 s wake-up), for bare too: each server is also counted idle for
# this long, and that rate times the measured window's wall time is taken off its count. Without
# it the count per request grew with the host's load (the window lasts longer, the requests do
# not change): 1,200 instructions apart between two runs of one build.
IDLE_SECONDS = 10.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _load(port: int, path: str, requests: int, connections: int) -> int:
    """Send ``requests`` GETs over keep-alive connections; returns how many answered 200."""
    request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: bench\r\n"
               f"Accept: */*\r\n\r\n").encode()
    ok = 0

    async def one_connection(count: int) -> None:
        nonlocal ok
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in range(count):
                writer.write(request)
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"content-length: (\d+)", head, re.I)
                if length is None:
                    raise RuntimeError(f"no content-length in {head!r}")
                await reader.readexactly(int(length.group(1)))
                ok += head.startswith(b"HTTP/1.1 200 ")
        finally:
            writer.close()

    share, extra = divmod(requests, connections)
    await asyncio.gather(*(one_connection(share + (i < extra)) for i in range(connections)))
    return ok


def count_instructions(variant: str, *, requests: int, connections: int = 8,
                       warmup: int = 400, shape: apps.Shape = apps.SHAPES["2routes"],
                       loop: str = "auto", http: str = "auto",
                       idle_seconds: float = IDLE_SECONDS) -> InstructionCount:
    """Instructions the variant's uvicorn server executes for ``requests`` requests, less what
    the same server executes idle over as much wall time (see :data:`IDLE_SECONDS`)."""
    for tool in ("valgrind", "callgrind_control"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is not installed (Debian package `valgrind`)")
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="bench-callgrind-") as tmp:
        out = Path(tmp) / "callgrind.out"
        cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--cache-sim=yes",
               "--branch-sim=yes",
               f"--callgrind-out-file={out}",
               sys.executable, "-m", "uvicorn", "apps:uvicorn_app", "--factory",
               "--app-dir", str(HERE), "--host", "127.0.0.1", "--port", str(port),
               "--loop", loop, "--http", http, "--no-access-log", "--log-level", "warning"]
        env = {**QUIET_ENV, **os.environ, "BENCH_VARIANT": variant, "BENCH_SHAPE": shape.key}
        # cwd=HERE, as for the wrk measure: the installed (compiled) package, not the source tree.
        proc = subprocess.Popen(cmd, env=env, cwd=HERE, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_listening(proc, port, variant)
            asyncio.run(_load(port, shape.path, warmup, connections))
            idle_window = _window(proc.pid, lambda: time.sleep(idle_seconds))
            # Written to callgrind.out.1, with the counters zeroed: the window below is the
            # final dump's alone.
            _callgrind_control(proc.pid, "dump")
            idle = _events(Path(f"{out}.1"), variant)
            answered = 0

            def load() -> None:
                nonlocal answered
                answered = asyncio.run(_load(port, shape.path, requests, connections))

            load_window = _window(proc.pid, load)
            if answered != requests:
                raise RuntimeError(f"{variant}: {answered} of {requests} requests answered 200")
        finally:
            # SIGINT: uvicorn shuts down cleanly and callgrind writes its totals on exit.
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        loaded = _events(out, variant)
        share = load_window / idle_window

        def net(*names: str) -> int:
            return round(sum(loaded[n] - share * idle[n] for n in names))

        return InstructionCount(variant, requests, net("Ir"), net("I1mr"), net("D1mr", "D1mw"),
                                net("Bcm", "Bim"), shape.key, net("ILmr", "DLmr", "DLmw"),
                                idle_per_second=idle["Ir"] / idle_window,
                                window_seconds=load_window)


def _window(pid: int, work: Callable[[], None]) -> float:
    """Count instructions while ``work`` runs; returns the wall time counted, in seconds."""
    _callgrind_control(pid, "on")
    started = time.monotonic()
    work()
    _callgrind_control(pid, "off")
    return time.monotonic() - started


def _events(path: Path, variant: str) -> dict[str, int]:
    text = path.read_text() if path.exists() else ""
    names = re.search(r"^events: (.+)$", text, re.M)
    totals = re.search(r"^totals: (.+)$", text, re.M)
    if names is None or totals is None:
        raise RuntimeError(f"{variant}: callgrind wrote no totals to {path.name}")
    return dict(zip(names.group(1).split(), map(int, totals.group(1).split()), strict=True))


def _wait_listening(proc: subprocess.Popen[bytes], port: int, variant: str) -> None:
    deadline = time.monotonic() + 180  # python + uvicorn under valgrind start slowly
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"uvicorn for {variant} under valgrind exited with "
                               f"{proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn for {variant} did not listen within 180 s") from None
            time.sleep(0.5)


def _callgrind_control(pid: int, command: str) -> None:
    """``on``/``off``: switch counting; ``dump``: write the counts so far and zero them."""
    args = ["--dump"] if command == "dump" else ["-i", command]
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True,
                   timeout=60)


def measure_instructions(variants: Sequence[str], *, requests: int, connections: int = 8,
                         shape: apps.Shape = apps.SHAPES["2routes"]) -> list[InstructionCount]:
    """bare first, then every other variant, one server at a time."""
    counts = []
    for variant in ["bare", *(v for v in variants if v != "bare")]:
        count = count_instructions(variant, requests=requests, connections=connections,
                                   shape=shape)
        print(f"  instructions: {shape.key:<8} {variant:<20} {count.per_request:>10,.0f} per "
              "request", flush=True)
        counts.append(count)
    return counts


def instructions_table(counts: Sequence[InstructionCount]) -> str:
    """One shape's counts (bare among them) as a Markdown table."""
    bare = next(c for c in counts if c.variant == "bare")
    lines = ["| variant | instructions/request | added | instruction-based ratio | "
             "I1 misses/request | D1 misses/request | mispredicted branches/request | "
             "cycle estimate/request | added | cycle-based ratio |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for c in counts:
        is_bare = c.variant == "bare"
        added = "—" if is_bare else f"{c.per_request - bare.per_request:+,.0f}"
        added_cycles = ("—" if is_bare
                        else f"{c.cycles_per_request - bare.cycles_per_request:+,.0f}")
        lines.append(f"| {c.variant} | {c.per_request:,.0f} | {added} | "
                     f"{bare.per_request / c.per_request:.1%} | "
                     f"{c.per_request_of(c.i1_misses):,.0f} | "
                     f"{c.per_request_of(c.d1_misses):,.0f} | "
                     f"{c.per_request_of(c.mispredicts):,.0f} | "
                     f"{c.cycles_per_request:,.0f} | {added_cycles} | "
                     f"{bare.cycles_per_request / c.cycles_per_request:.1%} |")
    return "\n".join(lines)


def _verdict(ok: bool) -> str:
    return "OK" if ok else "OVER"


def budget_verdicts(counts: Sequence[InstructionCount], *,
                    compiled: bool | None = None) -> list[str]:
    """The budget lines for whatever shapes and variants ``counts`` holds (bare and the floor
    from the same run). ``compiled`` says which build was measured, so that only its budget is
    judged; None judges the figure against both (the compiled budget, the pure-Python target)."""
    out = []
    by_shape: dict[str, dict[str, InstructionCount]] = {}
    for c in counts:
        by_shape.setdefault(c.shape, {})[c.variant] = c
    for shape, found in by_shape.items():
        bare, ours, floor = found.get("bare"), found.get("asgi_monitor"), found.get(
            "floor_wrapping")
        if bare is None or ours is None:
            continue
        added = ours.per_request - bare.per_request
        added_cycles = ours.cycles_per_request - bare.cycles_per_request
        if shape == "fastapi":
            share = added / bare.per_request
            out.append(f"fastapi: asgi_monitor adds {added:+,.0f} instructions/request, "
                       f"{share:.2%} of bare's {bare.per_request:,.0f} (keeps "
                       f"{bare.per_request / ours.per_request:.1%}; budget <= "
                       f"{FASTAPI_BUDGET:.0%}): {_verdict(share <= FASTAPI_BUDGET)}; cycle "
                       f"estimate {added_cycles:+,.0f}, "
                       f"{added_cycles / bare.cycles_per_request:.2%} of bare's")
        if floor is None:
            continue
        floor_added = floor.per_request - bare.per_request
        floor_cycles = floor.cycles_per_request - bare.cycles_per_request
        ratio = added / floor_added
        judged = []
        if shape != "2routes":
            judged.append("reported: the floor budget is the 2-route shape's")
        elif compiled is not False:
            judged.append(f"compiled budget <= {FLOOR_BUDGET_COMPILED}x: "
                          f"{_verdict(ratio <= FLOOR_BUDGET_COMPILED)}")
        if compiled is not True and shape == "2routes":
            judged.append(f"pure-Python target <= {FLOOR_TARGET_PURE:g}x: "
                          f"{_verdict(ratio <= FLOOR_TARGET_PURE)}")
        out.append(f"{shape}: asgi_monitor adds {added:+,.0f} instructions/request, "
                   f"floor_wrapping {floor_added:+,.0f}: {ratio:.2f}x the floor's "
                   f"({'; '.join(judged)}); cycle estimate {added_cycles:+,.0f} against "
                   f"{floor_cycles:+,.0f}: {added_cycles / floor_cycles:.2f}x")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--variants", nargs="+", choices=list(apps.VARIANTS),
                        default=["bare", "floor_wrapping", "asgi_monitor"])
    parser.add_argument("--shapes", nargs="+", choices=list(apps.SHAPES),
                        default=["2routes", "fastapi"])
    args = parser.parse_args(argv)
    build = measured_build()
    print(f"measured build: {build}", flush=True)
    counts: list[InstructionCount] = []
    for key in args.shapes:
        shape_counts = measure_instructions(args.variants, requests=args.requests,
                                            shape=apps.SHAPES[key])
        print(f"\n{apps.SHAPES[key].description}:\n\n{instructions_table(shape_counts)}\n",
              flush=True)
        counts += shape_counts
    print("\n".join(budget_verdicts(counts, compiled=build.judged_as_compiled)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
