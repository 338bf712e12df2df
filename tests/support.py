"""Helpers shared by the tests (imported as `support`; tests/ is on sys.path)."""

from __future__ import annotations

import os
import re
import shutil
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
