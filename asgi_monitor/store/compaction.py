"""Dead workers' files folded into one retired file, so the directory stays small.

A server that recycles its workers (gunicorn ``max_requests``) leaves a pair of files per dead
worker, and every read of the directory reads them all. Whichever worker holds the compaction
lock (a non-blocking ``flock``: nobody ever waits for it) folds the files of dead workers (no
``flock`` on them) into ``asgi_monitor_retired_<layout>.data``, one file per bucket layout:

- counters and histograms (request blocks, WebSocket routes, custom counters and histograms, the
  file-error and unrecorded counts) are summed;
- live gauges (requests in progress, WebSockets open, custom ``live*`` gauges) of dead workers
  are dropped, as the merge drops them; other custom gauges keep their merge rule (``mostrecent``:
  the value set last, with its time);
- every series keeps the place where it first appeared (its worker's start time and file name,
  its position there), so the merge's cap gives the same series their labels as before.

Crash safety, with a SIGKILL possible at any step: the new retired file is written aside
(``mkstemp`` in the directory), fsynced, then renamed over the old one; only then are the folded
files removed. The retired file lists the files it holds (``holds``), so after a crash between the
rename and the removals a reader skips the files it already holds and the next compaction removes
them: no count is lost or counted twice. A reader reads the retired file after the worker files
(:meth:`asgi_monitor.store.merge.MergedFiles._workers`): a worker file removed meanwhile is then in
the retired file it reads.

The retired file: a 4-byte little-endian length and a JSON header (a worker header plus
``generation``, ``holds`` and ``order``, the table of the folded files' start times and names),
the same for a JSON list of records (a worker's, plus for ``r`` and ``w`` records their first
place: an index into ``order`` and a position), zeros up to a multiple of 8 bytes, then the
float64 values.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import struct
import sys
import tempfile
import threading
import time
from array import array
from collections.abc import Callable, Sequence
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
    read_worker,
    request_block_slots,
    valid_header,
    valid_record,
    websocket_block_slots,
    worker_files,
)

__all__ = ["COMPACT_AFTER", "Compactor", "RetiredCache", "read_retired", "retired_files"]

logger = logging.getLogger("asgi_monitor")

RETIRED_PREFIX = f"{PREFIX}retired_"
RETIRED_SUFFIX = ".data"
LOCK_NAME = f"{PREFIX}compaction.lock"
TEMP_PREFIX = f".{PREFIX}compacting_"
COMPACT_AFTER = 4  # dead worker files tolerated before a read asks for a compaction
# A folded file's name stays in ``holds`` this long after it was removed: a read that listed it
# just before its removal still finds it there when it reads the retired file.
HOLD_SECONDS = 600.0
MAX_RETIRED = MAX_INDEX + MAX_VALUES
_LENGTH = struct.Struct("<I")

# A test's view of each step: called with "written", "renamed", "removing", "removed".
Hook = Callable[[str], None]


def retired_files(directory: str) -> list[str]:
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(os.path.join(directory, name) for name in names
                  if name.startswith(RETIRED_PREFIX) and name.endswith(RETIRED_SUFFIX))


def layout_name(header: dict[str, Any]) -> str:
    """A short name for a bucket layout: files of one layout fold into one retired file."""
    key = json.dumps([header["duration_buckets"], header["size_buckets"],
                      header["websocket_buckets"]])
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
        # r and w records carry their first place (order index, position) after the slot.
        if type(record) is list and record and record[0] in ("r", "w"):
            cut = 6 if record[0] == "r" else 3
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


class _Fold:
    """The folded content: every series summed, with its first place."""

    def __init__(self, header: dict[str, Any]) -> None:
        self.header = header
        self.block = request_block_slots(len(header["duration_buckets"]),
                                         len(header["size_buckets"]))
        self.ws_block = websocket_block_slots(len(header["websocket_buckets"]))
        self.started = math.inf
        self.order: dict[tuple[float, str], int] = {}
        # key -> [values, place]
        self.requests: dict[tuple[Any, ...], tuple[array[float], tuple[float, str, int]]] = {}
        self.sockets: dict[str, tuple[array[float], tuple[float, str, int]]] = {}
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
            if kind not in ("r", "w"):
                continue
            if order is not None:
                cut = 6 if kind == "r" else 3
                started, source = order[record[cut]]
                place = (float(started), source, record[cut + 1])
                record = record[:cut]
            else:
                place = (worker.started, name, position)
            size = self.block if kind == "r" else self.ws_block
            slot = record[-1]
            piece = values[slot:slot + size]
            if len(piece) < size or not _sane(piece):
                continue  # the merge leaves it out too
            table = self.requests if kind == "r" else self.sockets
            key: Any = tuple(record[1:-1]) if kind == "r" else record[1]
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
            records.append(["r", *key, len(slots), *place(where)])
            slots.extend(block)
        for route, (block, where) in sorted(self.sockets.items(), key=lambda item: item[1][1]):
            records.append(["w", route, len(slots), *place(where)])
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


class Compactor:
    """Folds the dead workers' files in ``directory`` of this process' bucket layout."""

    def __init__(self, directory: str, layout: dict[str, Any]) -> None:
        self.directory = directory
        self._layout = layout  # the bucket lists, as a worker's header has them
        self.retired_path = os.path.join(
            directory, f"{RETIRED_PREFIX}{layout_name(layout)}{RETIRED_SUFFIX}")
        self._running = threading.Lock()
        self._lock_fd = -1
        self._refused = False
        if hasattr(os, "register_at_fork"):
            # A child must not keep the parent's lock (flock belongs to the open file, which a
            # fork shares): it would hold it as long as it lives.
            os.register_at_fork(after_in_child=self._forget_lock)

    def _forget_lock(self) -> None:
        if self._lock_fd >= 0:
            try:
                os.close(self._lock_fd)
            except OSError:
                pass
            self._lock_fd = -1

    def request(self) -> None:
        """Compact in a thread of its own, unless one is running: never waits."""
        if sys.platform == "win32" or self._running.locked():
            return
        threading.Thread(target=self._background, name="asgi-monitor-compaction",
                         daemon=True).start()

    def _background(self) -> None:
        try:
            self.compact()
        except Exception:  # a failed compaction leaves the files as they were
            logger.exception("compacting %s failed; dead workers' files stay", self.directory)

    def compact(self, hook: Hook | None = None) -> int:
        """Fold now, if this process gets the lock: the number of files folded (0 when another
        process holds the lock or nothing is dead). Never blocks on the lock."""
        if sys.platform == "win32" or not self._running.acquire(blocking=False):
            return 0
        try:
            fd = self._take_lock()
            if fd < 0:
                return 0
            self._lock_fd = fd
            try:
                return self._compact(fd, hook)
            finally:
                self._lock_fd = -1
                os.close(fd)
        finally:
            self._running.release()

    def _take_lock(self) -> int:
        if sys.platform == "win32":
            return -1
        import fcntl

        path = os.path.join(self.directory, LOCK_NAME)
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK
        try:
            fd = os.open(path, flags, 0o600)  # never truncated: it holds nothing
        except OSError:
            return -1
        try:
            info = os.fstat(fd)
            if (not _regular_ours(info) or not _same_file(path, info)):
                raise OSError("not our lock file")
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if not _same_file(path, info):
                raise OSError("lock file replaced")  # deleted and made again: not the lock
        except OSError:
            os.close(fd)
            return -1
        return fd

    def _compact(self, lock: int, hook: Hook | None) -> int:
        now = time.time()
        try:
            old = read_retired(self.retired_path)
        except Untrusted as exc:
            # Never folded into nor replaced: the merge skips and counts it; its counts are
            # lost only if someone removes it.
            if not self._refused:
                self._refused = True
                logger.error("%s cannot be read (%s): dead workers' files are not folded "
                             "until it is removed", self.retired_path, exc.reason)
            return 0
        holds: dict[str, float] = dict(old.header["holds"]) if old is not None else {}
        names = os.listdir(self.directory)
        for name in names:
            if name.startswith(TEMP_PREFIX):  # a compaction killed before its rename
                _remove(os.path.join(self.directory, name))
            elif (name.endswith(".index") and name[:-len(".index")] + ".values" in holds
                  and name[:-len(".index")] + ".values" not in names):
                _remove(os.path.join(self.directory, name))  # killed between the two unlinks
        generation = int(old.header["generation"]) if old is not None else 0
        fold = _Fold(self._layout)
        if old is not None:
            fold.add(old)
        dead: list[WorkerRecords] = []
        leftovers: list[str] = []
        present = set()
        for path in worker_files(self.directory):
            name = os.path.basename(path)
            present.add(name)
            if name in holds:
                leftovers.append(path)  # folded already; its removal was cut short
                continue
            try:
                worker = read_worker(path)
            except Untrusted:
                continue  # the merge skips and counts it; it is not ours to remove
            if worker is None or worker.live or worker.retired:
                continue
            if not all(worker.header[k] == self._layout[k] for k in self._layout):
                continue  # another layout: the merge leaves it out and warns
            dead.append(worker)
            fold.add(worker)
        if not dead:
            self._remove_workers(leftovers, hook)
            return 0
        for name, when in list(holds.items()):
            if name not in present and now - when > HOLD_SECONDS:
                del holds[name]
        for worker in dead:
            holds[os.path.basename(worker.path)] = now
        data = fold.render(generation + 1, holds)
        if len(data) > MAX_RETIRED:
            logger.error("%s would pass the format's size; dead workers' files stay",
                         self.retired_path)
            return 0
        handle, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=self.directory)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            if hook is not None:
                hook("written")
            # Another compactor (a lock file deleted and made again) or a changed retired file:
            # give up rather than overwrite what it folded.
            current = read_retired(self.retired_path)
            if ((current.header["generation"] if current is not None else 0) != generation
                    or not _same_file(os.path.join(self.directory, LOCK_NAME), os.fstat(lock))):
                _remove(temp)
                return 0
            os.replace(temp, self.retired_path)
        except BaseException:
            _remove(temp)
            raise
        _sync_directory(self.directory)
        if hook is not None:
            hook("renamed")
        self._remove_workers([*leftovers, *(worker.path for worker in dead)], hook)
        return len(dead)

    def _remove_workers(self, paths: list[str], hook: Hook | None) -> None:
        for path in paths:
            # The values file first: without it the merge no longer lists the pair.
            _remove(path)
            if hook is not None:
                hook("removing")
            _remove(path[:-len(".values")] + ".index")
        if hook is not None:
            hook("removed")


def _regular_ours(info: os.stat_result) -> bool:
    import stat

    if sys.platform == "win32":
        return stat.S_ISREG(info.st_mode)
    return stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid()


def _same_file(path: str, info: os.stat_result) -> bool:
    try:
        now = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    return (now.st_dev, now.st_ino) == (info.st_dev, info.st_ino)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _sync_directory(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
