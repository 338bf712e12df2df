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
other record gives one series' key and its first slot. A record is a 4-byte little-endian length
and that many bytes of JSON, appended with one ``write``; a reader ignores an incomplete tail.

Liveness: the writer holds an exclusive ``flock`` on its values file for its whole life; a reader
whose non-blocking shared lock succeeds knows the writer is gone (a SIGKILL releases it too).
Windows has no ``flock``: there every file reads as live.
"""

from __future__ import annotations

import json
import mmap
import os
import secrets
import struct
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CHUNK", "FIXED_SLOTS", "PREFIX", "SLOT_FILE_ERRORS", "SLOT_IN_PROGRESS", "SLOT_WS_ACTIVE",
    "VERSION", "IndexCache", "WorkerFile", "WorkerRecords", "read_worker", "worker_files",
]

VERSION = 1
PREFIX = "asgi_monitor_"
CHUNK = 64 * 1024  # a multiple of every platform's mmap granularity (64 KiB on Windows)
SLOT_IN_PROGRESS = 0  # 10 slots: the standard methods and OTHER, in STANDARD_METHODS order
SLOT_WS_ACTIVE = 10
SLOT_FILE_ERRORS = 11  # times this worker failed to reserve space or append to its index
FIXED_SLOTS = 16
_LENGTH = struct.Struct("<I")
_DOUBLE = 8


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


def _reserve(fd: int, offset: int, length: int) -> None:
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
        self._fd = os.open(self.values_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
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
                                  os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
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
        _reserve(self._fd, offset, CHUNK)  # raises before anything is mapped
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

    def new_block(self, slots: int, record: list[Any]) -> tuple[memoryview[float], int]:
        """Reserve ``slots`` slots and index them under ``record`` (the slot number is appended
        to it), under the lock: custom metrics may be created from other threads. Raises OSError
        when no space can be had; the error is counted in the file's fixed slot."""
        with self.lock:
            try:
                view, first, number = self.allocate(slots)
                self.append([*record, number])
            except OSError:
                self.count_error()
                raise
            return view, first

    def append(self, record: Sequence[Any] | dict[str, Any]) -> None:
        """Append one index record with a single write; on failure the index is cut back to
        its last whole record (so later records still parse) and OSError propagates."""
        payload = json.dumps(record, separators=(",", ":")).encode()
        data = _LENGTH.pack(len(payload)) + payload
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
    """What a reader got from one worker's files."""

    path: str  # the values file
    live: bool
    header: dict[str, Any]
    records: list[list[Any]]
    values: memoryview[float]  # every slot of the values file, as float64
    started: float = field(default=0.0)


def worker_files(directory: str) -> list[str]:
    """The values files in ``directory``, oldest worker first (by name for equal times)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(os.path.join(directory, name) for name in names
                  if name.startswith(PREFIX) and name.endswith(".values"))


def _records(data: bytes) -> tuple[list[Any], int]:
    """The whole records in ``data`` and the bytes they take (an incomplete tail is left)."""
    out: list[Any] = []
    at = 0
    while at + 4 <= len(data):
        (size,) = _LENGTH.unpack_from(data, at)
        if at + 4 + size > len(data):
            break  # a record being appended right now
        try:
            out.append(json.loads(data[at + 4:at + 4 + size]))
        except ValueError:
            break
        at += 4 + size
    return out, at


class IndexCache:
    """Index files already parsed, by path: an index is append-only, so a reader that read it
    before parses only what was appended since (a scrape then allocates nothing for the series
    it already knows)."""

    def __init__(self) -> None:
        # path -> (bytes parsed, records so far)
        self._known: dict[str, tuple[int, list[Any]]] = {}

    def records(self, index_path: str) -> list[Any]:
        parsed, records = self._known.get(index_path, (0, []))
        with open(index_path, "rb") as index:
            index.seek(parsed)
            more, used = _records(index.read())
        if more:
            # A new list, never appended to in place: another thread may be reading the old one.
            records = [*records, *more]
            self._known[index_path] = (parsed + used, records)
        return records

    def keep(self, values_paths: list[str]) -> None:
        """Forget the files no longer in the directory."""
        present = {path[:-len(".values")] + ".index" for path in values_paths}
        for path in [path for path in self._known if path not in present]:
            self._known.pop(path, None)


def read_worker(values_path: str, indexes: IndexCache | None = None) -> WorkerRecords | None:
    """One worker's records and values, or None if its files are not (yet) readable."""
    index_path = values_path[:-len(".values")] + ".index"
    try:
        if indexes is not None:
            records = indexes.records(index_path)
        else:
            with open(index_path, "rb") as index:
                records, _ = _records(index.read())
        # Read after the index: every slot an index record names was reserved before it.
        fd = os.open(values_path, os.O_RDONLY)
        try:
            live = not _lock(fd, exclusive=False)
            size = os.fstat(fd).st_size
            data = os.read(fd, size) if size else b""
            while len(data) < size:
                more = os.read(fd, size - len(data))
                if not more:
                    break
                data += more
        finally:
            os.close(fd)
    except OSError:
        return None
    if not records or not isinstance(records[0], dict) or records[0].get("version") != VERSION:
        return None
    data = data[:len(data) - len(data) % _DOUBLE]
    header = records[0]
    return WorkerRecords(values_path, live, header, records[1:], memoryview(data).cast("d"),
                         float(header.get("started", 0.0)))
