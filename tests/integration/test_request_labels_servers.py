"""Request labels under real servers, scraped over HTTP as Prometheus would: one uvicorn process
(values past MONITORING_LABEL_MAX_VALUES fold into ``<other>``), and uvicorn with two workers
writing worker files (every request counted once under its labels)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import PACKAGE_ROOT, SUPPORT, free_port, running_process

pytestmark = pytest.mark.integration

ENV = {**{k: v for k, v in os.environ.items()
          if not k.startswith(("MONITORING_", "ALERT", "PROMETHEUS_MULTIPROC"))},
       "PYTHONPATH": PACKAGE_ROOT, "MONITORING_HEADER_LABELS": "tenant=X-Tenant"}


def command(port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "labels_app:app", "--app-dir", str(SUPPORT),
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", *extra]


def totals(text: str) -> dict[tuple[str, str, str], float]:
    """http_requests_total of /items/{n} by (tenant, cache, plan)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "http_requests_total" and labels["route"] == "/items/{n}":
                found[(labels["tenant"], labels["cache"], labels["plan"])] = sample.value
    return found


def scraped(base: str, count: float) -> dict[tuple[str, str, str], float]:
    """The totals once they add up to ``count`` (a worker records a request just after sending
    its response), or as they are after 5 s."""
    found: dict[tuple[str, str, str], float] = {}
    for _ in range(50):
        answer = httpx.get(f"{base}/api/metrics", timeout=10)
        assert answer.status_code == 200
        found = totals(answer.text)
        if sum(found.values()) == count:
            break
        time.sleep(0.1)
    return found


def send(base: str) -> None:
    with httpx.Client(base_url=base, timeout=10) as client:
        for tenant in ("acme", "acme", "globex", "initech"):
            assert client.get("/items/1", headers={"X-Tenant": tenant}).status_code == 200
        assert client.get("/items/2?cache=HIT", headers={"Authorization": "x"}).status_code == 200
        # Bytes that are not UTF-8 and a value far past the length cap: the scrape still parses.
        assert client.get("/items/3", headers={"X-Tenant": b"\xff\xfe" + b"x" * 5000}
                          ).status_code == 200


def test_header_labels_under_one_uvicorn_process_fold_into_other() -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**ENV, "MONITORING_LABEL_MAX_VALUES": "2"}
    with running_process(command(port), f"{base}/warmup", env=env):
        send(base)
        found = scraped(base, 6)
    assert found == {
        ("acme", "MISS", "free"): 2.0, ("globex", "MISS", "free"): 1.0,
        ("<other>", "MISS", "free"): 2.0, ("", "HIT", "pro"): 1.0}


@pytest.mark.timeout(120)
def test_header_labels_under_two_uvicorn_workers(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    directory = tmp_path / "multiproc"
    directory.mkdir()
    env = {**ENV, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    with running_process(command(port, "--workers", "2"), f"{base}/warmup", env=env,
                         timeout=60):
        send(base)
        found = scraped(base, 6)
    long_tenant = [key for key in found if key[0].startswith("\ufffd\ufffdx")]
    assert len(long_tenant) == 1 and len(long_tenant[0][0]) == 100
    del found[long_tenant[0]]
    assert found == {("acme", "MISS", "free"): 2.0, ("globex", "MISS", "free"): 1.0,
                     ("initech", "MISS", "free"): 1.0, ("", "HIT", "pro"): 1.0}
