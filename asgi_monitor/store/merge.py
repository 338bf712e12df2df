"""Every worker's file merged: into metric families at scrape time, into typed request values for
the sampler.

- Counters and histograms (requests, WebSocket connections, custom counters and histograms) are
  summed over every worker's file, live or dead: a finished request stays counted after its
  worker exits or is killed.
- Live gauges (requests in progress, WebSockets and streams open) are summed over live workers
  only (a worker is live while it holds the lock on its file,
  :mod:`asgi_monitor.store.worker_file`).
- Gauges set by the app merge by their ``multiprocess_mode`` (``mostrecent``: the value set last).
- The series cap applies across workers too: the first ``max_series`` request label sets
  (method, route, status; a scheme is no new one, as in one process) in file order (oldest
  worker first, then each worker's order of first use) keep their labels, later ones are summed
  under ``<overflow>``. That order never changes for a series already seen, so a series does
  not move between its labels and ``<overflow>`` from one scrape to the next.

Request blocks are kept per (method, route, status, scheme), as the single-process store keeps
its series; the merge reads them into :class:`~asgi_monitor.store.families.StoredSeries` rows
and exposes them through the one projection both stores share
(:func:`~asgi_monitor.store.families.request_families`), so both modes expose the same series by
construction. The sampler gets its typed request values from the same rows, without families.

The merge allocates little, since it runs every few seconds in a thread of a process that serves
requests: every object it creates is one the garbage collector may have to walk, holding the GIL
(and so the event loop) while it does. Blocks are summed into one list per series with C-level
calls over slices of the mapped values, never a Python object per sample, and each file's index is
parsed once and then only its new tail.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from array import array
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from itertools import accumulate
from operator import add
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..config.metrics import metric_prefix
from ..sampling.inputs import RequestSnapshot, RouteLatency, SeriesTable
from .cap import OVERFLOW, SeriesCap
from .compaction import COMPACT_AFTER, Compactor
from .exemplar_file import exemplars_path, read_exemplars
from .exposition import (
    Rendered,
    SeriesBlocks,
    counter_text,
    direct_format,
    plain_names,
    request_text,
    stream_text,
    websocket_text,
)
from .families import Kept, StoredSeries, request_families, stream_families
from .multiprocess import websocket_bounds
from .native import NativeSnapshot, merge_native
from .protobuf_scrape import RenderedBytes, direct_protobuf
from .retired_file import RetiredCache, retired_files
from .settings import StoreSettings
from .single import HELP, STANDARD_METHODS, websocket_families
from .worker_file import (
    FIXED_SLOTS,
    SLOT_FILE_ERRORS,
    SLOT_IN_PROGRESS,
    SLOT_STREAMS_OPEN,
    SLOT_WS_ACTIVE,
    IndexCache,
    Untrusted,
    WorkerRecords,
    counts_sane,
    native_layout,
    read_worker,
    request_block_slots,
    request_key,
    stream_block_slots,
    websocket_block_slots,
    worker_files,
)

__all__ = ["Merged", "MergedFiles", "MergedFilesCollector", "names_only"]

logger = logging.getLogger("asgi_monitor")

_METHODS = (*STANDARD_METHODS, "OTHER")
_PIECE = 4096  # values added per C call in the merge
_REASONS = ("not_regular", "not_owner", "too_large", "bad_header", "buckets")
# A request series: method, route, status, scheme and the request labels' values (() for a
# series recorded without them).
_Key = tuple[str, str, int, str, tuple[str, ...]]
# What the cap counts: (method, route, status), and the request labels' values with them.
_LabelSet = tuple[str, str, int] | tuple[str, str, int, tuple[str, ...]]
# Where a series first appeared, which decides who keeps its labels under the cap: the worker's
# start time, its file's name, the record's position there (a retired file keeps each series'
# original place, so folding dead workers never moves a series between labels and <overflow>).
_Order = tuple[float, str, int]
_Entry = tuple[_Key, _LabelSet, int, _Order]
_Socket = tuple[str, int, _Order]  # a WebSocket route's block: route, first slot, order
_Stream = tuple[tuple[str, str], int, _Order]  # a stream block: (method, route), slot, order


@dataclass
class Merged:
    """One read of every worker's file: the request and WebSocket series summed, the live
    gauges of live workers, the files' own counters; ``workers`` for the custom metrics."""

    # Per request series, where its summed block starts in ``blocks`` (all of them, end to end
    # in this order, each request_block_slots long: one array, which the garbage collector never
    # walks).
    offsets: dict[_Key, int]
    blocks: array[float]
    in_progress: list[tuple[str, float]]
    ws_total: list[tuple[str, float]]
    ws_active: float
    # route -> (per-bucket counts, +Inf last; sum)
    ws_sessions: list[tuple[str, list[float], float]]
    file_errors: float
    unrecorded: float
    workers: list[WorkerRecords]
    # Files left out of this read, by reason (not_regular, not_owner, too_large, bad_header,
    # buckets), and records skipped inside the files read (malformed, or values out of range).
    skipped: dict[str, int]
    bad_records: int
    # Per request series with any, the duration buckets' newest exemplars among the workers'.
    exemplars: dict[_Key, list[Kept | None]] = field(default_factory=dict)
    # Per (method, route): the stream lifetimes' per-bucket counts (+Inf last) and their sum.
    streams: list[tuple[str, str, list[float], float]] = field(default_factory=list)
    streams_open: float = 0.0


class MergedFiles:
    """Reads and merges the worker files in ``directory``, with this process' settings (the
    bucket bounds it must agree with, the cap, the namespace, constant labels and naming)."""

    def __init__(
        self,
        directory: str,
        settings: StoreSettings,
        *,
        compact: bool = True,
    ) -> None:
        self.directory = directory
        # Whether a read that finds many dead workers' files asks for a compaction (a reader
        # that must not write the directory, or a test's, turns it off).
        self._compact = compact
        self._prefix = metric_prefix(settings.namespace)
        self._duration = [float(b) for b in settings.duration_buckets]
        self._size = [float(b) for b in settings.size_buckets]
        self._ws = websocket_bounds(settings.duration_buckets)
        self._max_series = settings.max_series
        self._constant_labels = tuple(settings.constant_labels)
        self._label_names = tuple(settings.label_names)
        self._status_classes = settings.status_classes
        self._plain = plain_names(self._prefix, (name for name, _ in self._constant_labels))
        self._naming = settings.naming
        # The native histograms' layout the files must have (None: off, and files without).
        self._native = (native_layout(settings.native_schema, settings.native_zero_threshold)
                        if settings.native_histograms else None)
        self._native_limit = settings.native_max_buckets
        self._block = request_block_slots(len(self._duration), len(self._size), self._native)
        self._ws_block = websocket_block_slots(len(self._ws))
        self._stream_block = stream_block_slots(len(self._ws))
        self._warned: set[str] = set()
        # The sampler, the alert loop and a scrape may read at once, each in its own thread.
        self._indexes = IndexCache()
        self._retired = RetiredCache()
        # values file -> (its records list, their request entries, their WebSocket entries,
        # their stream entries); see _entries.
        self._parsed: dict[str, tuple[list[list[Any]], list[_Entry], list[_Socket],
                                      list[_Stream]]] = {}
        # With native histograms: per series, its duration buckets and sum as last read and
        # the native buckets decoded then (see request_snapshot).
        self._latency: dict[_Key, tuple[bytes, tuple[int, float, int,
                                                     tuple[tuple[int, int], ...]]]] = {}
        self._lock = threading.Lock()
        self.compactor = Compactor(directory, {
            "duration_buckets": self._duration, "size_buckets": self._size,
            "websocket_buckets": self._ws, **({"native": self._native} if self._native else {})})

    def compact(self) -> int:
        """Fold dead workers' files now if no other process is (at start, before serving);
        the number folded. A failure is logged and leaves the files as they were."""
        try:
            return self.compactor.compact()
        except Exception:
            logger.exception("compacting %s failed; dead workers' files stay", self.directory)
            return 0

    def _compatible(self, worker: WorkerRecords) -> bool:
        header = worker.header
        if (header.get("duration_buckets") == self._duration
                and header.get("size_buckets") == self._size
                and header.get("native") == self._native):
            return True
        if self._once(worker.path, "buckets"):
            logger.warning("%s was written with other histogram buckets than this worker's; "
                           "its request series are left out of the merge (a file from an "
                           "earlier run? empty the directory before each start)", worker.path)
        return False

    def _once(self, path: str, reason: str) -> bool:
        """True the first time this process meets ``path`` skipped for ``reason``."""
        with self._lock:
            if f"{reason}:{path}" in self._warned:
                return False
            self._warned.add(f"{reason}:{path}")
            return True

    def _skip(self, skipped: dict[str, int], exc: Untrusted) -> None:
        skipped[exc.reason] = skipped.get(exc.reason, 0) + 1
        if self._once(exc.path, exc.reason):
            logger.warning("%s is left out of the merged metrics (%s): the multiprocess "
                           "directory should hold only this user's worker files; see "
                           "docs/multiprocess.md", exc.path, exc.reason.replace("_", " "))

    def _workers(self, skipped: dict[str, int] | None = None) -> list[WorkerRecords]:
        """Every readable worker file and retired file, oldest first; a worker file a retired
        file already holds is left out (a compaction stopped between its two steps)."""
        skipped = {} if skipped is None else skipped
        paths = worker_files(self.directory)
        found = []
        for path in paths:
            try:
                worker = read_worker(path, self._indexes)
            except Untrusted as exc:
                self._skip(skipped, exc)
                continue
            if worker is not None:
                found.append(worker)
        self._indexes.keep(paths)
        # Read after the worker files: a compaction renames its retired file before it removes
        # the files it folded, so a worker file missing here is in the retired file read next.
        held: set[str] = set()
        for path in retired_files(self.directory):
            try:
                retired = self._retired.read(path)
            except Untrusted as exc:
                self._skip(skipped, exc)
                continue
            if retired is not None:
                found.append(retired)
                held |= retired.holds
        if held:
            found = [w for w in found if os.path.basename(w.path) not in held]
        found.sort(key=lambda w: (w.started, w.path))
        return found

    def families(self, *, custom: bool = True, naming: str | None = None,
                 merged: Merged | None = None) -> list[Metric]:
        """The merged families (of ``merged``, else of a read now): request and WebSocket
        (under ``naming``, by default this process'), asgi_monitor's file self-metrics and, with
        ``custom``, the metrics :mod:`asgi_monitor.store.metric_kinds` keeps in the files."""
        if merged is None:
            merged = self.read()
        return [*self.request_families(merged, naming=naming), *self._self_families(merged),
                *(self._custom_families(merged.workers) if custom else ())]

    def protobuf(self, *, custom: bool = True) -> list[Metric]:
        """:meth:`families` with the request families written as protobuf messages (one
        :class:`RenderedBytes`)."""
        if self._label_names or self._status_classes:
            # Not written directly: the generic encoder takes the families as they are.
            return self.families(custom=custom)
        from .protobuf import request_protobuf

        merged = self.read()
        data = request_protobuf(
            self.stored_series(merged), merged.in_progress, naming=self._naming,
            prefix=self._prefix, duration_bounds=self._duration, size_bounds=self._size,
            constant_labels=self._constant_labels, native_limit=self._native_limit)
        return [RenderedBytes(data), *websocket_families(
            merged.ws_total, merged.ws_active, merged.ws_sessions, prefix=self._prefix,
            bounds=self._ws, constant_labels=self._constant_labels),
            *stream_families(merged.streams, merged.streams_open, naming=self._naming,
                             prefix=self._prefix, bounds=self._ws,
                             constant_labels=self._constant_labels),
            *self._self_families(merged),
            *(self._custom_families(merged.workers) if custom else ())]

    def described(self, *, naming: str | None = None) -> list[Metric]:
        """The families :meth:`families` gives (custom metrics aside), with no samples and
        without reading any file: what a registry needs to know of them, known at start-up,
        where a merge would hold the event loop."""
        empty = Merged({}, array("d"), [(method, 0.0) for method in _METHODS], [], 0.0, [],
                       0.0, 0.0, [], {}, 0)
        return [*self.request_families(empty, naming=naming), *self._self_families(empty)]

    def family_names(self, *, naming: str | None = None) -> set[str]:
        """The names of :meth:`described`."""
        return {family.name for family in self.described(naming=naming)}

    def exposition(self, merged: Merged, openmetrics: bool) -> str | None:
        """The request, WebSocket and file families of ``merged`` as exposition text
        (OpenMetrics or the text format), as :meth:`families` gives them (custom metrics aside);
        None where only prometheus_client can write them (names outside the plain set)."""
        if not self._plain:
            return None
        p = self._prefix
        out: list[str] = []
        keys = list(merged.offsets)
        kept = merged.exemplars
        blocks = SeriesBlocks([key[:4] for key in keys], list(merged.offsets.values()),
                              merged.blocks,
                              {i: kept[key] for i, key in enumerate(keys) if key in kept}
                              if kept else {},
                              [self._label_values(key) for key in keys]
                              if self._label_names else ())
        request_text(out, blocks, merged.in_progress, naming=self._naming,
                     prefix=p, duration_bounds=self._duration, size_bounds=self._size,
                     constant_labels=self._constant_labels, openmetrics=openmetrics,
                     label_names=self._label_names, status_classes=self._status_classes)
        websocket_text(out, merged.ws_total, merged.ws_active, merged.ws_sessions, prefix=p,
                       bounds=self._ws, docs=HELP, constant_labels=self._constant_labels,
                       openmetrics=openmetrics)
        stream_text(out, merged.streams, merged.streams_open, naming=self._naming, prefix=p,
                    bounds=self._ws, constant_labels=self._constant_labels,
                    openmetrics=openmetrics)
        for name, doc, value in self._self_counters(merged):
            counter_text(out, name, doc, (), (), (((), value),), openmetrics)
        (files_name, files_doc), (records_name, records_doc) = self._skip_gauges()
        counter_text(out, files_name, files_doc, ("reason",), (),
                     (((reason,), float(merged.skipped.get(reason, 0))) for reason in _REASONS),
                     openmetrics, typ="gauge")
        counter_text(out, records_name, records_doc, (), (), (((), float(merged.bad_records)),),
                     openmetrics, typ="gauge")
        return "".join(out)

    def sample(self) -> tuple[RequestSnapshot, list[Metric]]:
        """What the sampler reads, from one read of the files: the request totals as typed
        values (no families built for them) and the custom metrics' families."""
        merged = self.read()
        return self.request_snapshot(merged), list(self._custom_families(merged.workers))

    def earlier_run(self, ppid: int) -> list[str]:
        """Files of dead workers started by another parent process than ``ppid``: most likely
        left from an earlier run of the server (a restarted worker of this run has the same
        parent, the server's supervisor)."""
        return [worker.path for worker in self._workers()
                if not worker.live and not worker.retired and worker.header.get("ppid") != ppid]

    # -- request and WebSocket series ------------------------------------------------------------
    def _entries(self, worker: WorkerRecords) -> list[_Entry]:
        """The worker's request records as (key, label set, first slot, order), each made once
        per file (the index only grows): a read then allocates no key per series."""
        return self._parse(worker)[1]

    def _sockets(self, worker: WorkerRecords) -> list[_Socket]:
        """The worker's WebSocket records as (route, first slot, order)."""
        return self._parse(worker)[2]

    def _streams(self, worker: WorkerRecords) -> list[_Stream]:
        """The worker's stream records as ((method, route), first slot, order)."""
        return self._parse(worker)[3]

    def _parse(self, worker: WorkerRecords,
               ) -> tuple[list[list[Any]], list[_Entry], list[_Socket], list[_Stream]]:
        known = self._parsed.get(worker.path)
        records = worker.records
        if known is not None and known[0] is records:
            return known
        seen, entries, sockets, streams = ((0, [], [], []) if known is None else
                                           (len(known[0]), known[1], known[2], known[3]))
        if known is not None and len(records) < seen:
            # another file under this name (rewritten)
            seen, entries, sockets, streams = 0, [], [], []
        name = os.path.basename(worker.path)
        sources = worker.header.get("order")
        entries = list(entries)  # never extended in place: another read may hold them
        sockets = list(sockets)
        streams = list(streams)
        for position in range(seen, len(records)):
            record = records[position]
            kind = record[0]
            if kind == "r":
                _, method, route, status, scheme, slot, *origin = record
            elif kind == "w":
                _, route, slot, *origin = record
            elif kind == "s":
                _, method, route, slot, *origin = record
            else:
                continue
            if origin and sources is not None:  # a retired file: the series' first place
                started, source = sources[origin[0]]
                order = (started, source, origin[1])
            else:
                order = (worker.started, name, position)
            if kind == "r":
                scheme, labels = request_key(scheme)
                entries.append(((method, route, status, scheme, labels),
                                (method, route, status, labels) if labels
                                else (method, route, status), slot, order))
            elif kind == "s":
                streams.append(((method, route), slot, order))
            else:
                sockets.append((route, slot, order))
        found = self._parsed[worker.path] = (records, entries, sockets, streams)
        return found

    def _admitted(self, workers: list[WorkerRecords]) -> dict[_LabelSet, bool] | None:
        """Which label sets keep their labels: None when they all do (no more than the cap).
        Otherwise the first ``max_series`` label sets by first appearance keep them; an
        ``<overflow>`` label set always does (and counts towards the cap), as in the
        single-process store."""
        cap = self._max_series
        if sum(len(self._entries(worker)) for worker in workers) <= cap:
            return None  # no more records than the cap, so no more label sets
        every: set[_LabelSet] = set()
        for worker in workers:
            every.update(entry[1] for entry in self._entries(worker))
        if len(every) <= cap:
            return None
        ordered = sorted((entry[3], entry[1]) for worker in workers
                         for entry in self._entries(worker))
        admitted: SeriesCap[_LabelSet] = SeriesCap(cap)
        for _, label_set in ordered:
            admitted.keeps(label_set, _overflow_set(label_set))
        return admitted.kept

    def _routes_admitted(self, workers: list[WorkerRecords]) -> dict[str, bool] | None:
        """The cap's rule for WebSocket routes, as :meth:`_admitted` for request label sets."""
        cap = self._max_series
        if sum(len(self._sockets(worker)) for worker in workers) <= cap:
            return None
        every = {entry[0] for worker in workers for entry in self._sockets(worker)}
        if len(every) <= cap:
            return None
        ordered = sorted((entry[2], entry[0]) for worker in workers
                         for entry in self._sockets(worker))
        admitted: SeriesCap[str] = SeriesCap(cap)
        for _, route in ordered:
            admitted.keeps(route, OVERFLOW)
        return admitted.kept

    def _streams_admitted(self, workers: list[WorkerRecords],
                          ) -> dict[tuple[str, str], bool] | None:
        """The cap's rule for stream (method, route) label sets, as :meth:`_admitted`."""
        cap = self._max_series
        if sum(len(self._streams(worker)) for worker in workers) <= cap:
            return None
        every = {entry[0] for worker in workers for entry in self._streams(worker)}
        if len(every) <= cap:
            return None
        ordered = sorted((entry[2], entry[0]) for worker in workers
                         for entry in self._streams(worker))
        admitted: SeriesCap[tuple[str, str]] = SeriesCap(cap)
        for _, key in ordered:
            admitted.keeps(key, (key[0], OVERFLOW))
        return admitted.kept

    def read(self) -> Merged:
        """Every worker's file, merged."""
        skipped: dict[str, int] = {}
        workers = self._workers(skipped)
        present = {worker.path for worker in workers}
        for path in [path for path in self._parsed if path not in present]:
            self._parsed.pop(path, None)
        compatible = []
        errors = unrecorded = 0.0
        bad = 0
        unrecorded_slots = len(self._duration) + 1
        for worker in workers:
            bad += worker.bad
            raw = worker.values
            if len(raw) < FIXED_SLOTS:
                continue
            if _sane(raw, SLOT_FILE_ERRORS, 1):
                errors += raw[SLOT_FILE_ERRORS]
            if not self._compatible(worker):
                skipped["buckets"] = skipped.get("buckets", 0) + 1
                continue
            compatible.append(worker)
            sink = worker.header["reserved"].get("r")
            if sink is not None and sink + unrecorded_slots <= len(raw):
                if _sane(raw, sink, unrecorded_slots):
                    unrecorded += sum(raw[sink:sink + unrecorded_slots])
                else:
                    bad += 1
        if self._compact and sum(1 for w in workers
                                 if not w.live and not w.retired) > COMPACT_AFTER:
            self.compactor.request()  # in a thread of its own; this read goes on meanwhile
        admitted = self._admitted(compatible)
        routes_admitted = self._routes_admitted(compatible)
        streams_admitted = self._streams_admitted(compatible)
        block, ws_block, stream_block = self._block, self._ws_block, self._stream_block
        # Per series, where its block starts in ``blocks``: every series' block summed over the
        # workers, end to end. A worker's blocks are first copied into an array aligned with it
        # (slice to slice, no Python object per value), then added in one C loop.
        offsets: dict[_Key, int] = {}
        blocks = array("d")
        sockets: dict[str, list[float]] = {}
        streams: dict[tuple[str, str], list[float]] = {}
        in_progress = [0.0] * len(_METHODS)
        ws_active = streams_open = 0.0
        empty = array("d", bytes(8 * block))
        for worker in compatible:
            values = array("d")
            values.frombytes(worker.values.cast("B"))
            # Every count must be finite and >= 0; checked per block only when the file as a
            # whole fails (one C pass over the file otherwise).
            checked = _sane(values, 0, len(values))
            if worker.live:
                if checked or _sane(values, SLOT_IN_PROGRESS, SLOT_WS_ACTIVE + 1):
                    for i in range(len(_METHODS)):
                        in_progress[i] += values[SLOT_IN_PROGRESS + i]
                    ws_active += values[SLOT_WS_ACTIVE]
                if checked or _sane(values, SLOT_STREAMS_OPEN, 1):
                    streams_open += values[SLOT_STREAMS_OPEN]
            size = len(values)
            base = len(blocks)  # the series merged so far; this worker's new ones go after
            added = array("d", bytes(8 * base))
            filled: set[int] = set()
            for key, label_set, slot, _ in self._entries(worker):
                if slot + block > size:
                    continue  # a file cut short (copied, or its disk failed): not ours
                if not checked and not _sane(values, slot, block):
                    bad += 1
                    continue
                if admitted is not None and not admitted[label_set]:
                    key = _overflowed(key)
                at = offsets.get(key)
                if at is None:
                    at = offsets[key] = len(blocks)
                    blocks.extend(empty)
                    added.extend(empty)
                if at in filled:  # several of the worker's series overflowed into one
                    added[at:at + block] = array(
                        "d", map(add, added[at:at + block], values[slot:slot + block]))
                else:
                    filled.add(at)
                    added[at:at + block] = values[slot:slot + block]
            # In pieces: a C loop holds the GIL, and the event loop waits for it meanwhile.
            for i in range(0, base, _PIECE):
                j = min(i + _PIECE, base)
                blocks[i:j] = array("d", map(add, blocks[i:j], added[i:j]))
            blocks[base:] = added[base:]
            for route, slot, _ in self._sockets(worker):
                if slot + ws_block > size:
                    continue
                if not checked and not _sane(values, slot, ws_block):
                    bad += 1
                    continue
                if routes_admitted is not None and not routes_admitted[route]:
                    route = OVERFLOW
                found = sockets.get(route)
                if found is None:
                    sockets[route] = values[slot:slot + ws_block].tolist()
                else:
                    found[:] = map(add, found, values[slot:slot + ws_block])
            for stream, slot, _ in self._streams(worker):
                if slot + stream_block > size:
                    continue
                if not checked and not _sane(values, slot, stream_block):
                    bad += 1
                    continue
                if streams_admitted is not None and not streams_admitted[stream]:
                    stream = (stream[0], OVERFLOW)
                found = streams.get(stream)
                if found is None:
                    streams[stream] = values[slot:slot + stream_block].tolist()
                else:
                    found[:] = map(add, found, values[slot:slot + stream_block])
        exemplars, wrong = self._exemplars(compatible, admitted, skipped)
        w = len(self._ws) + 1
        return Merged(
            offsets, blocks, list(zip(_METHODS, in_progress, strict=True)),
            [(route, b[0]) for route, b in sockets.items()], ws_active,
            [(route, b[1:1 + w], b[1 + w]) for route, b in sockets.items()],
            errors, unrecorded, workers, skipped, bad + wrong, exemplars,
            [(method, route, b[:w], b[w]) for (method, route), b in streams.items()],
            streams_open)

    def _exemplars(self, workers: list[WorkerRecords],
                   admitted: dict[_LabelSet, bool] | None, skipped: dict[str, int],
                   ) -> tuple[dict[_Key, list[Kept | None]], int]:
        """Per series and duration bucket, the newest exemplar among the workers' exemplars
        files (:mod:`asgi_monitor.store.exemplar_file`), and how many slots were bad. Read after
        the indexes (in :meth:`_workers`): a slot is written after its series' index record, so
        every good slot's series is known. A retired file keeps no exemplars: compaction drops
        dead workers' ones with their files."""
        newest: dict[_Key, list[Kept | None]] = {}
        bad = 0
        buckets = len(self._duration) + 1
        for worker in workers:
            if worker.retired:
                continue
            try:
                found, wrong = read_exemplars(exemplars_path(worker.path), self._duration)
            except Untrusted as exc:
                self._skip(skipped, exc)
                continue
            except OSError:
                continue  # removed by a compaction meanwhile, or unreadable: none this time
            bad += wrong
            if not found:
                continue
            series = {slot: (key, label_set)
                      for key, label_set, slot, _ in self._entries(worker)}
            for slot, bucket, kept in found:
                entry = series.get(slot)
                if entry is None:
                    bad += 1
                    continue
                key = entry[0]
                if admitted is not None and not admitted[entry[1]]:
                    key = _overflowed(key)
                row = newest.get(key)
                if row is None:
                    row = newest[key] = [None] * buckets
                old = row[bucket]
                if old is None or kept[2] > old[2]:
                    row[bucket] = kept
        return newest, bad

    def request_families(self, merged: Merged, *, naming: str | None = None,
                         ) -> Iterator[Metric]:
        """The request and WebSocket families of ``merged``, as a single process exposes its
        own."""
        p = self._prefix
        yield from request_families(
            self.stored_series(merged), merged.in_progress, naming=naming or self._naming, prefix=p,
            duration_bounds=self._duration, size_bounds=self._size,
            constant_labels=self._constant_labels, native_limit=self._native_limit,
            label_names=self._label_names, status_classes=self._status_classes)
        yield from websocket_families(
            merged.ws_total, merged.ws_active, merged.ws_sessions, prefix=p, bounds=self._ws,
            constant_labels=self._constant_labels)
        yield from stream_families(
            merged.streams, merged.streams_open, naming=naming or self._naming, prefix=p,
            bounds=self._ws, constant_labels=self._constant_labels)

    def stored_series(self, merged: Merged) -> list[StoredSeries]:
        """``merged``'s request series as the projection takes them."""
        t = len(self._duration) + 1  # buckets with +Inf
        z = len(self._size) + 1
        ttfb, req, resp = t + 1, 2 * t + 2, 2 * t + z + 3
        classic = resp + z + 1
        blocks = merged.blocks
        rows = []
        for key, at in merged.offsets.items():
            method, route, status, scheme, _ = key
            b = blocks[at:at + self._block]
            rows.append(StoredSeries(
                method, route, status, scheme, sum(b[:t]),
                ((b[:t], b[t]), (b[ttfb:ttfb + t], b[ttfb + t]),
                 (b[req:req + z], b[req + z]), (b[resp:resp + z], b[resp + z])),
                merged.exemplars.get(key),
                self._natives(b[classic:]) if self._native else None, self._label_values(key)))
        return rows

    def _natives(self, tail: Sequence[float]) -> tuple[NativeSnapshot, NativeSnapshot]:
        """A block's native tail (summed over the workers) as the duration's and TTFB's native
        histograms, reduced to the bucket limit."""
        assert self._native is not None
        schema, low, width, threshold = self._native
        out = []
        for start in (0, 1 + width):
            counts = {low + i: int(c) for i, c in enumerate(tail[start + 1:start + 1 + width])
                      if c}
            found = merge_native([NativeSnapshot(schema, threshold, int(tail[start]), counts)],
                                 self._native_limit)
            assert found is not None
            out.append(found)
        return out[0], out[1]

    def request_snapshot(self, merged: Merged) -> RequestSnapshot:
        """The sampler's request values, as :meth:`RequestMetrics.snapshot` gives a single
        process': the merged array as it is, no object per series.

        With native histograms on, a series whose duration histogram has not changed since
        the last read keeps the native buckets decoded then: most series are idle between two
        samples, and values made again would be garbage the collector walks."""
        blocks = merged.blocks
        keys: list[_Key] = list(merged.offsets)
        names = self._label_names
        if names:
            n = len(names)
            keys = [key if len(key[4]) == n else (*key[:4], self._label_values(key))
                    for key in keys]
        natives: list[tuple[int, float, int, tuple[tuple[int, int], ...]] | None] | None = None
        if self._native:
            t = len(self._duration) + 1
            # Where the native tail starts in a block (its duration part first).
            tail = 2 * t + 2 * (len(self._size) + 1) + 4
            known = self._latency
            kept: dict[_Key, tuple[bytes, tuple[int, float, int, tuple[tuple[int, int], ...]]]]
            kept = {}
            natives = []
            for key, at in merged.offsets.items():
                raw = blocks[at:at + t + 1].tobytes()  # the buckets and the sum
                found = known.get(key)
                if found is None or found[0] != raw:
                    native = self._natives(blocks[at + tail:at + self._block])[0]
                    found = (raw, (native.schema, native.zero_threshold, native.zero_count,
                                   tuple(sorted(native.counts.items()))))
                kept[key] = found
                natives.append(found[1])
            self._latency = kept  # replaced whole: a concurrent read keeps the one it took
        long_bounds = (*self._ws, float("inf"))
        streams = tuple(
            RouteLatency(method, route, tuple(zip(long_bounds, accumulate(counts), strict=True)),
                         total)
            for method, route, counts, total in merged.streams)
        return RequestSnapshot(
            SeriesTable(keys, blocks, self._block, tuple(self._duration), None, names, natives),
            sum(value for _, value in merged.in_progress), streams, merged.streams_open)

    def _label_values(self, key: _Key) -> tuple[str, ...]:
        """The request labels' values of a series: empty ones for a series recorded without
        them, and the configured labels' only (a file written under other settings may hold
        others)."""
        n = len(self._label_names)
        values = key[4]
        if len(values) == n:
            return values
        return (*values[:n], *("",) * (n - len(values)))

    def _self_counters(self, merged: Merged) -> list[tuple[str, str, float]]:
        p = self._prefix
        return [
            (f"{p}asgi_monitor_multiprocess_file_errors",
             "Times a worker could not reserve space in its metric file (disk full, file size "
             "limit) for a new series.", merged.file_errors),
            (f"{p}asgi_monitor_multiprocess_unrecorded",
             "Requests not recorded because their new series found no space in the worker's "
             "metric file.", merged.unrecorded)]

    def _self_families(self, merged: Merged) -> Iterator[Metric]:
        for name, doc, value in self._self_counters(merged):
            yield CounterMetricFamily(name, doc, value=value)
        (files_name, files_doc), (records_name, records_doc) = self._skip_gauges()
        # Gauges of what the directory holds now, the same whichever worker answers.
        files = GaugeMetricFamily(files_name, files_doc, labels=["reason"])
        for reason in _REASONS:
            files.add_metric([reason], merged.skipped.get(reason, 0))
        yield files
        yield GaugeMetricFamily(records_name, records_doc, value=merged.bad_records)

    def _skip_gauges(self) -> tuple[tuple[str, str], tuple[str, str]]:
        p = self._prefix
        return ((f"{p}asgi_monitor_multiprocess_skipped_files",
                 "Files in the multiprocess directory left out of the merge, by reason: "
                 "not_regular (a symlink, FIFO, device or hard link), not_owner, too_large, "
                 "bad_header, buckets (written with other histogram buckets)."),
                (f"{p}asgi_monitor_multiprocess_skipped_records",
                 "Records left out of the merge in the files read: malformed, or counts that are "
                 "negative or not finite."))

    # -- custom metrics --------------------------------------------------------------------------
    def custom_families(self, merged: Merged) -> list[Metric]:
        """The metrics :mod:`asgi_monitor.store.metric_kinds` keeps in the files, merged."""
        return list(self._custom_families(merged.workers))

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
                if typ != "gauge" and not (value >= 0.0 and math.isfinite(value)):
                    continue  # a count out of range: left out
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


def _overflow_set(label_set: _LabelSet) -> _LabelSet:
    """The label set a capped one counts under: its route, and any request labels, become
    ``<overflow>``."""
    if len(label_set) == 3:
        return (label_set[0], OVERFLOW, label_set[2])
    return (label_set[0], OVERFLOW, label_set[2], (OVERFLOW,) * len(label_set[3]))


def _overflowed(key: _Key) -> _Key:
    return (key[0], OVERFLOW, key[2], key[3], (OVERFLOW,) * len(key[4]))


def _sane(values: array[float] | memoryview[float], first: int, count: int) -> bool:
    """Whether ``count`` counts from ``first`` are all finite and >= 0."""
    return counts_sane(values[first:first + count])


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


_NAMES_ONLY: ContextVar[bool] = ContextVar("asgi_monitor_names_only", default=False)


@contextmanager
def names_only() -> Iterator[None]:
    """While in this block, collecting a registry gets the merged collectors' families as
    :meth:`MergedFilesCollector.describe` gives them (names, no samples), without a merge."""
    token = _NAMES_ONLY.set(True)
    try:
        yield
    finally:
        _NAMES_ONLY.reset(token)


class MergedFilesCollector(Collector):
    """Every worker's families for a registry: with ``custom``, the metrics kept in the files
    too (a scrape's registry); without, the request families only (a worker's own registry,
    where the custom metrics registered are that process' own)."""

    def __init__(self, files: MergedFiles, *, custom: bool = False) -> None:
        self._files = files
        self._custom = custom

    def describe(self) -> Iterator[Metric]:
        # From the names alone: a registry describes a collector when it is registered, on
        # the event loop, where a merge would stall every request of the worker.
        return iter(self._files.described())

    def collect(self) -> Iterator[Metric]:
        if _NAMES_ONLY.get():
            return self.describe()
        if direct_protobuf():
            return iter(self._files.protobuf(custom=self._custom))
        openmetrics = direct_format()
        if openmetrics is None:
            return iter(self._files.families(custom=self._custom))
        merged = self._files.read()
        text = self._files.exposition(merged, openmetrics)
        if text is None:
            return iter(self._files.families(custom=self._custom, merged=merged))
        custom = self._files.custom_families(merged) if self._custom else []
        return iter([Rendered(text), *custom])
