"""The OTLP export reads in a worker thread where the read merges worker files (off_loop), and
on the event loop where it is a single process' list copies."""

from __future__ import annotations

import threading

import httpx
import pytest
from prometheus_client import CollectorRegistry

from asgi_monitor import MonitoringConfig, build_monitor
from asgi_monitor.config import SystemSettings
from asgi_monitor.exports.otlp import OTLPExport
from asgi_monitor.sampling.inputs import SampleInputs


def collector(sent: list[bytes]) -> httpx.AsyncClient:
    """A collector that takes every export (an empty 200 is an OTLP/HTTP success): where the
    read runs is what is judged here; the network path has its own tests with a real server."""

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.content)
        return httpx.Response(200, headers={"Content-Type": "application/x-protobuf"})

    return httpx.AsyncClient(transport=httpx.MockTransport(answer))


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
    sent: list[bytes] = []
    async with collector(sent) as client:
        assert await export.export_once(client)
    assert errors == [] and len(sent) == 1 and sent[0]
    assert len(threads) == 1
    assert (threads[0] != loop_thread) is off_loop
