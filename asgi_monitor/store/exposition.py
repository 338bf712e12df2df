"""The request families as exposition text, written straight from the stores' numbers.

prometheus_client's encoders walk one ``Sample`` (a named tuple and a label dict) per line: for
thousands of series that is millions of objects per scrape, and every collection of them holds
the GIL, so the event loop of the process answering the scrape waits too. Here one series costs
one ``str.format`` call per histogram, on a template made once per family: the lines come out of
C, with no object per sample.

The text is the one prometheus_client writes for
:func:`~asgi_monitor.store.families.request_families` (the same names, HELP, TYPE, label order
and value formatting, exemplars in OpenMetrics only): ``tests/unit/metrics/test_exposition.py``
compares the two byte for byte. Everything else in a registry (custom metrics, asgi_monitor's
own counters) still goes through prometheus_client's encoder: :func:`encode` writes a registry
with both.

How the two meet: while :func:`encode` walks a registry, :func:`direct_format` says which format
it writes, and a request collector yields one :class:`Rendered` with its text instead of its
families. Any other reader of the registry (``get_sample_value``, ``generate_latest``) gets the
families as before.
"""

from __future__ import annotations

import math
import re
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from itertools import accumulate
from operator import add
from typing import NamedTuple

from prometheus_client.core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from .families import (
    HISTOGRAMS,
    IN_PROGRESS_HELP,
    OTEL_HISTOGRAMS,
    REQUESTS_HELP,
    STREAM_DURATION_HELP,
    STREAMS_OPEN_HELP,
    Kept,
    Lifetimes,
    class_text,
    latest_exemplars,
    le_label,
    otel_method,
    stream_names,
)

__all__ = ["Rendered", "SeriesBlocks", "counter_text", "direct_format", "encode", "escape",
           "histogram_text", "plain_names", "request_text", "stream_text", "websocket_text"]

# The format (True: OpenMetrics) :func:`encode` is writing in this context, None outside it.
_DIRECT: ContextVar[bool | None] = ContextVar("asgi_monitor_direct_exposition", default=None)
# Names every escaping scheme leaves as they are: a collector writes its text only with these.
_PLAIN = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# Escapings whose output for plain names is the default one's.
_PLAIN_ESCAPINGS = ("underscores", "allow-utf-8")
_OM_EOF = "# EOF\n"
_INF = math.inf
# Values below 1e6 are written by repr(); Go (and so prometheus_client) switches to an exponent
# from there.
_REPR_BELOW = 1e6


class Rendered(Metric):
    """Families already written in the format :func:`direct_format` gave."""

    def __init__(self, text: str) -> None:
        super().__init__("asgi_monitor_rendered", "", "unknown")
        self.text = text


def direct_format() -> bool | None:
    """In :func:`encode`, whether it writes OpenMetrics (else the text format); None when the
    registry is read by anything else, which wants prometheus_client families."""
    return _DIRECT.get()


def plain_names(prefix: str, label_names: Iterable[str]) -> bool:
    """Whether a store's metric prefix and constant label names are ones its text can be
    written for (what the settings' validation allows); others go through prometheus_client."""
    return (prefix == "" or _PLAIN.match(prefix) is not None) and all(
        _PLAIN.match(name) is not None and not name.startswith("__") for name in label_names)


class _Families:
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def encode(registry: Collector, encoder: Callable[[Collector], bytes], content_type: str,
           ) -> bytes:
    """``registry`` as ``encoder`` (prometheus_client's, as ``choose_encoder`` picked it for
    ``content_type``) writes it, the request families written directly, in registry order."""
    openmetrics = content_type.startswith("application/openmetrics-text")
    keywords = getattr(encoder, "keywords", None)
    escaping = keywords.get("escaping", "underscores") if isinstance(keywords, dict) else (
        "underscores")
    if escaping not in _PLAIN_ESCAPINGS:
        return encoder(registry)  # names change under this escaping: all through the encoder
    chunks: list[bytes] = []
    batch: list[Metric] = []

    def flush() -> None:
        if batch:
            text = encoder(_Families(batch))
            chunks.append(text[:-len(_OM_EOF)] if openmetrics else text)
            batch.clear()

    token = _DIRECT.set(openmetrics)
    try:
        for metric in registry.collect():
            if isinstance(metric, Rendered):
                flush()
                chunks.append(metric.text.encode())
            else:
                batch.append(metric)
        flush()
    finally:
        _DIRECT.reset(token)
    if openmetrics:
        chunks.append(_OM_EOF.encode())
    return b"".join(chunks)


# -- the writers -----------------------------------------------------------------------------------
# A family's text is one template, made once per scrape: the label names and constant labels
# sorted in place (prometheus_client writes labels sorted by name), ``{i}`` where a row's own
# label values and numbers go. A row is then one ``str.format`` call.
Constants = Sequence[tuple[str, str]]


def escape(value: str) -> str:
    """A label value as the exposition writes it."""
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


def _header(out: list[str], name: str, typ: str, doc: str, openmetrics: bool) -> None:
    doc = doc.replace("\\", "\\\\").replace("\n", "\\n")
    if openmetrics:
        doc = doc.replace('"', '\\"')
    elif typ == "counter":
        name += "_total"
    out.append(f"# HELP {name} {doc}\n# TYPE {name} {typ}\n")


def _go(value: float) -> str:
    if -_INF < value < _REPR_BELOW:
        return repr(value)
    return str(floatToGoString(value))  # type: ignore[no-untyped-call]


def _labels(names: Sequence[str], constants: Constants, le: str | None, skip: int) -> str:
    """A template's label set, braces included: the row's own labels as ``{i}`` (but the one
    at ``skip``), the constant ones, and ``le`` when given."""
    pairs = [(name, f"{{{i}}}") for i, name in enumerate(names) if i != skip]
    pairs += [(name, escape(value).replace("{", "{{").replace("}", "}}"))
              for name, value in constants]
    if le is not None:
        pairs.append(("le", le))
    joined = ",".join(f'{name}="{value}"' for name, value in sorted(pairs))
    return f"{{{{{joined}}}}}" if joined else ""


def _value(at: int) -> str:
    return f" {{{at}}}\n"


def counter_text(out: list[str], name: str, doc: str, names: Sequence[str], constants: Constants,
                 rows: Iterable[tuple[Sequence[str], float]], openmetrics: bool, *,
                 typ: str = "counter") -> None:
    """A counter (or, with ``typ="gauge"``, a gauge) family: one line per row of (the values of
    the labels ``names``, escaped; the value)."""
    _header(out, name, typ, doc, openmetrics)
    sample = f"{name}_total" if typ == "counter" else name
    line = (sample + _labels(names, constants, None, -1) + _value(len(names))).format
    for values, value in rows:
        out.append(line(*values, _go(value)))


def _template(name: str, names: Sequence[str], constants: Constants, les: Sequence[str],
              skip: int) -> str:
    # The row's label values, then its cumulative counts (+Inf last, which is also the count),
    # then its sum.
    at = len(names)
    lines = [name + "_bucket" + _labels(names, constants, le, skip) + _value(at + i)
             for i, le in enumerate((*les, "+Inf"))]
    last = at + len(les)
    plain = _labels(names, constants, None, skip)
    lines.append(name + "_count" + plain + _value(last))
    lines.append(name + "_sum" + plain + _value(last + 1))
    return "".join(lines)


def _exemplar(kept: Kept) -> str:
    labels = ",".join(f'{k}="{escape(v)}"' for k, v in sorted(kept[0].items()))
    return f" # {{{labels}}} {_go(kept[1])} {kept[2]}"


Row = tuple[Sequence[str], Sequence[float], float, "Sequence[Kept | None] | None"]


def histogram_text(out: list[str], name: str, doc: str, names: Sequence[str],
                   constants: Constants, les: Sequence[str], rows: Iterable[Row],
                   openmetrics: bool, *, omit_empty: int = -1) -> None:
    """A histogram family: per row (the values of the labels ``names``, escaped; per-bucket
    counts with +Inf last; sum; exemplars per bucket or None). The label at ``omit_empty`` is
    left out of a row where its value is empty."""
    _header(out, name, "histogram", doc, openmetrics)
    full = _template(name, names, constants, les, -1).format
    short = _template(name, names, constants, les, omit_empty).format if omit_empty >= 0 else full
    for values, per_bucket, total, kept in rows:
        line = short if omit_empty >= 0 and not values[omit_empty] else full
        cumulative = list(accumulate(map(float, per_bucket)))
        if cumulative[-1] < _REPR_BELOW and -_INF < total < _REPR_BELOW:
            # str.format writes a float as repr() does: as prometheus_client does in this range.
            text = line(*values, *cumulative, total)
        else:
            text = line(*values, *map(_go, cumulative), _go(total))
        if openmetrics and kept is not None and any(k is not None for k in kept):
            text = _with_exemplars(text, kept)
        out.append(text)


def _with_exemplars(text: str, kept: Sequence[Kept | None]) -> str:
    # The bucket lines come first, one per kept slot.
    lines = text.split("\n")
    for i, found in enumerate(kept):
        if found is not None:
            lines[i] += _exemplar(found)
    return "\n".join(lines)


class SeriesBlocks(NamedTuple):
    """Every request series of one read of a store, in one array: no object per series, which
    the garbage collector would walk (holding the GIL, so the event loop too) while the text is
    written.

    ``keys[i]`` (method, route, status, scheme) has its block at ``starts[i]`` in ``values``: its
    four histograms in :data:`~asgi_monitor.store.families.HISTOGRAMS`' order, each its
    per-bucket counts (+Inf last) then its sum; its request count is the duration histogram's.
    ``exemplars``: by series index, the duration buckets' last exemplars, for series that have
    any."""

    keys: Sequence[tuple[str, str, int, str]]
    starts: Sequence[int]
    values: array[float]
    exemplars: Mapping[int, Sequence[Kept | None]]
    # ``labels[i]``: the values of the request labels the user chose, for series i; empty
    # when none are configured.
    labels: Sequence[tuple[str, ...]] = ()


def request_text(
    out: list[str], blocks: SeriesBlocks, in_progress: Sequence[tuple[str, float]], *,
    naming: str, prefix: str, duration_bounds: Sequence[float], size_bounds: Sequence[float],
    constant_labels: Constants, openmetrics: bool, label_names: Sequence[str] = (),
    status_classes: bool = False,
) -> None:
    """What :func:`~asgi_monitor.store.families.request_families` gives for the same series,
    as exposition text (appended to ``out``)."""
    constants = tuple(constant_labels)
    if status_classes:
        blocks = _fold_status_classes(blocks, len(duration_bounds), len(size_bounds))
    status_text = class_text if status_classes else str
    keys, starts, values, exemplars, user_values = blocks
    user = tuple(label_names)
    # Each series' request label values, escaped once ((): none configured).
    extra = ([tuple(map(escape, labels)) for labels in user_values] if user
             else [()] * len(keys))
    t = len(duration_bounds) + 1
    z = len(size_bounds) + 1
    # Per histogram: where it starts in a block, and its buckets (its sum follows them).
    parts = ((0, t), (t + 1, t), (2 * t + 2, z), (2 * t + z + 3, z))
    duration_les = [le_label(b) for b in duration_bounds]
    size_les = [le_label(b) for b in size_bounds]
    les = (duration_les, duration_les, size_les, size_les)
    classic = naming != "otel"
    if classic:
        counts: dict[tuple[str, ...], float] = {}
        for (method, route, status, _), at, labels in zip(keys, starts, extra, strict=True):
            key = (escape(method), escape(route), status_text(status), *labels)
            counts[key] = counts.get(key, 0.0) + sum(values[at:at + t])
        counter_text(out, f"{prefix}http_requests", REQUESTS_HELP,
                     ("method", "route", "status", *user), constants, counts.items(),
                     openmetrics)
    # The classic histograms are summed over status and scheme: per (method, route), its first
    # series, and the others where there are others (ints, which the collector does not walk).
    first: dict[tuple[str, ...], int] = {}
    more: dict[tuple[str, ...], list[int]] = {}
    for i, ((method, route, _, _), labels) in enumerate(zip(keys, extra, strict=True)):
        found = first.setdefault((method, route, *labels), i)
        if found != i:
            more.setdefault((method, route, *labels), [found]).append(i)
    routes = [((escape(key[0]), escape(key[1]), *key[2:]), i, more.get(key))
              for key, i in first.items()]
    del first
    rows = [(escape(otel_method(method)), escape(route), status_text(status), escape(scheme),
             status_text(status) if status >= 500 else "", *labels)
            for (method, route, status, scheme), labels in zip(keys, extra, strict=True)]
    for index, (name, doc, _) in enumerate(HISTOGRAMS):
        offset, n = parts[index]
        kept = exemplars if openmetrics and index == 0 else {}
        if classic or index not in OTEL_HISTOGRAMS:
            histogram_text(out, f"{prefix}{name}", doc, ("method", "route", *user), constants,
                           les[index], (
                (labels, *_summed(values, starts, members or (i,), offset, n),
                 latest_exemplars(kept.get(j) for j in members or (i,)) if kept else None)
                for labels, i, members in routes), openmetrics)
        if naming != "classic" and index in OTEL_HISTOGRAMS:
            otel_name, otel_doc = OTEL_HISTOGRAMS[index]
            histogram_text(
                out, f"{prefix}{otel_name}", otel_doc,
                ("http_request_method", "http_route", "http_response_status_code", "url_scheme",
                 "error_type", *user), constants, les[index], (
                    (labels, values[at + offset:at + offset + n], values[at + offset + n],
                     kept.get(i))
                    for i, (labels, at) in enumerate(zip(rows, starts, strict=True))),
                openmetrics, omit_empty=4)
    if classic:
        counter_text(out, f"{prefix}http_requests_in_progress", IN_PROGRESS_HELP, ("method",),
                     constants, (((method,), value) for method, value in in_progress),
                     openmetrics, typ="gauge")
    if naming != "classic":
        counter_text(out, f"{prefix}http_server_active_requests",
                     "Number of active HTTP server requests.", ("http_request_method",),
                     constants,
                     (((otel_method(method),), value) for method, value in in_progress),
                     openmetrics, typ="gauge")


def websocket_text(
    out: list[str], totals: Sequence[tuple[str, float]], active: float,
    sessions: Sequence[tuple[str, Sequence[float], float]], *, prefix: str,
    bounds: Sequence[float], docs: dict[str, str], constant_labels: Constants,
    openmetrics: bool,
) -> None:
    """What :func:`~asgi_monitor.store.single.websocket_families` gives, as exposition text."""
    constants = tuple(constant_labels)
    counter_text(out, f"{prefix}websocket_connections", docs["websocket_connections"],
                 ("route",), constants,
                 (((escape(route),), count) for route, count in totals), openmetrics)
    counter_text(out, f"{prefix}websocket_connections_active",
                 docs["websocket_connections_active"], (), constants, (((), active),),
                 openmetrics, typ="gauge")
    histogram_text(out, f"{prefix}websocket_session_duration_seconds",
                   docs["websocket_session_duration_seconds"], ("route",), constants,
                   [le_label(bound) for bound in bounds],
                   (((escape(route),), per_bucket, total, None)
                    for route, per_bucket, total in sessions), openmetrics)


def _fold_status_classes(blocks: SeriesBlocks, duration_bounds: int, size_bounds: int,
                         ) -> SeriesBlocks:
    """``blocks`` with the series of one status class summed into one, whose status is the
    class' first code (200 for 2xx), as families.fold_status_classes folds stored series."""
    keys, starts, values, exemplars, labels = blocks
    size = 2 * (duration_bounds + 2) + 2 * (size_bounds + 2)
    at: dict[tuple[str, str, int, str, tuple[str, ...]], int] = {}
    new_keys: list[tuple[str, str, int, str]] = []
    new_labels: list[tuple[str, ...]] = []
    kept: dict[int, list[Sequence[Kept | None]]] = {}
    folded = array("d")
    for i, ((method, route, status, scheme), start) in enumerate(zip(keys, starts,
                                                                     strict=True)):
        own = labels[i] if labels else ()
        status = status // 100 * 100
        key = (method, route, status, scheme, own)
        j = at.get(key)
        block = values[start:start + size]
        if j is None:
            j = at[key] = len(new_keys)
            new_keys.append((method, route, status, scheme))
            new_labels.append(own)
            folded.extend(block)
        else:
            folded[j * size:(j + 1) * size] = array(
                "d", map(add, folded[j * size:(j + 1) * size], block))
        if i in exemplars:
            kept.setdefault(j, []).append(exemplars[i])
    merged_exemplars = {j: found for j, rows in kept.items()
                        if (found := latest_exemplars(rows)) is not None}
    return SeriesBlocks(new_keys, [j * size for j in range(len(new_keys))], folded,
                        merged_exemplars, new_labels if labels else ())


def _summed(values: array[float], starts: Sequence[int], members: Sequence[int], offset: int,
            n: int) -> tuple[Sequence[float], float]:
    at = starts[members[0]] + offset
    summed, total = values[at:at + n], values[at + n]
    for i in members[1:]:
        at = starts[i] + offset
        summed = array("d", map(add, summed, values[at:at + n]))
        total += values[at + n]
    return summed, total


def stream_text(
    out: list[str], lifetimes: Lifetimes, open_streams: float, *, naming: str, prefix: str,
    bounds: Sequence[float], constant_labels: Sequence[tuple[str, str]], openmetrics: bool,
) -> None:
    """What :func:`stream_families` gives, as exposition text (appended to ``out``)."""
    constants = tuple(constant_labels)
    les = [le_label(bound) for bound in bounds]
    for histogram_name, gauge_name, labels, otel in stream_names(naming):
        histogram_text(
            out, f"{prefix}{histogram_name}", STREAM_DURATION_HELP, labels, constants, les,
            (((escape(otel_method(method) if otel else method), escape(route)), per_bucket,
              total, None) for method, route, per_bucket, total in lifetimes), openmetrics)
        counter_text(out, f"{prefix}{gauge_name}", STREAMS_OPEN_HELP, (), constants,
                     (((), open_streams),), openmetrics, typ="gauge")
