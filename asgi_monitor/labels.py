"""Bounded label children: the series cap shared by custom metrics and instrumentation.

A label value that comes from user input (a custom label, an operation or cache name, an audit
event type) must not grow memory and Prometheus series without bound. :class:`BoundedChildren`
caches whatever a label set maps to (a prometheus_client child, or a small bundle of them) so a
repeated call costs one dict lookup and no ``.labels()`` formatting; past ``max_series`` label sets
a new one maps to the ``<overflow>`` set, and the drop is counted for the
``asgi_monitor_series_dropped_total`` self-metric.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, MutableMapping
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

from .store.cap import OVERFLOW

__all__ = ["BoundedChildren", "SeriesCap", "overflow_all"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
Labels = TypeVar("Labels", bound=tuple[str, ...])


def overflow_all(key: Labels) -> Labels:
    """Every label of an over-the-cap label set becomes ``<overflow>``."""
    return cast(Labels, (OVERFLOW,) * len(key))


class BoundedChildren(Generic[K, V]):
    """At most ``max_series`` values made by ``make(key)``, plus one for the overflow key.

    Reads are lock-free (a dict lookup is atomic under the GIL); only creating a child takes the
    lock, so two threads can never create the same prometheus child twice.
    """

    __slots__ = ("_children", "_dropped", "_lock", "_make", "_max", "_name", "_overflow")

    def __init__(
        self,
        name: str,
        make: Callable[[K], V],
        *,
        max_series: int,
        dropped: MutableMapping[str, int],
        overflow: Callable[[K], K],
    ) -> None:
        self._name = name  # the metric family the drops are counted under
        self._make = make
        self._max = max_series
        self._dropped = dropped
        self._overflow = overflow
        self._children: dict[K, V] = {}
        self._lock = threading.Lock()

    def get(self, key: K) -> V:
        found = self._children.get(key)
        if found is not None:
            return found
        return self._add(key)

    def _add(self, key: K) -> V:
        with self._lock:
            found = self._children.get(key)
            if found is not None:
                return found
            if len(self._children) >= self._max:
                self._dropped[self._name] = self._dropped.get(self._name, 0) + 1
                key = self._overflow(key)
                found = self._children.get(key)
                if found is not None:
                    return found
            found = self._children[key] = self._make(key)
            return found

    def items(self) -> list[tuple[K, V]]:
        """A snapshot, safe to iterate while other threads add children."""
        return list(self._children.items())


@dataclass(frozen=True)
class SeriesCap:
    """The cap one collector applies (``max_series_per_metric``) and where it counts drops."""

    max_series: int
    dropped: MutableMapping[str, int]

    def children(self, name: str, make: Callable[[Labels], V]) -> BoundedChildren[Labels, V]:
        """Capped children for metric family ``name``; over the cap, all labels overflow."""
        return BoundedChildren(name, make, max_series=self.max_series, dropped=self.dropped,
                               overflow=overflow_all)
