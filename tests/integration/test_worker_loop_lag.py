"""Several workers' metric files, thousands of series each: the sampler, the alert loop and the
scrapes read them without stalling the event loop of the process that serves requests.

What happened is checked (no merge of the files ran on the event loop's thread); the time only
against a bound of seconds, which a merge on the loop would pass on this shape but a loop stuck
for good would not. How long the loop waits is a benchmark figure: benchmarks/worker_scrape.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import values
from support import PACKAGE_ROOT, SUPPORT

pytestmark = pytest.mark.integration

WORKERS, SERIES = 4, 2000
# A bound for a stall, not a budget (the budget is benchmarks/worker_scrape.py's): loose enough
# for a busy machine.
MAX_LAG_SECONDS = 1.0


@pytest.fixture
def worker_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """PROMETHEUS_MULTIPROC_DIR with WORKERS live worker processes' files, SERIES series each."""
    # Building a monitor in multiprocess mode may switch prometheus_client's value storage for
    # this process; put it back afterwards.
    monkeypatch.setattr(values, "ValueClass", values.ValueClass)
    directory = tmp_path / "multiproc"
    directory.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join((PACKAGE_ROOT, str(SUPPORT.parent)))}
    workers = [subprocess.Popen([sys.executable, str(SUPPORT / "series_worker.py"), str(SERIES)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
               for _ in range(WORKERS)]
    try:
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline() == b"ready\n", "a worker failed to write its series"
        yield directory
    finally:
        for worker in workers:
            assert worker.stdin is not None and worker.stdout is not None
            worker.stdin.close()
            worker.stdout.close()
            worker.wait(timeout=30)


@pytest.mark.timeout(240)
def test_reading_four_workers_files_never_stalls_the_event_loop(worker_files: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join((PACKAGE_ROOT, str(SUPPORT.parent)))}
    probe = subprocess.run(
        [sys.executable, str(SUPPORT / "loop_lag_probe.py"), str(SERIES), str(MAX_LAG_SECONDS)],
        env=env, capture_output=True, text=True, timeout=200)
    assert probe.returncode == 0, probe.stderr
    seen = json.loads(probe.stdout.splitlines()[-1])
    assert seen["multiprocess_dir"] == str(worker_files)
    worst = max(seen["lags"])
    print(f"\nevent-loop lag over {len(seen['lags'])} probes: max {worst * 1000:.1f} ms")
    assert worst < MAX_LAG_SECONDS, (
        f"the event loop stalled {worst * 1000:.0f} ms (bound {MAX_LAG_SECONDS * 1000:.0f} ms) "
        f"while the worker files were read and scraped")
    assert seen["off_loop"]  # the merged reads go to a worker thread
    # Every merge of the files (sampler, alert loop, scrapes) ran in a worker thread.
    assert seen["merges"]["on_loop"] == 0, seen["merges"]
    # Both loops read the files (history points from the sampler, samples from the alert loop),
    # and the scrapes did: one merge each.
    assert seen["history"] >= 2 and seen["samples"] - seen["history"] >= 2, seen
    assert seen["scrapes"] >= 2, seen
    assert seen["merges"]["off_loop"] >= seen["samples"] + seen["scrapes"], seen
    # The reads were real: every worker's series, merged.
    assert seen["requests"] == WORKERS * SERIES
    assert seen["routes"] == SERIES
    assert seen["scraped_requests"] == WORKERS * SERIES
