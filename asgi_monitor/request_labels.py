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

    def resolve(self, scope: Mapping[str, Any], status: int,
                response_headers: Sequence[tuple[bytes, bytes]]) -> tuple[str, ...]:
        """This request's value of every label, in :attr:`names`' order."""
        values = []
        for i, (kind, what, allowed) in enumerate(self._plan):
            try:
                if kind == _REQUEST:
                    raw: object = _header(scope.get("headers", ()), what)
                elif kind == _RESPONSE:
                    raw = _header(response_headers, what)
                elif kind == _SCOPE:
                    raw = _scope_value(scope, what)
                else:
                    raw = what(scope, status, response_headers)
                value = _clean(raw)
            except Exception as exc:
                self._on_error("request_labels", exc)
                value = ""
            values.append(self._bounded(i, value, allowed))
        return tuple(values)

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
    for key, value in headers:
        if key == name or key.lower() == name:
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
    if isinstance(raw, bytes):
        # Cut before decoding: a cut multi-byte character becomes one replacement character.
        value = raw[:MAX_VALUE_CHARS * 4].decode("utf-8", "replace").strip()
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
