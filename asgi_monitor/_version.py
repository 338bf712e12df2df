"""The package version. pyproject.toml is the one place it is written; an installed package
reads it back from its distribution's metadata."""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

__all__ = ["__version__"]

DISTRIBUTION = "asgi-monitoring"


def _from_checkout() -> str:
    # A source checkout that was never installed (`python -m asgi_monitor` at the repository
    # root, PYTHONPATH=.): the version is in the pyproject.toml beside the package. A regex, as
    # tomllib is 3.11+ and this is one line of a file we write.
    try:
        text = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text("utf-8")
    except OSError:
        return "0+unknown"
    match = re.search(r'^version\s*=\s*"([^"]+)"', text, re.M)
    return match.group(1) if match else "0+unknown"


try:
    __version__ = version(DISTRIBUTION)
except PackageNotFoundError:
    __version__ = _from_checkout()
