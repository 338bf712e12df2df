"""Fakes and helpers shared by the tests: ``from support import Clock, client, ...``.

tests/ is on sys.path through ``pythonpath`` in pyproject.toml, so every test folder imports this
package the same way. The scripts beside it run as separate processes: ``alert_worker.py``
(a second alert sender), ``multiprocess_app.py`` (the app uvicorn and gunicorn serve with several
workers, configured by ``gunicorn.conf.py``), ``series_worker.py`` (a worker that writes
thousands of series) and ``compact_worker.py`` (a compaction killed at a given step).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

import asgi_monitor
from asgi_monitor.alerting.channels import Channel, build_channels
from asgi_monitor.config import MonitoringConfig

IN_CI = os.environ.get("CI", "").lower() == "true"
# This folder, where the scripts run as separate processes live.
SUPPORT = Path(__file__).resolve().parent
# The checkout: tests/support/ is two folders down.
ROOT = SUPPORT.parent.parent
# The package the tests import, for subprocesses to import too.
PACKAGE_ROOT = str(Path(asgi_monitor.__file__).resolve().parent.parent)


def require_binary(name: str) -> str:
    """Path of a real tool the test needs; skip locally if absent, fail under CI=true."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (run `make system-deps`)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


# Headless Chromium as the browser tests run it: no sandbox (containers), nothing in the
# background that would reach the network.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A real headless Chromium (the Debian package) driven by Playwright, closed afterwards."""
    executable = require_binary("chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True,
                                             args=CHROMIUM_ARGS, timeout=30_000)
        try:
            yield browser
        finally:
            browser.close()


def require_module(name: str) -> None:
    """A module the test runs (``python -m gunicorn``); skip locally if absent, fail under
    CI=true."""
    import importlib.util

    if importlib.util.find_spec(name) is None:
        message = f"{name} is not installed (`pip install --group dev`)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


def client(app: Any, **kwargs: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test",
                             **kwargs)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def concrete_path(template: str, monitor: Any = None) -> str:
    """An endpoint template with real values, so admin endpoints answer 200, not 404.

    {name} is the built-in "memory" check, which exists in every default monitor. {id} is a
    silence, which exists only once created: with ``monitor`` one is created on it (a real
    resource, so the DELETE really expires something); without, the id names nothing (fine for
    requests the gate refuses before any handler runs).
    """
    def value(match: re.Match[str]) -> str:
        if match.group(1) != "id":
            return "memory"
        if monitor is None:
            return "no-such-silence"
        return str(monitor.alerts.silences.create({"alertname": "x"}, 60, comment="test").id)

    return re.sub(r"\{([^}]*)\}", value, template)


class Clock:
    """A clock the test moves by hand: pass it where the code takes ``clock=`` (a callable
    returning seconds); it answers ``now`` until the test sets ``now`` or calls ``advance()``."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def hello(scope: Any, receive: Any, send: Any) -> None:
    """A raw ASGI app answering "app" to every request."""
    await PlainTextResponse("app")(scope, receive, send)


async def _home(request: Request) -> Response:
    return PlainTextResponse("ok")


def starlette_app() -> Starlette:
    """A Starlette app with one route, ``/``, answering "ok"."""
    return Starlette(routes=[Route("/", _home)])


class HttpSink:
    """A real HTTP/1.1 server on 127.0.0.1 that records every request and answers ``status``.

    ``async with HttpSink() as sink:`` then post to ``sink.url``; ``sink.requests`` holds
    ``(method, path, headers, body)`` with lower-case header names. With ``delay`` it waits that
    long (or until the sink closes) before answering: an endpoint that times out.
    """

    def __init__(self, status: int = 200, body: bytes = b"{}", delay: float = 0.0) -> None:
        self.status = status
        self.body = body
        self.delay = delay
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.received = asyncio.Event()
        self._closing = asyncio.Event()
        self._server: asyncio.AbstractServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aenter__(self) -> HttpSink:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._closing.set()
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            body = await asyncio.wait_for(
                reader.readexactly(int(headers.get("content-length", "0"))), 10)
            self.requests.append((method, path, headers, body))
            self.received.set()
            if self.delay:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), self.delay)
            writer.write(f"HTTP/1.1 {self.status} X\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(self.body)}\r\nConnection: close\r\n\r\n"
                         .encode() + self.body)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    def json(self, index: int = -1) -> Any:
        return json.loads(self.requests[index][3])

    async def wait_for(self, count: int, timeout: float = 10.0) -> None:
        """Until ``count`` requests arrived (fails after ``timeout`` seconds)."""
        async def enough() -> None:
            while len(self.requests) < count:
                self.received.clear()
                await self.received.wait()

        await asyncio.wait_for(enough(), timeout)



class HangingSink(HttpSink):
    """An HttpSink that accepts, reads the request and never answers (until it closes): a
    receiver that hangs. ``requests`` still records what arrived."""

    def __init__(self) -> None:
        super().__init__(delay=math.inf)


async def _ok(request: Request) -> Response:
    return PlainTextResponse("ok")


def scraped_app(registry: CollectorRegistry, **sections: Any) -> Any:
    """A two-route Starlette app in a middleware with a monitor on ``registry``."""
    from asgi_monitor import MonitoringMiddleware, build_monitor

    app = Starlette(routes=[Route("/", _ok), Route("/items/{item_id}", _ok)])
    return MonitoringMiddleware(app, monitor=build_monitor(MonitoringConfig(**sections), registry))


async def traffic_and_scrape(mw: Any, **headers: str) -> httpx.Response:
    """A known, varied traffic through ``mw`` (a route, a template, an odd method, a miss, a
    custom metric with characters to escape), then its scrape."""
    async with client(mw) as c:
        await c.get("/")
        await c.get("/items/1")
        await c.request("BREW", "/")
        await c.get("/nope")
        mw.monitor.collector.increment_counter("custom_events_total", labels={"kind": 'a"b\\c'})
        return await c.get("/api/metrics", headers=headers)

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_process(command: list[str], ready_url: str, *, timeout: float = 30.0,
                    env: dict[str, str] | None = None,
                    cwd: str | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Start a real server, wait until ``ready_url`` answers 2xx, stop it afterwards.

    Fails (not skips) if it exits or does not become ready in time, with its last output.
    """
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd)

    def output() -> str:
        log.seek(0)
        return log.read().decode(errors="replace")[-3000:]

    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                pytest.fail(f"{command[0]} exited with {process.returncode}:\n{output()}")
            try:
                if httpx.get(ready_url, timeout=1).is_success:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{command[0]} not ready at {ready_url} after {timeout:g}s:\n"
                            f"{output()}")
            time.sleep(0.1)
        yield process
    finally:
        stop_process(process)
        log.close()


@contextlib.contextmanager
def serve(app: Any, *, timeout: float = 15.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn (lifespan on) in a thread on a free loopback port; yields the
    base URL and always stops the server."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            lifespan="on", ws="none", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn:{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError(f"uvicorn did not start on port {port} within {timeout}s")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)


def wait_until(condition: Callable[[], Any], *, timeout: float, what: str,
               interval: float = 0.1) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def stop_process(process: subprocess.Popen[Any], timeout: float = 15.0) -> None:
    """Terminate a server we started, killing it if it does not exit within ``timeout``."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


def channels_for(config: MonitoringConfig) -> list[Channel]:
    """The alert channels a configuration enables, as the monitor builds them."""
    return build_channels(config.alerts, config.email, config.webhooks)


def run_script(script: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run a Python script in a process that sees the package and nothing else of ours."""
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               # No .pyc writes: under RLIMIT_FSIZE a short write would leave
                               # a truncated one behind for the next test run to trip on.
                               env={"PYTHONPATH": PACKAGE_ROOT, "PATH": "/usr/bin:/bin",
                                    "PYTHONDONTWRITEBYTECODE": "1"})
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"the process did not exit within {timeout}s:\n{out}\n{err}")
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@contextlib.contextmanager
def running_prometheus(tmp_path: Path, target: str, *, rule_files: tuple[Path, ...] = (),
                       flags: tuple[str, ...] = ()) -> Iterator[tuple[str, httpx.Client]]:
    """A real Prometheus (Debian's binary) scraping ``target`` (host:port, job ``asgi``) every
    second: its API base URL and a client, once it is ready; stopped on exit."""
    prometheus = require_binary("prometheus")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    rules = ("rule_files:\n" + "".join(f"  - '{path}'\n" for path in rule_files)
             if rule_files else "")
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n" + rules +
        "scrape_configs:\n  - job_name: asgi\n    metrics_path: /api/metrics\n"
        f"    static_configs:\n      - targets: ['{target}']\n")
    log_path = tmp_path / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn", *flags],
            stdout=log, stderr=subprocess.STDOUT)
        api = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(timeout=5) as client:
                def ready() -> bool:
                    if process.poll() is not None:
                        pytest.fail(f"prometheus exited: {log_path.read_text()}")
                    try:
                        return client.get(f"{api}/-/ready").status_code == 200
                    except httpx.TransportError:
                        return False

                wait_until(ready, timeout=30, what="Prometheus to be ready")
                yield api, client
        finally:
            stop_process(process)


async def keep_alive_gets(url: str, path: str, total: int, connections: int,
                          per_connection: int = 100) -> Counter[str]:
    """``total`` GETs of ``path`` over ``connections`` concurrent keep-alive HTTP/1.1
    connections, each answered 200; how often each body came back.

    Each connection is replaced after ``per_connection`` requests, so the accepts (and the
    requests) spread over a server's workers. A few lines over asyncio streams instead of httpx:
    a test sending tens of thousands of requests would spend most of its time in httpx, on the
    2 cores the servers under test need.
    """
    host, port = url.removeprefix("http://").split(":")
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    bodies: Counter[str] = Counter()
    left = iter(range(total))

    async def connection() -> None:
        while True:
            reader, writer = await asyncio.open_connection(host, int(port))
            try:
                sent = 0
                for _ in left:
                    writer.write(request)
                    head = await reader.readuntil(b"\r\n\r\n")
                    assert head.split(b" ", 2)[1] == b"200", head
                    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length:"))
                    bodies[(await reader.readexactly(length)).decode()] += 1
                    sent += 1
                    if sent == per_connection:
                        break
                else:
                    return
            finally:
                writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    return bodies


def samples_sum(exposition: str, name: str) -> float:
    """The sum of every sample called ``name`` (all its label sets) in scraped text."""
    from prometheus_client.parser import text_string_to_metric_families

    return sum(sample.value for family in text_string_to_metric_families(exposition)
               for sample in family.samples if sample.name == name)


def requests_total(exposition: str, route: str) -> float | None:
    """``http_requests_total`` for a GET of ``route`` answered 200, read from scraped text."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == "http_requests_total" and sample.labels == {
                    "method": "GET", "route": route, "status": "200"}:
                return sample.value
    return None
