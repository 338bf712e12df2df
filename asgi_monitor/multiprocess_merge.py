"""Every worker's file merged into one set of metric families, at scrape time.

- Counters and histograms (requests, WebSocket connections, custom counters and histograms) are
  summed over every worker's file, live or dead: a finished request stays counted after its
  worker exits or is killed.
- Live gauges (requests in progress, WebSockets open) are summed over live workers only (a
  worker is live while it holds the lock on its file, :mod:`asgi_monitor.worker_file`).
- Gauges set by the app merge by their ``multiprocess_mode`` (``mostrecent``: the value set last).
- The series cap applies across workers too: the first ``max_series`` request series in file
  order (oldest worker first, then each worker's order of first use) keep their labels, later
  ones are summed under ``<overflow>``. That order never changes for a series already seen, so a
  series does not move between its labels and ``<overflow>`` from one scrape to the next.

Request blocks are kept per (method, route, status). They are exposed through the single-process
store's own families (:meth:`RequestMetrics.collect`), so both modes expose the same series by
construction; :func:`add_request_block` is where a block joins that store.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any, cast

from prometheus_client.core import CounterMetricFamily, Metric

from .config import metric_prefix
from .multiprocess import request_block_slots, websocket_block_slots, websocket_bounds
from .request_metrics import OVERFLOW, STANDARD_METHODS, BucketCounts, RequestMetrics
from .worker_file import (
    FIXED_SLOTS,
    SLOT_FILE_ERRORS,
    SLOT_IN_PROGRESS,
    SLOT_WS_ACTIVE,
    WorkerRecords,
    read_worker,
    worker_files,
)

__all__ = ["MergedFiles", "add_request_block"]

logger = logging.getLogger("asgi_monitor")

_UNCAPPED = 2**62


def add_request_block(store: RequestMetrics, key: tuple[str, str, int], block: Sequence[float],
                      time_buckets: int, size_buckets: int) -> None:
    """Add one merged (method, route, status) block (``time_buckets`` and ``size_buckets``
    count +Inf) to ``store``'s series. Its histograms are
    the store's: kept per status or summed over statuses (the classic families) as it keeps
    them."""
    series = store.series(*key)
    series.count += int(sum(block[:time_buckets]))
    stats = series.stats
    at = 0
    for histogram, buckets in ((stats.duration, time_buckets), (stats.ttfb, time_buckets),
                               (stats.request_size, size_buckets),
                               (stats.response_size, size_buckets)):
        _add(histogram, block, at)
        at += buckets + 1  # the buckets (+Inf included), then the sum


def _add(histogram: BucketCounts, block: Sequence[float], at: int) -> None:
    counts = histogram.counts
    for i in range(len(counts)):
        counts[i] += int(block[at + i])
    histogram.total += block[at + len(counts)]


def _sum_into(target: list[float], values: Sequence[float]) -> None:
    for i, value in enumerate(values):
        target[i] += value


class MergedFiles:
    """Reads and merges the worker files in ``directory``, with this process' settings (the
    bucket bounds it must agree with, the cap, the namespace and constant labels)."""

    def __init__(
        self,
        directory: str,
        *,
        namespace: str = "",
        duration_buckets: Sequence[float],
        size_buckets: Sequence[float],
        max_series: int,
        constant_labels: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.directory = directory
        self._namespace = namespace
        self._prefix = metric_prefix(namespace)
        self._duration = [float(b) for b in duration_buckets]
        self._size = [float(b) for b in size_buckets]
        self._ws = websocket_bounds(duration_buckets)
        self._max_series = max_series
        self._constant_labels = tuple(constant_labels)
        self._block = request_block_slots(len(self._duration), len(self._size))
        self._ws_block = websocket_block_slots(len(self._ws))
        self._warned: set[str] = set()

    def _compatible(self, worker: WorkerRecords) -> bool:
        header = worker.header
        if (header.get("duration_buckets") == self._duration
                and header.get("size_buckets") == self._size):
            return True
        if worker.path not in self._warned:
            self._warned.add(worker.path)
            logger.warning("%s was written with other histogram buckets than this worker's; its "
                           "request series are left out of the merge (a file from an earlier "
                           "run? empty the directory before each start)", worker.path)
        return False

    def families(self, *, custom: bool = True) -> list[Metric]:
        """The merged families: request and WebSocket, asgi_monitor's file self-metrics and,
        with ``custom``, the metrics :mod:`asgi_monitor.metric_kinds` keeps in the files."""
        workers = [w for w in map(read_worker, worker_files(self.directory)) if w is not None]
        workers.sort(key=lambda w: (w.started, w.path))
        return [*self._request_families(workers), *self._self_families(workers),
                *(self._custom_families(workers) if custom else ())]

    def earlier_run(self, ppid: int) -> list[str]:
        """Files of dead workers started by another parent process than ``ppid``: most likely
        left from an earlier run of the server (a restarted worker of this run has the same
        parent, the server's supervisor)."""
        found = []
        for path in worker_files(self.directory):
            worker = read_worker(path)
            if worker is not None and not worker.live and worker.header.get("ppid") != ppid:
                found.append(path)
        return found

    # -- request and WebSocket series ------------------------------------------------------------
    def _request_families(self, workers: list[WorkerRecords]) -> Iterator[Metric]:
        time_buckets, size_buckets = len(self._duration) + 1, len(self._size) + 1
        blocks: dict[tuple[str, str, int], list[float]] = {}
        sockets: dict[str, list[float]] = {}
        methods = (*STANDARD_METHODS, "OTHER")
        in_progress = [0.0] * len(methods)
        ws_active = 0.0
        for worker in workers:
            values = worker.values
            if len(values) < FIXED_SLOTS or not self._compatible(worker):
                continue
            if worker.live:
                for i in range(len(methods)):
                    in_progress[i] += values[SLOT_IN_PROGRESS + i]
                ws_active += values[SLOT_WS_ACTIVE]
            for record in worker.records:
                kind = record[0]
                if kind == "r":
                    _, method, route, status, slot = record
                    if slot + self._block > len(values):
                        continue  # a file cut short (copied, or its disk failed): not ours
                    key = (method, route, status)
                    block = cast(list[float], values[slot:slot + self._block].tolist())
                    found = blocks.get(key)
                    if found is None and len(blocks) >= self._max_series:
                        key = (method, OVERFLOW, status)
                        found = blocks.get(key)
                    if found is None:
                        blocks[key] = block
                    else:
                        _sum_into(found, block)
                elif kind == "w":
                    _, route, slot = record
                    if slot + self._ws_block > len(values):
                        continue
                    block = cast(list[float], values[slot:slot + self._ws_block].tolist())
                    found = sockets.get(route)
                    if found is None and len(sockets) >= self._max_series:
                        route = OVERFLOW
                        found = sockets.get(route)
                    if found is None:
                        sockets[route] = block
                    else:
                        _sum_into(found, block)

        store = RequestMetrics(namespace=self._namespace, duration_buckets=self._duration,
                               size_buckets=self._size, max_series=_UNCAPPED,
                               constant_labels=self._constant_labels)
        for key, block in blocks.items():
            add_request_block(store, key, block, time_buckets, size_buckets)
        for method, value in zip(methods, in_progress, strict=True):
            store.in_progress[method].value = int(value)
        store.ws_active.value = int(ws_active)
        for route, block in sockets.items():
            histogram = BucketCounts(self._ws)
            counts = histogram.counts
            for i in range(len(counts)):
                counts[i] = int(block[1 + i])
            histogram.total = block[1 + len(counts)]
            # The store's own WebSocket series, filled with the merged values.
            store._ws_total[route] = int(block[0])
            store._ws_duration[route] = histogram
        return store.collect()

    def _self_families(self, workers: list[WorkerRecords]) -> Iterator[Metric]:
        errors = unrecorded = 0.0
        for worker in workers:
            values = worker.values
            if len(values) < FIXED_SLOTS:
                continue
            errors += values[SLOT_FILE_ERRORS]
            sink = worker.header.get("reserved", {}).get("r")
            if isinstance(sink, int) and self._compatible(worker):
                unrecorded += sum(values[sink:sink + len(self._duration) + 1])
        p = self._prefix
        yield CounterMetricFamily(
            f"{p}asgi_monitor_multiprocess_file_errors",
            "Times a worker could not reserve space in its metric file (disk full, file size "
            "limit) for a new series.", value=errors)
        yield CounterMetricFamily(
            f"{p}asgi_monitor_multiprocess_unrecorded",
            "Requests not recorded because their new series found no space in the worker's "
            "metric file.", value=unrecorded)

    # -- custom metrics --------------------------------------------------------------------------
    def _custom_families(self, workers: list[WorkerRecords]) -> Iterator[Metric]:
        # (metric, sample, label names, label values) -> merged value; per metric: type, help.
        merged: dict[tuple[str, str, tuple[str, ...], tuple[str, ...]], list[float]] = {}
        kinds: dict[str, tuple[str, str, str]] = {}
        for worker in workers:
            values = worker.values
            for record in worker.records:
                if record[0] != "v":
                    continue
                _, typ, mode, metric, sample, labelnames, labelvalues, doc, slot = record
                if slot + 2 > len(values):
                    continue
                kinds.setdefault(metric, (typ, doc, mode))
                names = tuple(labelnames)
                labels = tuple(labelvalues)
                if typ == "gauge" and mode in ("all", "liveall"):
                    names, labels = (*names, "pid"), (*labels, str(worker.header.get("pid")))
                key = (metric, sample, names, labels)
                value, stamp = values[slot], values[slot + 1]
                if typ == "gauge":
                    if mode.startswith("live") and not worker.live:
                        continue
                    found = merged.get(key)
                    merged[key] = _merge_gauge(mode, found, value, stamp)
                else:
                    found = merged.get(key)
                    if found is None:
                        merged[key] = [value, stamp]
                    else:
                        found[0] += value
        families: dict[str, Metric] = {}
        histograms: dict[str, dict[tuple[tuple[str, ...], tuple[str, ...]],
                                   dict[str, Any]]] = {}
        for (metric, sample, names, labels), (value, _) in merged.items():
            typ, doc, _mode = kinds[metric]
            family = families.get(metric)
            if family is None:
                family = families[metric] = Metric(metric, doc, typ)
            if typ == "histogram":
                by_labels = histograms.setdefault(metric, {})
                if sample.endswith("_bucket"):
                    le = labels[-1]
                    entry = by_labels.setdefault((names[:-1], labels[:-1]),
                                                 {"buckets": {}, "sum": 0.0})
                    entry["buckets"][le] = entry["buckets"].get(le, 0.0) + value
                else:
                    entry = by_labels.setdefault((names, labels), {"buckets": {}, "sum": 0.0})
                    entry["sum"] += value
            else:
                family.add_sample(sample, dict(zip(names, labels, strict=True)), value)
        for metric, by_labels in histograms.items():
            family = families[metric]
            for (names, labels), entry in by_labels.items():
                base = dict(zip(names, labels, strict=True))
                running = 0.0
                for le, count in sorted(entry["buckets"].items(), key=lambda b: float(b[0])):
                    running += count
                    family.add_sample(f"{metric}_bucket", {**base, "le": le}, running)
                family.add_sample(f"{metric}_count", base, running)
                family.add_sample(f"{metric}_sum", base, entry["sum"])
        return iter(families.values())


def _merge_gauge(mode: str, found: list[float] | None, value: float,
                 stamp: float) -> list[float]:
    if found is None:
        return [value, stamp]
    kind = mode[4:] if mode.startswith("live") else mode
    if kind == "mostrecent":
        return [value, stamp] if stamp > found[1] else found
    if kind == "max":
        return [max(found[0], value), stamp]
    if kind == "min":
        return [min(found[0], value), stamp]
    found[0] += value  # sum, and a label per process for "all"
    return found
