"""Native histograms: Prometheus' sparse exponential buckets, kept beside the classic ones.

A native histogram of schema ``s`` has a bucket per integer index ``i``, holding the values in
``(2**((i-1) / 2**s), 2**(i / 2**s)]``: every power of two is split into ``2**s`` buckets whose
bounds grow by the factor ``2**(2**-s)`` (schema 3: about 9 %, so a quantile read from them is
off by at most ~4 %). Only the buckets a value fell in exist, so one series holds any range of
latencies at that resolution, and a threshold or quantile need not be a bucket bound.

Values at or below the zero threshold count in the zero bucket. When a series holds more than
its bucket limit, its schema is reduced by one (every two neighbouring buckets become one) until
it fits, as Prometheus' client libraries do (client_golang's ``NativeHistogramMaxBucketNumber``):
the resolution halves, the series stays bounded.

https://prometheus.io/docs/specs/native_histograms/ defines the bucket indexes and the schemas.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import NamedTuple

__all__ = ["MAX_SCHEMA", "MIN_SCHEMA", "NativeBuckets", "NativeSnapshot", "bucket_index",
           "merge_native", "reduce_counts", "upper_bound"]

# The schemas Prometheus accepts for exponential buckets.
MIN_SCHEMA = -4
MAX_SCHEMA = 8
_INF = math.inf


def bucket_index(value: float, schema: int) -> int:
    """The index of the bucket ``value`` (> 0, finite) falls in at ``schema``: the smallest
    ``i`` with ``value <= 2**(i / 2**schema)``."""
    # log2 of a power of two is exact, and scaling by a power of two is too: such a value
    # lands on its own bound. Any other bound is irrational, so no float sits exactly on it.
    return math.ceil(math.log2(value) * 2.0 ** schema)


def upper_bound(index: int, schema: int) -> float:
    """The upper bound of bucket ``index`` at ``schema``."""
    return float(2.0 ** (index * 2.0 ** -schema))


def reduce_counts(counts: Mapping[int, int], by: int) -> dict[int, int]:
    """``counts`` (index -> count) at a schema ``by`` lower: buckets ``2j-1`` and ``2j`` become
    ``j`` for each step (``ceil(i / 2**by)``)."""
    out: dict[int, int] = {}
    for index, count in counts.items():
        # -((-i) >> by) is ceil(i / 2**by) for any sign of i.
        key = -((-index) >> by)
        out[key] = out.get(key, 0) + count
    return out


class NativeSnapshot(NamedTuple):
    """One native histogram as read on scrape (its sum and count are the classic histogram's)."""

    schema: int
    zero_threshold: float
    zero_count: int
    # Bucket index -> count (not cumulative), only the populated ones.
    counts: dict[int, int]


class NativeBuckets:
    """The sparse buckets of one histogram, written by the hot path when native histograms are
    on (one ``math`` call and a dict update per value)."""

    __slots__ = ("schema", "zero_threshold", "zero_count", "counts", "limit", "factor")

    def __init__(self, schema: int, zero_threshold: float, limit: int) -> None:
        self.schema = schema
        self.zero_threshold = zero_threshold
        self.zero_count = 0
        self.counts: dict[int, int] = {}
        self.limit = limit
        self.factor = 2.0 ** schema  # 2**schema, what log2 of a value is scaled by

    def observe(self, value: float) -> None:
        if self.zero_threshold < value < _INF:
            # bucket_index() inlined: one call less per value.
            index = math.ceil(math.log2(value) * self.factor)
            counts = self.counts
            counts[index] = counts.get(index, 0) + 1
            if len(counts) > self.limit:
                self.reduce()
        else:
            # At or below the threshold, and NaN (which compares false), as client_golang does
            # for values it cannot place. Infinity is no latency a clock can measure.
            self.zero_count += 1

    def reduce(self) -> None:
        """Over the bucket limit: a lower schema, until the buckets fit."""
        # Halve the resolution until the buckets fit (the lowest schema always fits a web
        # latency range: at -4 a bucket spans a factor of 65536).
        while len(self.counts) > self.limit and self.schema > MIN_SCHEMA:
            self.counts = reduce_counts(self.counts, 1)
            self.schema -= 1
        self.factor = 2.0 ** self.schema

    def read(self) -> tuple[int, float, int, tuple[tuple[int, int], ...]]:
        """The sampler's view (:data:`asgi_monitor.sampling.inputs.NativeBuckets`)."""
        found = self.snapshot()
        return found.schema, found.zero_threshold, found.zero_count, tuple(
            sorted(found.counts.items()))

    def snapshot(self) -> NativeSnapshot:
        # dict() of a dict is one C call: consistent while the event loop thread adds to it.
        return NativeSnapshot(self.schema, self.zero_threshold, self.zero_count,
                              dict(self.counts))


def merge_native(parts: Iterable[NativeSnapshot | None], limit: int) -> NativeSnapshot | None:
    """The sum of several native histograms (the series of one route, or several workers'): at
    the lowest schema among them, reduced further while over ``limit`` buckets; the widest zero
    threshold (the buckets of the others below it counted as zero)."""
    found = [part for part in parts if part is not None]
    if not found:
        return None
    if len(found) == 1 and len(found[0].counts) <= limit:
        return found[0]
    schema = min(part.schema for part in found)
    threshold = max(part.zero_threshold for part in found)
    zero = 0
    counts: dict[int, int] = {}
    for part in found:
        zero += part.zero_count
        reduced = (reduce_counts(part.counts, part.schema - schema)
                   if part.schema != schema else part.counts)
        for index, count in reduced.items():
            if upper_bound(index, schema) <= threshold:
                zero += count
            else:
                counts[index] = counts.get(index, 0) + count
    while len(counts) > limit and schema > MIN_SCHEMA:
        counts = reduce_counts(counts, 1)
        schema -= 1
    return NativeSnapshot(schema, threshold, zero, counts)
