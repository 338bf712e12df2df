"""A directory after many recycled workers, against one with no history, in one run.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/worker_recycling.py [--recycled 1000] \\
        [--live 4] [--series 200] [--scrapes 30]

Each worker is a forked process with a per-worker file store (``MultiprocessRequestMetrics``):
it records one request on each of ``--series`` routes, folds the dead workers' files into the
retired file (as a worker's start does), then lives until told to exit; then a new worker starts
in its place, as under gunicorn ``max_requests``. ``--live`` workers
are alive at any time. At the end the script checks the directory's files (budget: worker files
<= live + 4) and that the merged totals are exact, then times the scrape (``generate_latest`` on
a registry with the merged collector) of that directory against a directory holding only
``--live`` workers with the same series (budget: <= 1.2x), batches interleaved, the median of
each kept.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time

from prometheus_client import CollectorRegistry, generate_latest
from which_build import measured_build

from asgi_monitor.config import MetricsSettings
from asgi_monitor.store.compaction import COMPACT_AFTER
from asgi_monitor.store.merge import MergedFiles, MergedFilesCollector
from asgi_monitor.store.multiprocess import MultiprocessRequestMetrics
from asgi_monitor.store.retired_file import retired_files
from asgi_monitor.store.settings import StoreSettings
from asgi_monitor.store.worker_file import worker_files

SETTINGS = MetricsSettings()


def worker(directory: str, series: int) -> MultiprocessRequestMetrics:
    store = MultiprocessRequestMetrics(directory, StoreSettings(
        duration_buckets=SETTINGS.duration_buckets, size_buckets=SETTINGS.size_buckets,
        max_series=SETTINGS.max_series))
    for i in range(series):
        store.record("GET", f"/route/{i}", 200, "http", 0.01 * (i % 7), 0.001, 0, 100)
    return store


def spawn(directory: str, series: int) -> int:
    """A worker process, once it has recorded and compacted: its pid."""
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(ready_r)
            worker(directory, series)
            merged(directory).compact()
            os.write(ready_w, b"x")
            while True:
                signal.pause()  # until SIGTERM ends it
        finally:
            os._exit(0)
    os.close(ready_w)
    os.read(ready_r, 1)
    os.close(ready_r)
    return pid


def stop(pid: int) -> None:
    os.kill(pid, signal.SIGTERM)
    os.waitpid(pid, 0)


def merged(directory: str) -> MergedFiles:
    return MergedFiles(directory, StoreSettings(
        duration_buckets=SETTINGS.duration_buckets, size_buckets=SETTINGS.size_buckets,
        max_series=SETTINGS.max_series), compact=False)


def registry(directory: str) -> CollectorRegistry:
    found = CollectorRegistry()
    found.register(MergedFilesCollector(merged(directory), custom=True))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recycled", type=int, default=1000)
    parser.add_argument("--live", type=int, default=4)
    parser.add_argument("--series", type=int, default=200)
    parser.add_argument("--scrapes", type=int, default=30)
    args = parser.parse_args()
    print(f"measured build: {measured_build()}, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as history, tempfile.TemporaryDirectory() as fresh:
        started = time.perf_counter()
        live = [spawn(history, args.series) for _ in range(args.live)]
        largest = 0
        for n in range(args.recycled):
            stop(live[n % args.live])
            live[n % args.live] = spawn(history, args.series)
            largest = max(largest, len(worker_files(history)))
        elapsed = time.perf_counter() - started
        baseline = [spawn(fresh, args.series) for _ in range(args.live)]
        files = len(worker_files(history))
        every = len(os.listdir(history))
        text = generate_latest(registry(history)).decode()
        expected = float(args.live + args.recycled)
        exact = all(f'route="/route/{i}",status="200"}} {expected}' in text
                    for i in range(args.series))
        print(f"{args.recycled} workers recycled ({args.live} live, {args.series} series each) "
              f"in {elapsed:.1f} s")
        print(f"worker files now {files} (most at once {largest}; budget <= live + "
              f"{COMPACT_AFTER} = {args.live + COMPACT_AFTER}), retired files "
              f"{len(retired_files(history))}, files in the directory {every}")
        print(f"totals exact: {exact}")
        timings: dict[str, list[float]] = {"history": [], "fresh": []}
        scraped = {"history": registry(history), "fresh": registry(fresh)}
        for _ in range(args.scrapes):
            for name, reg in scraped.items():
                begin = time.perf_counter()
                generate_latest(reg)
                timings[name].append(time.perf_counter() - begin)
        median = {name: statistics.median(values) for name, values in timings.items()}
        print(f"scrape median: after {args.recycled} recycles {median['history'] * 1000:.1f} ms, "
              f"no history {median['fresh'] * 1000:.1f} ms, ratio "
              f"{median['history'] / median['fresh']:.2f}x (budget <= 1.2x)")
        for process in (*live, *baseline):
            stop(process)


if __name__ == "__main__":
    main()
