"""Jinja environment for the package's templates, with autoescaping always on.

The repository keeps templates in the top-level ``templates/`` folder; the wheel ships them as
``asgi_monitor/templates`` (``force-include`` in pyproject.toml), which is where an installed
package loads them from. Imported from a source checkout instead (an editable install, or
``python -m asgi_monitor`` run in the repository), the package folder has none, and the
repository's own ``templates/`` next to it is used.
"""

from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

__all__ = ["environment", "template_dir"]


def template_dir() -> Path:
    packaged = Path(str(files("asgi_monitor") / "templates"))
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parents[2] / "templates"
    return checkout if checkout.is_dir() else packaged


@lru_cache(maxsize=1)
def environment() -> Environment:
    # autoescape=True for every template, not only *.html: nothing we render is trusted.
    env = Environment(loader=FileSystemLoader(template_dir()), autoescape=True,
                      undefined=StrictUndefined)
    env.filters["isotime"] = isotime
    env.filters["clocktime"] = clocktime
    return env


def _moment(value: float | str) -> datetime:
    if isinstance(value, str):
        return datetime.fromisoformat(value).astimezone(timezone.utc)
    return datetime.fromtimestamp(value, timezone.utc)


def isotime(value: float | str) -> str:
    """A unix time or an ISO string as ISO 8601 in UTC, whole seconds (``<time datetime>``)."""
    return _moment(value).replace(microsecond=0).isoformat()


def clocktime(value: float | str) -> str:
    """The same moment as HH:MM:SS in UTC: what the page shows until the script makes it
    local."""
    return _moment(value).strftime("%H:%M:%S")
