"""A scrape under several workers, and what the worker answering it makes its other requests wait.

    python benchmarks/worker_scrape.py [--workers 4] [--series 2000] [--scrapes 10] [--seconds 8]

The other workers are processes of their own (each writes ``series`` distinct request series
into its file in a temporary ``PROMETHEUS_MULTIPROC_DIR`` and waits); the answering worker
writes its own ``series`` too, so the merged view holds ``workers x series``.

(a) Scrape time: the exposition ``/api/metrics`` writes (the text format; the scrape registry
    built and written as the endpoint does, in this thread), for one process holding
    ``workers x series`` request series, against the merge of the ``workers`` files holding the
    same series. Interleaved, medians. For reference, prometheus_client's ``generate_latest`` of
    the same registries (what the endpoint wrote before). Budget: merged <= 2x one process.
(b) Loop lag while scraping, in a fresh process per case (its heap holds only what a worker's
    does): the monitor running with its default intervals, ``GET /api/metrics`` back to back
    (gzip accepted, as Prometheus asks) while a pinger sends ``GET /ping`` every 5 ms through the
    same app and event loop; each ping's delay from when it was due to its response (p50, p99,
    max), and the garbage collections meanwhile. Budget: no ping delayed over 50 ms by a scrape.
    First without scrapes (the baseline), then with them; one process, then the merged files.
(c) Loop lag while reading: the sampler and the alert loop reading the merged files every
    0.2 s (no scrapes), as ``tests/integration/test_worker_loop_lag.py`` does: the overshoot of
    5 ms sleeps on the loop (p99, max).

Works on a tree before the direct exposition too (PYTHONPATH=an older checkout): (a) then times
the encoder alone.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import httpx
from multiprocess_store import build_name
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import choose_encoder
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.config import AlertSettings, HistorySettings, MetricsSettings, SystemSettings
from asgi_monitor.monitor import Monitor
from asgi_monitor.store.multiprocess import MultiprocessRequestMetrics
from asgi_monitor.store.settings import StoreSettings

try:
    from asgi_monitor.store.exposition import encode
except ImportError:  # a tree before the direct exposition: the encoder alone
    def encode(registry: Any, encoder: Callable[[Any], bytes], content_type: str) -> bytes:
        return encoder(registry)

BUDGET_RATIO = 2.0
BUDGET_LAG_MS = 50.0


def build(directory: str | None, max_series: int, *, fast_loops: bool = False) -> Monitor:
    saved = os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    try:
        if directory is not None:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        every = 0.2 if fast_loops else None
        return build_monitor(MonitoringConfig(
            metrics=MetricsSettings(max_series=max_series),
            history=HistorySettings(sample_interval_seconds=every) if every else HistorySettings(),
            alerts=AlertSettings(check_interval_seconds=every) if every else AlertSettings(),
            system=SystemSettings(metrics=False)), CollectorRegistry())
    finally:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        if saved is not None:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = saved


def fill(record: Callable[..., None], first: int, count: int) -> None:
    for n in range(first, first + count):
        record("GET", f"/route/{n}/{{id}}", 200, "http", 0.01 + n % 7 * 0.05, 0.005, 100, 2000)


def writer(directory: str, first: int, count: int, total: int) -> None:
    """Another worker: its series in its file, then alive (holding its file) until stdin closes."""
    settings = MetricsSettings()
    store = MultiprocessRequestMetrics(directory, StoreSettings(
        duration_buckets=settings.duration_buckets, size_buckets=settings.size_buckets,
        max_series=total))
    fill(store.record, first, count)
    print("ready", flush=True)
    sys.stdin.read()


def answering(directory: str | None, workers: int, series: int,
              fast_loops: bool = False) -> Monitor:
    """The worker that answers: ``workers x series`` series of its own, or its share of them
    beside the other workers' files."""
    total = workers * series
    monitor = build(directory, total, fast_loops=fast_loops)
    fill(monitor.collector.requests.record, 0, total if directory is None else series)
    return monitor


def scrape_time(single: Monitor, merged: Monitor, scrapes: int, reference: int) -> None:
    encoder, content_type = choose_encoder("")

    def direct(monitor: Monitor) -> bytes:
        return encode(monitor.scrape_registry(), encoder, content_type)

    def client(monitor: Monitor) -> bytes:
        return generate_latest(monitor.scrape_registry())

    sizes = {}
    for name, monitor in (("single", single), ("merged", merged)):
        body = direct(monitor)
        assert body == client(monitor), f"{name}: the direct text differs from the encoder's"
        sizes[name] = (len(body), body.count(b"\n"))
    times: dict[tuple[str, str], list[float]] = {}
    collections = {name: Collections() for name in ("single", "merged")}
    for round_ in range(scrapes):
        for how, write in (("direct", direct), ("generate_latest", client)):
            if how == "generate_latest" and round_ >= reference:
                continue  # the reference is slow: a few rounds are enough
            for name, monitor in (("single", single), ("merged", merged)):
                start = time.perf_counter()
                if how == "direct":
                    with collections[name]:
                        write(monitor)
                else:
                    write(monitor)
                times.setdefault((how, name), []).append(time.perf_counter() - start)
    print(f"(a) scrape time, text format, median over interleaved rounds (min in brackets); "
          f"{sizes['single'][1]} lines, {sizes['single'][0] / 1e6:.1f} MB")
    for how in ("direct", "generate_latest"):
        one = statistics.median(times[(how, "single")]) * 1e3
        several = statistics.median(times[(how, "merged")]) * 1e3
        print(f"    {how:<16} one process {one:8.1f} ms [{min(times[(how, 'single')]) * 1e3:.1f}]"
              f"   merged files {several:8.1f} ms [{min(times[(how, 'merged')]) * 1e3:.1f}]"
              f"   ratio {several / one:.2f}x"
              + (f" (budget <= {BUDGET_RATIO:g}x)" if how == "direct" else ""))
    print(f"    during the direct scrapes: one process {collections['single']}; "
          f"merged files {collections['merged']}")


async def ping_app(monitor: Monitor) -> Any:
    async def ping(request: Request) -> Response:
        return PlainTextResponse("pong")

    return MonitoringMiddleware(Starlette(routes=[Route("/ping", ping)]), monitor=monitor)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def pinged(monitor: Monitor, seconds: float, scraping: bool) -> tuple[list[float], int]:
    app = await ping_app(monitor)
    pings: list[float] = []
    scrapes = 0
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://worker") as client:
        # Loads the sub-app and the encoders before the clock starts.
        assert (await client.get("/api/metrics")).status_code == 200
        stop = time.monotonic() + seconds

        async def scraper() -> None:
            nonlocal scrapes
            while time.monotonic() < stop:
                # Read as sent: decompressing 40 MB here, on the loop measured, would be the
                # client's cost (Prometheus is another process), not the worker's.
                async with client.stream("GET", "/api/metrics",
                                         headers={"accept-encoding": "gzip"}) as response:
                    assert response.status_code == 200
                    async for _ in response.aiter_raw():
                        pass
                scrapes += 1

        task = asyncio.create_task(scraper()) if scraping else None
        # A ping is due every 5 ms; its delay counts from when it was due, as a request that
        # reached the socket waits from then for the loop to read it.
        due = time.perf_counter()
        while time.monotonic() < stop:
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            response = await client.get("/ping")
            pings.append(time.perf_counter() - due)
            assert response.status_code == 200
            due = max(due + 0.005, time.perf_counter())
        if task is not None:
            await task
    return pings, scrapes


class Collections:
    """The garbage collections meanwhile (each holds the GIL, so the loop too): how many, and
    the longest."""

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self.full = 0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append(time.perf_counter() - self._started)
            self.full += info["generation"] == 2

    def __enter__(self) -> Collections:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)

    def __str__(self) -> str:
        return (f"{len(self.pauses)} collections, {self.full} full, longest "
                f"{max(self.pauses, default=0.0) * 1e3:.1f} ms")


async def loop_lag(monitor: Monitor, seconds: float, scraping: bool) -> None:
    async with monitor.running():
        for label, scrape in (("no scrapes (baseline)", False),
                              ("scrapes back to back", True)) if scraping else ():
            with Collections() as collections:
                pings, scrapes = await pinged(monitor, seconds, scrape)
            print(f"    {label:<22} {len(pings):5d} pings  p50 {percentile(pings, .5) * 1e3:6.1f}"
                  f"  p99 {percentile(pings, .99) * 1e3:6.1f}  max {max(pings) * 1e3:6.1f} ms"
                  f"  ({scrapes} scrapes; {collections})")
        if not scraping:
            lags: list[float] = []
            stop = time.monotonic() + seconds
            reads = len(monitor.samples)
            while time.monotonic() < stop:
                start = time.perf_counter()
                await asyncio.sleep(0.005)
                lags.append(time.perf_counter() - start - 0.005)
            print(f"    {len(lags)} sleeps, {len(monitor.samples) - reads} merged reads: "
                  f"lag p99 {percentile(lags, .99) * 1e3:.1f} ms, max {max(lags) * 1e3:.1f} ms "
                  f"(budget {BUDGET_LAG_MS:g} ms)")


def child(args: argparse.Namespace) -> None:
    case, directory = args.child
    if case == "single":
        asyncio.run(loop_lag(answering(None, args.workers, args.series), args.seconds, True))
    elif case == "merged":
        asyncio.run(loop_lag(answering(directory, args.workers, args.series), args.seconds, True))
    else:
        monitor = answering(directory, args.workers, args.series, fast_loops=True)
        asyncio.run(loop_lag(monitor, args.seconds, False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--series", type=int, default=2000, help="request series per worker")
    parser.add_argument("--scrapes", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=8.0, help="per loop-lag phase")
    parser.add_argument("--reference", type=int, default=3,
                        help="rounds of generate_latest (slow) in (a)")
    parser.add_argument("--skip-time", action="store_true", help="(b) and (c) only")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--writer", nargs=3, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.writer:
        writer(os.environ["PROMETHEUS_MULTIPROC_DIR"], *args.writer)
        return
    if args.child:
        child(args)
        return
    print(f"build: {build_name()}; {args.workers} workers x {args.series} series")
    total = args.workers * args.series
    common = ["--workers", str(args.workers), "--series", str(args.series),
              "--seconds", str(args.seconds)]
    with tempfile.TemporaryDirectory() as directory:
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": directory}
        writers = [subprocess.Popen(
            [sys.executable, __file__, "--writer", str(k * args.series), str(args.series),
             str(total)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
            for k in range(1, args.workers)]
        try:
            for process in writers:
                assert process.stdout is not None
                assert process.stdout.readline() == b"ready\n", "a worker failed to start"
            if not args.skip_time:
                single = answering(None, args.workers, args.series)
                merged = answering(directory, args.workers, args.series)
                gc.collect()
                scrape_time(single, merged, args.scrapes, args.reference)
                del single, merged
            for case, title in (("single", "(b) loop lag while scraping, one process"),
                                ("merged", "(b) loop lag while scraping, merged files"),
                                ("read", "(c) loop lag while the sampler and alert loop read "
                                         "the merged files every 0.2 s")):
                print(title, flush=True)
                subprocess.run([sys.executable, __file__, "--child", case, directory, *common],
                               check=True)
        finally:
            for process in writers:
                assert process.stdin is not None
                process.stdin.close()
                process.wait(timeout=60)


if __name__ == "__main__":
    main()
