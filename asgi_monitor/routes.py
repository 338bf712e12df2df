"""Route labels: the template of the route that served a request, read from the scope.

Routing already happened inside the app by the time a response is finished, and every framework
we support leaves its match in the (shared) scope dict, so we read it instead of matching again:

- FastAPI >= 0.137 puts the full template, including ``include_router`` prefixes, in
  ``scope["fastapi"]["effective_route_context"].path``.
- Starlette (>= 1.7) sets ``scope["route"]`` to the matched route and appends each Mount's
  matched prefix to ``scope["root_path"]``; the label is that added prefix plus the route's
  ``path_format``.
  (A Mount whose own prefix has path parameters puts their values in root_path: those labels are
  raw values, which the series cap bounds.)
- Litestar sets ``scope["path_template"]``.
- Anything else can pass a ``route_resolver(scope) -> str | None``.

A request none of these explain gets ``UNMATCHED``: one series, never the raw path, so junk
traffic (scanners, typos) cannot grow the label set.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from starlette.routing import Mount

from .config.metrics import RouteResolver

__all__ = ["UNMATCHED", "resolve_route"]

UNMATCHED = "<unmatched>"


def resolve_route(
    scope: MutableMapping[str, Any], entry_root_path: str, resolver: RouteResolver | None
) -> str:
    """Return the route template for a finished request (``UNMATCHED`` if unknown).

    ``entry_root_path`` is ``scope["root_path"]`` as it was before the app ran, so only the
    prefixes added by the app's own Mounts count. Runs on every request: plain lookups only.
    """
    fastapi_scope = scope.get("fastapi")
    if fastapi_scope is not None:
        path = getattr(fastapi_scope.get("effective_route_context"), "path", None)
        if path:
            return str(path)
    route = scope.get("route")
    if route is not None:
        prefix = scope.get("root_path", "")[len(entry_root_path):]
        if isinstance(route, Mount):
            # A Mount was the last thing matched (e.g. StaticFiles): its prefix is already in
            # root_path and the rest of the path is free-form.
            return str(prefix) + "/{path}"
        path_format = getattr(route, "path_format", None)
        if isinstance(path_format, str):
            return str(prefix + path_format)
    template = scope.get("path_template")
    if template:
        return str(template)
    if resolver is not None:
        return resolver(scope) or UNMATCHED
    return UNMATCHED
