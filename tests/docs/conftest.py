"""What the packaging checks share: the project's pyproject.toml, parsed."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from support import ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest itself depends on tomli before 3.11
    import tomli as tomllib


@pytest.fixture(scope="session")
def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
