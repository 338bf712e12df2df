"""What ``import asgi_monitor`` costs, as a ratio to what a monitored app imports anyway.

The base is ``starlette.applications`` and ``prometheus_client`` (every user of the package has
loaded them). Two measures, each in fresh interpreters:

- time: each run imports the base, then ``asgi_monitor``, timing each; the figure is the median
  over the runs of (package time / base time);
- instructions (``--instructions``): callgrind counts three interpreters, one that imports
  nothing, one the base, one the base and the package; the ratio is
  (package - base) / (base - nothing). Unlike the time, the count does not depend on the load of
  a shared machine.

Every interpreter reads bytecode from a cache directory of its own (filled by an untimed first
run), so a run never times the compiler, whatever ``PYTHONDONTWRITEBYTECODE`` says. The package
measured is the one the interpreter imports: the installed build, or a checkout with PYTHONPATH.

    python benchmarks/import_time.py [--runs 5] [--instructions]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from which_build import measured_build

HERE = Path(__file__).resolve().parent
BASE = "import starlette.applications, prometheus_client"
PROBE = f"""
import time
t0 = time.perf_counter()
{BASE}
t1 = time.perf_counter()
import asgi_monitor
t2 = time.perf_counter()
print(t1 - t0, t2 - t1, asgi_monitor.__file__)
"""


def _env(cache: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPYCACHEPREFIX=cache)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _run(code: str, env: dict[str, str], prefix: tuple[str, ...] = ()) -> str:
    # cwd=HERE: `python -c` puts the working directory first on sys.path, and from the
    # repository root that would import the source tree instead of the installed package.
    return subprocess.run([*prefix, sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=HERE, env=env).stdout


def measure_time(runs: int, env: dict[str, str]) -> tuple[float, float, float, str]:
    _run(PROBE, env)  # writes the bytecode cache
    base: list[float] = []
    ours: list[float] = []
    ratios: list[float] = []
    where = ""
    for _ in range(runs):
        out = _run(PROBE, env).split()
        base.append(float(out[0]))
        ours.append(float(out[1]))
        ratios.append(float(out[1]) / float(out[0]))
        where = out[2]
    return statistics.median(base), statistics.median(ours), statistics.median(ratios), where


def instructions(code: str, env: dict[str, str]) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                        sys.executable, "-c", code], capture_output=True, check=True, cwd=HERE,
                       env=env)
        summary = re.search(r"^summary:\s+(\d+)", out.read_text(), re.MULTILINE)
        assert summary is not None, "callgrind wrote no summary"
        return int(summary.group(1))


def measure_instructions(env: dict[str, str]) -> tuple[int, int]:
    """(base, package) instructions: each interpreter's count minus the one before it."""
    _run(f"{BASE}\nimport asgi_monitor", env)
    nothing = instructions("pass", env)
    base = instructions(BASE, env)
    both = instructions(f"{BASE}\nimport asgi_monitor", env)
    return base - nothing, both - base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--instructions", action="store_true",
                        help="also count instructions under callgrind (needs valgrind)")
    args = parser.parse_args()
    cache = tempfile.mkdtemp(prefix="bench-import-pyc-")
    try:
        env = _env(cache)
        base, ours, ratio, where = measure_time(args.runs, env)
        print(f"measured build: {measured_build()}")
        print(f"package: {where}")
        print(f"base import (starlette.applications, prometheus_client): {base * 1000:.1f} ms")
        print(f"import asgi_monitor after it: {ours * 1000:.1f} ms")
        print(f"time ratio (median of {args.runs} runs): {ratio:.2f}x")
        if args.instructions:
            base_i, ours_i = measure_instructions(env)
            print(f"base import: {base_i:,} instructions; import asgi_monitor after it: "
                  f"{ours_i:,} instructions")
            print(f"instruction ratio (callgrind): {ours_i / base_i:.2f}x")
    finally:
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
