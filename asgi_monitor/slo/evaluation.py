"""The burn-rate alerts evaluated in process, for teams without Prometheus.

The same logic as the exported rules (:mod:`.promql`), over the monitor's own samples: each of
the sampler's samples (:mod:`asgi_monitor.sampling`) adds one point per SLO, the cumulative good
and total requests its selector and SLI count (see :meth:`SLOTracker.observe` for the alert
loop's samples in between). A point is three numbers, so keeping days of them costs
little; but they live in memory, so a restart starts the windows again (Prometheus keeps them).
A window longer than what is kept cannot be evaluated, and its alert is not registered.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..alerting.manager import AlertManager
from ..alerting.models import AlertSeverity
from ..config.objectives import SLO, WINDOWS, BurnAlert
from ..sampling.samples import RouteTotals, Sample, SampleBuffer

__all__ = ["SLOTracker", "evaluable_alerts", "install_slo_rules", "window_seconds"]


def window_seconds(window: str) -> int:
    return dict(WINDOWS)[window]


def evaluable_alerts(slo: SLO, retention_seconds: float) -> tuple[BurnAlert, ...]:
    """``slo``'s burn-rate alerts (factors scaled to its period) whose long window fits in
    what is kept."""
    return tuple(a for a in slo.burn_alerts
                 if window_seconds(a.long_window) <= retention_seconds)


@dataclass(frozen=True)
class _Point:
    instant: float
    good: float
    total: float
    time: float  # unix seconds, for charts (instants are monotonic when the sample has one)


def _counts(slo: SLO, sample: Sample) -> tuple[float, float]:
    """Cumulative (good, total) of the requests ``slo`` selects, from one sample's routes."""
    good = total = 0.0
    selector = slo.selector
    if selector.labels:
        # Only the series that carry the selected request label values.
        rows: Iterable[tuple[str, str, RouteTotals]] = (
            (method, route, totals)
            for (method, route, labels), totals in sample.labelled.items()
            if selector.matches_labels(labels))
    else:
        rows = ((key.partition(" ")[0], key.partition(" ")[2], totals)
                for key, totals in sample.routes.items())
    for method, route, totals in rows:
        if not selector.matches(method, route):
            continue
        if slo.sli.kind == "latency":
            fast = dict(totals.buckets).get(slo.sli.threshold_seconds or 0.0, 0.0)
            good += fast
            total += totals.duration_count
        else:
            good += totals.requests - totals.errors
            total += totals.requests
    return good, total


def _ratio(start: _Point, end: _Point) -> float | None:
    """Bad / total requests between two points; None without requests between them."""
    # A counter that went down was reset (a restarted worker): count from zero.
    total = end.total - start.total if end.total >= start.total else end.total
    good = end.good - start.good if end.good >= start.good else end.good
    if total <= 0:
        return None
    return max(0.0, min(1.0, (total - good) / total))


class SLOTracker:
    """Points per SLO over ``retention_seconds``, and the error ratio and burn rate over a
    window of them."""

    def __init__(self, slos: Iterable[SLO], retention_seconds: float) -> None:
        self.slos = {slo.name: slo for slo in slos}
        self.retention_seconds = retention_seconds
        self._points: dict[str, deque[_Point]] = {name: deque() for name in self.slos}
        self._last_instant: float | None = None
        # Whether the newest point is provisional (an in-between sample's).
        self._provisional = False

    def observe(self, sample: Sample | None, *, provisional: bool = False) -> None:
        """Add ``sample``'s point (once: a sample already seen is ignored).

        One point per sampling interval: the sampler's samples are kept; one taken in between
        (the alert loop's, ``provisional``) only stands in as the newest point until the next
        sample replaces it, so the rules evaluate fresh counts while the history keeps the
        sampler's spacing (not pairs of points milliseconds apart).
        """
        if sample is None or sample.instant == self._last_instant:
            return
        self._last_instant = sample.instant
        replace, self._provisional = self._provisional, provisional
        for name, slo in self.slos.items():
            points = self._points[name]
            good, total = _counts(slo, sample)
            if replace and points:
                points.pop()
            points.append(_Point(sample.instant, good, total, sample.time))
            horizon = sample.instant - self.retention_seconds
            while len(points) > 2 and points[1].instant <= horizon:
                points.popleft()

    def error_ratio(self, name: str, seconds: float) -> float | None:
        """Bad / total requests over the last ``seconds`` (from the oldest point kept inside
        it, like PromQL's ``rate()`` on a series younger than its window); None without
        traffic or before two points."""
        span = self._span(name, seconds)
        return None if span is None else _ratio(*span)

    def counts(self, name: str, seconds: float) -> tuple[float, float] | None:
        """(good, total) requests ``name`` counted over the last ``seconds`` (from the oldest
        point kept inside it, as :meth:`error_ratio`); None before two points."""
        span = self._span(name, seconds)
        if span is None:
            return None
        start, end = span
        total = end.total - start.total if end.total >= start.total else end.total
        good = end.good - start.good if end.good >= start.good else end.good
        return good, total

    def _span(self, name: str, seconds: float) -> tuple[_Point, _Point] | None:
        """The oldest point kept inside the last ``seconds`` and the newest; None before two."""
        points = self._points[name]
        if len(points) < 2:
            return None
        end = points[-1]
        start = end
        for point in reversed(points):
            if end.instant - point.instant > seconds:
                break
            start = point
        return start, end

    def burn_rate(self, name: str, seconds: float) -> float | None:
        ratio = self.error_ratio(name, seconds)
        return None if ratio is None else ratio / self.slos[name].error_budget

    def burn_history(self, name: str, seconds: float,
                     max_points: int = 120) -> dict[str, Any]:
        """The burn rate over each window of ``name``'s alerts, as it was at up to
        ``max_points`` instants of the last ``seconds`` (what the dashboard's chart draws)."""
        slo = self.slos[name]
        windows = sorted({w for a in evaluable_alerts(slo, self.retention_seconds)
                          for w in (a.long_window, a.short_window)}, key=window_seconds)
        points = list(self._points[name])
        instants = [p.instant for p in points]
        first = bisect_left(instants, instants[-1] - seconds) if points else 0
        step = max(1, math.ceil((len(points) - first) / max_points))
        # The newest point always, so the chart ends where the numbers are.
        chosen = list(range(len(points) - 1, first - 1, -step))[::-1]
        rates: dict[str, list[float | None]] = {}
        for window in windows:
            width = window_seconds(window)
            column: list[float | None] = []
            for i in chosen:
                start = bisect_left(instants, instants[i] - width, 0, i)
                ratio = _ratio(points[start], points[i])
                column.append(None if ratio is None else ratio / slo.error_budget)
            rates[window] = column
        return {"time": [points[i].time for i in chosen], "burn_rates": rates}

    def summary(self) -> list[dict[str, Any]]:
        """Per SLO: the SLI and burn rate over each window the points cover, and the error
        budget left over the part of the period they hold (what ``/api/slos`` answers)."""
        out: list[dict[str, Any]] = []
        for name, slo in self.slos.items():
            points = self._points[name]
            kept = points[-1].instant - points[0].instant if points else 0.0
            windows = {}
            for window, seconds in WINDOWS:
                if seconds > self.retention_seconds:
                    continue
                ratio = self.error_ratio(name, seconds)
                windows[window] = {
                    "sli_percent": None if ratio is None else (1 - ratio) * 100,
                    "burn_rate": None if ratio is None else ratio / slo.error_budget}
            span = min(kept, slo.period_days * 86400)
            spent = self.error_ratio(name, span) if span > 0 else None
            out.append({
                "name": name, "kind": slo.sli.kind, "objective_percent": slo.objective_percent,
                "period_days": slo.period_days,
                "selector": {"routes": list(slo.selector.routes),
                             "methods": list(slo.selector.methods),
                             "labels": dict(slo.selector.labels)},
                "threshold_seconds": slo.sli.threshold_seconds,
                "windows": windows,
                # Over what is kept (in memory, since the last start), not the whole period.
                "budget": {"seconds_kept": span,
                           "remaining_percent": None if spent is None
                           else (1 - spent / slo.error_budget) * 100},
                "alerts": [{"long_window": a.long_window, "short_window": a.short_window,
                            "factor": a.factor, "severity": a.severity,
                            "budget_percent": a.budget_percent}
                           for a in evaluable_alerts(slo, self.retention_seconds)],
            })
        return out


def install_slo_rules(manager: AlertManager, tracker: SLOTracker, samples: SampleBuffer,
                      cooldown_seconds: float) -> None:
    """One alert rule per SLO and burn-rate alert the kept points can evaluate
    (``slo_<name>_burn_<long>_<short>``), through the manager's channels."""
    for slo in tracker.slos.values():
        for alert in evaluable_alerts(slo, tracker.retention_seconds):
            _register(manager, tracker, samples, slo, alert, cooldown_seconds)


def _register(manager: AlertManager, tracker: SLOTracker, samples: SampleBuffer, slo: SLO,
              alert: BurnAlert, cooldown_seconds: float) -> None:
    long_s, short_s = window_seconds(alert.long_window), window_seconds(alert.short_window)

    async def condition() -> tuple[float | None, bool]:
        tracker.observe(samples.latest())
        long_rate = tracker.burn_rate(slo.name, long_s)
        short_rate = tracker.burn_rate(slo.name, short_s)
        if long_rate is None or short_rate is None:
            return long_rate, False
        return long_rate, long_rate > alert.factor and short_rate > alert.factor

    manager.register_rule(
        f"slo_{slo.name}_burn_{alert.name}",
        # "at over 0.9333x", not "too fast": a ticket's factor can be under 1.
        f"SLO {slo.name} ({slo.objective_percent:g}% over {slo.period_days:g} days) burns its "
        f"error budget at over {alert.factor:g}x over {alert.long_window} and "
        f"{alert.short_window} ({alert.budget_percent:g}% of it in {alert.long_window})",
        condition,
        AlertSeverity(alert.severity),
        cooldown_seconds=cooldown_seconds,
        labels={"slo": slo.name, "long_window": alert.long_window,
                "short_window": alert.short_window})
