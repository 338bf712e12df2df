"""One worker's metric file under several workers: the format, the writer and the reader.

Each worker process owns two files in ``PROMETHEUS_MULTIPROC_DIR``, named after its pid and a
random token (so a restarted worker, or another process that reuses a pid, never opens an old
one)::

    asgi_monitor_<pid>_<token>.values   float64 slots, mapped into memory, written in place
    asgi_monitor_<pid>_<token>.index    append-only records: which series owns which slots

The values file grows in chunks of :data:`CHUNK` bytes, each reserved on disk (``posix_fallocate``,
else written with zeros) *before* it is mapped: a store into a mapping whose blocks the file
system never allocated would kill the process with SIGBUS when the disk is full. A chunk that
cannot be reserved raises ``OSError`` here and the caller records into a sink instead.

The first :data:`FIXED_SLOTS` slots have fixed meanings (:data:`SLOT_IN_PROGRESS` ...). The first
index record is the header (a JSON object: version, pid, bucket bounds, the sinks' slots); every
other record gives one series' key and its first slot (a request series with request labels has
``[scheme, label values...]`` where the scheme is, so a record keeps its length). A record is a
4-byte little-endian length and that many bytes of JSON, appended with one ``write``; a reader
ignores an incomplete tail.

The format has limits, which the writer keeps (past them a new series is refused as on a full
disk) and a reader enforces: :data:`MAX_VALUES` bytes of values, :data:`MAX_INDEX` bytes of
index, :data:`MAX_RECORD` bytes per record. A reader treats every file as untrusted
(:mod:`asgi_monitor.store.safe_open`), validates each record's types and ranges, skips a record
that fails (counted in ``bad``) and refuses a file whose header fails (:class:`Untrusted`).

Liveness: the writer holds an exclusive ``flock`` on its values file for its whole life; a reader
whose non-blocking shared lock succeeds knows the writer is gone (a SIGKILL releases it too).
Windows has no ``flock``: there every file reads as live.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import re
import secrets
import struct
import sys
import threading
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .safe_open import Untrusted, open_untrusted, read_fd

__all__ = [
    "CHUNK", "FIXED_SLOTS", "MAX_INDEX", "MAX_RECORD", "MAX_VALUES", "PREFIX", "SLOT_FILE_ERRORS",
    "SLOT_IN_PROGRESS", "SLOT_STREAMS_OPEN", "SLOT_WS_ACTIVE", "VERSION", "IndexCache",
    "Untrusted", "WorkerFile", "WorkerRecords", "counts_sane", "native_layout", "native_slots",
    "parse_records", "read_worker", "request_block_slots", "reserve_space", "stream_block_slots",
    "valid_header", "valid_record", "websocket_block_slots", "worker_files",
]

VERSION = 1
PREFIX = "asgi_monitor_"
CHUNK = 64 * 1024  # a multiple of every platform's mmap granularity (64 KiB on Windows)
SLOT_IN_PROGRESS = 0  # 10 slots: the standard methods and OTHER, in STANDARD_METHODS order
SLOT_WS_ACTIVE = 10
SLOT_FILE_ERRORS = 11  # times this worker failed to reserve space or append to its index
SLOT_STREAMS_OPEN = 12  # streaming responses open now (a slot earlier versions left zero)
FIXED_SLOTS = 16
MAX_VALUES = 64 * 1024 * 1024  # bytes of one values file (a multiple of CHUNK)
MAX_INDEX = 16 * 1024 * 1024  # bytes of one index file
MAX_RECORD = 64 * 1024  # bytes of one index record's JSON
MAX_SLOT = MAX_VALUES // 8
_LENGTH = struct.Struct("<I")
_DOUBLE = 8
_STATUS_LIMIT = 1000
_KINDS = ("counter", "gauge", "histogram")
_METRIC = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


# Native histograms in a worker file: a fixed range of bucket indexes per series, the buckets
# from NATIVE_LOW to NATIVE_HIGH seconds (values outside count in the first or last one), at most
# schema NATIVE_FILE_SCHEMA (a finer schema would need thousands of slots per series).
NATIVE_LOW = 1e-4
NATIVE_HIGH = 100.0
NATIVE_FILE_SCHEMA = 4
_NATIVE_WIDTH_LIMIT = 4096


def native_layout(schema: int, zero_threshold: float) -> list[Any]:
    """The header's ``native`` entry: [schema, first bucket index, buckets, zero threshold]."""
    schema = min(schema, NATIVE_FILE_SCHEMA)
    factor = 2.0 ** schema
    low = math.ceil(math.log2(NATIVE_LOW) * factor)
    high = math.ceil(math.log2(NATIVE_HIGH) * factor)
    return [schema, low, high - low + 1, float(zero_threshold)]


def native_slots(layout: Any) -> int:
    """Slots of a request block's native tail: for the duration then the TTFB, a zero count and
    the layout's buckets (none without native histograms)."""
    return 2 * (1 + int(layout[2])) if layout else 0


def request_block_slots(duration_bounds: int, size_bounds: int, native: Any = None) -> int:
    """Slots of one (method, route, status, scheme) block: four histograms, each its buckets (+Inf
    last) and its sum; the request count is the duration histogram's; then, with native
    histograms (``native``: the header's layout), their tail (:func:`native_slots`)."""
    return 2 * (duration_bounds + 2) + 2 * (size_bounds + 2) + native_slots(native)


def websocket_block_slots(bounds: int) -> int:
    """Slots of one WebSocket route's block: the connection count, then its session histogram."""
    return 1 + bounds + 2


def stream_block_slots(bounds: int) -> int:
    """Slots of one (method, route) stream block: its lifetime histogram (buckets, +Inf last,
    and the sum) on the WebSocket bounds; the stream count is the histogram's."""
    return bounds + 2


def _lock(fd: int, exclusive: bool) -> bool:
    """A non-blocking flock; False if another open file holds a conflicting one."""
    if sys.platform == "win32":
        return not exclusive  # no flock: readers see every file as live
    import fcntl

    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    if not exclusive:
        fcntl.flock(fd, fcntl.LOCK_UN)
    return True


def reserve_space(fd: int, offset: int, length: int) -> None:
    """Allocate the file's blocks for [offset, offset + length), or raise OSError."""
    if hasattr(os, "posix_fallocate"):
        os.posix_fallocate(fd, offset, length)
        return
    # macOS and Windows: writing zeros allocates the blocks too.
    zeros = bytes(min(length, 65536))
    done = 0
    while done < length:
        piece = zeros[:min(len(zeros), length - done)]
        os.lseek(fd, offset + done, os.SEEK_SET)
        done += os.write(fd, piece)


class WorkerFile:
    """This process' file pair: slots handed out in blocks, series appended to the index.

    Only the event loop thread of one process writes (custom metrics may be set from other
    threads; :meth:`allocate` is then called under the caller's lock)."""

    def __init__(self, directory: str, header: dict[str, Any],
                 reserve: dict[str, int] | None = None) -> None:
        self.directory = directory
        token = secrets.token_hex(4)
        base = os.path.join(directory, f"{PREFIX}{os.getpid()}_{token}")
        self.values_path = f"{base}.values"
        self.index_path = f"{base}.index"
        self._maps: list[mmap.mmap] = []
        self.chunks: list[memoryview[float]] = []  # one float64 view per chunk
        self._used = 0  # slots handed out in the last chunk
        self._chunk_slots = CHUNK // _DOUBLE
        self._index_size = 0
        self.lock = threading.Lock()
        # Both files are created and locked before any reader can see a header naming them.
        # 0600: only this user's processes read the files (the readers refuse any other owner).
        self._fd = os.open(self.values_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            if not _lock(self._fd, exclusive=True) and sys.platform != "win32":
                raise OSError(f"cannot lock {self.values_path}")
            self._grow()
            self._used = FIXED_SLOTS
            # Blocks set aside at start (the sinks), so they exist even when the disk is full.
            self.reserved: dict[str, tuple[memoryview[float], int]] = {}
            slots: dict[str, int] = {}
            for name, size in (reserve or {}).items():
                view, first, number = self.allocate(size)
                self.reserved[name] = (view, first)
                slots[name] = number
            self._index = os.open(self.index_path,
                                  os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
            self.header = {"version": VERSION, "pid": os.getpid(), "ppid": os.getppid(),
                           "started": time.time(), "reserved": slots, **header}
            self.append(self.header)
        except BaseException:
            self.close()
            for path in (self.values_path, self.index_path):
                try:
                    os.unlink(path)
                except OSError:
                    pass
            raise

    @property
    def fixed(self) -> memoryview[float]:
        """The first chunk, where the fixed slots are."""
        return self.chunks[0]

    def _grow(self) -> None:
        offset = len(self.chunks) * CHUNK
        if offset + CHUNK > MAX_VALUES:
            raise OSError(f"{self.values_path} reached the format's {MAX_VALUES} bytes")
        reserve_space(self._fd, offset, CHUNK)  # raises before anything is mapped
        mapped = mmap.mmap(self._fd, CHUNK, offset=offset)
        self._maps.append(mapped)
        self.chunks.append(memoryview(mapped).cast("d"))
        self._used = 0

    def allocate(self, slots: int) -> tuple[memoryview[float], int, int]:
        """``slots`` zeroed slots in one chunk: (that chunk's view, first slot there, the slot's
        number in the file). Raises OSError when the disk (or a file size limit) refuses."""
        if not self.chunks:
            raise OSError(f"{self.values_path} is closed")
        if slots > self._chunk_slots:
            raise ValueError(f"a block of {slots} slots does not fit a {CHUNK}-byte chunk")
        if self._used + slots > self._chunk_slots:
            self._grow()
        view = self.chunks[-1]
        first = self._used
        self._used += slots
        return view, first, (len(self.chunks) - 1) * self._chunk_slots + first

    def new_block(self, slots: int, record: list[Any]) -> tuple[memoryview[float], int, int]:
        """Reserve ``slots`` slots and index them under ``record`` (the slot number is appended
        to it), under the lock: custom metrics may be created from other threads. Returns what
        :meth:`allocate` does. Raises OSError when no space can be had; the error is counted in
        the file's fixed slot."""
        with self.lock:
            try:
                view, first, number = self.allocate(slots)
                self.append([*record, number])
            except OSError:
                self.count_error()
                raise
            return view, first, number

    def append(self, record: Sequence[Any] | dict[str, Any]) -> None:
        """Append one index record with a single write; on failure the index is cut back to
        its last whole record (so later records still parse) and OSError propagates."""
        payload = json.dumps(record, separators=(",", ":")).encode()
        data = _LENGTH.pack(len(payload)) + payload
        if len(payload) > MAX_RECORD or self._index_size + len(data) > MAX_INDEX:
            raise OSError(f"{self.index_path}: a record past the format's limits")
        try:
            written = os.write(self._index, data)
            if written != len(data):
                raise OSError(f"short write to {self.index_path}")
        except OSError:
            try:
                os.ftruncate(self._index, self._index_size)
            except OSError:
                pass
            raise
        self._index_size += len(data)

    def count_error(self) -> None:
        if self.chunks:
            self.fixed[SLOT_FILE_ERRORS] += 1.0

    def close(self) -> None:
        """Unmap and close (the lock goes with the descriptor). Views handed out must be gone."""
        for view in self.chunks:
            view.release()
        self.chunks.clear()
        for mapped in self._maps:
            try:
                mapped.close()
            except BufferError:
                pass  # a series still holds a view; the mapping goes with the process
        self._maps.clear()
        for fd in (self._fd, getattr(self, "_index", -1)):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._fd = -1
        self._index = -1

    def abandon(self) -> None:
        """After fork, in the child: let go of the parent's file without touching its data."""
        self.chunks.clear()
        self._maps.clear()
        for fd in (self._fd, self._index):
            try:
                os.close(fd)
            except OSError:
                pass


@dataclass
class WorkerRecords:
    """What a reader got from one worker's files (or a retired file,
    :mod:`asgi_monitor.store.compaction`)."""

    path: str  # the values file
    live: bool
    header: dict[str, Any]
    records: list[list[Any]]
    values: memoryview[float]  # the slots the records name, as float64
    started: float = field(default=0.0)
    bad: int = 0  # records skipped as malformed
    # A retired file: the worker files whose counts it already holds (their names).
    holds: frozenset[str] = frozenset()
    retired: bool = False


def worker_files(directory: str) -> list[str]:
    """The values files in ``directory``, oldest worker first (by name for equal times)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(os.path.join(directory, name) for name in names
                  if name.startswith(PREFIX) and name.endswith(".values"))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")  # NaN, Infinity: never written by a worker


def _slot(value: Any) -> bool:
    return type(value) is int and 0 <= value < MAX_SLOT


def _strings(value: Any) -> bool:
    return type(value) is list and all(type(item) is str for item in value)


def _scheme(value: Any) -> bool:
    """A request record's scheme, or ``[scheme, request label values...]``."""
    return type(value) is str or (_strings(value) and len(value) >= 1)


def request_key(scheme: str | list[str]) -> tuple[str, tuple[str, ...]]:
    """A valid request record's scheme field as (scheme, request label values)."""
    if type(scheme) is str:
        return scheme, ()
    return scheme[0], tuple(scheme[1:])


def _bounds(value: Any) -> bool:
    return (type(value) is list and all(type(b) in (int, float) and math.isfinite(b)
                                        for b in value)
            and all(a < b for a, b in zip(value, value[1:], strict=False)))


# Every byte below 0x7f: the high byte of a float64 that is >= 0 and finite (the sign bit and the
# exponent's top bits are there), bar the huge ones no count reaches.
_LOW_HIGH_BYTES = bytes(range(0x7F))


def counts_sane(values: memoryview[float] | array[float]) -> bool:
    """Whether every value is a count: finite and >= 0. C-speed: the float64s' high bytes are
    sliced out and any at 0x7f or above (negative, NaN, infinite, or past 2**1023) fails."""
    data = values.tobytes()
    return not data[7::8].translate(None, _LOW_HIGH_BYTES)


def _native(value: Any) -> bool:
    return value is None or (
        type(value) is list and len(value) == 4 and type(value[0]) is int
        and -4 <= value[0] <= 8 and type(value[1]) is int and abs(value[1]) < 1 << 20
        and type(value[2]) is int and 1 <= value[2] <= _NATIVE_WIDTH_LIMIT
        and type(value[3]) in (int, float) and math.isfinite(value[3]) and value[3] >= 0)


def valid_header(header: Any) -> bool:
    """A worker file's first record, as :class:`WorkerFile` writes it."""
    if type(header) is not dict or header.get("version") != VERSION:
        return False
    if not _native(header.get("native")):
        return False
    reserved = header.get("reserved")
    started = header.get("started")
    return (type(header.get("pid")) is int and type(header.get("ppid")) is int
            and isinstance(started, (int, float)) and math.isfinite(started)
            and all(_bounds(header.get(name))
                    for name in ("duration_buckets", "size_buckets", "websocket_buckets"))
            and type(reserved) is dict
            and all(type(k) is str and _slot(v) for k, v in reserved.items()))


def valid_record(record: Any) -> bool:
    """An index record after the header: a request block (``r``), a WebSocket route's (``w``),
    a stream route's (``s``: method, route) or a custom metric's value (``v``), each ending
    with its first slot."""
    if type(record) is not list or not record:
        return False
    kind = record[0]
    if kind == "r":
        return (len(record) == 6 and type(record[1]) is str and type(record[2]) is str
                and type(record[3]) is int and 0 <= record[3] < _STATUS_LIMIT
                and _scheme(record[4]) and _slot(record[5]) and record[5] >= FIXED_SLOTS)
    if kind == "w":
        return (len(record) == 3 and type(record[1]) is str and _slot(record[2])
                and record[2] >= FIXED_SLOTS)
    if kind == "s":
        return (len(record) == 4 and type(record[1]) is str and type(record[2]) is str
                and _slot(record[3]) and record[3] >= FIXED_SLOTS)
    if kind == "v":
        # Names go into the exposition unescaped: they must be names.
        return (len(record) == 9 and record[1] in _KINDS and type(record[2]) is str
                and type(record[3]) is str and _METRIC.fullmatch(record[3]) is not None
                and type(record[4]) is str and _METRIC.fullmatch(record[4]) is not None
                and _strings(record[5]) and _strings(record[6])
                and all(_LABEL.fullmatch(name) for name in record[5])
                and len(record[5]) == len(record[6]) and type(record[7]) is str
                and _slot(record[8]) and record[8] >= FIXED_SLOTS
                and (record[1] != "histogram" or not record[4].endswith("_bucket")
                     or (record[5][-1:] == ["le"] and _bound(record[6][-1]))))
    return False


def _bound(text: str) -> bool:
    try:
        return not math.isnan(float(text))
    except ValueError:
        return False


def parse_records(data: bytes, *, first: bool = False) -> tuple[list[Any], int, int, bool]:
    """The whole, valid records in ``data``: (records, bytes consumed, records skipped as
    malformed, whether to stop reading this file). An incomplete tail is left for the next read;
    a length past :data:`MAX_RECORD` stops the file there (its framing can no longer be trusted).
    With ``first``, the first record must be a header (:func:`valid_header`) and the whole file
    is refused (:class:`ValueError`) when it is not."""
    out: list[Any] = []
    at = bad = 0
    while at + 4 <= len(data):
        (size,) = _LENGTH.unpack_from(data, at)
        if size > MAX_RECORD:
            if first and at == 0:
                raise ValueError("header too large")
            return out, len(data), bad + 1, True
        if at + 4 + size > len(data):
            break  # a record being appended right now
        try:
            record = json.loads(data[at + 4:at + 4 + size], parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            record = None
        if first and at == 0:
            if not valid_header(record):
                raise ValueError("bad header")
            out.append(record)
        elif valid_record(record):
            out.append(record)
        else:
            bad += 1
        at += 4 + size
    return out, at, bad, False


class IndexCache:
    """Index files already parsed, by path: an index is append-only, so a reader that read it
    before parses only what was appended since (a scrape then allocates nothing for the series
    it already knows). A file replaced under the same name (another inode) is read again."""

    def __init__(self) -> None:
        # path -> (inode, bytes parsed, records so far, records skipped, stopped, slots named)
        self._known: dict[str, tuple[tuple[int, int], int, list[Any], int, bool, int]] = {}

    def records(self, index_path: str) -> tuple[list[Any], int, int]:
        """The valid records so far, how many were skipped and how many values slots they name
        (:func:`slots_named`); raises :class:`Untrusted` for a file the reader refuses, OSError
        when it cannot be read."""
        fd, size = open_untrusted(index_path, MAX_INDEX)
        try:
            info = os.fstat(fd)
            inode = (info.st_dev, info.st_ino)
            known = self._known.get(index_path)
            if known is None or known[0] != inode:
                known = (inode, 0, [], 0, False, 0)
            _, parsed, records, bad, stopped, end = known
            if stopped:
                return records, bad, end
            data = read_fd(fd, size, offset=parsed)
        finally:
            os.close(fd)
        try:
            more, used, skipped, stop = parse_records(data, first=parsed == 0)
        except ValueError:
            raise Untrusted(index_path, "bad_header") from None
        if more or used or stop:
            # A new list, never appended to in place: another thread may be reading the old one.
            records = [*records, *more] if more else records
            if records:
                end = max(end, slots_named(records[0], more[1:] if parsed == 0 else more))
            self._known[index_path] = (inode, parsed + used, records, bad + skipped, stop, end)
            bad += skipped
        return records, bad, end

    def keep(self, values_paths: list[str]) -> None:
        """Forget the files no longer in the directory."""
        present = {path[:-len(".values")] + ".index" for path in values_paths}
        for path in [path for path in self._known if path not in present]:
            self._known.pop(path, None)


def slots_named(header: dict[str, Any], records: list[list[Any]]) -> int:
    """How many slots of the values file ``records`` name: a reader reads no more (a sparse or
    padded file costs it nothing)."""
    block = request_block_slots(len(header["duration_buckets"]), len(header["size_buckets"]),
                                header.get("native"))
    ws_block = websocket_block_slots(len(header["websocket_buckets"]))
    stream_block = stream_block_slots(len(header["websocket_buckets"]))
    reserved = header["reserved"]
    end = max(FIXED_SLOTS, reserved.get("r", 0) + block, reserved.get("w", 0) + ws_block)
    for record in records:
        kind = record[0]
        size = (block if kind == "r" else ws_block if kind == "w"
                else stream_block if kind == "s" else 2)
        end = max(end, record[-1] + size)
    return int(end)


def read_worker(values_path: str, indexes: IndexCache | None = None) -> WorkerRecords | None:
    """One worker's records and values; None if its files are not (yet, or any more) readable.
    Raises :class:`Untrusted` for a file a reader must refuse."""
    index_path = values_path[:-len(".values")] + ".index"
    try:
        if indexes is not None:
            records, bad, end = indexes.records(index_path)
        else:
            records, bad, end = IndexCache().records(index_path)
        if not records:
            return None  # the header is being written
        header = records[0]
        # Read after the index: every slot an index record names was reserved before it.
        fd, size = open_untrusted(values_path, MAX_VALUES)
        try:
            live = not _lock(fd, exclusive=False)
            data = read_fd(fd, size, limit=_DOUBLE * end)
        finally:
            os.close(fd)
    except Untrusted:
        raise
    except OSError:
        return None
    data = data[:len(data) - len(data) % _DOUBLE]
    return WorkerRecords(values_path, live, header, records[1:], memoryview(data).cast("d"),
                         float(header["started"]), bad)
