"""The uvicorn measure without the noise: CPU instructions per request, counted by callgrind.

This machine's speed wanders by 2x from one second to the next (benchmarks/README.md, "Why
instructions"), so a throughput ratio needs many paired runs to settle. An instruction count
does not wander: repeated runs give the same count to within about 1 % (hash seeds and memory
layout differ per process). Each variant's
uvicorn server (the same command, app and request as the wrk measure) runs under
``valgrind --tool=callgrind`` with counting off; a keep-alive client on loopback warms it up,
counting is switched on (``callgrind_control -i on``), ``requests`` requests are sent over
``connections`` connections, counting is switched off, and the server's total instructions
(all threads) divided by the requests is the figure. bare's count over a variant's is the
*instruction-based ratio*: the throughput a CPU-bound server would keep if every instruction cost
the same time. They do not: callgrind also simulates the caches and the branch predictor over
the same window, and their misses per request show what the count leaves out. So this measure
explains the wrk measure; the wrk measure stays the budget's judge.

    python benchmarks/instructions.py [--requests 3000] [--variants bare asgi_monitor]

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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # run as a script, or imported by run.py
    sys.path.insert(0, str(HERE))

import apps  # noqa: E402  (benchmarks/ is not a package)
from which_build import measured_build  # noqa: E402

__all__ = ["InstructionCount", "count_instructions", "measure_instructions"]


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

    @property
    def per_request(self) -> float:
        return self.instructions / self.requests

    def per_request_of(self, events: int) -> float:
        return events / self.requests


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
                       loop: str = "auto", http: str = "auto") -> InstructionCount:
    """Instructions the variant's uvicorn server executes for ``requests`` requests."""
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
        env = {**os.environ, "BENCH_VARIANT": variant, "BENCH_SHAPE": shape.key}
        # cwd=HERE, as for the wrk measure: the installed (compiled) package, not the source tree.
        proc = subprocess.Popen(cmd, env=env, cwd=HERE, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_listening(proc, port, variant)
            asyncio.run(_load(port, shape.path, warmup, connections))
            _callgrind_control(proc.pid, "on")
            answered = asyncio.run(_load(port, shape.path, requests, connections))
            _callgrind_control(proc.pid, "off")
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
        text = out.read_text()
        names = re.search(r"^events: (.+)$", text, re.M)
        totals = re.search(r"^totals: (.+)$", text, re.M)
        if names is None or totals is None:
            raise RuntimeError(f"{variant}: callgrind wrote no totals")
        event = dict(zip(names.group(1).split(), map(int, totals.group(1).split()), strict=True))
        return InstructionCount(variant, requests, event["Ir"], event["I1mr"],
                                event["D1mr"] + event["D1mw"], event["Bcm"] + event["Bim"])


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


def _callgrind_control(pid: int, state: str) -> None:
    subprocess.run(["callgrind_control", "-i", state, str(pid)], check=True,
                   capture_output=True, timeout=60)


def measure_instructions(variants: Sequence[str], *, requests: int,
                         connections: int = 8) -> list[InstructionCount]:
    """bare first, then every other variant, one server at a time."""
    counts = []
    for variant in ["bare", *(v for v in variants if v != "bare")]:
        count = count_instructions(variant, requests=requests, connections=connections)
        print(f"  instructions: {variant:<20} {count.per_request:>10,.0f} per request",
              flush=True)
        counts.append(count)
    return counts


def instructions_table(counts: Sequence[InstructionCount]) -> str:
    bare = next(c for c in counts if c.variant == "bare").per_request
    lines = ["| variant | instructions/request | added | instruction-based ratio | "
             "I1 misses/request | D1 misses/request | mispredicted branches/request |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for c in counts:
        added = "—" if c.variant == "bare" else f"{c.per_request - bare:+,.0f}"
        lines.append(f"| {c.variant} | {c.per_request:,.0f} | {added} | "
                     f"{bare / c.per_request:.1%} | {c.per_request_of(c.i1_misses):,.0f} | "
                     f"{c.per_request_of(c.d1_misses):,.0f} | "
                     f"{c.per_request_of(c.mispredicts):,.0f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--variants", nargs="+", choices=list(apps.VARIANTS),
                        default=["bare", "asgi_monitor"])
    args = parser.parse_args(argv)
    print(f"measured build: {measured_build()}", flush=True)
    print(instructions_table(measure_instructions(args.variants, requests=args.requests)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
