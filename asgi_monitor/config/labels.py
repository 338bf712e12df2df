"""Request labels the user chooses: where each label's value comes from.

A request label is one more label on the request counter and histograms, such as ``tenant`` or
``client``, whose value each request brings::

    MetricsSettings(request_labels={
        "tenant": RequestHeader("X-Tenant"),
        "plan": ScopeValue("state", "plan", allowed=("free", "pro")),
        "cache": ResponseHeader("X-Cache", allowed=("HIT", "MISS")),
        "region": lambda scope, status, headers: scope["state"].get("region"),
    })

or from the environment, request headers only:
``MONITORING_HEADER_LABELS="tenant=X-Tenant,client=X-Client-Id"``.

A request without the source gets the empty value; a value outside ``allowed``, or past the
first ``MONITORING_LABEL_MAX_VALUES`` distinct ones of its label, counts as ``<other>``
(:mod:`asgi_monitor.request_labels` resolves them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

__all__ = ["Computed", "LabelSource", "RequestHeader", "ResponseHeader", "ScopeValue",
           "header_label_pairs", "valid_header_name"]

# What a label's callable gets: the ASGI scope, the response status (0 before any response)
# and the response headers as the ASGI message has them (empty unless a response-header label
# is configured, which is what makes the middleware keep them).
LabelFunction = Callable[[Mapping[str, Any], int, Sequence[tuple[bytes, bytes]]], "str | None"]


def _allowed(values: Iterable[str] | None) -> frozenset[str] | None:
    return None if values is None else frozenset(values)


class _Source:
    """A label's source: compared and hashed by its fields (a config holding one stays
    comparable); plain classes rather than dataclasses, which cost import time."""

    __slots__ = ("allowed",)
    allowed: frozenset[str] | None

    def _fields(self) -> tuple[Any, ...]:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, _Source)
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash((self.__class__, self._fields()))

    def __repr__(self) -> str:
        shown = ", ".join(map(repr, self._fields()[:-1]))
        if self.allowed is not None:
            shown += f", allowed={sorted(self.allowed)!r}"
        return f"{type(self).__name__}({shown})"


class RequestHeader(_Source):
    """The value of a request header (the first one, if the request repeats it)."""

    __slots__ = ("name",)
    name: str

    def __init__(self, name: str, *, allowed: Iterable[str] | None = None) -> None:
        self.name = name
        self.allowed = _allowed(allowed)

    def _fields(self) -> tuple[Any, ...]:
        return (self.name, self.allowed)


class ResponseHeader(_Source):
    """The value of a header of the response the app sent (read when the response starts)."""

    __slots__ = ("name",)
    name: str

    def __init__(self, name: str, *, allowed: Iterable[str] | None = None) -> None:
        self.name = name
        self.allowed = _allowed(allowed)

    def _fields(self) -> tuple[Any, ...]:
        return (self.name, self.allowed)


class ScopeValue(_Source):
    """A value in the ASGI scope, by its keys: ``ScopeValue("state", "tenant")`` reads
    ``scope["state"]["tenant"]`` (what an auth middleware sets), after the app answered."""

    __slots__ = ("keys",)
    keys: tuple[str, ...]

    def __init__(self, *keys: str, allowed: Iterable[str] | None = None) -> None:
        self.keys = keys
        self.allowed = _allowed(allowed)

    def _fields(self) -> tuple[Any, ...]:
        return (self.keys, self.allowed)


class Computed(_Source):
    """A callable ``function(scope, status, response_headers) -> str | None``, called once per
    request after the response; a plain callable in ``request_labels`` means this."""

    __slots__ = ("function",)
    function: LabelFunction

    def __init__(self, function: LabelFunction, *, allowed: Iterable[str] | None = None) -> None:
        self.function = function
        self.allowed = _allowed(allowed)

    def _fields(self) -> tuple[Any, ...]:
        return (self.function, self.allowed)


LabelSource = RequestHeader | ResponseHeader | ScopeValue | Computed
SOURCES = (RequestHeader, ResponseHeader, ScopeValue, Computed)


def valid_header_name(name: object) -> bool:
    """An HTTP field name (RFC 9110's token): visible ASCII without separators."""
    return (isinstance(name, str) and name != "" and name.isascii()
            and all(c.isalnum() or c in "!#$%&'*+-.^_`|~" for c in name))


def header_label_pairs(raw: str) -> tuple[tuple[str, str], ...]:
    """``label=Header-Name`` pairs, comma-separated: ``tenant=X-Tenant,client=X-Client-Id``."""
    pairs = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        name, sep, header = part.partition("=")
        if not sep:
            raise ValueError("label=Header-Name pairs separated by commas "
                             "(tenant=X-Tenant,client=X-Client-Id)")
        pairs.append((name.strip(), header.strip()))
    return tuple(pairs)
