"""Files planted in the multiprocess directory: each is skipped (its good records kept where that
is safe), counted in ``asgi_monitor_multiprocess_skipped_files{reason}`` or ``..._records`` and
logged once; no scrape fails, hangs or grows the worker, and a worker still starts.

A real worker process (``support/store_worker.py``) writes a dead worker's files with 2
requests on ``/a``; this process' monitor records 3 more. Every case expects exactly 5."""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import shutil
import struct
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from support import PACKAGE_ROOT, SUPPORT

from asgi_monitor import MonitoringConfig, build_monitor
from asgi_monitor.config import HealthSettings, SystemSettings
from asgi_monitor.monitor import Monitor
from asgi_monitor.store.merge import MergedFiles
from asgi_monitor.store.worker_file import PREFIX, worker_files

GET_A = {"method": "GET", "route": "/a", "status": "200"}
SECRET = b"admin-token-that-must-never-leak-0123456789"


@pytest.fixture
def directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "metrics"
    path.mkdir(mode=0o700)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(path))
    return path


def monitor() -> Monitor:
    return build_monitor(MonitoringConfig(system=SystemSettings(metrics=False),
                                          health=HealthSettings(default_checks=False)),
                         CollectorRegistry())


def dead_worker(directory: Path) -> Path:
    """A real worker's files (2 requests on /a), the worker gone: its values file."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory), "PYTHONPATH": PACKAGE_ROOT}
    plan = json.dumps({"requests": [["GET", "/a", 200, 2]]})
    done = subprocess.run([sys.executable, str(SUPPORT / "store_worker.py"), plan], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    [path] = [p for p in worker_files(str(directory))
              if f"_{done.stdout.split()[-1]}_" in Path(p).name]
    return Path(path)


def index_of(values: Path) -> Path:
    return values.with_suffix(".index")


def record(payload: bytes) -> bytes:
    return struct.pack("<I", len(payload)) + payload


def scrape(here: Monitor) -> tuple[str, dict[str, float]]:
    """One scrape, in a thread that must finish (a FIFO would block it for good): the text and
    the values of the samples this test reads."""
    registry = here.scrape_registry()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        text = pool.submit(generate_latest, registry).result(timeout=60).decode()
    values = {}
    for line in text.splitlines():
        if line.startswith(('http_requests_total{method="GET",route="/a",status="200"}',
                            "asgi_monitor_multiprocess_skipped")):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return text, values


def skipped_files(values: dict[str, float], reason: str) -> float:
    return values[f'asgi_monitor_multiprocess_skipped_files{{reason="{reason}"}}']


def serve_three(here: Monitor) -> None:
    for _ in range(3):
        here.collector.requests.record("GET", "/a", 200, "http", 0.01, 0.005, 0, 10)


def requests_total(values: dict[str, float]) -> float:
    return values['http_requests_total{method="GET",route="/a",status="200"}']


def planted_pair(directory: Path, name: str) -> tuple[Path, Path]:
    base = directory / f"{PREFIX}999999_{name}"
    return base.with_suffix(".values"), base.with_suffix(".index")


# -- files that are not regular, not ours, or too large -------------------------------------------
def test_a_values_file_symlinked_to_a_secret_is_skipped_and_never_exposed(
        directory: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = dead_worker(directory)
    secret = tmp_path / "admin_token"
    secret.write_bytes(SECRET * 2000)
    values, index = planted_pair(directory, "link")
    shutil.copy(index_of(good), index)  # a valid index naming slots in the secret file
    values.symlink_to(secret)
    with caplog.at_level(logging.WARNING, logger="asgi_monitor"):
        here = monitor()
        serve_three(here)
        text, found = scrape(here)
        scrape(here)
    assert requests_total(found) == 5
    assert skipped_files(found, "not_regular") == 1
    assert SECRET.decode()[:8] not in text
    assert caplog.text.count(f"{values} is left out of the merged metrics") == 1


def test_a_fifo_named_like_a_worker_file_neither_hangs_the_start_nor_a_scrape(
        directory: Path) -> None:
    dead_worker(directory)
    values, index = planted_pair(directory, "fifo")
    os.mkfifo(values)
    os.mkfifo(index)
    other, _ = planted_pair(directory, "fifo2")
    os.mkfifo(other)  # a FIFO values file with no index at all
    here = monitor()  # reads the directory at start (files of an earlier run)
    serve_three(here)
    _, found = scrape(here)
    assert requests_total(found) == 5
    assert skipped_files(found, "not_regular") == 1  # the index is refused first; no pair 2


def test_an_index_symlinked_to_dev_zero_and_a_sparse_gib_cost_no_memory(
        directory: Path) -> None:
    good = dead_worker(directory)
    values, index = planted_pair(directory, "zero")
    shutil.copy(good, values)
    index.symlink_to("/dev/zero")
    big_values, big_index = planted_pair(directory, "sparse")
    shutil.copy(index_of(good), big_index)
    with open(big_values, "wb") as out:
        out.truncate(1 << 30)  # 1 GiB, no block written
    padded_values, padded_index = planted_pair(directory, "padded")
    shutil.copy(index_of(good), padded_index)
    shutil.copy(good, padded_values)
    with open(padded_values, "r+b") as out:
        out.truncate(60 << 20)  # within the format's size: only the slots named are read
    here = monitor()
    serve_three(here)
    tracemalloc.start()
    try:
        _, found = scrape(here)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert requests_total(found) == 7  # the padded copy is a whole worker file: 2 more
    assert skipped_files(found, "not_regular") == 1
    assert skipped_files(found, "too_large") == 1
    assert peak < 16 << 20, f"a scrape allocated {peak} bytes"


def test_a_hard_link_and_a_file_of_another_user_are_skipped(directory: Path) -> None:
    good = dead_worker(directory)
    linked_values, linked_index = planted_pair(directory, "hardlink")
    shutil.copy(index_of(good), linked_index)
    elsewhere = directory.parent / "elsewhere.values"
    shutil.copy(good, elsewhere)
    os.link(elsewhere, linked_values)
    theirs_values, theirs_index = planted_pair(directory, "theirs")
    shutil.copy(index_of(good), theirs_index)
    shutil.copy(good, theirs_values)
    if os.geteuid() == 0:
        os.chown(theirs_index, 4242, 4242)
    else:
        os.unlink(theirs_index)  # cannot give it away: a symlink to ours instead
        theirs_index.symlink_to(index_of(good))
    here = monitor()
    serve_three(here)
    _, found = scrape(here)
    assert requests_total(found) == 5
    assert skipped_files(found, "not_regular") == 1 + (os.geteuid() != 0)
    assert skipped_files(found, "not_owner") == (os.geteuid() == 0)


# -- records ---------------------------------------------------------------------------------------
HEADER_CASES = {
    "deep JSON header": b"[" * 30_000 + b"]" * 30_000,
    "header too long": b" " * (70 * 1024),
    "a string where the version is": b'{"version": "1"}',
    "NaN started": b'{"version": 1, "pid": 1, "ppid": 1, "started": NaN}',
    "not JSON": b"\xff\xfe",
}


@pytest.mark.parametrize("case", HEADER_CASES)
def test_a_bad_header_skips_its_file_and_the_worker_still_starts(
        directory: Path, case: str) -> None:
    good = dead_worker(directory)
    values, index = planted_pair(directory, "header")
    shutil.copy(good, values)
    payload = HEADER_CASES[case]
    # A length past the format's limit is written as is, with no payload behind it.
    index.write_bytes(record(payload) if len(payload) < 70 * 1024
                      else struct.pack("<I", len(payload)))
    here = monitor()
    serve_three(here)
    _, found = scrape(here)
    assert requests_total(found) == 5
    assert skipped_files(found, "bad_header") == 1


def slot_of(index: Path) -> int:
    """The first request record's slot in a real worker's index."""
    data = index.read_bytes()
    at = 0
    while at < len(data):
        (size,) = struct.unpack_from("<I", data, at)
        item = json.loads(data[at + 4:at + 4 + size])
        if isinstance(item, list) and item[0] == "r":
            return int(item[-1])
        at += 4 + size
    raise AssertionError("no request record")


RECORD_CASES = {
    "a string slot": lambda slot: ["r", "GET", "/b", 200, "http", str(slot)],
    "a negative slot": lambda slot: ["r", "GET", "/b", 200, "http", -slot],
    "a slot past the format": lambda slot: ["r", "GET", "/b", 200, "http", 1 << 40],
    "a short record": lambda slot: ["r", "GET", "/b", 200, slot],
    "a boolean status": lambda slot: ["r", "GET", "/b", True, "http", slot],
    "a list route": lambda slot: ["r", "GET", ["/b"], 200, "http", slot],
    "an unknown kind": lambda slot: ["x", slot],
    "a deep record": lambda slot: [[[[[[[[[[[[[[[[[[[[[[slot]]]]]]]]]]]]]]]]]]]]]],
    "a metric name with a newline": lambda slot: [
        "v", "counter", "", "x\nfake 1", "x_total", [], [], "", slot],
    "a label name that is no name": lambda slot: [
        "v", "counter", "", "jobs", "jobs_total", ['a"} 1\nb'], ["v"], "", slot],
    "a histogram bucket with no le": lambda slot: [
        "v", "histogram", "", "h", "h_bucket", ["x"], ["1"], "", slot],
}


@pytest.mark.parametrize("case", RECORD_CASES)
def test_a_bad_record_is_skipped_and_its_files_good_records_kept(
        directory: Path, case: str) -> None:
    here = monitor()  # started first: its start-up compaction would fold the file
    good = dead_worker(directory)
    index = index_of(good)
    slot = slot_of(index)
    with open(index, "ab") as out:
        out.write(record(json.dumps(RECORD_CASES[case](slot)).encode()))
        out.write(record(b"[" * 30_000 + b"]" * 30_000) if case == "a deep record" else b"")
    serve_three(here)
    text, found = scrape(here)
    assert requests_total(found) == 5  # the file's good record is kept
    assert found["asgi_monitor_multiprocess_skipped_records"] == 1 + (case == "a deep record")
    assert 'route="/b"' not in text and "fake 1" not in text


def test_counts_that_are_negative_or_not_finite_are_left_out(directory: Path) -> None:
    here = monitor()
    good = dead_worker(directory)
    slot = slot_of(index_of(good))
    for name, value in (("nan", float("nan")), ("negative", -1e9)):
        values, index = planted_pair(directory, name)
        shutil.copy(index_of(good), index)
        shutil.copy(good, values)
        with open(values, "r+b") as out:
            out.seek(8 * slot)
            out.write(struct.pack("<d", value))
    serve_three(here)
    _, found = scrape(here)
    assert requests_total(found) == 5
    assert found["asgi_monitor_multiprocess_skipped_records"] == 2


def test_a_record_length_past_the_format_stops_the_file_there(directory: Path) -> None:
    here = monitor()
    good = dead_worker(directory)
    with open(index_of(good), "ab") as out:
        out.write(struct.pack("<I", 0xFFFFFFF0) + b"x" * 100)
    serve_three(here)
    _, found = scrape(here)
    assert requests_total(found) == 5
    assert found["asgi_monitor_multiprocess_skipped_records"] == 1


def test_the_sampler_reads_past_a_bad_file_too(directory: Path) -> None:
    dead_worker(directory)
    values, index = planted_pair(directory, "fifo")
    os.mkfifo(index)
    os.mkfifo(values)
    here = monitor()
    serve_three(here)
    merged = here.collector.merged
    assert isinstance(merged, MergedFiles)
    snapshot, _ = merged.sample()
    assert sum(total for method, route, status, total in snapshot.series
               if route == "/a") == 5


# -- the directory itself ----------------------------------------------------------------------
def test_a_directory_other_users_can_write_is_reported_at_start(
        directory: Path, caplog: pytest.LogCaptureFixture) -> None:
    directory.chmod(0o777)
    with caplog.at_level(logging.WARNING, logger="asgi_monitor"):
        monitor()
    assert "is writable by other users (mode 777): make it 0700" in caplog.text
    caplog.clear()
    directory.chmod(0o700)
    with caplog.at_level(logging.WARNING, logger="asgi_monitor"):
        monitor()
    assert "writable by other users" not in caplog.text


def test_worker_files_are_private_to_the_user(directory: Path) -> None:
    here = monitor()
    file = here.collector.requests.file  # type: ignore[attr-defined]
    for path in (file.values_path, file.index_path):
        assert os.stat(path).st_mode & 0o777 == 0o600


def test_the_apps_own_prometheus_client_files_are_read_with_the_same_distrust(
        directory: Path, tmp_path: Path) -> None:
    from prometheus_client.mmap_dict import MmapedDict, mmap_key

    from asgi_monitor.store.app_files import CheckedMultiProcessCollector

    good = MmapedDict(str(directory / "counter_1.db"))
    good.write_value(mmap_key("app_jobs", "app_jobs_total", [], [], "Jobs."), 3.0, 0.0)
    good.close()
    os.mkfifo(directory / "counter_2.db")  # a plain open() of it would block for good
    (directory / "counter_3.db").write_bytes(struct.pack("<i", 1 << 30) + b"\x00" * 60)
    secret = tmp_path / "token.db"
    secret.write_bytes(SECRET)
    (directory / "counter_4.db").symlink_to(secret)
    collector = CheckedMultiProcessCollector(str(directory))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        families = pool.submit(lambda: list(collector.collect())).result(timeout=60)
    samples = {sample.name: sample.value for family in families for sample in family.samples}
    assert samples == {"app_jobs_total": 3.0}
