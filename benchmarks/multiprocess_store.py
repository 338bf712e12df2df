"""The store for several workers against the single-process one, in one run, interleaved.

    .venv/bin/python benchmarks/multiprocess_store.py [--batches 30] [--series 1000] [--exemplars]

(a) Hot path: the added cost per request of the middleware over a raw ASGI app and over a
    2-route Starlette app (as benchmarks/hotpath.py), once on the single-process store and once on
    the per-worker file store (``PROMETHEUS_MULTIPROC_DIR`` set), batches of both interleaved,
    the minimum of each kept. Budget: multiprocess added <= 1.3x single-process added. With
    ``--exemplars``: exemplars on and every request with a ``traceparent`` (each one keeps an
    exemplar: in memory in one process, in the worker's ``.exemplars`` slots under several).
(b) Scrape: ``/api/metrics``' work (the scrape registry rendered with ``generate_latest``) with
    one process' series, against a merge of 4 worker files holding the same series each (so the
    merged scrape has as many). Two sizes: 19 request series (about 1,000 sample lines, the
    "series" of the scrape budget in benchmarks/README.md) and 1,000 request series (about
    53,000 lines). Budget: <= 3x.
(c) With ``--read N``: what the sampler and the alert loop do under several workers, a merged
    read of 4 worker files x N request series into typed values (``MergedFiles.sample``, in a
    worker thread in a server): its median time, and the garbage collections it causes, since
    a collection holds the GIL and so stalls the event loop even from a thread
    (tests/integration/test_worker_loop_lag.py holds the stall under 50 ms at N = 2,000).

With ``--instructions`` (a) is counted by callgrind instead of timed: the machine's speed wanders
(benchmarks/README.md, "Why instructions"), an instruction count does not. Each variant runs in
its own process under ``valgrind --tool=callgrind``, twice: with 0 and with ``--requests``
requests after the same start-up and warm-up (``PYTHONHASHSEED=0``); the difference is what the
requests cost.

Prints which build was measured: compiled (the hot-path modules are extension modules) or pure.
Set PYTHONPATH to the checkout (pure) or to a compiled copy to compare builds.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import hotpath
from hotpath import TRACEPARENT, ok, per_request_us, raw
from prometheus_client import CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.routing import Route

import asgi_monitor
from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.config import AlertSettings, HealthSettings, MetricsSettings, SystemSettings
from asgi_monitor.monitor import Monitor
from asgi_monitor.store import single as request_metrics_module
from asgi_monitor.store.multiprocess import MultiprocessRequestMetrics
from asgi_monitor.store.settings import StoreSettings


def build_name() -> str:
    compiled = not request_metrics_module.__file__.endswith(".py")
    return (f"{'compiled (mypyc)' if compiled else 'pure Python'}: "
            f"{os.path.dirname(asgi_monitor.__file__)}")


# --exemplars: exemplars on, every request with a trace context.
EXEMPLARS = False
# --header-label: one request label from a request header, every request with that header.
HEADER_LABELS: tuple[tuple[str, str], ...] = ()
# A browser-like request's headers, the label's last: the resolver scans them in order.
LABELLED_HEADERS = [(b"host", b"shop.example"), (b"user-agent", b"Mozilla/5.0"),
                    (b"accept", b"*/*"), (b"accept-encoding", b"gzip, br"),
                    (b"x-tenant", b"acme")]


def config(max_series: int = 2000) -> MonitoringConfig:
    return MonitoringConfig(metrics=MetricsSettings(max_series=max_series, exemplars=EXEMPLARS,
                                                    header_labels=HEADER_LABELS),
                            health=HealthSettings(default_checks=False),
                            alerts=AlertSettings(default_rules=False),
                            system=SystemSettings(metrics=False))


def monitor_on(directory: str | None, max_series: int = 2000) -> Monitor:
    """A monitor built with PROMETHEUS_MULTIPROC_DIR set to ``directory`` (None: unset)."""
    saved = os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    try:
        if directory is not None:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        return build_monitor(config(max_series), CollectorRegistry())
    finally:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        if saved is not None:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = saved


async def hot_path(batches: int, directory: str) -> None:
    single, multi = monitor_on(None), monitor_on(directory)
    assert isinstance(multi.collector.requests, MultiprocessRequestMetrics)
    starlette = Starlette(routes=[Route("/a", ok), Route("/items/{id}", ok)])
    apps: dict[str, tuple[Any, str, int]] = {
        "raw": (raw, "/x", 20000),
        "raw+single": (MonitoringMiddleware(raw, monitor=single), "/x", 20000),
        "raw+multiprocess": (MonitoringMiddleware(raw, monitor=multi), "/x", 20000),
        "starlette": (starlette, "/items/5", 5000),
        "starlette+single": (MonitoringMiddleware(starlette, monitor=single), "/items/5", 5000),
        "starlette+multiprocess": (MonitoringMiddleware(starlette, monitor=multi), "/items/5",
                                   5000),
    }
    best = {name: float("inf") for name in apps}
    for _ in range(batches):
        for name, (app, path, count) in apps.items():
            best[name] = min(best[name], await per_request_us(app, path, count))
    print("(a) hot path, minimum over batches")
    for name, value in best.items():
        print(f"    {name:<24} {value:6.2f} µs/request")
    for base in ("raw", "starlette"):
        one = best[f"{base}+single"] - best[base]
        several = best[f"{base}+multiprocess"] - best[base]
        print(f"    added to {base:<10} single {one:5.2f} µs, multiprocess {several:5.2f} µs: "
              f"{several / one:.2f}x (budget <= 1.3x)")


def hot_path_app(variant: str, directory: str) -> Any:
    if variant == "raw":
        return raw
    return MonitoringMiddleware(raw, monitor=monitor_on(
        directory if variant == "raw+multiprocess" else None))


async def callgrind_child(variant: str, requests: int) -> None:
    """Runs inside valgrind: build the app, warm it up, serve ``requests`` requests, exit."""
    with tempfile.TemporaryDirectory() as directory:
        app = hot_path_app(variant, directory)
        await per_request_us(app, "/x", 200)
        if requests:
            await per_request_us(app, "/x", requests)


def _callgrind(variant: str, requests: int, out: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
         __file__, "--callgrind-child", variant, "--requests", str(requests),
         *(["--exemplars"] if EXEMPLARS else []),
         *(["--header-label"] if HEADER_LABELS else [])],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONHASHSEED": "0"})


HOT_PATH_VARIANTS = ("raw", "raw+single", "raw+multiprocess")


def count_hot_path(requests: int,
                   variants: tuple[str, ...] = HOT_PATH_VARIANTS) -> dict[str, int]:
    """Instructions each variant executes for ``requests`` requests, in-process under callgrind.

    No server, no timer, a fixed hash seed: the same run gives the same count, so differences
    between variants are exact rather than above an idle rate's noise."""
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (make system-deps)")
    totals: dict[tuple[str, int], int] = {}
    with tempfile.TemporaryDirectory() as out:
        # Each variant twice, with 0 and with ``requests`` requests after the same start-up and
        # warm-up: the difference is the requests' instructions alone.
        started = {(variant, n): _callgrind(variant, n, os.path.join(out, f"{variant}-{n}"))
                   for variant in variants for n in (0, requests)}
        for (variant, n), process in started.items():
            if process.wait() != 0:
                raise SystemExit(f"{variant}: valgrind exited with {process.returncode}")
            with open(os.path.join(out, f"{variant}-{n}")) as dump:
                found = re.search(r"^totals: (\d+)", dump.read(), re.MULTILINE)
            assert found is not None, f"no totals for {variant}"
            totals[(variant, n)] = int(found.group(1))
    return {variant: totals[(variant, requests)] - totals[(variant, 0)] for variant in variants}


def instructions(requests: int) -> None:
    counts = count_hot_path(requests)
    print(f"(a) hot path, instructions per request (callgrind, {requests} requests)")
    for variant, count in counts.items():
        print(f"    {variant:<24} {count / requests:9.0f}")
    one = (counts["raw+single"] - counts["raw"]) / requests
    several = (counts["raw+multiprocess"] - counts["raw"]) / requests
    print(f"    added to raw        single {one:7.0f}, multiprocess {several:7.0f}: "
          f"{several / one:.2f}x (budget <= 1.3x)")


def fill(record: Callable[..., None], series: int) -> None:
    for n in range(series):
        record("GET", f"/route/{n}", 200, "http", 0.01 + n % 7 * 0.05, 0.005, 100, 2000)


def scrape(batches: int, directory: str, series: int, workers: int) -> None:
    single = monitor_on(None, max_series=series)
    fill(single.collector.requests.record, series)
    scraper = monitor_on(directory, max_series=series)
    stores = [scraper.collector.requests]
    for _ in range(workers - 1):
        # The other workers' files, written the way a worker writes them.
        stores.append(MultiprocessRequestMetrics(directory, StoreSettings(
            duration_buckets=scraper.config.metrics.duration_buckets,
            size_buckets=scraper.config.metrics.size_buckets, max_series=series)))
    for store in stores:
        fill(store.record, series)
    single_ms: list[float] = []
    merged_ms: list[float] = []
    sizes = (len(generate_latest(single.scrape_registry())),
             len(generate_latest(scraper.scrape_registry())))
    for _ in range(batches):
        for monitor, out in ((single, single_ms), (scraper, merged_ms)):
            start = time.perf_counter()
            generate_latest(monitor.scrape_registry())
            out.append((time.perf_counter() - start) * 1e3)
    one, merged = statistics.median(single_ms), statistics.median(merged_ms)
    print(f"(b) scrape, {series} request series, median of {batches} (min in brackets)")
    print(f"    single process              {one:8.2f} ms [{min(single_ms):.2f}]  "
          f"{sizes[0]} bytes")
    print(f"    merge of {workers} worker files    {merged:8.2f} ms [{min(merged_ms):.2f}]  "
          f"{sizes[1]} bytes")
    print(f"    ratio {merged / one:.2f}x (budget <= 3x)")


def merged_read(reads: int, directory: str, series: int, workers: int) -> None:
    reader = monitor_on(directory, max_series=2 * series)
    stores = [reader.collector.requests]
    for _ in range(workers - 1):
        stores.append(MultiprocessRequestMetrics(directory, StoreSettings(
            duration_buckets=reader.config.metrics.duration_buckets,
            size_buckets=reader.config.metrics.size_buckets, max_series=2 * series)))
    for store in stores:
        fill(store.record, series)
    merged = reader.collector.merged
    assert merged is not None
    merged.sample()  # the first read parses the indexes; the later ones are the steady state
    pauses: list[tuple[int, float]] = []
    started = [0.0]

    def timed(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.append((info["generation"], time.perf_counter() - started[0]))

    print(f"(c) merged read for the sampler, {workers} x {series} request series, {reads} reads")
    sampler = reader.sampler
    for name, read in (("MergedFiles.sample()", merged.sample), ("Sampler.take()", sampler.take)):
        times = []
        pauses.clear()
        gc.callbacks.append(timed)
        try:
            for _ in range(reads):
                start = time.perf_counter()
                read()
                times.append((time.perf_counter() - start) * 1e3)
        finally:
            gc.callbacks.remove(timed)
        full = [pause for generation, pause in pauses if generation == 2]
        print(f"    {name:<22} median {statistics.median(times):.1f} ms [min {min(times):.1f}]; "
              f"garbage collections per read {len(pauses) / reads:.1f}, full ones {len(full)} "
              f"in all, longest {max((p for _, p in pauses), default=0.0) * 1e3:.1f} ms")
    latest = sampler.take()
    assert latest.requests == workers * series, latest.requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--series", type=int, nargs="+", default=[19, 1000],
                        help="request series (method, route, status, scheme) per worker")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--skip-hot-path", action="store_true")
    parser.add_argument("--skip-scrape", action="store_true",
                        help="the hot path only (runs on builds before the file store too)")
    parser.add_argument("--instructions", action="store_true",
                        help="count (a) with callgrind instead of timing it")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--read", type=int, metavar="N",
                        help="(c) only: the sampler's merged read of 4 x N series")
    parser.add_argument("--exemplars", action="store_true",
                        help="(a) with exemplars on, each request with a traceparent header")
    parser.add_argument("--header-label", action="store_true",
                        help="(a) with one request label from a header (MONITORING_HEADER_LABELS="
                             "tenant=X-Tenant), each request with that header")
    parser.add_argument("--callgrind-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.header_label:
        global HEADER_LABELS
        HEADER_LABELS = (("tenant", "X-Tenant"),)
        hotpath.HEADERS.extend(LABELLED_HEADERS)
    if args.exemplars:
        global EXEMPLARS
        EXEMPLARS = True
        hotpath.HEADERS.append(TRACEPARENT)
    if args.callgrind_child:
        asyncio.run(callgrind_child(args.callgrind_child, args.requests))
        return
    print(f"build: {build_name()}"
          f"{'; one header label' if HEADER_LABELS else ''}")
    if args.read:
        with tempfile.TemporaryDirectory() as directory:
            merged_read(20, directory, args.read, args.workers)
        return
    if args.instructions:
        instructions(args.requests)
        args.skip_hot_path = True
    with tempfile.TemporaryDirectory() as hot:
        if not args.skip_hot_path:
            asyncio.run(hot_path(args.batches, hot))
    for series in () if args.skip_scrape else args.series:
        with tempfile.TemporaryDirectory() as scraped:
            # Fewer rounds for the big shape: one scrape of it takes about a second.
            scrape(max(args.batches // (2 if series < 100 else 4), 5), scraped, series,
                   args.workers)


if __name__ == "__main__":
    main()
