"""A full disk under real uvicorn workers: the metric files cannot grow, the workers keep serving.

Before the per-worker files reserved their space, a worker died with SIGBUS on the first request
to a new route once the file system was full (and two workers crash-looped). Here a file size
limit (RLIMIT_FSIZE, with SIGXFSZ ignored so a write past it fails with EFBIG instead of killing
the process) stands in for the full disk: it leaves room for each worker's first chunk and no
more, so each worker's 146th series or so finds no space. Mounting a tiny tmpfs would need
privileges CI may not have; the limit fails the same reservation (posix_fallocate) the same
way, and a full tmpfs fails it with ENOSPC.
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import SUPPORT, free_port, requests_total, stop_process

from asgi_monitor.store.worker_file import CHUNK

pytestmark = pytest.mark.integration

# Far more series than two workers' first chunks hold (about 145 each, default buckets).
STATUSES = [code for code in range(200, 600) if code not in (204, 304) and not 300 <= code < 400]
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
PINGS = 400


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    # The first chunk of a values file fits, a second does not; index files stay far below.
    resource.setrlimit(resource.RLIMIT_FSIZE, (CHUNK + CHUNK // 2, CHUNK + CHUNK // 2))


@pytest.fixture
def limited_workers(tmp_path: Path) -> Iterator[str]:
    multiproc_dir = tmp_path / "multiproc"
    multiproc_dir.mkdir()
    port = free_port()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir)}
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "full_disk_app:app", "--app-dir", str(SUPPORT),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "2", "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        preexec_fn=_limit_file_size)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(server)
        assert server.stderr is not None
        server.stderr.close()


@pytest.mark.timeout(180)
def test_workers_keep_serving_when_their_files_cannot_grow(limited_workers: str) -> None:
    limits = httpx.Limits(max_connections=10, max_keepalive_connections=0)

    async def main() -> tuple[set[str], set[str], int, str]:
        async with httpx.AsyncClient(base_url=limited_workers, limits=limits,
                                     timeout=10) as client:
            deadline = time.monotonic() + 60
            started: set[str] = set()
            warm = 0
            while len(started) < 2:
                assert time.monotonic() < deadline, "uvicorn did not start two workers"
                try:
                    started.add((await client.get("/ping")).text)
                    warm += 1
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            served: set[str] = set()
            plan = [(method, code) for method in METHODS for code in STATUSES]
            queue = iter(plan)

            async def new_series() -> None:
                for method, code in queue:
                    response = await client.request(method, f"/status/{code}")
                    assert response.status_code == code
                    served.add(response.text)

            await asyncio.gather(*(new_series() for _ in range(10)))
            pings = iter(range(PINGS))

            async def ping() -> None:
                for _ in pings:
                    response = await client.get("/ping")
                    assert response.status_code == 200
                    served.add(response.text)

            await asyncio.gather(*(ping() for _ in range(10)))
            await asyncio.sleep(0.5)  # a worker records just after its response went out
            return started, served, warm, (await client.get("/api/metrics")).text

    started, served, warm, exposition = asyncio.run(main())
    # No worker died and was replaced: every response came from the first two.
    assert served == started
    # A series that has its space counts exactly, after the limit was reached too.
    assert requests_total(exposition, "/ping") == PINGS + warm
    recorded = unrecorded = errors = 0.0
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if (sample.name == "http_requests_total"
                    and sample.labels["route"] == "/status/{code}"):
                recorded += sample.value
            elif sample.name == "asgi_monitor_multiprocess_unrecorded_total":
                unrecorded = sample.value
            elif sample.name == "asgi_monitor_multiprocess_file_errors_total":
                errors = sample.value
    total = len(METHODS) * len(STATUSES)
    assert unrecorded > 0 and errors > 0, "the limit was never reached: the test tests nothing"
    assert recorded + unrecorded == total
