"""Several worker processes (``uvicorn --workers N``, gunicorn): the per-worker file store.

With ``PROMETHEUS_MULTIPROC_DIR`` set, every worker records its requests into a memory-mapped file
of its own in that directory (:mod:`asgi_monitor.store.worker_file`), with plain stores: one writer
per file, so no lock and no system call on the request path. ``/api/metrics``, answered by
whichever worker gets the scrape, merges every worker's file (:mod:`asgi_monitor.store.merge`). The
choice is made once, when the :class:`~asgi_monitor.Monitor` is built (:func:`multiprocess_dir`);
a directory that is missing or not writable is reported at start-up and the process falls back to
single-process metrics rather than crashing on its first request.

A series' block is written when the series is first used; the space for it is reserved on disk
first, so a full disk costs the new series (recorded into a sink that is counted as unrecorded),
never the process. See docs/multiprocess.md.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from prometheus_client import values
from prometheus_client.multiprocess import mark_process_dead

from .cap import OVERFLOW, SeriesCap
from .exemplar_file import ExemplarFile
from .settings import StoreSettings
from .single import (
    STANDARD_METHODS,
    WEBSOCKET_EXTRA_BUCKETS,
    Cell,
    RequestStore,
)
from .worker_file import (
    SLOT_IN_PROGRESS,
    SLOT_STREAMS_OPEN,
    SLOT_WS_ACTIVE,
    WorkerFile,
    native_layout,
    native_slots,
    request_block_slots,
    stream_block_slots,
    websocket_block_slots,
)

__all__ = ["MultiprocessRequestMetrics", "NativeFileBuckets",
           "NativeMultiprocessRequestMetrics", "child_exit", "multiprocess_dir",
           "request_block_slots", "websocket_block_slots"]

logger = logging.getLogger("asgi_monitor")

_INF = math.inf
ENV_VAR = "PROMETHEUS_MULTIPROC_DIR"

def multiprocess_dir(environ: dict[str, str] | None = None) -> str | None:
    """The usable multiprocess directory, or None for single-process metrics."""
    env = os.environ if environ is None else environ
    path = env.get(ENV_VAR, "")
    if not path:
        return None
    problem = None
    if not os.path.isdir(path):
        problem = "does not exist or is not a directory"
    elif not os.access(path, os.W_OK | os.X_OK):
        problem = "is not writable by this process"
    if problem is not None:
        fall_back(f"{ENV_VAR}={path!r} {problem}")
        return None
    warn_if_shared(path)
    logger.info("%s=%r: multiprocess metrics on (pid %d)", ENV_VAR, path, os.getpid())
    return path


def warn_if_shared(path: str) -> None:
    """Warn when other users may write the directory: whoever can plant files there can make
    the merge skip them (each is checked, counted and logged), delete workers' files (their
    counts lost) or hold the locks kept there. 0700 leaves it to this user alone."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if sys.platform != "win32" and mode & 0o022:
        logger.warning("%s=%r is writable by other users (mode %o): make it 0700 (mkdir -m 700) "
                       "so only the server's user can put files there; see docs/security.md",
                       ENV_VAR, path, mode & 0o777)


def fall_back(problem: str) -> None:
    """Log why this process keeps single-process metrics."""
    logger.error(
        "%s: falling back to single-process metrics, so each worker will report only its own "
        "requests. Create the directory (empty, writable, with free space) before starting the "
        "server.", problem)
    if getattr(values.ValueClass, "_multiprocess", False):
        # prometheus_client chose its file-backed values on import (the variable was set then):
        # the app's own prometheus_client metrics would fail to open their files in this
        # directory. Only they use the process-wide class; asgi_monitor's metrics never do.
        values.ValueClass = values.MutexValue


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn hook: ``child_exit = asgi_monitor.multiprocess.child_exit`` in gunicorn.conf.py.

    asgi_monitor's own files need no hook (a dead worker's lock goes with it); this removes the
    dead worker's live gauges from prometheus_client's files, for the app's own metrics."""
    mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def websocket_bounds(duration_buckets: Sequence[float]) -> list[float]:
    return sorted({*duration_buckets, *WEBSOCKET_EXTRA_BUCKETS})


class FileCell(Cell):
    """A live gauge (requests in progress, WebSockets open) whose value is also stored in the
    worker's file. Only this process' event loop thread moves it, so its own copy is exact."""

    __slots__ = ("view", "slot")

    def __init__(self, view: memoryview[float], slot: int) -> None:
        super().__init__()
        self.view = view
        self.slot = slot

    def add(self, delta: int) -> None:
        self.value += delta
        self.view[self.slot] = float(self.value)


class FileSeries:
    """One (method, route, status, scheme) block in the worker's file: what one request updates.

    ``cells`` mirrors the block in a list: the new value is computed there and only stored into
    the mapping. Compiled, a list item is a C array access while every memoryview access is a
    generic call, so a store instead of a read-modify-write halves the mapped accesses."""

    __slots__ = ("view", "cells", "number", "native", "_time_scan", "_size_scan")

    def __init__(self, view: memoryview[float], first: int, time_scan: list[float],
                 size_scan: list[float], number: int = -1) -> None:
        self.cells = [0.0] * (2 * len(time_scan) + 2 * len(size_scan) + 4)
        # The block's native tail, set by NativeMultiprocessRequestMetrics only.
        self.native: NativeFileBuckets | None = None
        # The block's first slot in the file, which names the series in the exemplars file;
        # -1 for a sink, which keeps none.
        self.number = number
        # A view of the block alone: its indexes are small ints, which Python keeps cached,
        # where slot numbers in the file would be a new int object per store.
        self.view = view[first:first + len(self.cells)]
        self._time_scan = time_scan
        self._size_scan = size_scan

    def observe(
        self, duration: float, ttfb: float, request_bytes: int, response_bytes: int
    ) -> None:
        # The single-process store's bucket scan, inlined four times. Each histogram is its
        # buckets (+Inf last) then its sum, in this order: duration, ttfb, request and
        # response size.
        view = self.view
        cells = self.cells
        scan = self._time_scan
        n = len(scan)
        i = 0
        while duration > scan[i]:
            i += 1
        x = cells[i] + 1.0
        cells[i] = x
        view[i] = x
        x = cells[n] + duration
        cells[n] = x
        view[n] = x
        at = n + 1
        i = 0
        while ttfb > scan[i]:
            i += 1
        x = cells[at + i] + 1.0
        cells[at + i] = x
        view[at + i] = x
        x = cells[at + n] + ttfb
        cells[at + n] = x
        view[at + n] = x
        at += n + 1
        scan = self._size_scan
        n = len(scan)
        i = 0
        while request_bytes > scan[i]:
            i += 1
        x = cells[at + i] + 1.0
        cells[at + i] = x
        view[at + i] = x
        x = cells[at + n] + request_bytes
        cells[at + n] = x
        view[at + n] = x
        at += n + 1
        i = 0
        while response_bytes > scan[i]:
            i += 1
        x = cells[at + i] + 1.0
        cells[at + i] = x
        view[at + i] = x
        x = cells[at + n] + response_bytes
        cells[at + n] = x
        view[at + n] = x


class NativeFileBuckets:
    """The native tail of a request block: for the duration then the TTFB, a zero count and a
    fixed range of bucket indexes (:func:`~asgi_monitor.store.worker_file.native_layout`);
    values outside the range count in its first or last bucket."""

    __slots__ = ("view", "cells", "_factor", "_low", "_last", "_threshold")

    def __init__(self, view: memoryview[float], layout: list[Any]) -> None:
        self.view = view
        # A mirror of the view, as FileSeries keeps one: a list read and a store into the
        # mapping instead of a read-modify-write of it.
        self.cells = [0.0] * len(view)
        self._factor = 2.0 ** int(layout[0])
        self._low = int(layout[1])
        self._last = int(layout[2]) - 1
        self._threshold = float(layout[3])

    def observe(self, duration: float, ttfb: float) -> None:
        cells = self.cells
        last = self._last
        i = 0  # the zero bucket; NaN and infinity too (no clock measures those)
        if self._threshold < duration < _INF:
            i = math.ceil(math.log2(duration) * self._factor) - self._low
            i = 1 if i < 0 else last + 1 if i > last else i + 1
        x = cells[i] + 1.0
        cells[i] = x
        self.view[i] = x
        i = last + 2
        if self._threshold < ttfb < _INF:
            at = math.ceil(math.log2(ttfb) * self._factor) - self._low
            i += 1 if at < 0 else last + 1 if at > last else at + 1
        x = cells[i] + 1.0
        cells[i] = x
        self.view[i] = x


class WebSocketSeries:
    """One WebSocket route's block: accepted connections and session lengths."""

    __slots__ = ("view", "route", "_scan")

    def __init__(self, view: memoryview[float], first: int, route: str, scan: list[float]) -> None:
        self.view = view[first:first + len(scan) + 2]  # the count, the buckets, the sum
        self.route = route
        self._scan = scan

    def accepted(self) -> None:
        self.view[0] += 1.0

    def closed(self, duration: float) -> None:
        scan = self._scan
        i = 0
        while duration > scan[i]:
            i += 1
        self.view[1 + i] += 1.0
        self.view[1 + len(scan)] += duration


class StreamSeries:
    """One (method, route) stream block: the lifetime histogram's buckets (+Inf last), its sum."""

    __slots__ = ("view", "key", "_scan")

    def __init__(self, view: memoryview[float], first: int, key: tuple[str, str],
                 scan: list[float]) -> None:
        self.view = view[first:first + stream_block_slots(len(scan) - 1)]
        self.key = key
        self._scan = scan

    def observe(self, lifetime: float) -> None:
        scan = self._scan
        i = 0
        while lifetime > scan[i]:
            i += 1
        self.view[i] += 1.0
        self.view[len(scan)] += lifetime


class MultiprocessRequestMetrics(RequestStore):
    """The :class:`~asgi_monitor.store.single.RequestMetrics` interface on this worker's file.

    Same series cap per worker as the single-process store (the merge caps again across
    workers). Exemplars, when the middleware passes any, go to a side file made on the first
    (:mod:`asgi_monitor.store.exemplar_file`). Raises OSError when the file cannot be created
    (the caller falls back to single-process metrics).
    """

    def __init__(self, directory: str, settings: StoreSettings) -> None:
        duration_buckets, size_buckets = settings.duration_buckets, settings.size_buckets
        self._directory = directory
        self._max_series = settings.max_series
        self._duration_bounds = [float(b) for b in duration_buckets]
        self._size_bounds = [float(b) for b in size_buckets]
        self._ws_bounds = websocket_bounds(duration_buckets)
        # The bounds with +Inf appended, so the scans need no end check.
        self._time_scan = [*self._duration_bounds, float("inf")]
        self._size_scan = [*self._size_bounds, float("inf")]
        self._ws_scan = [*self._ws_bounds, float("inf")]
        # The native histograms' layout in the file, None when they are off.
        self._native_layout = (native_layout(settings.native_schema,
                                             settings.native_zero_threshold)
                               if settings.native_histograms else None)
        self._block = request_block_slots(len(self._duration_bounds), len(self._size_bounds),
                                          self._native_layout)
        self._ws_block = websocket_block_slots(len(self._ws_bounds))
        self._dropped: dict[str, int] = {}
        # Per (method, route, status, scheme), as the single-process store keeps them; the cap
        # counts (method, route, status) label sets, as there.
        self._series: dict[tuple[str, str, int, str], FileSeries] = {}
        # With request labels, by their values too (the single-process store's layout).
        self._labelled: dict[tuple[str, str, int, str, tuple[str, ...]], FileSeries] = {}
        self._cap: SeriesCap[tuple[str, str, int] | tuple[str, str, int, tuple[str, ...]]] = (
            SeriesCap(settings.max_series))
        self._ws_cap: SeriesCap[str] = SeriesCap(settings.max_series)
        self._ws: dict[str, WebSocketSeries] = {}
        self._streams: dict[tuple[str, str], StreamSeries] = {}
        self._stream_cap: SeriesCap[tuple[str, str]] = SeriesCap(settings.max_series)
        self._stream_block = stream_block_slots(len(self._ws_bounds))
        self.in_progress = {}
        self.ws_active = Cell()
        self.streams_open = Cell()
        self._pending = False
        # Made by the first exemplar: a worker that records none has no exemplars file.
        self._exemplars: ExemplarFile | None = None
        self._exemplars_failed = False
        self._exemplars_logged = False
        self.file = self._open()
        if hasattr(os, "register_at_fork"):
            # gunicorn --preload builds the monitor before forking: each child needs a file of
            # its own, or two processes would write the same slots.
            os.register_at_fork(after_in_child=self._after_fork)

    def _open(self) -> WorkerFile:
        file = WorkerFile(
            self._directory,
            {"duration_buckets": self._duration_bounds, "size_buckets": self._size_bounds,
             "websocket_buckets": self._ws_bounds,
             **({"native": self._native_layout} if self._native_layout else {})},
            reserve={"r": self._block, "w": self._ws_block})
        view, first = file.reserved["r"]
        self._sink = FileSeries(view, first, self._time_scan, self._size_scan)
        view, first = file.reserved["w"]
        self._ws_sink = WebSocketSeries(view, first, OVERFLOW, self._ws_scan)
        fixed = file.fixed
        self.in_progress = {method: FileCell(fixed, SLOT_IN_PROGRESS + i)
                            for i, method in enumerate((*STANDARD_METHODS, "OTHER"))}
        self.ws_active = FileCell(fixed, SLOT_WS_ACTIVE)
        self.streams_open = FileCell(fixed, SLOT_STREAMS_OPEN)
        # Streams that find no space are not counted in the file; the sink is private.
        self._stream_sink = StreamSeries(
            memoryview(bytearray(8 * self._stream_block)).cast("d"), 0, ("", OVERFLOW),
            self._ws_scan)
        self._space_logged = False
        return file

    def _after_fork(self) -> None:
        # The child opens a file of its own when it first records (a child that never does,
        # a multiprocessing pool's, leaves no file behind); until then it writes to memory.
        self.file.abandon()
        if self._exemplars is not None:
            self._exemplars.abandon()
            self._exemplars = None
        self._exemplars_failed = False
        self._exemplars_logged = False
        self._series = {}
        self._labelled = {}
        self._cap = SeriesCap(self._max_series)
        self._ws_cap = SeriesCap(self._max_series)
        self._ws = {}
        self._streams = {}
        self._stream_cap = SeriesCap(self._max_series)
        self._dropped = {}
        self._pending = True
        private = memoryview(bytearray(8 * max(self._block, self._ws_block))).cast("d")
        self._sink = FileSeries(private, 0, self._time_scan, self._size_scan)
        self._ws_sink = WebSocketSeries(private, 0, OVERFLOW, self._ws_scan)
        self.in_progress = {m: Cell() for m in (*STANDARD_METHODS, "OTHER")}
        self.ws_active = Cell()
        self.streams_open = Cell()

    def worker_file(self) -> WorkerFile:
        """This process' file: after a fork, opened on first use (a closed one if that fails,
        whose every allocation raises OSError)."""
        if self._pending:
            self._pending = False
            in_progress = {method: cell.value for method, cell in self.in_progress.items()}
            ws_active = self.ws_active.value
            streams_open = self.streams_open.value
            try:
                self.file = self._open()
            except OSError as exc:
                logger.error("%s: cannot create this worker's metric file after fork (%r); its "
                             "new series are not recorded", ENV_VAR, exc)
                return self.file
            for method, value in in_progress.items():
                self.in_progress[method].add(value)
            self.ws_active.add(ws_active)
            self.streams_open.add(streams_open)
        return self.file

    def close(self) -> None:
        """Release the file (tests; a worker's files otherwise live as long as it does)."""
        self._series = {}
        self._labelled = {}
        self._cap = SeriesCap(self._max_series)
        self._ws_cap = SeriesCap(self._max_series)
        self._ws = {}
        self._streams = {}
        if self._exemplars is not None:
            self._exemplars.close()
            self._exemplars = None
        self.file.close()

    # -- hot path (begin and end are RequestStore's) ---------------------------------------------
    def record(
        self, method: str, route: str, status: int, scheme: str, duration: float, ttfb: float,
        request_bytes: int, response_bytes: int,
    ) -> None:
        self.series(method, route, status, scheme).observe(duration, ttfb, request_bytes,
                                                           response_bytes)

    def record_exemplar(
        self, method: str, route: str, status: int, scheme: str, duration: float, ttfb: float,
        request_bytes: int, response_bytes: int, exemplar: dict[str, str] | None,
    ) -> None:
        series = self.series(method, route, status, scheme)
        series.observe(duration, ttfb, request_bytes, response_bytes)
        if exemplar is not None and series.number >= 0:
            # The series' own block: an overflowed request's exemplar goes where it counted.
            self._keep_exemplar(series, duration, exemplar)

    def record_labelled(
        self, method: str, route: str, status: int, scheme: str, labels: tuple[str, ...],
        duration: float, ttfb: float, request_bytes: int, response_bytes: int,
        exemplar: dict[str, str] | None,
    ) -> None:
        series = self._labelled.get((method, route, status, scheme, labels))
        if series is None:
            series = self._new_labelled((method, route, status, scheme, labels))
        series.observe(duration, ttfb, request_bytes, response_bytes)
        native = series.native
        if native is not None:  # native histograms on, and space for the series
            native.observe(duration, ttfb)
        if exemplar is not None and series.number >= 0:
            self._keep_exemplar(series, duration, exemplar)

    def _new_labelled(self, key: tuple[str, str, int, str, tuple[str, ...]]) -> FileSeries:
        # As _new_series; the overflow series has every request label <overflow> too, as in
        # the single-process store.
        method, route, status, scheme, labels = key
        overflow = (OVERFLOW,) * len(labels)
        if not self._cap.keeps((method, route, status, labels),
                               (method, OVERFLOW, status, overflow)):
            self._dropped["http_requests_total"] = self._dropped.get("http_requests_total", 0) + 1
            key = (method, OVERFLOW, status, scheme, overflow)
            found = self._labelled.get(key)
            if found is not None:
                return found
        try:
            view, first, number = self.worker_file().new_block(
                self._block, ["r", key[0], key[1], key[2], [scheme, *key[4]]])
        except OSError as exc:
            self._no_space(exc)
            return self._sink
        found = self._labelled[key] = self._with_native(
            FileSeries(view, first, self._time_scan, self._size_scan, number), view, first)
        return found

    def _keep_exemplar(self, series: FileSeries, duration: float,
                       labels: dict[str, str]) -> None:
        scan = self._time_scan
        i = 0
        while duration > scan[i]:
            i += 1
        kept = self._exemplars
        try:
            if kept is None:
                if self._exemplars_failed:
                    return
                self._exemplars_failed = True  # until the file is made
                kept = self._exemplars = ExemplarFile(self.worker_file().values_path)
                self._exemplars_failed = False
            kept.keep(series.number, i, duration, time.time(), labels)
        except OSError as exc:
            # Exemplars are a convenience: without space, or without a file, this worker
            # keeps the ones it has and its counts go on. Said once per worker.
            if not self._exemplars_logged:
                self._exemplars_logged = True
                logger.error("%s: cannot keep this worker's exemplars in %s (%r); its counts "
                             "are unaffected", ENV_VAR, self._directory, exc)

    def series(self, method: str, route: str, status: int, scheme: str) -> FileSeries:
        """The block for a label set, created on first use; over the cap, the overflow one."""
        key = (method, route, status, scheme)
        found = self._series.get(key)
        if found is not None:
            return found
        return self._new_series(key)

    def _new_series(self, key: tuple[str, str, int, str]) -> FileSeries:
        if not self._cap.keeps((key[0], key[1], key[2]), (key[0], OVERFLOW, key[2])):
            self._dropped["http_requests_total"] = self._dropped.get("http_requests_total", 0) + 1
            key = (key[0], OVERFLOW, key[2], key[3])
            found = self._series.get(key)
            if found is not None:
                return found
        try:
            view, first, number = self.worker_file().new_block(self._block, ["r", *key])
        except OSError as exc:
            self._no_space(exc)
            # Not remembered: the next request of this series tries again, so freed space is
            # used; until then its requests count as unrecorded.
            return self._sink
        found = self._series[key] = self._with_native(
            FileSeries(view, first, self._time_scan, self._size_scan, number), view, first)
        return found

    def _with_native(self, found: FileSeries, view: memoryview[float], first: int) -> FileSeries:
        # The block's native tail, when native histograms are on.
        layout = self._native_layout
        if layout is not None:
            classic = len(found.cells)
            found.native = NativeFileBuckets(
                view[first + classic:first + classic + native_slots(layout)], layout)
        return found

    def _no_space(self, exc: OSError) -> None:
        if not self._space_logged:
            self._space_logged = True
            logger.error("%s: no space for new series in %s (%r); their requests are counted "
                         "in asgi_monitor_multiprocess_unrecorded_total until space is freed, "
                         "existing series keep counting", ENV_VAR, self._directory, exc)

    def record_stream(self, method: str, route: str, lifetime: float) -> None:
        found = self._streams.get((method, route))
        if found is None:
            found = self._new_stream((method, route))
        found.observe(lifetime)

    def _new_stream(self, key: tuple[str, str]) -> StreamSeries:
        if not self._stream_cap.keeps(key, (key[0], OVERFLOW)):
            name = "http_stream_duration_seconds_count"
            self._dropped[name] = self._dropped.get(name, 0) + 1
            key = (key[0], OVERFLOW)
            found = self._streams.get(key)
            if found is not None:
                return found
        try:
            view, first, _ = self.worker_file().new_block(self._stream_block, ["s", *key])
        except OSError as exc:
            self._no_space(exc)
            return self._stream_sink
        found = self._streams[key] = StreamSeries(view, first, key, self._ws_scan)
        return found

    def websocket_accepted(self, route: str) -> str:
        series = self._websocket(route)
        series.accepted()
        self.ws_active.add(1)
        return series.route

    def websocket_closed(self, route: str, duration: float) -> None:
        self.ws_active.add(-1)
        self._websocket(route).closed(duration)

    def _websocket(self, route: str) -> WebSocketSeries:
        found = self._ws.get(route)
        if found is not None:
            return found
        if not self._ws_cap.keeps(route, OVERFLOW):
            name = "websocket_connections_total"
            self._dropped[name] = self._dropped.get(name, 0) + 1
            route = OVERFLOW
            found = self._ws.get(route)
            if found is not None:
                return found
        try:
            view, first, _ = self.worker_file().new_block(self._ws_block, ["w", route])
        except OSError as exc:
            self._no_space(exc)
            return self._ws_sink
        found = self._ws[route] = WebSocketSeries(view, first, route, self._ws_scan)
        return found

    def dropped_counts(self) -> dict[str, int]:
        return dict(self._dropped)


class NativeMultiprocessRequestMetrics(MultiprocessRequestMetrics):
    """:class:`MultiprocessRequestMetrics` that also counts native histograms in each request
    block's tail (``metrics.native_histograms``); a class of its own, as in one process, so
    that with them off the hot path is the same code."""

    def record(
        self, method: str, route: str, status: int, scheme: str, duration: float, ttfb: float,
        request_bytes: int, response_bytes: int,
    ) -> None:
        series = self.series(method, route, status, scheme)
        series.observe(duration, ttfb, request_bytes, response_bytes)
        native = series.native
        if native is not None:  # None for the sink (no space for the series)
            native.observe(duration, ttfb)

    def record_exemplar(
        self, method: str, route: str, status: int, scheme: str, duration: float, ttfb: float,
        request_bytes: int, response_bytes: int, exemplar: dict[str, str] | None,
    ) -> None:
        series = self.series(method, route, status, scheme)
        series.observe(duration, ttfb, request_bytes, response_bytes)
        native = series.native
        if native is not None:
            native.observe(duration, ttfb)
        if exemplar is not None and series.number >= 0:
            self._keep_exemplar(series, duration, exemplar)
