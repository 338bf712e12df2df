"""Routes of the app that the monitoring paths hide, found once and logged as a warning.

The middleware answers every path under its prefixes (``/api/metrics``, ``/api/health``, ...)
and the probe paths (``/livez``, ``/readyz``, ``/startupz``) itself, so an app route there
(``/api/health``, ``/api/metrics/business``, its own ``/livez``) never runs. This module reads
the app's route table, when it has one, and names each such route once per process, with the
setting that moves the monitoring paths. It runs at startup and on the first request, never
per request, which is why it lives outside the compiled hot path.

Route tables it can read: Starlette and FastAPI (``app.routes``, ``Mount``/``Host`` recursively,
FastAPI's included routers), Litestar (``app.routes``, each with its full ``path``), also through
middleware that wraps the app (found through ``app``/``router``/``routes``). A raw ASGI callable
has no table: nothing can be said about it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

from .config.metrics import PathSettings

__all__ = ["Shadowed", "app_routes", "shadowed_routes", "warn_shadowed_routes"]

logger = logging.getLogger("asgi_monitor")

# Wrappers between the middleware and the route table (CORS, GZip, Sentry, ...) and mounts
# within mounts: real stacks are a handful deep; the bounds keep a cyclic object graph finite.
_MAX_HOPS = 32
_MAX_DEPTH = 16

# (app route, monitoring prefix) pairs already reported by this process.
_reported: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Shadowed:
    """An app route the monitoring prefix ``prefix`` answers instead of the app."""

    route: str
    prefix: str
    # The PathSettings field that holds ``prefix`` ("health", "metrics", ...).
    setting: str

    def message(self) -> str:
        names = PathSettings.env_names(self.setting)
        where = f"{' / '.join(names)} ({PathSettings.qualified(self.setting)})" if names \
            else PathSettings.qualified(self.setting)
        # A probe can also be switched off, leaving the app's own probe in place.
        move = f"Move the monitoring path with {where}"
        if self.setting in PathSettings.PROBES:
            move += " (`off` switches it off)"
        return (f"the app's route {self.route} is shadowed by the monitoring path {self.prefix}: "
                f"asgi_monitor answers every request under {self.prefix} (404 where it has no "
                f"endpoint), so this route never runs. {move}, "
                f"or rename the route, or serve the monitoring endpoints on a port of their own "
                f"(MonitoringMiddleware(app, serve_endpoints=False); see docs/deployment.md)")


def _attribute(obj: object, name: str) -> object:
    # Framework objects compute some of these lazily; a property that fails says nothing.
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def _route_table(app: object) -> list[object] | None:
    """The routes of ``app`` or of the app that it wraps; None if none is found."""
    seen: set[int] = set()
    todo = [app]
    hops = 0
    while todo and hops < _MAX_HOPS:
        obj = todo.pop(0)
        hops += 1
        if obj is None or id(obj) in seen:
            continue
        seen.add(id(obj))
        routes = _attribute(obj, "routes")
        # A wrapper may have a "routes" setting of its own (a list of strings, say): only a list
        # of route-like objects ends the walk.
        if isinstance(routes, (list, tuple)) and (not routes or any(
                _attribute(r, name) is not None for r in routes
                for name in ("path", "routes", "original_router"))):
            return list(routes)
        todo.extend(_attribute(obj, name) for name in ("router", "app"))
    return None


def _templates(routes: list[object], prefix: str, depth: int) -> Iterator[str]:
    for route in routes:
        path = _attribute(route, "path")
        path = path if isinstance(path, str) else ""
        # FastAPI (recent versions) keeps each include_router() as a node of its own: the
        # router's routes carry its own prefix, the node the prefix given to include_router().
        included = _attribute(route, "original_router")
        if included is not None:
            include_prefix = _attribute(_attribute(route, "include_context"), "prefix")
            table = _route_table(included)
            if table is not None and depth < _MAX_DEPTH:
                yield from _templates(table, prefix + path + (
                    include_prefix if isinstance(include_prefix, str) else ""), depth + 1)
            continue
        # A Mount (or Host) has routes of its own; a Mount of an app wrapped in middleware has
        # none at hand, its app leads to them.
        if _attribute(route, "routes") is not None:
            table = _route_table(route) or _route_table(_attribute(route, "app"))
            if table and depth < _MAX_DEPTH:
                yield from _templates(table, prefix + path, depth + 1)
                continue
        if path:
            # A route, or a mount whose app has no table: everything under its path is its.
            yield prefix + path


def app_routes(app: object) -> list[str] | None:
    """The path templates of ``app``'s routes (mounts joined), or None if it has no route table
    this module can read (a raw ASGI app)."""
    table = _route_table(app)
    if table is None:
        return None
    return list(dict.fromkeys(_templates(table, "", 0)))


def _under(template: str, prefix: str) -> bool:
    # A template with a parameter before the prefix ends (/api/{name}) still serves its other
    # paths: it is only partly hidden and is not reported.
    return template == prefix or template.startswith(prefix + "/")


def shadowed_routes(app: object, paths: PathSettings) -> list[Shadowed] | None:
    """The routes of ``app`` that a monitoring prefix hides (None if ``app`` has no readable
    route table). The most specific prefix is named when prefixes nest."""
    templates = app_routes(app)
    if templates is None:
        return None
    prefixes = sorted(((getattr(paths, name), name) for name in PathSettings.PREFIXES),
                      key=lambda item: len(item[0]), reverse=True)
    # A probe hides its own path only; one switched off (empty) hides nothing.
    probes = {getattr(paths, name): name for name in PathSettings.PROBES if getattr(paths, name)}
    found = []
    for template in templates:
        if template in probes:
            found.append(Shadowed(template, template, probes[template]))
            continue
        for prefix, name in prefixes:
            if _under(template, prefix):
                found.append(Shadowed(template, prefix, name))
                break
    return found


def warn_shadowed_routes(app: object, paths: PathSettings) -> list[Shadowed]:
    """Log one warning per shadowed route not reported before in this process; return them."""
    found = shadowed_routes(app, paths)
    if found is None:
        logger.debug("the app (%s) has no route table asgi_monitor can read: routes shadowed "
                     "by the monitoring paths cannot be detected", type(app).__qualname__)
        return []
    new = [s for s in found if (s.route, s.prefix) not in _reported]
    for shadowed in new:
        _reported.add((shadowed.route, shadowed.prefix))
        logger.warning("%s", shadowed.message())
    return new
