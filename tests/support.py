"""Helpers shared by the tests (imported as `support`; tests/ is on sys.path)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

IN_CI = os.environ.get("CI", "").lower() == "true"


def require_binary(name: str) -> str:
    """Path of a real tool the test needs; skip locally if absent, fail under CI=true."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (run `make system-deps`)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def client(app: Any, **kwargs: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test",
                             **kwargs)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def concrete_path(template: str) -> str:
    """An endpoint template with real values: {name} is the built-in "memory" check, which
    exists in every default monitor (so admin endpoints answer 200, not 404)."""
    return re.sub(r"\{[^}]*\}", "memory", template)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
