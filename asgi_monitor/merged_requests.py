"""The request series of several workers, as a scrape shows them.

Each worker writes its request series to the multiprocess files per (method, route, status,
scheme) (:class:`~asgi_monitor.multiprocess.MultiprocessRequestMetrics`);
``MultiProcessCollector`` merges them as families. :class:`MergedRequestFamilies` reads those
back into :class:`~asgi_monitor.request_families.StoredSeries` and projects them with the same
function a single process uses, so both expose the same names and labels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from .request_families import HISTOGRAMS, StoredSeries, request_families
from .request_metrics import HTTP_REQUESTS, HTTP_REQUESTS_IN_PROGRESS

__all__ = ["MergedRequestFamilies"]


class MergedRequestFamilies(Collector):
    """The workers' merged families (``collect()``, a ``MultiProcessCollector``'s), with the
    stored request series projected onto the names ``naming`` chooses, as a single process
    projects its own (:func:`~asgi_monitor.request_families.request_families`)."""

    def __init__(self, collect: Callable[[], Iterable[Metric]], *, naming: str, prefix: str,
                 duration_buckets: Sequence[float], size_buckets: Sequence[float],
                 constant_labels: Sequence[tuple[str, str]] = ()) -> None:
        self._collect = collect
        self._naming = naming
        self._prefix = prefix
        self._duration_buckets = tuple(duration_buckets)
        self._size_buckets = tuple(size_buckets)
        self._constant_labels = tuple(constant_labels)

    def collect(self) -> Iterator[Metric]:
        p = self._prefix
        histograms = {f"{p}{name}": index for index, (name, _, _) in enumerate(HISTOGRAMS)}
        counts: dict[tuple[str, str, int, str], float] = {}
        # key -> per histogram: ({bound: cumulative count}, [sum])
        found: dict[tuple[str, str, int, str], list[tuple[dict[float, float], list[float]]]] = {}
        in_progress: dict[str, float] = {}
        for family in self._collect():
            name = family.name
            index = histograms.get(name)
            if name == f"{p}{HTTP_REQUESTS}":
                for s in family.samples:
                    if s.name == f"{name}_total":
                        key = _stored_key(s.labels)
                        counts[key] = counts.get(key, 0.0) + s.value
            elif index is not None:
                for s in family.samples:
                    parts = found.setdefault(_stored_key(s.labels),
                                             [({}, [0.0]) for _ in HISTOGRAMS])[index]
                    if s.name == f"{name}_bucket":
                        parts[0][float(s.labels["le"])] = s.value
                    elif s.name == f"{name}_sum":
                        parts[1][0] = s.value
            elif name == f"{p}{HTTP_REQUESTS_IN_PROGRESS}":
                for s in family.samples:
                    method = s.labels["method"]
                    in_progress[method] = in_progress.get(method, 0.0) + s.value
            else:
                yield family
        series = [StoredSeries(*key, counts.get(key, 0.0),
                               tuple((_per_bucket(buckets), total[0])
                                     for buckets, total in found.get(key, ())))
                  for key in counts if key in found]
        yield from request_families(
            series, list(in_progress.items()), naming=self._naming, prefix=p,
            duration_bounds=self._duration_buckets, size_bounds=self._size_buckets,
            constant_labels=self._constant_labels)


def _stored_key(labels: dict[str, str]) -> tuple[str, str, int, str]:
    return (labels["method"], labels["route"], int(labels["status"]), labels["scheme"])


def _per_bucket(cumulative: dict[float, float]) -> list[float]:
    out, previous = [], 0.0
    for _, running in sorted(cumulative.items()):
        out.append(running - previous)
        previous = running
    return out
