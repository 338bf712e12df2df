"""System resources, read by psutil when Prometheus scrapes (never on the request path).

Process: ``app_process_resident_memory_bytes``, ``app_process_cpu_seconds_total``,
``app_process_open_fds``, ``app_process_threads`` (the ``app_`` prefix keeps clear of
prometheus_client's own ``process_*`` collector on the default registry). System:
``system_cpu_usage_percent`` (since the previous scrape), ``system_memory_usage_percent`` and
``system_disk_usage_percent{path}`` for each configured path (MONITORING_DISK_PATHS).

Each value is read on its own: one that psutil cannot read (a permission, a missing mount, a
platform without it) is left out of that scrape and logged as a warning at most once a minute
per value. A scrape never fails because of psutil. Under several workers the process values
are those of the worker that answered the scrape.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    # Imported where it is read (when the collector is made and scraped), so `import
    # asgi_monitor` does not load it.
    import psutil

from ..logs import RateLimitedLog
from ..sampling.inputs import SystemSnapshot

__all__ = ["ScrapeReader", "SystemMetrics"]


class ScrapeReader:
    """Reads a value at scrape time; a failure gives None and a rate-limited warning."""

    def __init__(self, logger_name: str) -> None:
        self._log = RateLimitedLog(logging.getLogger(logger_name), logging.WARNING)

    def read(self, what: str, read: Callable[[], float]) -> float | None:
        try:
            return float(read())
        except Exception as exc:
            self._log.log(what, "asgi_monitor could not read %s; the sample is left out of this "
                          "scrape: %r", what, exc)
            return None


class SystemMetrics(Collector):
    """A prometheus Collector over psutil; register it and every scrape reads fresh values."""

    def __init__(self, *, prefix: str = "", disk_paths: Sequence[str] = ("/",)) -> None:
        import psutil
        self._prefix = prefix
        self._disk_paths = tuple(disk_paths)
        self._reader = ScrapeReader("asgi_monitor.system")
        self._process: psutil.Process | None = None
        # The first cpu_percent() call has nothing to compare with and returns 0.0; prime it.
        self._reader.read("system CPU percent", lambda: psutil.cpu_percent(interval=None))

    def _current_process(self) -> psutil.Process:
        import psutil
        process = self._process
        if process is None or process.pid != os.getpid():  # re-made in a forked worker
            process = self._process = psutil.Process()
        return process

    def snapshot(self) -> SystemSnapshot:
        """The values the sampler reads (alert rules, history), read now."""
        import psutil
        read = self._reader.read
        process = self._current_process
        disks = ((path, read(f"disk usage of {path}", partial(_disk_percent, path)))
                 for path in self._disk_paths)
        return SystemSnapshot(
            cpu_percent=read("system CPU percent", lambda: psutil.cpu_percent(interval=None)),
            memory_percent=read("system memory percent", lambda: psutil.virtual_memory().percent),
            disk_percent=tuple((path, used) for path, used in disks if used is not None),
            process_rss_bytes=read("process RSS", lambda: process().memory_info().rss))

    def collect(self) -> Iterator[Metric]:
        p = self._prefix
        read = self._reader.read
        process = self._current_process
        cpu = read("process CPU seconds", lambda: sum(process().cpu_times()[:2]))
        fds = read("process open fds", lambda: process().num_fds())
        threads = read("process threads", lambda: process().num_threads())
        now = self.snapshot()
        yield from _gauge(f"{p}app_process_resident_memory_bytes",
                          "Resident memory of this process.", now.process_rss_bytes)
        if cpu is not None:
            yield CounterMetricFamily(f"{p}app_process_cpu_seconds",
                                      "User and system CPU time of this process.", value=cpu)
        yield from _gauge(f"{p}app_process_open_fds", "Open file descriptors of this process.",
                          fds)
        yield from _gauge(f"{p}app_process_threads", "Threads of this process.", threads)
        yield from _gauge(f"{p}system_cpu_usage_percent",
                          "System-wide CPU use since the previous scrape, in percent.",
                          now.cpu_percent)
        yield from _gauge(f"{p}system_memory_usage_percent", "System memory in use, in percent.",
                          now.memory_percent)
        disks = GaugeMetricFamily(f"{p}system_disk_usage_percent",
                                  "Disk space in use on the file system of each configured path, "
                                  "in percent.", labels=("path",))
        for path, used in now.disk_percent:
            disks.add_metric((path,), used)
        yield disks


def _disk_percent(path: str) -> float:
    import psutil
    return float(psutil.disk_usage(path).percent)


def _gauge(name: str, doc: str, value: float | None) -> Iterator[Metric]:
    if value is not None:
        yield GaugeMetricFamily(name, doc, value=value)
