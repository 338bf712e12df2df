"""The retired file: dead workers' counts folded into one file (see
:mod:`asgi_monitor.store.compaction`, which writes it), and how a reader reads it.

Its layout: a 4-byte little-endian length and a JSON header (a worker header plus
``generation``, ``holds``, the files whose counts it holds with the time each was folded, and
``order``, the table of the folded files' start times and names), the same for a JSON list of
records (a worker's, plus for ``r``, ``w`` and ``s`` records their first place: an index into
``order`` and a position there), zeros up to a multiple of 8 bytes, then the float64 values. A
reader treats it as untrusted as any worker file (:mod:`asgi_monitor.store.safe_open`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import threading
import time
from array import array
from collections.abc import Sequence
from operator import add
from typing import Any

from .safe_open import Untrusted, open_untrusted, read_fd
from .worker_file import (
    FIXED_SLOTS,
    MAX_INDEX,
    MAX_VALUES,
    PREFIX,
    SLOT_FILE_ERRORS,
    VERSION,
    WorkerRecords,
    counts_sane,
    request_block_slots,
    stream_block_slots,
    valid_header,
    valid_record,
    websocket_block_slots,
)

__all__ = ["MAX_RETIRED", "RETIRED_PREFIX", "RETIRED_SUFFIX", "Fold", "RetiredCache",
           "layout_name", "read_retired", "retired_files"]

RETIRED_PREFIX = f"{PREFIX}retired_"
RETIRED_SUFFIX = ".data"
MAX_RETIRED = MAX_INDEX + MAX_VALUES
_LENGTH = struct.Struct("<I")
# Kinds of record that carry their first place, and their length without it.
_PLACED = {"r": 6, "w": 3, "s": 4}


def retired_files(directory: str) -> list[str]:
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(os.path.join(directory, name) for name in names
                  if name.startswith(RETIRED_PREFIX) and name.endswith(RETIRED_SUFFIX))


def layout_name(header: dict[str, Any]) -> str:
    """A short name for a bucket layout: files of one layout fold into one retired file."""
    layout = [header["duration_buckets"], header["size_buckets"], header["websocket_buckets"]]
    if header.get("native"):
        layout.append(header["native"])  # only then: the names of other layouts stay as they were
    key = json.dumps(layout)
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _valid_retired(header: Any, records: Any) -> bool:
    if not valid_header(header):
        return False
    holds, order, generation = header.get("holds"), header.get("order"), header.get("generation")
    if (type(generation) is not int or type(holds) is not dict or type(order) is not list
            or not all(type(k) is str and type(v) in (int, float) for k, v in holds.items())
            or not all(type(o) is list and len(o) == 2 and type(o[0]) in (int, float)
                       and math.isfinite(o[0]) and type(o[1]) is str for o in order)):
        return False
    return type(records) is list


def _place(record: list[Any], size: int) -> bool:
    return type(record[1]) is int and 0 <= record[1] < size and type(record[2]) is int


def _parse(data: bytes, path: str) -> tuple[dict[str, Any], list[list[Any]], int, bytes]:
    """(header, valid records, records skipped, values bytes); Untrusted if the frame or the
    header fails."""
    try:
        (size,) = _LENGTH.unpack_from(data, 0)
        header = json.loads(data[4:4 + size], parse_constant=_reject_constant)
        at = 4 + size
        (size,) = _LENGTH.unpack_from(data, at)
        if at + 4 + size > len(data):
            raise ValueError("short")
        records = json.loads(data[at + 4:at + 4 + size], parse_constant=_reject_constant)
    except (ValueError, RecursionError, struct.error):
        raise Untrusted(path, "bad_header") from None
    if not _valid_retired(header, records):
        raise Untrusted(path, "bad_header")
    at += 4 + size
    at += -at % 8
    kept = []
    bad = 0
    sources = len(header["order"])
    for record in records:
        # r, w and s records carry their first place (order index, position) after the slot.
        if type(record) is list and record and record[0] in _PLACED:
            cut = _PLACED[record[0]]
            if (len(record) == cut + 2 and valid_record(record[:cut])
                    and _place(record[cut - 1:], sources)):
                kept.append(record)
                continue
        elif valid_record(record):
            kept.append(record)
            continue
        bad += 1
    return header, kept, bad, data[at:]


def read_retired(path: str) -> WorkerRecords | None:
    """A retired file as the merge reads a worker's (never live); None if it is gone. Raises
    :class:`Untrusted` for a file a reader must refuse."""
    try:
        fd, size = open_untrusted(path, MAX_RETIRED)
        try:
            data = read_fd(fd, size)
        finally:
            os.close(fd)
    except Untrusted:
        raise
    except OSError:
        return None
    header, records, bad, raw = _parse(data, path)
    raw = raw[:len(raw) - len(raw) % 8]
    return WorkerRecords(path, False, header, records, memoryview(raw).cast("d"),
                         float(header["started"]), bad, frozenset(header["holds"]), True)


class RetiredCache:
    """Retired files already parsed, by path and identity (a rename gives a new inode)."""

    def __init__(self) -> None:
        self._known: dict[str, tuple[tuple[int, int, int, int], WorkerRecords]] = {}
        self._lock = threading.Lock()

    def read(self, path: str) -> WorkerRecords | None:
        try:
            info = os.stat(path, follow_symlinks=False)
        except OSError:
            return None
        identity = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        known = self._known.get(path)
        if known is not None and known[0] == identity:
            return known[1]
        found = read_retired(path)
        if found is not None:
            with self._lock:
                self._known = {path: (identity, found)}  # one layout per process is read
        return found


class Fold:
    """The folded content: every series summed, with its first place."""

    def __init__(self, header: dict[str, Any]) -> None:
        self.header = header
        self.block = request_block_slots(len(header["duration_buckets"]),
                                         len(header["size_buckets"]), header.get("native"))
        self.ws_block = websocket_block_slots(len(header["websocket_buckets"]))
        self.stream_block = stream_block_slots(len(header["websocket_buckets"]))
        self.started = math.inf
        self.order: dict[tuple[float, str], int] = {}
        # key -> [values, place]
        self.requests: dict[tuple[Any, ...], tuple[array[float], tuple[float, str, int]]] = {}
        self.sockets: dict[str, tuple[array[float], tuple[float, str, int]]] = {}
        self.streams: dict[tuple[Any, ...], tuple[array[float], tuple[float, str, int]]] = {}
        self.values: dict[tuple[Any, ...], list[float]] = {}  # custom: value, stamp
        self.errors = 0.0
        self.unrecorded = array("d", bytes(8 * self.block))

    def add(self, worker: WorkerRecords) -> None:
        values = worker.values
        name = os.path.basename(worker.path)
        self.started = min(self.started, worker.started)
        order = worker.header.get("order") if worker.retired else None
        if len(values) >= FIXED_SLOTS and _sane(values[SLOT_FILE_ERRORS:SLOT_FILE_ERRORS + 1]):
            self.errors += values[SLOT_FILE_ERRORS]
        sink = worker.header["reserved"].get("r")
        if sink is not None and sink + self.block <= len(values):
            piece = values[sink:sink + self.block]
            if _sane(piece):
                _add(self.unrecorded, piece)
        for position, record in enumerate(worker.records):
            kind = record[0]
            if kind == "v":
                self._custom(worker, record)
                continue
            if kind not in _PLACED:
                continue
            if order is not None:
                cut = _PLACED[kind]
                started, source = order[record[cut]]
                place = (float(started), source, record[cut + 1])
                record = record[:cut]
            else:
                place = (worker.started, name, position)
            size = (self.block if kind == "r" else self.ws_block if kind == "w"
                    else self.stream_block)
            slot = record[-1]
            piece = values[slot:slot + size]
            if len(piece) < size or not _sane(piece):
                continue  # the merge leaves it out too
            table: dict[Any, tuple[array[float], tuple[float, str, int]]] = (
                self.requests if kind == "r" else self.sockets if kind == "w" else self.streams)
            key: Any
            if kind == "r":
                # A request key's scheme may be [scheme, label values]: a tuple, to be hashable.
                key = (*record[1:4], record[4] if type(record[4]) is str else tuple(record[4]))
            else:
                key = record[1] if kind == "w" else tuple(record[1:-1])
            found = table.get(key)
            if found is None:
                table[key] = (array("d", piece), place)
            else:
                _add(found[0], piece)
                if place < found[1]:
                    table[key] = (found[0], place)

    def _custom(self, worker: WorkerRecords, record: list[Any]) -> None:
        _, typ, mode, metric, sample, names, labels, doc, slot = record
        if slot + 2 > len(worker.values):
            return
        value, stamp = worker.values[slot], worker.values[slot + 1]
        if typ == "gauge":
            if mode.startswith("live"):
                return  # a dead worker's live gauge counts no more
            if mode == "all":
                # One series per worker: its pid becomes a label here, as the merge adds it.
                names, labels = [*names, "pid"], [*labels, str(worker.header.get("pid"))]
                mode = "sum"
        elif not (value >= 0.0 and math.isfinite(value)):
            return
        key = (typ, mode, metric, sample, tuple(names), tuple(labels), doc)
        found = self.values.get(key)
        if found is None:
            self.values[key] = [value, stamp]
        elif typ != "gauge" or mode in ("sum", ""):
            found[0] += value
        elif mode == "max":
            found[0] = max(found[0], value)
        elif mode == "min":
            found[0] = min(found[0], value)
        elif stamp > found[1]:  # mostrecent
            found[0], found[1] = value, stamp

    def render(self, generation: int, holds: dict[str, float]) -> bytes:
        slots = array("d", bytes(8 * FIXED_SLOTS))
        slots[SLOT_FILE_ERRORS] = self.errors
        sink = len(slots)
        slots.extend(self.unrecorded)
        order: dict[tuple[float, str], int] = {}
        records: list[list[Any]] = []

        def place(where: tuple[float, str, int]) -> list[Any]:
            index = order.setdefault(where[:2], len(order))
            return [index, where[2]]

        for key, (block, where) in sorted(self.requests.items(), key=lambda item: item[1][1]):
            records.append(["r", *key[:3], key[3] if type(key[3]) is str else list(key[3]),
                            len(slots), *place(where)])
            slots.extend(block)
        for route, (block, where) in sorted(self.sockets.items(), key=lambda item: item[1][1]):
            records.append(["w", route, len(slots), *place(where)])
            slots.extend(block)
        for stream, (block, where) in sorted(self.streams.items(), key=lambda item: item[1][1]):
            records.append(["s", *stream, len(slots), *place(where)])
            slots.extend(block)
        for (typ, mode, metric, sample, names, labels, doc), pair in self.values.items():
            records.append(["v", typ, mode, metric, sample, list(names), list(labels), doc,
                            len(slots)])
            slots.extend(pair)
        header = {
            "version": VERSION, "pid": 0, "ppid": 0,
            "started": self.started if math.isfinite(self.started) else time.time(),
            "duration_buckets": self.header["duration_buckets"],
            "size_buckets": self.header["size_buckets"],
            "websocket_buckets": self.header["websocket_buckets"],
            **({"native": self.header["native"]} if self.header.get("native") else {}),
            "reserved": {"r": sink}, "generation": generation, "holds": holds,
            "order": [[started, name] for (started, name) in order]}
        head = json.dumps(header, separators=(",", ":")).encode()
        body = json.dumps(records, separators=(",", ":")).encode()
        data = _LENGTH.pack(len(head)) + head + _LENGTH.pack(len(body)) + body
        return data + bytes(-len(data) % 8) + slots.tobytes()


def _sane(piece: memoryview[float]) -> bool:
    return counts_sane(piece)


def _add(into: array[float], piece: Sequence[float]) -> None:
    into[:] = array("d", map(add, into, piece))
