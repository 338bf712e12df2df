"""Exemplars under several workers: each worker's latest per (series, bucket) in its exemplars
file, the newest among the workers' in the merged view, written as one process writes them."""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from support import PACKAGE_ROOT, SUPPORT, Clock

from asgi_monitor import MonitoringConfig, build_monitor
from asgi_monitor.config import HealthSettings, MetricsSettings, SystemSettings
from asgi_monitor.store import multiprocess as mp
from asgi_monitor.store import single
from asgi_monitor.store.exemplar_file import SLOT, TEXT, encode_labels, exemplars_path
from asgi_monitor.store.exposition import encode
from asgi_monitor.store.merge import MergedFiles
from asgi_monitor.store.multiprocess import MultiprocessRequestMetrics
from asgi_monitor.store.settings import StoreSettings

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
BUCKETS = (0.1, 0.5, 1.0)
SIZES = (100.0, 1000.0)
GOOD = {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The exemplars' time in both stores, moved by hand: which one is newest is the test's."""
    now = Clock()
    monkeypatch.setattr(mp, "time", SimpleNamespace(time=now))
    monkeypatch.setattr(single, "time", SimpleNamespace(time=now))
    return now


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[[], MultiprocessRequestMetrics]]:
    made: list[MultiprocessRequestMetrics] = []

    def worker() -> MultiprocessRequestMetrics:
        store = MultiprocessRequestMetrics(str(tmp_path), StoreSettings(
            duration_buckets=BUCKETS, size_buckets=SIZES, max_series=100))
        made.append(store)
        return store

    yield worker
    for store in made:
        store.close()


def merged_view(tmp_path: Path) -> MergedFiles:
    return MergedFiles(str(tmp_path), StoreSettings(
        duration_buckets=BUCKETS, size_buckets=SIZES, max_series=100), compact=False)


def exemplars(text: str, route: str = "/a") -> dict[str, tuple[dict[str, str], float]]:
    """le -> (labels, value) of the duration histogram's exemplars for GET ``route``."""
    families = {f.name: f for f in text_string_to_metric_families(text)}
    return {s.labels["le"]: (s.exemplar.labels, s.exemplar.value)
            for s in families["http_request_duration_seconds"].samples
            if s.name.endswith("_bucket") and s.labels["route"] == route
            and s.exemplar is not None}


def trace(n: int) -> dict[str, str]:
    return {"trace_id": f"{n:032x}"}


def keep(store: MultiprocessRequestMetrics | single.RequestMetrics, duration: float,
         labels: dict[str, str] | None, route: str = "/a") -> None:
    store.record_exemplar("GET", route, 200, "http", duration, duration, 0, 10, labels)


def test_the_newest_exemplar_among_the_workers_wins_per_bucket(
        tmp_path: Path, clock: Clock,
        workers: Callable[[], MultiprocessRequestMetrics]) -> None:
    one, two = workers(), workers()
    keep(one, 0.05, trace(1))
    clock.advance(1)
    keep(two, 0.06, trace(2))  # the same bucket, later: wins
    clock.advance(1)
    keep(two, 0.7, trace(3))
    clock.advance(1)
    keep(one, 0.8, trace(4))  # the same bucket, later again: wins
    keep(one, 0.3, None)  # counted, no exemplar: the bucket keeps none
    keep(two, 5.0, trace(5), route="/b")
    files = merged_view(tmp_path)
    text = files.exposition(files.read(), openmetrics=True)
    assert text is not None
    assert exemplars(text + "# EOF\n") == {"0.1": (trace(2), 0.06), "1.0": (trace(4), 0.8)}
    assert exemplars(text + "# EOF\n", "/b") == {"+Inf": (trace(5), 5.0)}
    # The later one keeps winning once the other worker writes its bucket again.
    clock.advance(1)
    keep(one, 0.01, trace(6))
    text = files.exposition(files.read(), openmetrics=True)
    assert text is not None
    assert exemplars(text + "# EOF\n")["0.1"] == (trace(6), 0.01)
    # The text format has none; the families (prometheus_client's encoder) carry the same.
    plain = files.exposition(files.read(), openmetrics=False)
    assert plain is not None and "trace_id" not in plain
    [duration] = [f for f in files.families(custom=False)
                  if f.name == "http_request_duration_seconds"]
    assert {s.labels["le"]: s.exemplar.labels["trace_id"] for s in duration.samples
            if s.exemplar is not None and s.labels["route"] == "/a"} == {
        "0.1": trace(6)["trace_id"], "1.0": trace(4)["trace_id"]}


def untimed(line: str) -> str:
    """An exposition line without its exemplar's timestamp (which it must have)."""
    if " # {" not in line:
        return line
    head, _, stamp = line.rpartition(" ")
    assert float(stamp) > 0, line
    return head


def test_the_merged_view_shows_them_as_one_process_does(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, clock: Clock,
        workers: Callable[[], MultiprocessRequestMetrics]) -> None:
    config = MonitoringConfig(
        metrics=MetricsSettings(exemplars=True, duration_buckets=BUCKETS, size_buckets=SIZES),
        system=SystemSettings(metrics=False), health=HealthSettings(default_checks=False))
    alone = build_monitor(config, CollectorRegistry())
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    several = build_monitor(config, CollectorRegistry())
    other = workers()
    plan = [(0.05, 1, "/a"), (0.3, 2, "/a"), (0.07, 3, "/b"), (0.09, 4, "/a"), (2.0, 5, "/a"),
            (0.4, 6, "/b"), (0.2, 7, "/a")]
    for n, (duration, label, route) in enumerate(plan):
        clock.advance(1)
        keep(alone.collector.requests, duration, trace(label), route)
        keep(several.collector.requests if n % 2 else other, duration, trace(label), route)

    def buckets(monitor: object) -> list[str]:
        registry = monitor.scrape_registry()  # type: ignore[attr-defined]
        text = encode(registry, openmetrics_latest, OPENMETRICS).decode()
        return [line for line in text.splitlines()
                if line.startswith("http_request_duration_seconds_bucket")]

    lines = buckets(alone)
    assert sum(" # {trace_id=" in line for line in lines) == 5  # two buckets twice
    # The same lines but for each exemplar's timestamp: the compiled stores read the real
    # clock (mypyc binds the `time` module, so the fixture cannot move it there), and two
    # stores recording one after the other differ by microseconds.
    assert [untimed(line) for line in buckets(several)] == [untimed(line) for line in lines]


def slot(series: int, bucket: int, value: float, stamp: float, text: bytes, *,
         crc: int | None = None, length: int | None = None, sequence: int = 7) -> bytes:
    body = struct.pack("<qIIdd", series, bucket, len(text) if length is None else length,
                       value, stamp) + text
    data = (struct.pack("<I", sequence) + body + bytes(TEXT - len(text))
            + struct.pack("<II", zlib.crc32(body) if crc is None else crc, sequence))
    assert len(data) == SLOT
    return data


NOW = 1_700_000_100.0
HOSTILE: dict[str, Callable[[int], bytes]] = {
    "a series the worker never indexed": lambda s: slot(s + 1, 0, 0.05, NOW, encode_labels(GOOD)),
    "a bucket past the bounds": lambda s: slot(s, 9, 0.05, NOW, encode_labels(GOOD)),
    "a value outside its bucket": lambda s: slot(s, 0, 0.7, NOW, encode_labels(GOOD)),
    "a value that is not finite": lambda s: slot(s, 3, math.inf, NOW, encode_labels(GOOD)),
    "a time that is not finite": lambda s: slot(s, 0, 0.05, math.nan, encode_labels(GOOD)),
    "a crc that does not match": lambda s: slot(s, 0, 0.05, NOW, encode_labels(GOOD), crc=1),
    "a text length past the slot": lambda s: slot(s, 0, 0.05, NOW, b"", length=TEXT + 1),
    "a label name OpenMetrics refuses": lambda s: slot(
        s, 0, 0.05, NOW, struct.pack("<BH", 4, 1) + b'a"}1x'),
    "a value that is not UTF-8": lambda s: slot(s, 0, 0.05, NOW, struct.pack("<BH", 1, 1)
                                               + b"a\xff"),
    "labels longer than OpenMetrics allows": lambda s: slot(
        s, 0, 0.05, NOW, encode_labels({"a": "x" * 200})),
    "a text cut inside a label": lambda s: slot(s, 0, 0.05, NOW, struct.pack("<BH", 1, 9) + b"a"),
    "a slot with no write begun, yet not empty": lambda s: slot(
        s, 0, 0.05, NOW, encode_labels(GOOD), sequence=0),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_a_hostile_exemplar_slot_is_skipped_and_counted(
        tmp_path: Path, clock: Clock, workers: Callable[[], MultiprocessRequestMetrics],
        case: str) -> None:
    store = workers()
    keep(store, 0.3, GOOD)  # slot 0, the one good exemplar
    series = store.series("GET", "/a", 200, "http").number
    path = exemplars_path(store.file.values_path)
    with open(path, "r+b") as out:
        out.seek(SLOT)  # slot 1
        out.write(HOSTILE[case](series))
    files = merged_view(tmp_path)
    merged = files.read()
    assert merged.bad_records == 1
    text = files.exposition(merged, openmetrics=True)
    assert text is not None
    assert exemplars(text + "# EOF\n") == {"0.5": (GOOD, 0.3)}  # the good one is kept
    assert "asgi_monitor_multiprocess_skipped_records 1.0" in text


def test_a_slot_being_written_is_skipped_without_a_count(
        tmp_path: Path, clock: Clock, workers: Callable[[], MultiprocessRequestMetrics]) -> None:
    store = workers()
    keep(store, 0.3, GOOD)
    with open(exemplars_path(store.file.values_path), "r+b") as out:
        out.write(struct.pack("<I", 8))  # done moved past start: a write under way
    merged = merged_view(tmp_path).read()
    assert merged.bad_records == 0 and merged.exemplars == {}


def test_an_exemplars_file_symlinked_to_a_secret_is_skipped(
        tmp_path: Path, clock: Clock, workers: Callable[[], MultiprocessRequestMetrics]) -> None:
    store = workers()
    keep(store, 0.3, None)  # no exemplar: no file of its own
    path = exemplars_path(store.file.values_path)
    assert not os.path.exists(path)
    secret = tmp_path.parent / "secret"
    secret.write_bytes(slot(store.series("GET", "/a", 200, "http").number, 1, 0.3, NOW,
                            encode_labels({"token": "s3cret"})) * 3)
    os.symlink(secret, path)
    files = merged_view(tmp_path)
    merged = files.read()
    assert merged.skipped == {"not_regular": 1} and merged.exemplars == {}
    text = files.exposition(merged, openmetrics=True)
    assert text is not None and "s3cret" not in text
    assert 'asgi_monitor_multiprocess_skipped_files{reason="not_regular"} 1.0' in text


def test_compaction_drops_a_dead_workers_exemplars_and_keeps_its_counts(
        tmp_path: Path) -> None:
    # A real worker process, gone: one request with an exemplar, under the default buckets.
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": PACKAGE_ROOT}
    plan = json.dumps({"exemplar": [0.004, trace(1)["trace_id"]]})
    done = subprocess.run([sys.executable, str(SUPPORT / "store_worker.py"), plan], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    [path] = [name for name in os.listdir(tmp_path) if name.endswith(".exemplars")]
    buckets, sizes = MetricsSettings().duration_buckets, MetricsSettings().size_buckets
    live = MultiprocessRequestMetrics(str(tmp_path), StoreSettings(
        duration_buckets=buckets, size_buckets=sizes, max_series=100))
    try:
        keep(live, 7.0, trace(2))
        files = MergedFiles(str(tmp_path), StoreSettings(
            duration_buckets=buckets, size_buckets=sizes, max_series=100), compact=False)
        text = files.exposition(files.read(), openmetrics=True)
        assert text is not None
        assert exemplars(text + "# EOF\n") == {"0.005": (trace(1), 0.004),
                                               "7.5": (trace(2), 7.0)}
        assert files.compact() == 1
        assert not (tmp_path / path).exists()
        text = files.exposition(files.read(), openmetrics=True)
        assert text is not None
        assert exemplars(text + "# EOF\n") == {"7.5": (trace(2), 7.0)}
        assert 'http_requests_total{method="GET",route="/a",status="200"} 2.0' in text
    finally:
        live.close()


def test_no_exemplars_file_when_no_request_brings_one(
        tmp_path: Path, workers: Callable[[], MultiprocessRequestMetrics]) -> None:
    store = workers()
    keep(store, 0.3, None)
    store.record("GET", "/a", 200, "http", 0.3, 0.3, 0, 10)
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".exemplars")]
    assert merged_view(tmp_path).read().exemplars == {}


def test_an_exemplar_of_an_overflowed_series_goes_where_it_counted(
        tmp_path: Path, clock: Clock) -> None:
    store = MultiprocessRequestMetrics(str(tmp_path), StoreSettings(
        duration_buckets=BUCKETS, size_buckets=SIZES, max_series=1))
    try:
        keep(store, 0.05, trace(1))
        keep(store, 0.05, trace(2), route="/b")  # over the cap
        files = MergedFiles(str(tmp_path), StoreSettings(
            duration_buckets=BUCKETS, size_buckets=SIZES, max_series=1), compact=False)
        text = files.exposition(files.read(), openmetrics=True)
        assert text is not None
        assert exemplars(text + "# EOF\n") == {"0.1": (trace(1), 0.05)}
        assert exemplars(text + "# EOF\n", "<overflow>") == {"0.1": (trace(2), 0.05)}
    finally:
        store.close()
