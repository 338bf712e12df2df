"""The sender's alerts as a file: under several workers the worker that evaluates writes its
active alerts and history there, and the others mirror them (``AlertManager.follow``), so the
alerts API answers the same in every worker and a worker that takes over carries on.

The file sits in the shared directory, so it is written through a fresh temporary name and read
as untrusted input (alerting/files.py): a reader sees the old state or the new one, never half
of one, and a planted file is refused, not waited on or written through.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass

from .files import read_owned, write_atomically
from .history import MAX_LINE_BYTES
from .models import Alert

__all__ = ["Published", "publish", "read_published"]


@dataclass(frozen=True)
class Published:
    """One read of the sender's state file."""

    seen: tuple[int, int]  # the file's (mtime_ns, size)
    active: list[Alert]
    history: list[Alert]


def publish(path: str, active: Iterable[Alert], history: Iterable[Alert]) -> None:
    data = {"active": [a.to_dict() for a in active], "history": [a.to_dict() for a in history]}
    write_atomically(path, json.dumps(data, separators=(",", ":")).encode("utf-8"))


def read_published(path: str, seen: tuple[int, int] | None, alerts: int) -> Published | None:
    """The file's alerts, or None when it is unchanged since ``seen``; at most ``alerts`` of
    them fit under its size cap. Raises what a missing, planted or malformed file raises."""
    stat = os.lstat(path)
    now = (stat.st_mtime_ns, stat.st_size)
    if now == seen:
        return None
    data = json.loads(read_owned(path, alerts * MAX_LINE_BYTES))
    return Published(now, [Alert.from_dict(d) for d in data["active"]],
                     [Alert.from_dict(d) for d in data["history"]])
