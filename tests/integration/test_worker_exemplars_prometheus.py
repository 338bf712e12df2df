"""Exemplars under several workers, end to end: ``uvicorn --workers 2`` in multiprocess mode,
scraped by a real Prometheus with exemplar storage. Requests alternate between the two workers
(one keep-alive connection to each); after each, every scrape, whichever worker answers it,
shows that request's trace id (the newest among the workers' exemplars), and Prometheus stores
each in turn."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from support import SUPPORT, free_port, running_process, running_prometheus, wait_until

pytestmark = pytest.mark.integration

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def traceparent(n: int) -> tuple[str, str]:
    trace = f"{n + 1:032x}"
    return trace, f"00-{trace}-{n + 1:016x}-01"


def scraped_trace(text: str) -> str | None:
    """The trace id on GET /ping's one duration bucket (le 10), if any."""
    for family in text_string_to_metric_families(text):
        if family.name != "http_request_duration_seconds":
            continue
        for s in family.samples:
            if (s.name.endswith("_bucket") and s.labels["route"] == "/ping"
                    and s.labels["le"] == "10.0" and s.exemplar is not None):
                return str(s.exemplar.labels["trace_id"])
    return None


async def one_connection_per_worker(url: str) -> dict[str, httpx.AsyncClient]:
    """A keep-alive client per worker pid: new connections until both workers answered one."""
    clients: dict[str, httpx.AsyncClient] = {}
    deadline = time.monotonic() + 60
    while len(clients) < 2:
        assert time.monotonic() < deadline, f"only workers {list(clients)} answered"
        # Kept open (httpx drops an idle connection after 5 s by default, and a new one may
        # reach the other worker), as the server is told to (--timeout-keep-alive).
        limits = httpx.Limits(max_connections=1, keepalive_expiry=600)
        batch = [httpx.AsyncClient(base_url=url, timeout=10, limits=limits) for _ in range(4)]
        answers = await asyncio.gather(*(client.get("/warmup") for client in batch))
        for client, answer in zip(batch, answers, strict=True):
            if answer.text not in clients:
                clients[answer.text] = client
            else:
                await client.aclose()
    return clients


@pytest.mark.timeout(240)
def test_the_newest_exemplar_of_either_worker_reaches_prometheus(tmp_path: Path) -> None:
    directory = tmp_path / "multiproc"
    directory.mkdir(mode=0o700)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    command = [sys.executable, "-m", "uvicorn", "exemplar_app:app", "--app-dir", str(SUPPORT),
               "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
               "--timeout-keep-alive", "600", "--log-level", "warning"]
    with running_process(command, f"{url}/warmup", env=env, timeout=60), \
            running_prometheus(tmp_path, f"127.0.0.1:{port}",
                               flags=("--enable-feature=exemplar-storage",)) as (api, prom):
        start = time.time() - 60

        def stored() -> list[str]:
            body = prom.get(f"{api}/api/v1/query_exemplars", params={
                "query": 'http_request_duration_seconds_bucket{route="/ping"}',
                "start": start, "end": time.time() + 60}).json()
            assert body["status"] == "success", body
            found = sorted((float(e["timestamp"]), e["labels"]["trace_id"])
                           for series in body["data"] for e in series["exemplars"])
            return [trace for _, trace in found]

        def scrape() -> str | None:
            # A new connection each time: the scrapes go to either worker.
            with httpx.Client(timeout=10, limits=httpx.Limits(max_keepalive_connections=0)) as c:
                response = c.get(f"{url}/api/metrics", headers={"accept": OPENMETRICS})
            assert response.status_code == 200, response.text
            return scraped_trace(response.text)

        async def main() -> list[tuple[str, str]]:
            clients = await one_connection_per_worker(url)
            first, second = list(clients)
            sent = []
            try:
                for n, pid in enumerate((first, second, first)):
                    trace, header = traceparent(n)
                    answer = await clients[pid].get("/ping", headers={"traceparent": header})
                    assert answer.text == pid  # the connection stayed with its worker
                    sent.append((pid, trace))
                    # The worker records just after it answers: wait for the scrapes to show it.
                    wait_until(lambda trace=trace: scrape() == trace, timeout=30,
                               what=f"trace {trace} (worker {pid}) in the scraped text")
                    seen = [scrape() for _ in range(8)]
                    assert seen == [trace] * 8, (pid, trace, seen)
                    wait_until(lambda trace=trace: trace in stored(), timeout=30,
                               what=f"trace {trace} (worker {pid}) in Prometheus")
            finally:
                for client in clients.values():
                    await client.aclose()
            return sent

        sent = asyncio.run(main())
        assert stored() == [trace for _, trace in sent]
        [target] = prom.get(f"{api}/api/v1/targets").json()["data"]["activeTargets"]
        assert target["health"] == "up" and target["lastError"] == ""
    assert len({pid for pid, _ in sent}) == 2
