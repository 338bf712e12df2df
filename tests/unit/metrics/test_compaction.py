"""Compaction: dead workers' files folded into one retired file, with exact totals, under a
SIGKILL at each step of it, with the series cap unchanged, and never waiting for the lock.

Workers are real processes (``support/store_worker.py``); while the test makes dead workers it
holds the compaction lock itself, so their own start-up compactions leave the files to the test.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from support import PACKAGE_ROOT, SUPPORT, wait_until

from asgi_monitor.config import MetricsSettings
from asgi_monitor.store.compaction import LOCK_NAME, TEMP_PREFIX
from asgi_monitor.store.merge import MergedFiles, MergedFilesCollector
from asgi_monitor.store.multiprocess import MultiprocessRequestMetrics
from asgi_monitor.store.retired_file import retired_files
from asgi_monitor.store.settings import StoreSettings
from asgi_monitor.store.worker_file import worker_files

STEPS = ("written", "renamed", "removing", "removed")
GET_A = {"method": "GET", "route": "/a", "status": "200"}
STREAM_S = {"method": "GET", "route": "/s"}


@pytest.fixture
def directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    return tmp_path


def env(directory: Path) -> dict[str, str]:
    return {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory), "PYTHONPATH": PACKAGE_ROOT}


@contextlib.contextmanager
def compaction_held(directory: Path) -> Iterator[None]:
    """The compaction lock, held by this process meanwhile."""
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(fd)


def dead_workers(directory: Path, plans: list[dict[str, object]]) -> None:
    with compaction_held(directory):
        for plan in plans:
            done = subprocess.run([sys.executable, str(SUPPORT / "store_worker.py"),
                                   json.dumps(plan)], env=env(directory), capture_output=True,
                                  text=True, timeout=60, check=False)
            assert done.returncode == 0, done.stderr
            time.sleep(0.01)  # distinct start times, as real workers have


def merged_files(directory: Path, max_series: int | None = None, *,
                 compact: bool = False) -> MergedFiles:
    """A reader; its reads ask for no compaction unless ``compact`` (the test does them)."""
    settings = MetricsSettings()
    return MergedFiles(str(directory), StoreSettings(
        duration_buckets=settings.duration_buckets, size_buckets=settings.size_buckets,
        max_series=max_series or settings.max_series), compact=compact)


def totals(directory: Path) -> dict[str, float | None]:
    registry = CollectorRegistry()
    registry.register(MergedFilesCollector(merged_files(directory), custom=True))
    value = registry.get_sample_value
    return {"requests": value("http_requests_total", GET_A),
            "b": value("http_requests_total", {**GET_A, "route": "/b"}),
            "in_progress": value("http_requests_in_progress", {"method": "GET"}),
            "jobs": value("jobs_total"), "queue": value("queue_depth"),
            "errors": value("asgi_monitor_multiprocess_file_errors_total"),
            "streams": value("http_stream_duration_seconds_count", STREAM_S),
            "stream_seconds": value("http_stream_duration_seconds_sum", STREAM_S),
            "streams_open": value("http_streams_open")}


def plans(first: int, count: int) -> list[dict[str, object]]:
    """Dead workers: worker i serves i requests on /a, counts i jobs, sets the queue to i,
    leaves a request in progress; and i streams of 2 s on /s, one of them left open."""
    return [{"requests": [["GET", "/a", 200, i]], "counter": i, "gauge": i, "open": 1,
             "streams": [["GET", "/s", 2.0, i]], "open_streams": 1}
            for i in range(first, first + count)]


def expected(last: int) -> dict[str, float | None]:
    total = float(sum(range(1, last + 1)))
    return {"requests": total, "b": None, "in_progress": 0.0, "jobs": total,
            "queue": float(last), "errors": 0.0, "streams": total, "stream_seconds": 2 * total,
            "streams_open": 0.0}


def compact_in_process(directory: Path, step: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SUPPORT / "compact_worker.py"), step],
                          env=env(directory), capture_output=True, text=True, timeout=60,
                          check=False)


def temp_files(directory: Path) -> list[str]:
    return [name for name in os.listdir(directory) if name.startswith(TEMP_PREFIX)]


def test_dead_workers_fold_into_one_file_with_exact_totals(directory: Path) -> None:
    live = subprocess.Popen([sys.executable, str(SUPPORT / "store_worker.py"), json.dumps(
        {"requests": [["GET", "/b", 200, 7]], "open": 2, "hold": True})],
        env=env(directory), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert live.stdout is not None and live.stdin is not None
        live.stdout.readline()
        dead_workers(directory, plans(1, 6))
        before = totals(directory)
        assert before == {**expected(6), "b": 7.0, "in_progress": 2.0}
        assert len(worker_files(str(directory))) == 7
        assert merged_files(directory).compact() == 6
        assert totals(directory) == before
        [kept] = worker_files(str(directory))
        assert f"_{live.pid}_" in kept
        assert len(retired_files(str(directory))) == 1
        # More deaths fold into the same retired file.
        dead_workers(directory, plans(7, 2))
        assert merged_files(directory).compact() == 2
        assert totals(directory) == {**expected(8), "b": 7.0, "in_progress": 2.0}
        assert len(worker_files(str(directory))) == 1
        assert len(retired_files(str(directory))) == 1
        assert not temp_files(directory)
    finally:
        live.stdin.close()  # type: ignore[union-attr]
        live.wait(timeout=30)
        live.stdout.close()  # type: ignore[union-attr]
    # The live worker gone, its counts fold too; its in-progress gauge does not.
    assert merged_files(directory).compact() == 1
    assert totals(directory) == {**expected(8), "b": 7.0, "in_progress": 0.0}
    assert worker_files(str(directory)) == []


@pytest.mark.parametrize("step", STEPS)
def test_a_sigkill_at_any_step_loses_nothing_and_counts_nothing_twice(
        directory: Path, step: str) -> None:
    dead_workers(directory, plans(1, 2))
    assert compact_in_process(directory).stdout.split() == ["2"]  # a retired file to fold into
    dead_workers(directory, plans(3, 3))
    killed = compact_in_process(directory, step)
    assert killed.returncode == -signal.SIGKILL
    # A reader right after the crash: every count once.
    assert totals(directory) == expected(5)
    if step == "written":
        assert len(temp_files(directory)) == 1  # the new file never took over
        assert len(worker_files(str(directory))) == 3
    # The next compaction finishes the job (or redoes it), still counting everything once.
    again = compact_in_process(directory)
    assert again.returncode == 0, again.stderr
    assert totals(directory) == expected(5)
    assert worker_files(str(directory)) == []
    assert not [name for name in os.listdir(directory) if name.endswith(".index")]
    assert not temp_files(directory)
    assert len(retired_files(str(directory))) == 1


def test_the_cap_labels_the_same_series_before_and_after_compaction(directory: Path) -> None:
    # Workers by start time: a dead one (/a), this process, alive (/x), a dead one (/c, /b).
    # The retired file starts as early as its oldest worker, yet /c keeps its place after /x.
    dead_workers(directory, [{"requests": [["GET", "/a", 200, 1]]}])
    settings = MetricsSettings()
    store = MultiprocessRequestMetrics(str(directory), StoreSettings(
        duration_buckets=settings.duration_buckets, size_buckets=settings.size_buckets,
        max_series=100))
    try:
        store.record("GET", "/x", 200, "http", 0.01, 0.005, 0, 10)
        time.sleep(0.01)
        dead_workers(directory, [{"requests": [["GET", "/c", 200, 4], ["GET", "/b", 200, 2]]}])

        def series(merged: MergedFiles) -> dict[str, float]:
            return {row.route: row.requests for row in merged.stored_series(merged.read())}

        capped = merged_files(directory, max_series=2)
        before = series(capped)
        assert before == {"/a": 1, "/x": 1, "<overflow>": 6}
        assert merged_files(directory).compact() == 2
        assert len(worker_files(str(directory))) == 1
        assert series(capped) == before
        assert series(merged_files(directory, max_series=2)) == before
        assert series(merged_files(directory, max_series=3)) == {
            "/a": 1, "/x": 1, "/c": 4, "<overflow>": 2}
    finally:
        store.close()


def test_compaction_never_waits_for_the_lock(directory: Path) -> None:
    dead_workers(directory, plans(1, 2))
    with compaction_held(directory):
        assert merged_files(directory).compact() == 0  # returns at once, nothing folded
    assert len(worker_files(str(directory))) == 2
    assert merged_files(directory).compact() == 2


def test_a_read_that_finds_many_dead_files_compacts_in_a_thread(directory: Path) -> None:
    dead_workers(directory, plans(1, 6))
    merged = merged_files(directory, compact=True)
    merged.read()  # six dead files: more than the few tolerated
    wait_until(lambda: not worker_files(str(directory)), timeout=30,
               what="the dead files folded by the compaction the read asked for")
    assert totals(directory) == expected(6)


def test_a_retired_file_planted_or_broken_is_skipped_not_trusted(directory: Path) -> None:
    dead_workers(directory, plans(1, 2))
    assert merged_files(directory).compact() == 2
    [retired] = retired_files(str(directory))
    data = Path(retired).read_bytes()
    os.unlink(retired)
    Path(retired).symlink_to("/dev/zero")
    registry = CollectorRegistry()
    registry.register(MergedFilesCollector(merged_files(directory), custom=True))
    assert registry.get_sample_value("http_requests_total", GET_A) is None
    assert registry.get_sample_value("asgi_monitor_multiprocess_skipped_files",
                                     {"reason": "not_regular"}) == 1
    os.unlink(retired)
    Path(retired).write_bytes(data[:20])  # cut short
    assert totals(directory)["requests"] is None
    assert merged_files(directory).compact() == 0  # never folds into a file it cannot read
