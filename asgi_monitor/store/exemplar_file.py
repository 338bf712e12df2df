"""A worker's exemplars under several workers: a side file of fixed-size slots, and its reader.

Beside its ``.values`` and ``.index`` files (:mod:`asgi_monitor.store.worker_file`), a worker
that records an exemplar creates ``asgi_monitor_<pid>_<token>.exemplars``: one slot per (request
series, duration bucket) that ever got one, overwritten in place by the bucket's next exemplar,
so each slot holds the latest, as the single-process store keeps it. A worker that never records
an exemplar (the hook off, or never answering) has no such file and pays nothing.

Why a side file of slots rather than records in the index or slots in the values file: the
values file holds float64 counts (a label text does not fit its slots, nor its sanity check),
and the append-only index would grow by a record per request. A slot is written in place in a
memory mapping, with no system call, like a count; a new slot costs a chunk reservation once per
:data:`~asgi_monitor.store.worker_file.CHUNK` bytes.

A slot (little-endian)::

    done   u32   write sequence, set last
    series i64   the request series: its block's first slot in the values file
    bucket u32   duration bucket (+Inf last)
    length u32   bytes of label text used
    value  f64   the observed duration
    time   f64   unix time
    text   512 bytes: per label, name length (u8), value length (u16), name, value (UTF-8)
    crc    u32   crc32 of series .. the text's ``length`` bytes
    start  u32   the same sequence as done, set first

A seqlock in two counters: a reader copies the slot front to back (``read`` does), so it reads
``done`` before the body and ``start`` after it; equal, no write overlapped its copy. A reader
reads the file (never maps it) and takes a slot only when ``done == start`` (a slot being
rewritten has them differ; it is skipped this time, uncounted), its crc matches, and every
field is in range: the series one of the worker's request blocks, the bucket one of its bounds
and the value inside it, the labels valid OpenMetrics exemplar labels
(:func:`asgi_monitor.exemplars.exemplar_problem`). Anything else is a bad record, counted with the
others. 512 bytes hold any label set OpenMetrics allows (128 characters, names ASCII, so at most
512 bytes with the lengths).
"""

from __future__ import annotations

import math
import mmap
import os
import struct
import zlib
from collections.abc import Mapping, Sequence

from ..exemplars import exemplar_problem
from .families import Kept
from .safe_open import open_untrusted, read_fd
from .worker_file import CHUNK, reserve_space

__all__ = ["MAX_EXEMPLARS", "SLOT", "TEXT", "ExemplarFile", "decode_labels", "encode_labels",
           "exemplars_path", "read_exemplars"]

TEXT = 512
_HEAD = struct.Struct("<IqIIdd")
_FIELDS = struct.Struct("<qIIdd")  # the head after its sequence number
_TAIL = struct.Struct("<II")
_U32 = struct.Struct("<I")
SLOT = _HEAD.size + TEXT + _TAIL.size
_PER_CHUNK = CHUNK // SLOT  # a slot never straddles two chunks
MAX_EXEMPLARS = 8 * 1024 * 1024  # bytes of one exemplars file (a multiple of CHUNK)
_LENGTHS = struct.Struct("<BH")


def exemplars_path(values_path: str) -> str:
    """The exemplars file of the worker whose values file is ``values_path``."""
    return values_path[:-len(".values")] + ".exemplars"


def encode_labels(labels: Mapping[str, str]) -> bytes | None:
    """The label text of a slot; None when it does not fit (never, for valid labels)."""
    text = bytearray()
    for name, value in labels.items():
        raw_name = name.encode("utf-8")
        raw_value = value.encode("utf-8")
        if len(raw_name) > 255 or len(raw_value) > TEXT:
            return None
        text += _LENGTHS.pack(len(raw_name), len(raw_value))
        text += raw_name
        text += raw_value
    return bytes(text) if len(text) <= TEXT else None


def decode_labels(text: bytes) -> dict[str, str] | None:
    """The labels of a slot's text, or None when it is not one :func:`encode_labels` writes or
    the labels are not valid exemplar labels."""
    labels: dict[str, str] = {}
    at = 0
    try:
        while at < len(text):
            name_length, value_length = _LENGTHS.unpack_from(text, at)
            at += _LENGTHS.size
            name = text[at:at + name_length].decode("ascii")
            at += name_length
            value = text[at:at + value_length].decode("utf-8")
            at += value_length
            if at > len(text) or name in labels:
                return None
            labels[name] = value
    except (struct.error, UnicodeDecodeError):
        return None
    found, problem = exemplar_problem(labels)
    return found if problem is None else None


class ExemplarFile:
    """This worker's exemplar slots: one per (series, bucket), made on first use.

    Only the event loop thread of one process writes. Raises OSError when the file cannot be
    created; :meth:`keep` raises OSError when a new slot finds no space."""

    def __init__(self, values_path: str) -> None:
        self.path = exemplars_path(values_path)
        self._slots: dict[tuple[int, int], int] = {}
        self._maps: list[mmap.mmap] = []
        self._sequence: list[int] = []
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        self._fd = os.open(self.path, flags, 0o600)

    def keep(self, series: int, bucket: int, value: float, stamp: float,
             labels: Mapping[str, str]) -> None:
        """Write the latest exemplar of ``series``' duration bucket ``bucket``."""
        text = encode_labels(labels)
        if text is None:
            return
        slot = self._slots.get((series, bucket))
        if slot is None:
            slot = self._new_slot()
            self._slots[(series, bucket)] = slot
        mapped = self._maps[slot // _PER_CHUNK]
        at = (slot % _PER_CHUNK) * SLOT
        sequence = self._sequence[slot] = (self._sequence[slot] + 1) & 0xFFFFFFFF or 1
        # start (at the slot's end) first, done (at its front) last: a reader copying the slot
        # meanwhile sees them differ.
        _U32.pack_into(mapped, at + SLOT - 4, sequence)
        body = _FIELDS.pack(series, bucket, len(text), value, stamp) + text
        mapped[at + 4:at + 4 + len(body)] = body  # the text past ``length`` is never read
        _U32.pack_into(mapped, at + _HEAD.size + TEXT, zlib.crc32(body))
        _U32.pack_into(mapped, at, sequence)

    def _new_slot(self) -> int:
        slot = len(self._sequence)
        if slot == len(self._maps) * _PER_CHUNK:
            offset = len(self._maps) * CHUNK
            if self._fd < 0:
                raise OSError(f"{self.path} is closed")
            if offset + CHUNK > MAX_EXEMPLARS:
                raise OSError(f"{self.path} reached the format's {MAX_EXEMPLARS} bytes")
            reserve_space(self._fd, offset, CHUNK)  # before mapping: no SIGBUS on a full disk
            self._maps.append(mmap.mmap(self._fd, CHUNK, offset=offset))
        self._sequence.append(0)
        return slot

    def close(self) -> None:
        for mapped in self._maps:
            mapped.close()
        self.abandon()

    def abandon(self) -> None:
        """After fork, in the child: let go of the parent's file without touching its data
        (a mapping is left to the process' end: closing it is safe, but not needed)."""
        self._maps = []
        self._slots = {}
        self._sequence = []
        if self._fd >= 0:
            try:
                os.close(self._fd)
            except OSError:
                pass
        self._fd = -1


def read_exemplars(path: str, bounds: Sequence[float]) -> tuple[list[tuple[int, int, Kept]], int]:
    """The exemplars in ``path`` as (series slot, bucket, kept), and how many slots were bad.
    ``bounds``: the worker's duration bucket bounds. No file: none. The caller checks that each
    series slot is one of the worker's request blocks. Raises
    :class:`~asgi_monitor.store.safe_open.Untrusted` for a file a reader must refuse."""
    try:
        fd, size = open_untrusted(path, MAX_EXEMPLARS)
    except FileNotFoundError:
        return [], 0
    try:
        data = read_fd(fd, size)
    finally:
        os.close(fd)
    found: list[tuple[int, int, Kept]] = []
    bad = 0
    edges = (0.0, *bounds, math.inf)
    for chunk in range(0, len(data), CHUNK):
        for at in range(chunk, min(chunk + _PER_CHUNK * SLOT, len(data) - SLOT + 1), SLOT):
            done, slot, bucket, length, value, stamp = _HEAD.unpack_from(data, at)
            crc, start = _TAIL.unpack_from(data, at + _HEAD.size + TEXT)
            if done != start:
                continue  # being written as we read: next time
            if done == 0:
                if data[at:at + SLOT].strip(b"\0"):
                    bad += 1  # no write began before our copy, yet the slot is not empty
                continue
            if (length > TEXT or zlib.crc32(data[at + 4:at + _HEAD.size + length]) != crc
                    or not bucket < len(edges) - 1 or not math.isfinite(value)
                    or not edges[bucket] <= value <= edges[bucket + 1]
                    or (bucket > 0 and value == edges[bucket])
                    or not (math.isfinite(stamp) and stamp > 0)):
                bad += 1
                continue
            text = at + _HEAD.size
            labels = decode_labels(data[text:text + length])
            if labels is None:
                bad += 1
                continue
            found.append((slot, bucket, (labels, value, stamp)))
    return found, bad
