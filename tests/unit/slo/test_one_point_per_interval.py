"""The SLO history keeps one point per sampling interval: the alert loop's samples in between
stand in as the newest point (so the rules read fresh counts) until the sampler's next one
replaces them, instead of adding pairs of points milliseconds apart."""

from __future__ import annotations

from collections.abc import Callable

from asgi_monitor.config import SLOSettings
from asgi_monitor.monitor import Monitor
from asgi_monitor.sampling.samples import RouteTotals, Sample
from asgi_monitor.slo import SLO
from asgi_monitor.slo.evaluation import SLOTracker

API = SLO("api", objective_percent=90)


def sample(instant: float, requests: float, errors: float = 0.0) -> Sample:
    return Sample(time=1000.0 + instant, monotonic=instant,
                  routes={"GET /": RouteTotals(requests=requests, errors=errors)})


def times(tracker: SLOTracker) -> list[float]:
    return [round(t - 1000.0, 3) for t in tracker.burn_history("api", 3600)["time"]]


def test_in_between_samples_stand_in_until_the_next_kept_one() -> None:
    tracker = SLOTracker((API,), 3600)
    tracker.observe(sample(0, 0))
    tracker.observe(sample(0.05, 10), provisional=True)
    assert times(tracker) == [0, 0.05]
    tracker.observe(sample(10, 20, errors=2), provisional=True)
    assert times(tracker) == [0, 10]  # replaced: still one point after the kept one
    assert tracker.error_ratio("api", 60) == 0.1  # the rules read the newest counts
    tracker.observe(sample(30, 30, errors=3))
    tracker.observe(sample(30.04, 31, errors=3), provisional=True)
    tracker.observe(sample(60, 40, errors=4))
    assert times(tracker) == [0, 30, 60]


def test_the_monitor_feeds_one_point_per_sampler_sample(
    make_monitor: Callable[..., Monitor],
) -> None:
    monitor = make_monitor(slo=SLOSettings(objectives=(API,)))
    tracker = monitor.slos
    assert tracker is not None
    for _ in range(5):
        monitor.take_sample(history=False)  # the alert loop's, just before the sampler's
        monitor.take_sample()
    points = times(tracker)
    assert len(points) == 5 == len(monitor.history) + 1
    assert points == sorted(points)
