"""The OTLP export reads in a worker thread where the read merges worker files (off_loop), and
on the event loop where it is a single process' list copies."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from asgi_monitor import MonitoringConfig, build_monitor
from asgi_monitor.config import SystemSettings
from asgi_monitor.otlp import OTLPExport
from asgi_monitor.sampling.inputs import SampleInputs


class Exporter:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    def export(self, data: Any, timeout_millis: float) -> Any:
        self.sent.append(data)
        return SimpleNamespace(name="SUCCESS")


@pytest.mark.parametrize("off_loop", [True, False])
async def test_the_read_runs_where_off_loop_says(off_loop: bool) -> None:
    monitor = build_monitor(MonitoringConfig(system=SystemSettings(metrics=False)),
                            CollectorRegistry())
    loop_thread = threading.get_ident()
    threads: list[int] = []

    def read() -> SampleInputs:
        threads.append(threading.get_ident())
        return monitor.sampler.read()

    errors: list[BaseException] = []
    export = OTLPExport(endpoint="http://collector:4318/v1/metrics", read=read,
                        identity=lambda: {"service": "shop", "instance": "a"}, interval=60,
                        on_error=lambda where, exc: errors.append(exc), off_loop=off_loop)
    exporter = Exporter()
    assert await export.export_once(exporter)
    assert errors == [] and len(exporter.sent) == 1
    assert len(threads) == 1
    assert (threads[0] != loop_thread) is off_loop
