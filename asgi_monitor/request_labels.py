"""Request labels at run time: each request's values of the labels the user chose.

Built only when labels are configured (``metrics.header_labels`` / ``metrics.request_labels``,
declared in :mod:`asgi_monitor.config.labels`); the middleware then calls :meth:`LabelResolver.
resolve` once per request, after the response, and records the values with the request.

What a value may be is bounded here, before it reaches a store: at most
:data:`MAX_VALUE_CHARS` characters, never a control character (a header's bytes are decoded
leniently, so invalid UTF-8 cannot break a scrape), and per label only the first
``label_max_values`` distinct values (or the ``allowed`` ones) keep their own series; any other
counts as :data:`OTHER`. A request without the source gets the empty value. A failing source
(a callable that raises) loses that label's value for the request, never the request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .config.labels import Computed, LabelSource, RequestHeader, ResponseHeader, ScopeValue

__all__ = ["MAX_VALUE_CHARS", "OTHER", "LabelResolver"]

OTHER = "<other>"
# A tenant id, a client id, a plan or a region fits; a header a client fills with a kilobyte
# must not multiply the scrape's size.
MAX_VALUE_CHARS = 100

_REQUEST, _RESPONSE, _SCOPE, _CALL = range(4)


class LabelResolver:
    """The values of the configured request labels for one request, bounded per label."""

    def __init__(self, labels: Sequence[tuple[str, LabelSource]], max_values: int,
                 on_error: Callable[[str, BaseException], None]) -> None:
        self.names = tuple(name for name, _ in labels)
        self._max_values = max_values
        self._on_error = on_error
        # Per label: (kind, what to read: header name as ASGI has it / scope keys / callable,
        # allowed values or None).
        self._plan: list[tuple[int, Any, frozenset[str] | None]] = []
        for _, source in labels:
            if isinstance(source, RequestHeader):
                self._plan.append((_REQUEST, source.name.lower().encode("latin-1"),
                                   source.allowed))
            elif isinstance(source, ResponseHeader):
                self._plan.append((_RESPONSE, source.name.lower().encode("latin-1"),
                                   source.allowed))
            elif isinstance(source, ScopeValue):
                self._plan.append((_SCOPE, source.keys, source.allowed))
            elif isinstance(source, Computed):
                self._plan.append((_CALL, source.function, source.allowed))
            else:
                raise TypeError(f"not a label source: {source!r}")
        # True when a label reads the response's headers: only then does the middleware keep
        # them.
        self.needs_response_headers = any(kind == _RESPONSE for kind, _, _ in self._plan)
        # Per label, the distinct values seen so far that keep their own series.
        self._seen: list[set[str]] = [set() for _ in self._plan]
        # Per label, what a raw value (a header's bytes, a scope value, a callable's result)
        # resolved to: a request then costs one lookup. Bounded, since what clients send is
        # not; past the bound a value is resolved again each time (the same answer).
        self._known: list[dict[object, str]] = [{} for _ in self._plan]
        self._known_limit = max(4 * max_values, 256)
        # The request-header labels by header name (as ASGI has it: lower case), read in one
        # pass over the request's headers.
        self._by_header = {what: i for i, (kind, what, _) in enumerate(self._plan)
                           if kind == _REQUEST}
        self._blank = ("",) * len(self._plan)
        # The usual case, one label from a request header, resolved without the general loop
        # (the middleware reads it, its known values and the blank values to do the same in
        # the compiled build).
        self._single: bytes | None = (self._plan[0][1] if len(self._plan) == 1
                                      and self._plan[0][0] == _REQUEST else None)
        self.single_header = self._single
        self.single_known = self._known[0] if self._single is not None else {}
        self.blank = self._blank

    def resolve(self, scope: Mapping[str, Any], status: int,
                response_headers: Sequence[tuple[bytes, bytes]]) -> tuple[str, ...]:
        """This request's value of every label, in :attr:`names`' order."""
        single = self._single
        if single is not None:
            for key, value in scope.get("headers", ()):
                if key == single:
                    try:
                        found = self._known[0].get(value)
                    except TypeError:  # not bytes (a server's bytearray): resolved each time
                        found = None
                    return (found if found is not None else self._learn(0, value),)
            return self._blank
        values = list(self._blank)
        if self._by_header:
            by_header = self._by_header
            filled: set[int] = set()
            for key, value in scope.get("headers", ()):
                i = by_header.get(key)
                if i is not None and i not in filled:  # the first one, if repeated
                    filled.add(i)
                    try:
                        found = self._known[i].get(value)
                    except TypeError:
                        found = None
                    values[i] = found if found is not None else self._learn(i, value)
        for i, (kind, what, _) in enumerate(self._plan):
            if kind == _REQUEST:
                continue
            try:
                if kind == _RESPONSE:
                    raw: object = _header(response_headers, what)
                elif kind == _SCOPE:
                    raw = _scope_value(scope, what)
                else:
                    raw = what(scope, status, response_headers)
                if raw is None:
                    continue
                found = self._known[i].get(raw)
            except TypeError:
                found = None  # an unhashable value: resolved each time
            except Exception as exc:
                self._on_error("request_labels", exc)
                continue
            values[i] = found if found is not None else self._learn(i, raw)
        return tuple(values)

    def _learn(self, i: int, raw: object) -> str:
        """Resolve a raw value met for the first time (or past the bound of known ones)."""
        try:
            value = self._bounded(i, _clean(raw), self._plan[i][2])
        except Exception as exc:
            self._on_error("request_labels", exc)
            return ""
        known = self._known[i]
        if len(known) < self._known_limit:
            try:
                known[raw] = value
            except TypeError:
                pass  # an unhashable value from a scope or a callable: resolved each time
        return value

    def _bounded(self, i: int, value: str, allowed: frozenset[str] | None) -> str:
        if not value:
            return value
        if allowed is not None:
            return value if value in allowed else OTHER
        seen = self._seen[i]
        if value in seen:
            return value
        if len(seen) >= self._max_values:
            return OTHER
        seen.add(value)
        return value


def _header(headers: Any, name: bytes) -> bytes | None:
    # ASGI: header names are lower case.
    for key, value in headers:
        if key == name:
            return bytes(value)
    return None


def _scope_value(scope: Mapping[str, Any], keys: tuple[str, ...]) -> object:
    found: Any = scope
    for key in keys:
        if isinstance(found, Mapping):
            found = found.get(key)
        else:
            found = getattr(found, key, None)  # Starlette's State, an object with attributes
        if found is None:
            return None
    return found


def _clean(raw: object) -> str:
    """``raw`` as a label value: bytes decoded leniently, cut to MAX_VALUE_CHARS, control
    characters replaced."""
    if raw is None:
        return ""
    if isinstance(raw, (bytes, bytearray, memoryview)):
        # Cut before decoding: a cut multi-byte character becomes one replacement character.
        value = bytes(raw[:MAX_VALUE_CHARS * 4]).decode("utf-8", "replace").strip()
    elif isinstance(raw, str):
        value = raw
    elif isinstance(raw, (int, float)):
        value = str(raw)
    else:
        raise TypeError(f"a request label's value must be a str or None, got "
                        f"{type(raw).__name__}")
    value = value[:MAX_VALUE_CHARS]
    if not value.isprintable():
        # Tabs, newlines, escapes: a forged log line or a broken exposition otherwise.
        value = "".join(c if c.isprintable() else "\ufffd" for c in value)
    return value
