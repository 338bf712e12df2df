"""What one history/alert sample costs, against a full scrape; and its instructions.

    .venv/bin/python benchmarks/sample_cost.py [--routes 200] [--instructions] [--workers 4]

Records one request on each of ``routes`` routes with two statuses (200 and 500), then times
``Monitor.take_sample()`` (the sampler reading the request store directly) and prometheus_client's
``generate_latest`` of the same registry (what a scrape encodes), as the median of 20 runs.

With ``--instructions`` it counts instead, under ``valgrind --tool=callgrind``
(:func:`import_time.instructions`, ``PYTHONHASHSEED=0``): each case runs in interpreters that
build the same monitor and take one sample, then take :data:`TAKES` more or none; the
difference over :data:`TAKES` is one ``take_sample``. Cases:

- ``one process, idle``: nothing recorded between samples (most routes, most of the time);
- ``one process, busy``: one more request on every series before each sample (the interpreter
  without samples records the same requests, so only the samples are counted);
- ``N workers, idle`` (``--workers``): as many worker files (``PROMETHEUS_MULTIPROC_DIR``), each
  with the same series, merged by the sampler: the files' read and merge, then the fold.

Prints which build was measured; PYTHONPATH selects it (a checkout: pure Python).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable

from import_time import instructions
from prometheus_client import CollectorRegistry, generate_latest
from which_build import measured_build

from asgi_monitor import MonitoringConfig, build_monitor
from asgi_monitor.config import HealthSettings
from asgi_monitor.monitor import Monitor
from asgi_monitor.store.multiprocess import MultiprocessRequestMetrics
from asgi_monitor.store.settings import StoreSettings

TAKES = 5


def median_ms(action: Callable[[], object], runs: int = 20) -> float:
    action()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def monitor(directory: str | None = None) -> Monitor:
    """A monitor (on the worker files in ``directory``, if given), as configured by default but
    for the health checks."""
    saved = os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    try:
        if directory is not None:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        return build_monitor(MonitoringConfig(health=HealthSettings(default_checks=False)),
                             CollectorRegistry())
    finally:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        if saved is not None:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = saved


def fill(record: Callable[..., None], routes: int) -> None:
    for route in range(routes):
        for status in (200, 500):
            record("GET", f"/route/{route}", status, "http", 0.01, 0.005, 10, 100)


def child(routes: int, takes: int, case: str, workers: int) -> None:
    """Runs under callgrind: one monitor, its series, a first sample, then ``takes`` more."""
    with tempfile.TemporaryDirectory() as directory:
        built = monitor(directory if case == "workers" else None)
        fill(built.collector.requests.record, routes)
        if case == "workers":
            metrics = built.config.metrics
            for _ in range(workers - 1):
                fill(MultiprocessRequestMetrics(directory, StoreSettings(
                    duration_buckets=metrics.duration_buckets,
                    size_buckets=metrics.size_buckets, max_series=metrics.max_series)).record,
                    routes)
        built.take_sample()
        for _ in range(TAKES):
            if case == "busy":
                fill(built.collector.requests.record, routes)
            if takes:
                built.take_sample()


def count(routes: int, workers: int) -> None:
    env = dict(os.environ, PYTHONHASHSEED="0")
    cases = (("one process, idle", "idle"), ("one process, busy", "busy"),
             (f"{workers} workers, idle", "workers"))
    print(f"instructions per take_sample (callgrind, {TAKES} takes), {routes * 2} series"
          " per store:")
    for label, case in cases:
        totals = [instructions(f"import sample_cost; sample_cost.child({routes}, {takes}, "
                               f"{case!r}, {workers})", env) for takes in (0, TAKES)]
        print(f"  {label:<20} {(totals[1] - totals[0]) / TAKES / 1e6:7.2f}M")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--routes", type=int, default=200)
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions under callgrind instead (needs valgrind)")
    parser.add_argument("--workers", type=int, default=4,
                        help="worker files merged in the several-workers case")
    args = parser.parse_args()
    print(f"measured build: {measured_build()}")
    if args.instructions:
        count(args.routes, args.workers)
        return
    built = monitor()
    fill(built.collector.requests.record, args.routes)
    lines = generate_latest(built.registry).count(b"\n")
    print(f"{args.routes * 2} request series, {lines} exposition lines")
    print(f"take_sample:     {median_ms(built.take_sample):.1f} ms")
    print(f"generate_latest: {median_ms(lambda: generate_latest(built.registry)):.1f} ms")


if __name__ == "__main__":
    main()
