"""Native histograms: what they add per request, and the protobuf scrape against the text one.

    .venv/bin/python benchmarks/native_histograms.py [--requests 3000] [--series 1000]
    [--skip-instructions] [--skip-scrape]

(a) Hot path, counted by callgrind (as benchmarks/multiprocess_store.py --instructions does):
    each variant in its own process under ``valgrind --tool=callgrind``, with 0 and with
    ``--requests`` requests after the same start-up and warm-up (``PYTHONHASHSEED=0``); the
    difference is what the requests cost. The middleware over a raw ASGI app, native histograms
    off and on, in one process and on the worker file store. Budget: on adds <= 20 % to what
    asgi_monitor adds over the raw app.
(b) Scrape of ``--series`` request series (one process): ``/api/metrics``' text format as it is
    written today (native histograms off, the direct writer), against the protobuf format Prometheus
    asks for with native histograms on (every family, classic and native buckets). Median of
    ``--batches`` timed renderings. Budget: protobuf <= 1.5x text.

Prints which build was measured: compiled (the hot-path modules are extension modules) or pure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from hotpath import per_request_us, raw
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

import asgi_monitor
from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.config import AlertSettings, HealthSettings, MetricsSettings, SystemSettings
from asgi_monitor.monitor import Monitor
from asgi_monitor.store import single as request_metrics_module
from asgi_monitor.store.exposition import encode
from asgi_monitor.store.protobuf import encode_protobuf

VARIANTS = ("raw", "single", "single+native", "multiprocess", "multiprocess+native")


def build_name() -> str:
    compiled = not request_metrics_module.__file__.endswith(".py")
    return (f"{'compiled (mypyc)' if compiled else 'pure Python'}: "
            f"{os.path.dirname(asgi_monitor.__file__)}")


def monitor(native: bool, directory: str | None = None, max_series: int = 2000) -> Monitor:
    saved = os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    try:
        if directory is not None:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        return build_monitor(MonitoringConfig(
            metrics=MetricsSettings(max_series=max_series, native_histograms=native),
            health=HealthSettings(default_checks=False),
            alerts=AlertSettings(default_rules=False),
            system=SystemSettings(metrics=False)), CollectorRegistry())
    finally:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        if saved is not None:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = saved


async def callgrind_child(variant: str, requests: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        app: Any = raw
        if variant != "raw":
            app = MonitoringMiddleware(raw, monitor=monitor(
                variant.endswith("+native"),
                directory if variant.startswith("multiprocess") else None))
        await per_request_us(app, "/x", 200)
        if requests:
            await per_request_us(app, "/x", requests)


def instructions(requests: int) -> None:
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (make system-deps)")
    totals: dict[tuple[str, int], int] = {}
    with tempfile.TemporaryDirectory() as out:
        started = {(variant, n): subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/{variant}-{n}",
             sys.executable, __file__, "--callgrind-child", variant, "--requests", str(n)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONHASHSEED": "0"})
            for variant in VARIANTS for n in (0, requests)}
        for (variant, n), process in started.items():
            if process.wait() != 0:
                raise SystemExit(f"{variant}: valgrind exited with {process.returncode}")
            with open(f"{out}/{variant}-{n}") as dump:
                found = re.search(r"^totals: (\d+)", dump.read(), re.MULTILINE)
            assert found is not None, f"no totals for {variant}"
            totals[(variant, n)] = int(found.group(1))
    per = {v: (totals[(v, requests)] - totals[(v, 0)]) / requests for v in VARIANTS}
    print(f"(a) hot path, instructions per request (callgrind, {requests} requests)")
    for variant, count in per.items():
        print(f"    {variant:<22} {count:9.0f}")
    for store in ("single", "multiprocess"):
        off = per[store] - per["raw"]
        on = per[f"{store}+native"] - per["raw"]
        print(f"    {store:<13} added off {off:7.0f}, on {on:7.0f}: +{(on / off - 1) * 100:.1f} % "
              f"(budget <= +20 %)")


def scrape(series: int, batches: int) -> None:
    def filled(native: bool) -> Monitor:
        found = monitor(native, max_series=series)
        record = found.collector.requests.record
        for n in range(series):
            record("GET", f"/route/{n}", 200, "http", 0.01 + n % 7 * 0.05, 0.005, 100, 2000)
        return found

    text_monitor, native_monitor = filled(False), filled(True)
    encoder, content_type = choose_encoder("")
    renders = {
        "text (native off)": lambda: encode(text_monitor.scrape_registry(), encoder, content_type),
        "text (native on)": lambda: encode(native_monitor.scrape_registry(), encoder,
                                           content_type),
        "protobuf (native on)": lambda: encode_protobuf(native_monitor.scrape_registry()),
    }
    times: dict[str, list[float]] = {name: [] for name in renders}
    sizes = {name: len(render()) for name, render in renders.items()}
    for _ in range(batches):
        for name, render in renders.items():
            start = time.perf_counter()
            render()
            times[name].append((time.perf_counter() - start) * 1e3)
    print(f"(b) scrape, {series} request series, median of {batches} (min in brackets)")
    for name, found in times.items():
        print(f"    {name:<22} {statistics.median(found):8.2f} ms [{min(found):.2f}]  "
              f"{sizes[name]} bytes")
    ratio = statistics.median(times["protobuf (native on)"]) / statistics.median(
        times["text (native off)"])
    print(f"    protobuf / today's text {ratio:.2f}x (budget <= 1.5x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=15)
    parser.add_argument("--skip-instructions", action="store_true")
    parser.add_argument("--skip-scrape", action="store_true")
    parser.add_argument("--callgrind-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.callgrind_child:
        asyncio.run(callgrind_child(args.callgrind_child, args.requests))
        return
    print(build_name())
    if not args.skip_instructions:
        instructions(args.requests)
    if not args.skip_scrape:
        scrape(args.series, args.batches)


if __name__ == "__main__":
    main()
