"""Soak: the demo app under uvicorn, driven by wrk at full speed for a fixed time: no errors,
every request counted, bounded memory.

One uvicorn worker serves ``asgi_monitor.demo.app:create_app`` on 127.0.0.1 (no synthetic
traffic: wrk is the only client). Four wrk processes, one per path of a mix, run side by side,
first for the warm-up, then for the measured run. The server's RSS is sampled every second.
Checks, at the end of the measured run:

- wrk saw no socket error and no non-2xx answer;
- the app's ``http_requests_total`` (every series, scraped from ``/api/metrics`` before and after
  the measured run) grew by what wrk completed, plus at most one request per connection: when
  ``-d`` runs out, wrk closes its connections with a request in flight on each and does not count
  it, while the app may already have counted it (as 200, or as 499 if it saw the disconnect);
- only 2xx (and those 499s, within the same allowance) were recorded;
- RSS grew by at most ``--rss-bound-mb`` from the end of the warm-up to the end.

Prints a table; exits 1 if a check fails, 2 if the run itself could not be done.

Usage (see benchmarks/README.md)::

    python benchmarks/soak.py [--seconds 60] [--warmup 10] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
from prometheus_client.parser import text_string_to_metric_families

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # `python benchmarks/soak.py`: run.py sits beside it
    sys.path.insert(0, str(HERE))

from run import _free_port, _get, stop_group  # noqa: E402
from which_build import measured_build  # noqa: E402

# One wrk per path; connections split evenly. The routes cover a plain route, a path parameter,
# a mounted sub-app with a SQLite read, and the cache instrumentation.
PATHS = ("/", "/items/42", "/shop/orders/7", "/cache/k")
# The background loops run often, so the soak exercises them too (the demo's values).
SERVER_ENV = {"METRICS_COLLECTION_INTERVAL": "5", "HEALTH_CHECK_INTERVAL": "10",
              "ALERT_CHECK_INTERVAL": "5", "ALERT_WINDOW_SECONDS": "30"}
CLIENT_CLOSED = "499"


@dataclass
class WrkResult:
    path: str
    completed: int = 0
    socket_errors: int = 0
    non_2xx: int = 0
    requests_per_second: float = 0.0
    output: str = ""


@dataclass
class Report:
    seconds: float
    warmup: float
    connections: int
    rss_bound_mb: float
    command: list[str] = field(default_factory=list)
    wrk: list[WrkResult] = field(default_factory=list)
    rss_mb: list[tuple[float, float]] = field(default_factory=list)  # (seconds since start, MB)
    rss_after_warmup_mb: float = 0.0
    rss_end_mb: float = 0.0
    counted: dict[str, float] = field(default_factory=dict)  # status -> requests, measured run
    failures: list[str] = field(default_factory=list)

    @property
    def completed(self) -> int:
        return sum(w.completed for w in self.wrk)

    @property
    def counted_total(self) -> float:
        return sum(self.counted.values())


def get(port: int, path: str, timeout: float = 5.0) -> tuple[int, str]:
    status, body = _get(port, path, timeout)
    return status, body.decode()


def requests_by_status(port: int) -> dict[str, float]:
    """``http_requests_total`` summed over routes and methods, by status."""
    status, text = get(port, "/api/metrics")
    if status != 200:
        raise RuntimeError(f"/api/metrics answered {status}")
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "http_requests_total":
                code = sample.labels["status"]
                totals[code] = totals.get(code, 0.0) + sample.value
    return totals


@contextlib.contextmanager
def demo_server(cpu: str | None) -> Iterator[tuple[int, int, list[str]]]:
    """The demo app in a uvicorn subprocess on loopback; yields (port, pid, command)."""
    port = _free_port()
    command = [sys.executable, "-m", "uvicorn", "--factory", "asgi_monitor.demo.app:create_app",
               "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
               "--no-access-log", "--log-level", "warning"]
    if cpu is not None:
        command = ["taskset", "-c", cpu, *command]  # taskset execs: the pid is uvicorn's
    env = {**os.environ, **SERVER_ENV}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = tempfile.TemporaryFile()
    # cwd=HERE: `python -m` puts the working directory first on sys.path, and from the repository
    # root that would serve the source tree instead of the installed (compiled) package.
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=HERE,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"uvicorn exited with {proc.returncode}:\n"
                                   f"{log.read().decode(errors='replace')[-2000:]}")
            with contextlib.suppress(OSError):
                if get(port, "/", timeout=1.0)[0] == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not answer within 30 s")
            time.sleep(0.1)
        yield port, proc.pid, command
    finally:
        stop_group(proc)
        log.close()


def parse_wrk(path: str, output: str) -> WrkResult:
    completed = re.search(r"(\d+) requests in", output)
    if completed is None:
        raise RuntimeError(f"could not read wrk's output for {path}:\n{output}")
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    return WrkResult(path, int(completed.group(1)),
                     sum(map(int, socket_errors.groups())) if socket_errors else 0,
                     int(non_2xx.group(1)) if non_2xx else 0,
                     float(rps.group(1)) if rps else 0.0, output)


def drive(port: int, pid: int, seconds: float, connections: int, cpu: str | None,
          report: Report, started: float) -> list[WrkResult]:
    """Run one wrk per path for ``seconds``, sampling the server's RSS every second."""
    per_path = max(1, connections // len(PATHS))
    commands = {path: ["wrk", "-t1", f"-c{per_path}", f"-d{int(seconds)}s",
                       f"http://127.0.0.1:{port}{path}"] for path in PATHS}
    if cpu is not None:
        commands = {path: ["taskset", "-c", cpu, *cmd] for path, cmd in commands.items()}
    server = psutil.Process(pid)
    runs = {path: subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True) for path, cmd in commands.items()}
    try:
        deadline = time.monotonic() + seconds + 60
        while any(run.poll() is None for run in runs.values()):
            if time.monotonic() > deadline:
                raise RuntimeError("wrk did not finish in time")
            report.rss_mb.append((round(time.monotonic() - started, 1),
                                  server.memory_info().rss / 2**20))
            time.sleep(1.0)
        return [parse_wrk(path, run.communicate()[0]) for path, run in runs.items()]
    finally:
        for run in runs.values():
            if run.poll() is None:
                run.kill()
                run.wait()


def settle(port: int) -> dict[str, float]:
    """The request counts once the requests still in flight have been recorded."""
    previous = requests_by_status(port)
    while True:
        time.sleep(0.5)
        current = requests_by_status(port)
        if current == previous:
            return current
        previous = current


def soak(seconds: float, warmup: float, connections: int, rss_bound_mb: float) -> Report:
    report = Report(seconds, warmup, connections, rss_bound_mb)
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu = wrk_cpu = None
    if shutil.which("taskset") and len(cpus) >= 2:
        server_cpu, wrk_cpu = str(cpus[0]), str(cpus[1])
    with demo_server(server_cpu) as (port, pid, command):
        report.command = command
        started = time.monotonic()
        drive(port, pid, warmup, connections, wrk_cpu, report, started)
        before = settle(port)
        report.rss_after_warmup_mb = psutil.Process(pid).memory_info().rss / 2**20
        report.rss_mb.append((round(time.monotonic() - started, 1), report.rss_after_warmup_mb))
        report.wrk = drive(port, pid, seconds, connections, wrk_cpu, report, started)
        after = settle(port)
        report.rss_end_mb = psutil.Process(pid).memory_info().rss / 2**20
        report.rss_mb.append((round(time.monotonic() - started, 1), report.rss_end_mb))
    report.counted = {status: after.get(status, 0.0) - before.get(status, 0.0)
                      for status in sorted(set(after) | set(before))}
    report.counted = {status: n for status, n in report.counted.items() if n}
    check(report)
    return report


def check(report: Report) -> None:
    failures = report.failures
    per_path = max(1, report.connections // len(PATHS))
    in_flight = per_path * len(PATHS)  # at most one uncounted request per wrk connection
    for run in report.wrk:
        if run.socket_errors or run.non_2xx:
            failures.append(f"wrk {run.path}: {run.socket_errors} socket errors, "
                            f"{run.non_2xx} non-2xx answers")
    extra = report.counted_total - report.completed
    if not 0 <= extra <= in_flight:
        failures.append(f"the app counted {report.counted_total:.0f} requests, wrk completed "
                        f"{report.completed} (allowed: +0 … +{in_flight})")
    unexpected = {s: n for s, n in report.counted.items()
                  if not s.startswith("2") and s != CLIENT_CLOSED}
    if unexpected or report.counted.get(CLIENT_CLOSED, 0) > in_flight:
        failures.append(f"statuses other than 2xx were recorded: {report.counted}")
    growth = report.rss_end_mb - report.rss_after_warmup_mb
    if growth > report.rss_bound_mb:
        failures.append(f"RSS grew by {growth:.1f} MB after the warm-up (bound "
                        f"{report.rss_bound_mb:g} MB)")


def table(report: Report) -> str:
    lines = ["| wrk path | completed | requests/s | socket errors | non-2xx |",
             "|---|---:|---:|---:|---:|"]
    for run in report.wrk:
        lines.append(f"| `{run.path}` | {run.completed} | {run.requests_per_second:.0f} | "
                     f"{run.socket_errors} | {run.non_2xx} |")
    total_rps = sum(run.requests_per_second for run in report.wrk)
    lines.append(f"| all | {report.completed} | {total_rps:.0f} | "
                 f"{sum(r.socket_errors for r in report.wrk)} | "
                 f"{sum(r.non_2xx for r in report.wrk)} |")
    growth = report.rss_end_mb - report.rss_after_warmup_mb
    peak = max(mb for _, mb in report.rss_mb)
    lines += ["", "| check | value |", "|---|---|",
              f"| app `http_requests_total` over the run | {report.counted_total:.0f} "
              f"({', '.join(f'{s}: {n:.0f}' for s, n in report.counted.items())}) |",
              f"| minus wrk completed | {report.counted_total - report.completed:+.0f} "
              f"(allowed +0 … +{max(1, report.connections // len(PATHS)) * len(PATHS)}) |",
              f"| RSS at start / end of warm-up / end | {report.rss_mb[0][1]:.1f} / "
              f"{report.rss_after_warmup_mb:.1f} / {report.rss_end_mb:.1f} MB |",
              f"| RSS growth after warm-up (peak) | {growth:+.2f} MB (peak {peak:.1f} MB; "
              f"bound {report.rss_bound_mb:g} MB) |"]
    step = max(1, len(report.rss_mb) // 10)
    points = report.rss_mb[::step] + ([report.rss_mb[-1]] if len(report.rss_mb) % step else [])
    lines += ["", "RSS (s → MB): " + ", ".join(f"{t:g}→{mb:.1f}" for t, mb in points)]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60, help="measured run (default 60)")
    parser.add_argument("--warmup", type=float, default=10, help="warm-up (default 10)")
    parser.add_argument("--connections", type=int, default=16,
                        help="wrk connections in all, split over the paths (default 16)")
    parser.add_argument("--rss-bound-mb", type=float, default=5.0,
                        help="allowed RSS growth after the warm-up (default 5)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="dump the raw results here")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian package `wrk`)", file=sys.stderr)
        return 2
    try:
        report = soak(args.seconds, args.warmup, args.connections, args.rss_bound_mb)
    except (RuntimeError, OSError, psutil.Error) as exc:
        print(f"soak could not run: {exc}", file=sys.stderr)
        return 2
    print(f"soak: {args.seconds:g} s after a {args.warmup:g} s warm-up, "
          f"{args.connections} connections over {', '.join(PATHS)}")
    print(f"server: {' '.join(report.command)}")
    print(f"measured build: {measured_build()}\n")
    print(table(report))
    if args.json:
        data: dict[str, Any] = asdict(report)
        for run in data["wrk"]:
            run.pop("output")
        args.json.write_text(json.dumps(data, indent=2))
    print()
    for failure in report.failures:
        print(f"FAIL: {failure}")
    print("soak: OK" if not report.failures else "soak: FAILED")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
