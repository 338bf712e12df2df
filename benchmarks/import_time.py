"""What ``import asgi_monitor`` costs, as a ratio to what a monitored app imports anyway.

Each run is a fresh interpreter: it imports ``starlette.applications`` and ``prometheus_client``
(the base every user of the package has loaded), then ``asgi_monitor``, timing each; the figure
is the median over the runs of (package time / base time). The package measured is the one the
interpreter imports: the installed build, or a checkout with PYTHONPATH.

    python benchmarks/import_time.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

from which_build import measured_build

HERE = Path(__file__).resolve().parent
PROBE = """
import time
t0 = time.perf_counter()
import starlette.applications, prometheus_client
t1 = time.perf_counter()
import asgi_monitor
t2 = time.perf_counter()
print(t1 - t0, t2 - t1, asgi_monitor.__file__)
"""


def measure(runs: int) -> tuple[float, float, float, str]:
    base: list[float] = []
    ours: list[float] = []
    ratios: list[float] = []
    where = ""
    for _ in range(runs):
        # cwd=HERE: `python -c` puts the working directory first on sys.path, and from the
        # repository root that would import the source tree instead of the installed package.
        out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                             check=True, cwd=HERE).stdout.split()
        base.append(float(out[0]))
        ours.append(float(out[1]))
        ratios.append(float(out[1]) / float(out[0]))
        where = out[2]
    return statistics.median(base), statistics.median(ours), statistics.median(ratios), where


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    base, ours, ratio, where = measure(args.runs)
    print(f"measured build: {measured_build()}")
    print(f"package: {where}")
    print(f"base import (starlette.applications, prometheus_client): {base * 1000:.1f} ms")
    print(f"import asgi_monitor after it: {ours * 1000:.1f} ms")
    print(f"ratio (median of {args.runs} runs): {ratio:.2f}x")


if __name__ == "__main__":
    main()
