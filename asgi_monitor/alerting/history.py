"""Alert history: bounded in memory, optionally appended to a JSON-lines file.

Each state change of an alert (fired, notified, resolved) appends the alert's full record as one
line; reading the file back keeps the last line of each alert id, so a restart loses nothing. The
file is compacted (rewritten with one line per alert) when it grows past twice the history size.
A write failure is reported to ``on_error`` (logged and counted there), never raised: alerting
must keep working on a full disk.

The file may sit in a directory others can write: it is read and appended as untrusted input
(alerting/files.py: no symlink followed, a regular file of ours only, read under a size cap) and
compacted through a fresh temporary name.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Callable, Iterator

from .files import open_owned, read_owned, write_atomically
from .models import Alert

__all__ = ["MAX_LINE_BYTES", "AlertHistory"]

# One alert's line: its fields and at most 100 notification outcomes, a few hundred bytes each.
MAX_LINE_BYTES = 64 << 10

ErrorHook = Callable[[str, BaseException], None]


class AlertHistory:
    """Fired and resolved alerts, oldest first, at most ``size`` of them."""

    def __init__(self, size: int = 1000, path: str | None = None,
                 on_error: ErrorHook | None = None) -> None:
        self.size = size
        self.path = path or None
        self._on_error = on_error
        self._alerts: OrderedDict[str, Alert] = OrderedDict()
        self._lines = 0
        if self.path is not None:
            self._load(self.path)

    def __iter__(self) -> Iterator[Alert]:
        return iter(list(self._alerts.values()))

    def __len__(self) -> int:
        return len(self._alerts)

    def record(self, alert: Alert) -> None:
        """Add or update ``alert`` (by id) and append it to the file."""
        if alert.id not in self._alerts:
            self._alerts[alert.id] = alert
            while len(self._alerts) > self.size:
                self._alerts.popitem(last=False)
        if self.path is None:
            return
        try:
            _append(self.path, json.dumps(alert.to_dict(), separators=(",", ":")) + "\n")
            self._lines += 1
            if self._lines > 2 * self.size:
                self._compact(self.path)
        except (OSError, TypeError, ValueError) as exc:
            self._report("alert_history_write", exc)

    def replace(self, alerts: list[Alert]) -> None:
        """Mirror another process' history (see ``AlertManager.follow``), writing nothing."""
        self._alerts = OrderedDict((a.id, a) for a in alerts[-self.size:])

    def _load(self, path: str) -> None:
        try:
            # The file is compacted past twice the history size (plus a line being appended).
            limit = (2 * self.size + 2) * MAX_LINE_BYTES
            lines = read_owned(path, limit).decode("utf-8").splitlines(keepends=True)
        except FileNotFoundError:
            return
        except (OSError, UnicodeDecodeError) as exc:
            self._report("alert_history_read", exc)
            return
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                alert = Alert.from_dict(json.loads(line))
            except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
                # A torn last line (crash mid-write) or a hand edit: skip it, keep the rest.
                self._report("alert_history_read", ValueError(f"{path}:{number}: {exc!r}"))
                continue
            self._alerts[alert.id] = alert  # a later line updates it in place (same order)
        while len(self._alerts) > self.size:
            self._alerts.popitem(last=False)
        self._lines = len(lines)

    def _compact(self, path: str) -> None:
        text = "".join(json.dumps(alert.to_dict(), separators=(",", ":")) + "\n"
                       for alert in self._alerts.values())
        write_atomically(path, text.encode("utf-8"))
        self._lines = len(self._alerts)

    def _report(self, where: str, exc: BaseException) -> None:
        if self._on_error is not None:
            self._on_error(where, exc)


def _append(path: str, line: str) -> None:
    """Append ``line`` whole or not at all.

    A full disk (or RLIMIT_FSIZE) lets a write through in part: the torn line left behind would
    glue itself to the next record once there is space again, and that record would be skipped
    on reload. So a failed append is cut back off.
    """
    data = memoryview(line.encode("utf-8"))
    fd = open_owned(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        start = os.lseek(fd, 0, os.SEEK_END)
        try:
            while data:
                data = data[os.write(fd, data):]
        except OSError:
            os.ftruncate(fd, start)
            raise
    finally:
        os.close(fd)
