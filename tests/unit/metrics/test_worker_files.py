"""The per-worker file store: its format, the merge (live and dead workers, restarts, pid reuse,
leftovers, the cap across workers), custom metrics, fork and a full disk. Workers are real
processes (``support/store_worker.py``), so liveness is the real lock, not a simulation."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from support import PACKAGE_ROOT, SUPPORT

from asgi_monitor import MonitoringConfig, build_monitor
from asgi_monitor.config import HealthSettings, MetricsSettings, SystemSettings
from asgi_monitor.monitor import Monitor
from asgi_monitor.store.multiprocess import MultiprocessRequestMetrics, request_block_slots
from asgi_monitor.store.retired_file import retired_files
from asgi_monitor.store.settings import StoreSettings
from asgi_monitor.store.single import STANDARD_METHODS
from asgi_monitor.store.worker_file import (
    FIXED_SLOTS,
    PREFIX,
    SLOT_FILE_ERRORS,
    SLOT_IN_PROGRESS,
    WorkerFile,
    read_worker,
    worker_files,
)

GET_A = {"method": "GET", "route": "/a", "status": "200"}


@pytest.fixture
def directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    return tmp_path


def monitor(**metrics: object) -> Monitor:
    return build_monitor(
        MonitoringConfig(metrics=MetricsSettings(**metrics),  # type: ignore[arg-type]
                         system=SystemSettings(metrics=False),
                         health=HealthSettings(default_checks=False)),
        CollectorRegistry())


def run_worker(directory: Path, plan: dict[str, object]) -> int:
    """A worker process that does ``plan`` and exits; its pid."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory),
           "PYTHONPATH": PACKAGE_ROOT}
    done = subprocess.run([sys.executable, str(SUPPORT / "store_worker.py"), json.dumps(plan)],
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


@pytest.fixture
def live_worker(directory: Path) -> Iterator[subprocess.Popen[str]]:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory),
           "PYTHONPATH": PACKAGE_ROOT}
    plan = {"requests": [["GET", "/a", 200, 5]], "open": 2, "gauge": 7, "hold": True}
    worker = subprocess.Popen([sys.executable, str(SUPPORT / "store_worker.py"),
                               json.dumps(plan)], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert worker.stdout is not None
    worker.stdout.readline()  # its pid: it has recorded and holds its file
    yield worker
    assert worker.stdin is not None
    worker.stdin.close()
    worker.wait(timeout=30)
    worker.stdout.close()


def test_the_file_format_round_trips_and_a_torn_record_is_ignored(directory: Path) -> None:
    store = MultiprocessRequestMetrics(str(directory), StoreSettings(
        duration_buckets=(0.1, 1.0), size_buckets=(100.0,), max_series=10))
    store.record("GET", "/a", 200, "http", 0.05, 0.01, 0, 500)
    store.begin("POST")
    [path] = worker_files(str(directory))
    assert Path(path).name.startswith(f"{PREFIX}{os.getpid()}_")
    with open(path[:-len(".values")] + ".index", "ab") as index:
        index.write(b"\x40\x00\x00\x00[\"r\",\"GET\"")  # a record being appended right now
    worker = read_worker(path)
    assert worker is not None and worker.live
    assert worker.header["duration_buckets"] == [0.1, 1.0]
    [record] = worker.records
    assert record[:5] == ["r", "GET", "/a", 200, "http"]
    slot = record[5]
    assert slot >= FIXED_SLOTS
    block = worker.values[slot:slot + request_block_slots(2, 1)].tolist()
    # duration: buckets 0.1, 1, +Inf and the sum; ttfb the same; then the two size histograms
    # (buckets 100, +Inf and the sum).
    assert block == [1, 0, 0, 0.05, 1, 0, 0, 0.01, 1, 0, 0, 0, 1, 500]
    assert worker.values[SLOT_IN_PROGRESS + STANDARD_METHODS.index("POST")] == 1
    store.close()


def test_dead_workers_count_their_requests_but_not_their_gauges(
        directory: Path, live_worker: subprocess.Popen[str]) -> None:
    run_worker(directory, {"requests": [["GET", "/a", 200, 3]], "open": 4, "gauge": 1})
    here = monitor()
    here.collector.requests.record("GET", "/a", 200, "http", 0.01, 0.005, 0, 10)
    here.collector.requests.begin("GET")
    value = here.scrape_registry().get_sample_value
    assert value("http_requests_total", GET_A) == 3 + 5 + 1
    assert value("http_request_duration_seconds_count", {"method": "GET", "route": "/a"}) == 9
    # In progress: the live worker's 2 and this process' 1; the dead one's 4 are gone.
    assert value("http_requests_in_progress", {"method": "GET"}) == 3
    # A gauge the app set merges as the value set last, by a live or dead worker: the dead
    # worker set 1 after the live one set 7.
    assert value("queue_depth") == 1


@pytest.mark.parametrize("naming", ["classic", "otel", "both"])
def test_the_family_names_known_without_a_read_are_those_a_read_gives(
        directory: Path, naming: str) -> None:
    # The sampler checks the names it reads at start-up from family_names(), which reads no
    # file: they must be the names a merge of real files gives.
    run_worker(directory, {"requests": [["GET", "/a", 200, 3], ["POST", "/b", 500, 1]]})
    merged = monitor().collector.merged
    assert merged is not None
    read = {family.name for family in merged.families(custom=False, naming=naming)}
    assert merged.family_names(naming=naming) == read


def test_a_restarted_worker_and_a_reused_pid_are_new_files(directory: Path) -> None:
    first = run_worker(directory, {"requests": [["GET", "/a", 200, 2]], "open": 1})
    run_worker(directory, {"requests": [["GET", "/a", 200, 3]], "open": 1})
    # The same pid again (reused by the OS): the dead file keeps its name, this one gets its own.
    dead = Path(worker_files(str(directory))[0])
    for suffix in (".values", ".index"):
        Path(str(dead)[:-len(".values")] + suffix).rename(
            directory / f"{PREFIX}{os.getpid()}_00000000{suffix}")
    here = monitor()
    # The two dead workers' files were folded into the retired file at start; this worker's
    # own is new (the reused pid did not make it open the dead one).
    assert [Path(p).name for p in worker_files(str(directory))] == [
        Path(here.collector.requests.file.values_path).name]  # type: ignore[attr-defined]
    assert len(retired_files(str(directory))) == 1
    assert first != os.getpid()
    value = here.scrape_registry().get_sample_value
    assert value("http_requests_total", GET_A) == 5
    assert value("http_requests_in_progress", {"method": "GET"}) == 0


def test_files_of_an_earlier_run_are_counted_and_reported(
        directory: Path, caplog: pytest.LogCaptureFixture) -> None:
    run_worker(directory, {"requests": [["GET", "/a", 200, 2]]})
    with caplog.at_level(logging.WARNING, logger="asgi_monitor"):
        here = monitor()
    # The worker above had this test process as its parent, not ours: an earlier run.
    assert "holds the files of 1 worker(s) of an earlier run" in caplog.text
    assert here.scrape_registry().get_sample_value("http_requests_total", GET_A) == 2


def test_files_with_other_buckets_are_left_out_with_a_warning(
        directory: Path, caplog: pytest.LogCaptureFixture) -> None:
    run_worker(directory, {"requests": [["GET", "/a", 200, 2]]})
    here = monitor(duration_buckets=(0.5, 1.0))
    here.collector.requests.record("GET", "/a", 200, "http", 0.01, 0.005, 0, 10)
    with caplog.at_level(logging.WARNING, logger="asgi_monitor"):
        value = here.scrape_registry().get_sample_value
        assert value("http_requests_total", GET_A) == 1
    assert "other histogram buckets" in caplog.text


def test_the_series_cap_holds_across_workers(directory: Path) -> None:
    run_worker(directory, {"requests": [["GET", "/a", 200, 1], ["GET", "/b", 200, 1]]})
    here = monitor(max_series=2)
    # This worker's own cap keeps /a and /c; /d overflows here already.
    for route in ("/a", "/c", "/d"):
        here.collector.requests.record("GET", route, 200, "http", 0.01, 0.005, 0, 10)
    families = {f.name: f for f in here.scrape_registry().collect()}
    totals = {s.labels["route"]: s.value for s in families["http_requests"].samples
              if s.name == "http_requests_total"}
    # The oldest worker's two series keep their labels; this one's /c joins the overflow.
    assert totals == {"/a": 2, "/b": 1, "<overflow>": 2}


def test_the_cap_counts_label_sets_and_a_scheme_is_none(directory: Path) -> None:
    run_worker(directory, {"requests": [["GET", "/a", 200, 1]]})  # over http
    here = monitor(max_series=1, metric_names="both")
    requests = here.collector.requests
    # The same (method, route, status) over https is no new label set, in the worker or in the
    # merge; /b is one, over the cap of 1.
    requests.record("GET", "/a", 200, "https", 0.01, 0.005, 0, 10)
    requests.record("GET", "/b", 200, "http", 0.01, 0.005, 0, 10)
    assert requests.dropped_counts() == {"http_requests_total": 1}
    families = {f.name: f for f in here.scrape_registry().collect()}
    totals = {s.labels["route"]: s.value for s in families["http_requests"].samples
              if s.name == "http_requests_total"}
    assert totals == {"/a": 2, "<overflow>": 1}
    counts = {(s.labels["http_route"], s.labels["url_scheme"]): s.value
              for s in families["http_server_request_duration_seconds"].samples
              if s.name == "http_server_request_duration_seconds_count"}
    assert counts == {("/a", "http"): 1, ("/a", "https"): 1, ("<overflow>", "http"): 1}
    # The sampler's typed values keep them apart too, as one process' snapshot does.
    merged = here.collector.merged
    assert merged is not None
    snapshot, _ = merged.sample()
    assert sorted((r.route, r.status, r.scheme, r.count) for r in snapshot.latency) == [
        ("/a", 200, "http", 1), ("/a", 200, "https", 1), ("<overflow>", 200, "http", 1)]
    assert sorted(snapshot.series) == [("GET", "/a", 200, 1), ("GET", "/a", 200, 1),
                                       ("GET", "<overflow>", 200, 1)]


def test_custom_metrics_live_in_the_files_and_merge(directory: Path) -> None:
    run_worker(directory, {"counter": 2, "gauge": 5})
    here = monitor()
    collector = here.collector
    collector.increment_counter("jobs_total", value=3)
    collector.record_histogram("job_seconds", 0.3, labels={"kind": "x"}, buckets=(0.1, 1.0))
    collector.database.record("load", 0.01, ok=False)
    collector.users.login_failed("locked")
    value = here.scrape_registry().get_sample_value
    assert value("jobs_total") == 5
    assert value("job_seconds_bucket", {"kind": "x", "le": "0.1"}) == 0
    assert value("job_seconds_bucket", {"kind": "x", "le": "1.0"}) == 1
    assert value("job_seconds_count", {"kind": "x"}) == 1
    assert value("db_queries_total", {"operation": "load", "status": "error"}) == 1
    assert value("user_login_failures_total", {"reason": "locked"}) == 1
    assert value("queue_depth") == 5
    collector.set_gauge("queue_depth", 9)  # set last: wins over the dead worker's value
    assert here.scrape_registry().get_sample_value("queue_depth") == 9
    # Not prometheus_client's files: its process-wide value class was left alone.
    assert not list(directory.glob("*.db"))
    assert here.sampler.take().db_errors == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX")
def test_a_forked_child_writes_a_file_of_its_own(directory: Path) -> None:
    # gunicorn --preload: the monitor is built before the workers are forked.
    here = monitor()
    requests = here.collector.requests
    requests.record("GET", "/a", 200, "http", 0.01, 0.005, 0, 10)
    here.collector.increment_counter("jobs_total")
    pid = os.fork()
    if pid == 0:  # the child: record, then leave without running the parent's cleanups
        try:
            requests.record("GET", "/a", 200, "http", 0.01, 0.005, 0, 10)
            here.collector.increment_counter("jobs_total")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    idle = os.fork()
    if idle == 0:  # a child that records nothing (a multiprocessing pool's) leaves no file
        os._exit(0)
    os.waitpid(idle, 0)
    requests.record("GET", "/a", 200, "http", 0.01, 0.005, 0, 10)
    value = here.scrape_registry().get_sample_value
    assert len(worker_files(str(directory))) == 2
    assert value("http_requests_total", GET_A) == 3
    assert value("jobs_total") == 2


def test_a_full_disk_loses_new_series_not_the_process(directory: Path) -> None:
    # A file size limit below the index file's next record and the values file's next chunk:
    # every new series fails to get space, the process lives and existing series count.
    run_worker(directory, {"requests": [["GET", "/a", 200, 1]], "fsize": 4096,
                           "routes": 3000})
    here = monitor()
    value = here.scrape_registry().get_sample_value
    assert value("http_requests_total", GET_A) == 2
    unrecorded = value("asgi_monitor_multiprocess_unrecorded_total")
    errors = value("asgi_monitor_multiprocess_file_errors_total")
    assert unrecorded is not None and errors is not None
    recorded = sum(1 for f in here.scrape_registry().collect() if f.name == "http_requests"
                   for s in f.samples if s.name == "http_requests_total"
                   and s.labels["route"].startswith("/new/"))
    # Each of the 3000 requests is either in its own series or counted as unrecorded.
    assert unrecorded > 0 and recorded + unrecorded == 3000
    assert errors == unrecorded


def test_an_unreservable_file_falls_back_to_one_process(
        directory: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    if not hasattr(os, "posix_fallocate"):
        pytest.skip("posix_fallocate is what the disk refuses here")

    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with caplog.at_level(logging.ERROR, logger="asgi_monitor"):
        here = monitor()
    assert here.collector.merged is None
    assert "PROMETHEUS_MULTIPROC_DIR" in caplog.text and "No space left" in caplog.text
    assert "falling back to single-process metrics" in caplog.text
    assert not list(directory.iterdir())  # nothing half-made left behind


def test_a_killed_worker_keeps_its_counts(directory: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory),
           "PYTHONPATH": PACKAGE_ROOT}
    plan = {"requests": [["GET", "/a", 200, 4]], "open": 1, "hold": True}
    worker = subprocess.Popen([sys.executable, str(SUPPORT / "store_worker.py"),
                               json.dumps(plan)], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert worker.stdout is not None and worker.stdin is not None
    worker.stdout.readline()
    here = monitor()
    value = here.scrape_registry().get_sample_value
    assert value("http_requests_in_progress", {"method": "GET"}) == 1
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)
    worker.stdin.close()
    worker.stdout.close()
    value = here.scrape_registry().get_sample_value
    assert value("http_requests_total", GET_A) == 4
    assert value("http_requests_in_progress", {"method": "GET"}) == 0


def test_the_error_slot_counts_failed_reservations(tmp_path: Path) -> None:
    # A reader accepts only a whole worker header (the bucket bounds included).
    file = WorkerFile(str(tmp_path), {"duration_buckets": [0.1], "size_buckets": [10],
                                      "websocket_buckets": [0.1]})
    file.count_error()
    worker = read_worker(file.values_path)
    assert worker is not None and worker.values[SLOT_FILE_ERRORS] == 1
    file.close()


def test_streams_merge_and_only_live_workers_keep_them_open(directory: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory),
           "PYTHONPATH": PACKAGE_ROOT}
    live = subprocess.Popen([sys.executable, str(SUPPORT / "store_worker.py"), json.dumps(
        {"streams": [["GET", "/events", 3.0, 2]], "open_streams": 2, "hold": True})],
        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert live.stdout is not None and live.stdin is not None
        live.stdout.readline()
        run_worker(directory, {"streams": [["GET", "/events", 5.0, 1], ["POST", "/llm", 1.0, 4]],
                               "open_streams": 3})
        here = monitor(max_series=2)
        requests = here.collector.requests
        requests.record_stream("GET", "/events", 7.0)
        requests.record_stream("GET", "/feed", 1.0)  # a third label set: over the cap of 2
        requests.streams_open.add(1)
        value = here.scrape_registry().get_sample_value
        events = {"method": "GET", "route": "/events"}
        assert value("http_stream_duration_seconds_count", events) == 4
        assert value("http_stream_duration_seconds_sum", events) == 2 * 3.0 + 5.0 + 7.0
        assert value("http_stream_duration_seconds_count", {"method": "POST",
                                                            "route": "/llm"}) == 4
        assert value("http_stream_duration_seconds_count", {"method": "GET",
                                                            "route": "<overflow>"}) == 1
        assert value("http_stream_duration_seconds_bucket", {**events, "le": "5.0"}) == 3
        # Open: the live worker's 2 and this process' 1; the dead worker's 3 are gone.
        assert value("http_streams_open") == 3
        # What the sampler (and the OTLP export) reads: the same, typed.
        merged = here.collector.merged
        assert merged is not None
        snapshot = merged.request_snapshot(merged.read())
        assert snapshot.streams_open == 3
        assert {(s.method, s.route): (s.count, s.total) for s in snapshot.streams} == {
            ("GET", "/events"): (4, 18.0), ("POST", "/llm"): (4, 4.0),
            ("GET", "<overflow>"): (1, 1.0)}
    finally:
        live.stdin.close()  # type: ignore[union-attr]
        live.wait(timeout=30)
        live.stdout.close()  # type: ignore[union-attr]
    assert monitor().scrape_registry().get_sample_value("http_streams_open") == 1
