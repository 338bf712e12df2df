"""A worker process for ``unit/metrics/test_worker_files.py``: builds a monitor on
``PROMETHEUS_MULTIPROC_DIR``, does what its JSON argument says, prints its pid and exits (or,
with ``"hold": true``, waits for a line on stdin first, so the test sees it live).

``{"requests": [["GET", "/a", 200, n], ...], "open": k, "gauge": v, "counter": c,
"fsize": bytes, "routes": n, "exemplar": [seconds, trace_id]}``: ``exemplar`` records one more
GET /a with that exemplar, ``open`` leaves k requests in progress, ``fsize`` sets
RLIMIT_FSIZE (SIGXFSZ ignored, so a write past it fails with EFBIG instead of killing), ``routes``
records one request on each of n new routes after the limit; ``"native": true`` turns native
histograms on and ``"durations": [seconds, ...]`` records a GET /a of each (as its TTFB too);
``streams`` (``[["GET", "/s", lifetime, n], ...]``) records n streams of that lifetime,
``open_streams`` leaves k streams open; ``labelled``:
``[["GET", "/a", 200, ["acme"], n], ...]`` records requests with request label values.
"""

from __future__ import annotations

import json
import os
import sys

from prometheus_client import CollectorRegistry

from asgi_monitor import MonitoringConfig, build_monitor
from asgi_monitor.config import HealthSettings, MetricsSettings, SystemSettings


def main() -> None:
    plan = json.loads(sys.argv[1])
    monitor = build_monitor(
        MonitoringConfig(system=SystemSettings(metrics=False),
                         health=HealthSettings(default_checks=False),
                         metrics=MetricsSettings(native_histograms=plan.get("native", False))),
        CollectorRegistry())
    requests = monitor.collector.requests
    for seconds in plan.get("durations", ()):
        requests.record("GET", "/a", 200, "http", seconds, seconds, 0, 10)
    for method, route, status, count in plan.get("requests", ()):
        for _ in range(count):
            requests.record(method, route, status, "http", 0.01, 0.005, 0, 10)
    for method, route, status, labels, count in plan.get("labelled", ()):
        for _ in range(count):
            requests.record_labelled(method, route, status, "http", tuple(labels), 0.01, 0.005,
                                     0, 10, None)
    if "exemplar" in plan:
        seconds, trace_id = plan["exemplar"]
        requests.record_exemplar("GET", "/a", 200, "http", seconds, seconds, 0, 10,
                                 {"trace_id": trace_id})
    for _ in range(plan.get("open", 0)):
        requests.begin("GET")
    for method, route, lifetime, count in plan.get("streams", ()):
        for _ in range(count):
            requests.record_stream(method, route, lifetime)
    requests.streams_open.add(plan.get("open_streams", 0))
    if "gauge" in plan:
        monitor.collector.set_gauge("queue_depth", plan["gauge"])
    if "counter" in plan:
        monitor.collector.increment_counter("jobs_total", value=plan["counter"])
    if "fsize" in plan:
        import resource
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (plan["fsize"], plan["fsize"]))
        for n in range(plan.get("routes", 0)):
            requests.record("GET", f"/new/{n}", 200, "http", 0.01, 0.005, 0, 10)
        requests.record("GET", "/a", 200, "http", 0.01, 0.005, 0, 10)  # an existing series
    print(os.getpid(), flush=True)
    if plan.get("hold"):
        sys.stdin.readline()


if __name__ == "__main__":
    main()
