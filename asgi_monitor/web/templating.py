"""Jinja environment for the package's templates, with autoescaping always on.

The repository keeps templates in the top-level ``templates/`` folder; the wheel ships them as
``asgi_monitor/templates`` (``force-include`` in pyproject.toml), which is where we load them from.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

__all__ = ["environment", "template_dir"]


def template_dir() -> Path:
    return Path(str(files("asgi_monitor") / "templates"))


@lru_cache(maxsize=1)
def environment() -> Environment:
    # autoescape=True for every template, not only *.html: nothing we render is trusted.
    return Environment(loader=FileSystemLoader(template_dir()), autoescape=True,
                       undefined=StrictUndefined)
