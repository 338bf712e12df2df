"""Real servers with four workers in multiprocess mode, scraped over HTTP as Prometheus would:
``uvicorn --workers 4`` and gunicorn with uvicorn workers (and docs/multiprocess.md's
``child_exit`` hook). Every request is counted exactly once, and a worker killed under load
loses no completed request's count and stops counting in the in-progress gauge."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import (
    SUPPORT,
    free_port,
    keep_alive_gets,
    requests_total,
    require_module,
    running_process,
    samples_sum,
)

pytestmark = pytest.mark.integration

WORKERS = 4
SERVERS = ("uvicorn", "gunicorn")


def command(server: str, port: int) -> list[str]:
    if server == "uvicorn":
        return [sys.executable, "-m", "uvicorn", "multiprocess_app:app", "--app-dir", str(SUPPORT),
                "--host", "127.0.0.1", "--port", str(port), "--workers", str(WORKERS),
                "--log-level", "warning"]
    # uvicorn.workers is deprecated for the uvicorn-worker package since uvicorn 0.30.
    require_module("gunicorn")
    require_module("uvicorn_worker")
    return [sys.executable, "-m", "gunicorn", "multiprocess_app:app", "--pythonpath", str(SUPPORT),
            "-k", "uvicorn_worker.UvicornWorker", "-w", str(WORKERS),
            "-b", f"127.0.0.1:{port}", "-c", str(SUPPORT / "gunicorn.conf.py"),
            "--log-level", "warning"]


class Server:
    def __init__(self, kind: str, url: str, directory: Path) -> None:
        self.kind = kind
        self.url = url
        self.directory = directory


@pytest.fixture(params=SERVERS)
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    directory = tmp_path / "multiproc"
    directory.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    with running_process(command(request.param, port), f"{url}/warmup", env=env, timeout=60):
        yield Server(request.param, url, directory)


async def every_worker_up(url: str) -> set[str]:
    """Until each of the workers has answered (a new connection per request, so they all
    get accepts); their pids."""
    pids: set[str] = set()
    deadline = time.monotonic() + 60
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=10) as client:
        while len(pids) < WORKERS:
            assert time.monotonic() < deadline, f"only workers {pids} answered"
            answers = await asyncio.gather(*(client.get("/warmup") for _ in range(WORKERS * 2)))
            pids.update(answer.text for answer in answers)
    return pids


async def scrape(client: httpx.AsyncClient) -> str:
    response = await client.get("/api/metrics")
    assert response.status_code == 200
    return response.text


async def settled_total(client: httpx.AsyncClient, route: str, expected: float) -> float | None:
    """The scraped total of ``route`` once it reaches ``expected`` (a worker records a request
    just after sending its response), or what it is after 5 s."""
    total = None
    for _ in range(50):
        total = requests_total(await scrape(client), route)
        if total == expected:
            break
        await asyncio.sleep(0.1)
    return total


@pytest.mark.timeout(240)
def test_twenty_thousand_requests_are_counted_exactly(server: Server) -> None:
    total, connections = 20_000, 32

    async def main() -> tuple[Counter[str], float | None]:
        await every_worker_up(server.url)
        served = await keep_alive_gets(server.url, "/ping", total, connections)
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            return served, await settled_total(client, "/ping", total)

    started = time.monotonic()
    served, scraped = asyncio.run(main())
    assert sum(served.values()) == total
    assert scraped == total
    print(f"\n{server.kind}: {total} requests in {time.monotonic() - started:.1f} s, "
          f"per worker {sorted(served.values())}")
    assert len(served) == WORKERS, f"only worker(s) {set(served)} served /ping"


@pytest.mark.timeout(240)
def test_a_worker_killed_under_load_loses_no_completed_request(server: Server) -> None:
    concurrency = 32

    async def main() -> tuple[int, int, float | None, float | None, float]:
        await every_worker_up(server.url)
        completed = failed = 0
        recent: Counter[str] = Counter()  # the pids that answered lately
        stop = asyncio.Event()
        # A new connection per request: after the kill, requests reach the workers left alive
        # (and the one the server starts in place of the dead one).
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=30) as client:

            async def sender() -> None:
                nonlocal completed, failed
                while not stop.is_set():
                    try:
                        response = await client.get("/slow")
                    except httpx.TransportError:  # in progress in the killed worker
                        failed += 1
                        continue
                    assert response.status_code == 200
                    completed += 1
                    recent[response.text] += 1

            senders = [asyncio.create_task(sender()) for _ in range(concurrency)]
            await asyncio.sleep(1.5)  # the workers busy, with requests in progress
            recent.clear()
            await asyncio.sleep(0.5)
            # The busiest worker of the last moments: it has requests in progress.
            [(victim, _)] = recent.most_common(1)
            os.kill(int(victim), signal.SIGKILL)
            await asyncio.sleep(2)
            # Under load: everything completed before this scrape is in it already.
            seen = completed
            during = requests_total(await scrape(client), "/slow")
            assert during is not None and during >= seen
            await asyncio.sleep(1)
            stop.set()
            await asyncio.gather(*senders)
            # Quiet: exactly the completed requests, and nothing in progress any more.
            after = await settled_total(client, "/slow", completed)
            in_progress = samples_sum(await scrape(client), "http_requests_in_progress")
        return completed, failed, during, after, in_progress

    completed, failed, during, after, in_progress = asyncio.run(main())
    print(f"\n{server.kind}: {completed} completed, {failed} lost in the killed worker, "
          f"scraped {during} under load and {after} once quiet; in progress {in_progress}")
    assert failed > 0, "the killed worker had no request in progress: nothing was tested"
    assert after == completed
    # A dead worker's in-progress share leaves with its file lock, with or without a hook.
    assert in_progress == 0
