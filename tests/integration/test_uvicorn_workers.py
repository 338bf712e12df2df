"""A real uvicorn with two workers in multiprocess mode: every request counted exactly once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import SUPPORT, free_port, requests_total, stop_process


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[str]:
    multiproc_dir = tmp_path / "multiproc"
    multiproc_dir.mkdir()
    port = free_port()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir)}
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "multiprocess_app:app", "--app-dir", str(SUPPORT),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "2", "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(server)
        assert server.stderr is not None
        server.stderr.close()


@pytest.mark.timeout(180)
def test_two_uvicorn_workers_count_every_request_exactly_once(two_workers: str) -> None:
    total, concurrency = 2000, 20
    # A new connection per request, so both workers get a share of the accepts.
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=0)

    async def main() -> tuple[set[str], float | None]:
        async with httpx.AsyncClient(base_url=two_workers, limits=limits, timeout=10) as client:
            deadline = time.monotonic() + 60
            warm: set[str] = set()
            while len(warm) < 2:  # both workers up (these requests use another route)
                assert time.monotonic() < deadline, "uvicorn did not start two workers"
                try:
                    warm.add((await client.get("/warmup")).text)
                except httpx.TransportError:
                    await asyncio.sleep(0.1)

            pids: set[str] = set()
            queue = iter(range(total))

            async def worker() -> None:
                for _ in queue:
                    response = await client.get("/ping")
                    assert response.status_code == 200
                    pids.add(response.text)

            await asyncio.gather(*(worker() for _ in range(concurrency)))

            # A worker records a request just after sending its response: allow it a moment.
            scraped = None
            for _ in range(50):
                scraped = requests_total((await client.get("/api/metrics")).text, "/ping")
                if scraped == total:
                    break
                await asyncio.sleep(0.1)
            return pids, scraped

    pids, scraped = asyncio.run(main())
    assert scraped == total
    assert len(pids) == 2, f"only worker(s) {pids} served /ping"
