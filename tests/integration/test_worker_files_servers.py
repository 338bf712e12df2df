"""The multiprocess directory under real servers: gunicorn recycling its workers
(``--max-requests``) keeps the directory small with exact totals, and bad files planted before
``uvicorn --workers 2`` starts neither stop it nor break a scrape."""

from __future__ import annotations

import json
import os
import struct
import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest
from support import SUPPORT, free_port, requests_total, require_module, running_process

from asgi_monitor.store.compaction import COMPACT_AFTER
from asgi_monitor.store.retired_file import retired_files
from asgi_monitor.store.worker_file import PREFIX, worker_files

pytestmark = pytest.mark.integration

SECRET = "planted-secret-token-0123456789abcdef"


def scrape(url: str) -> str:
    response = httpx.get(f"{url}/api/metrics", timeout=30)
    assert response.status_code == 200, response.text[:500]
    return response.text


def pings(url: str, count: int) -> Counter[str]:
    """``count`` GETs of /ping, each on a new connection (a recycled worker closes its
    keep-alive ones); the pids that answered."""
    answered: Counter[str] = Counter()
    limits = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=url, limits=limits, timeout=30) as client:
        while sum(answered.values()) < count:
            try:
                response = client.get("/ping")
            except (httpx.RemoteProtocolError, httpx.ReadError):
                # A connection a recycling worker accepted and closed unanswered: the request
                # never reached the app, so it is sent again. Closed before the request was
                # read, the kernel answers with a reset (ECONNRESET) instead of an end of
                # stream; a request that was read is answered before the close.
                continue
            assert response.status_code == 200
            answered[response.text] += 1
    return answered


@pytest.mark.timeout(600)
def test_recycled_workers_leave_a_bounded_directory_and_exact_totals(tmp_path: Path) -> None:
    require_module("gunicorn")
    require_module("uvicorn_worker")
    directory = tmp_path / "multiproc"
    directory.mkdir(mode=0o700)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    workers = 2
    command = [sys.executable, "-m", "gunicorn", "multiprocess_app:app",
               "--pythonpath", str(SUPPORT), "-k", "uvicorn_worker.UvicornWorker",
               "-w", str(workers), "-b", f"127.0.0.1:{port}",
               "-c", str(SUPPORT / "gunicorn.conf.py"), "--max-requests", "15",
               "--max-requests-jitter", "0", "--log-level", "warning"]
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    sent = 0
    with running_process(command, f"{url}/warmup", env=env, timeout=60):
        largest = 0
        for _ in range(10):
            answered = pings(url, 60)
            sent += sum(answered.values())
            largest = max(largest, len(worker_files(str(directory))))
        pids = {pid for pid in answered}
        text = scrape(url)
        files = len(worker_files(str(directory)))
    # 600 requests at 15 per worker: about 40 workers recycled, each leaving its files.
    assert sent == 600 and len(pids) >= 1
    assert requests_total(text, "/ping") == sent
    assert largest <= workers + COMPACT_AFTER + 1, f"{largest} worker files at one point"
    assert files <= workers + COMPACT_AFTER
    assert len(retired_files(str(directory))) == 1


def index(*records: object) -> bytes:
    payloads = [json.dumps(record).encode() for record in records]
    return b"".join(struct.pack("<I", len(payload)) + payload for payload in payloads)


def plant_bad_files(directory: Path, tmp_path: Path) -> None:
    """Two FIFOs, a values file symlinked to a secret, an index symlinked to /dev/zero, a
    sparse 1 GiB values file, a header nested 30,000 deep."""
    base = str(directory / f"{PREFIX}999999_")
    os.mkfifo(base + "fifo.values")
    os.mkfifo(base + "fifo.index")
    header = {"version": 1, "pid": 999999, "ppid": 1, "started": 0.0,
              "duration_buckets": [0.1], "size_buckets": [10.0], "websocket_buckets": [0.1],
              "reserved": {}}
    valid = index(header, ["r", "GET", "/ping", 200, "http", 16])
    secret = tmp_path / "token"
    secret.write_text(SECRET * 100)
    os.symlink(secret, base + "link.values")
    Path(base + "link.index").write_bytes(valid)
    os.symlink("/dev/zero", base + "zero.index")
    Path(base + "zero.values").write_bytes(bytes(65536))
    with open(base + "sparse.values", "wb") as out:
        out.truncate(1 << 30)
    Path(base + "sparse.index").write_bytes(valid)
    Path(base + "deep.values").write_bytes(bytes(65536))
    deep = b"[" * 30_000 + b"]" * 30_000
    Path(base + "deep.index").write_bytes(struct.pack("<I", len(deep)) + deep)


@pytest.mark.timeout(300)
def test_bad_files_planted_before_start_leave_scrapes_exact(tmp_path: Path) -> None:
    directory = tmp_path / "multiproc"
    directory.mkdir(mode=0o700)
    plant_bad_files(directory, tmp_path)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "uvicorn", "multiprocess_app:app", "--app-dir",
               str(SUPPORT), "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
               "--log-level", "warning"]
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    with running_process(command, f"{url}/warmup", env=env, timeout=60):
        answered = pings(url, 200)
        texts = [scrape(url) for _ in range(6)]  # both workers answer some of them
    assert sum(answered.values()) == 200
    for text in texts:
        assert requests_total(text, "/ping") == 200
        assert SECRET[:12] not in text
        assert 'asgi_monitor_multiprocess_skipped_files{reason="not_regular"} 3.0' in text
        assert 'asgi_monitor_multiprocess_skipped_files{reason="too_large"} 1.0' in text
        assert 'asgi_monitor_multiprocess_skipped_files{reason="bad_header"} 1.0' in text
