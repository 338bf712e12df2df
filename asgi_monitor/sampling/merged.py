"""The one place the sampler's inputs are read from metric families by name.

Under several workers each worker's counters live in its own metric file, and only
:class:`asgi_monitor.store.merge.MergedFiles` merges them: the request totals as typed
values already, the database, cache and login counters as families. :class:`MergedReader`
turns those families into the same typed values a single process gets from each component's
``snapshot()`` (:mod:`asgi_monitor.sampling.inputs`). It names every family through the constant
its metric is declared with, so the two cannot drift apart by a typo.

A family that is declared but absent from the files has no series yet (no worker ran a query,
say) and reads as zero, which is its true value. A family the reader reads but that no metric of
this process declares under that name is a programming error: the constructor raises
:class:`~asgi_monitor.errors.MetricError` naming it, so a renamed family stops the monitor at
start-up instead of turning an alert's input into a silent zero forever.
"""

from __future__ import annotations

from array import array
from collections.abc import Collection, Iterable

from prometheus_client.core import Metric

from ..errors import MetricError
from ..instrumentation.cache import CACHE_OPERATIONS
from ..instrumentation.database import DB_QUERIES
from ..instrumentation.users import USER_LOGINS
from ..store.single import HTTP_REQUEST_DURATION, HTTP_REQUESTS, HTTP_REQUESTS_IN_PROGRESS
from .inputs import (
    CacheSnapshot,
    DatabaseSnapshot,
    RequestSnapshot,
    SampleInputs,
    SeriesTable,
    UserSnapshot,
)

__all__ = ["MergedReader", "READ_FAMILIES"]

# Every family the reader reads (names without the configured namespace prefix).
READ_FAMILIES = (HTTP_REQUESTS, HTTP_REQUEST_DURATION, HTTP_REQUESTS_IN_PROGRESS, DB_QUERIES,
                 CACHE_OPERATIONS, USER_LOGINS)


class MergedReader:
    """Reads :class:`~asgi_monitor.sampling.inputs.SampleInputs` (without ``system``, which is
    read in this process) from merged metric families, e.g. ``MergedFiles.sample``'s.

    ``declared`` is the family names this process' metrics are declared under (its registry's
    families); every family read must be among them.
    """

    def __init__(self, *, prefix: str, declared: Collection[str]) -> None:
        missing = [f"{prefix}{name}" for name in READ_FAMILIES
                   if f"{prefix}{name}" not in declared]
        if missing:
            raise MetricError(
                f"the sampler reads metric families {missing} but no metric is declared under "
                f"those names (declared: {sorted(declared)}); declare each metric with the name "
                "constant asgi_monitor.sampling.merged imports")
        self._p = prefix

    def read(self, families: Iterable[Metric],
             requests: RequestSnapshot | None = None) -> SampleInputs:
        """The inputs in ``families``; with ``requests`` (typed request values read without
        building families, as :meth:`MergedFiles.sample` gives them), the request families in
        ``families`` are not read."""
        p = self._p
        series: list[tuple[str, str, int, float]] = []
        # (method, route, status, scheme) -> ({bound: cumulative count}, sum)
        histograms: dict[tuple[str, str, int, str], tuple[dict[float, float], list[float]]] = {}
        in_progress = db_queries = db_errors = hits = misses = logins = failures = 0.0
        for family in families:
            name = family.name
            for s in family.samples:
                labels, value = s.labels, s.value
                if name == f"{p}{HTTP_REQUESTS}" and s.name == f"{name}_total":
                    series.append((labels["method"], labels["route"], int(labels["status"]),
                                   value))
                elif name == f"{p}{HTTP_REQUEST_DURATION}":
                    # Stored per status and scheme (the workers' files); exposed classic
                    # families sum them (status 0: all of them).
                    key = (labels["method"], labels["route"], int(labels.get("status", 0)),
                           labels.get("scheme", "http"))
                    if s.name == f"{name}_bucket":
                        histograms.setdefault(key, ({}, [0.0]))[0][float(labels["le"])] = value
                    elif s.name == f"{name}_sum":
                        histograms.setdefault(key, ({}, [0.0]))[1][0] = value
                elif name == f"{p}{HTTP_REQUESTS_IN_PROGRESS}":
                    in_progress += value
                elif name == f"{p}{DB_QUERIES}" and s.name == f"{name}_total":
                    db_queries += value
                    if labels["status"] == "error":
                        db_errors += value
                elif name == f"{p}{CACHE_OPERATIONS}" and s.name == f"{name}_total":
                    if labels["operation"] == "hit":
                        hits += value
                    elif labels["operation"] == "miss":
                        misses += value
                elif name == f"{p}{USER_LOGINS}" and s.name == f"{name}_total":
                    logins += value
                    if labels["result"] == "failure":
                        failures += value
        if requests is None:
            requests = RequestSnapshot(_table(series, histograms), in_progress)
        return SampleInputs(requests=requests,
                            database=DatabaseSnapshot(db_queries, db_errors),
                            cache=CacheSnapshot(hits, misses),
                            users=UserSnapshot(logins, failures))


def _table(series: list[tuple[str, str, int, float]],
           histograms: dict[tuple[str, str, int, str], tuple[dict[float, float], list[float]]],
           ) -> SeriesTable:
    """The request series as a store's table. The exposed histograms are kept per route (status
    0) where the counts are kept per status: a route's histogram goes to its first series, the
    others get zeros, and each series' count is the counter's. (A histogram without a counter
    series, which no exposition of ours has, is left out.)"""
    rows: dict[tuple[str, str], list[float]] = {}  # (method, route) -> per-bucket counts, sum
    bounds: tuple[float, ...] = ()
    for (method, route, _, _), (cumulative, total) in histograms.items():
        ordered = sorted(cumulative.items())
        bounds = tuple(bound for bound, _ in ordered[:-1])
        block = [count - below for (_, count), (_, below)
                 in zip(ordered, [(0.0, 0.0), *ordered[:-1]], strict=True)]
        found = rows.get((method, route))
        if found is None:
            rows[(method, route)] = [*block, total[0]]
        else:
            found[:] = [a + b for a, b in zip(found, [*block, total[0]], strict=True)]
    stride = len(bounds) + 2  # a block: the buckets with +Inf, then the sum
    values = array("d")
    for method, route, _, _ in series:
        values.extend(rows.pop((method, route), [0.0] * stride))
    return SeriesTable([(method, route, status) for method, route, status, _ in series], values,
                       stride, bounds, [count for *_, count in series])
