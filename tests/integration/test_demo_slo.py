"""The demo's SLOs under its own synthetic traffic, over real HTTP: the error bursts and slow
requests burn both budgets visibly within seconds, without exhausting them."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry
from support import serve

from asgi_monitor import build_monitor, default, set_default_monitor
from asgi_monitor.default import build_default_with
from asgi_monitor.demo import traffic
from asgi_monitor.demo.app import create_app
from asgi_monitor.demo.run import demo_config, demo_environment

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def no_default_monitor() -> Iterator[None]:
    """The demo builds the process-wide monitor from its own configuration: here it is built
    on a registry of its own, from no monitor at all (one built earlier in the run, and the
    families it left on prometheus_client's global registry, would refuse the demo's); the
    previous monitor and builder are put back afterwards."""
    builder = default._build
    assert builder is not None
    build_default_with(lambda config: build_monitor(config, CollectorRegistry()))
    previous = set_default_monitor(None)
    yield
    set_default_monitor(previous)
    build_default_with(builder)


@pytest.mark.usefixtures("no_default_monitor")
def test_the_demo_traffic_burns_both_budgets(monkeypatch: pytest.MonkeyPatch) -> None:
    # The demo's bursts (a third of the time) in seconds instead of minutes.
    monkeypatch.setattr(traffic, "INCIDENT_PERIOD", 6.0)
    monkeypatch.setattr(traffic, "INCIDENT_SECONDS", 2.0)
    random.seed(20)
    env = demo_environment(0, email=False)
    for name in ("ALERT_WEBHOOK_URL", "ALERT_WEBHOOK_SECRET"):  # no sink on this port
        env.pop(name)
    app = create_app(demo_config(env))
    tracker = app.monitor.slos
    assert tracker is not None
    with serve(app) as base:
        app.monitor.take_sample()
        sent = asyncio.run(traffic.generate_traffic(base, requests_per_second=40, duration=12))
        app.monitor.take_sample()
    assert sent > 200
    summary = {slo["name"]: slo for slo in tracker.summary()}
    availability, latency = summary["availability"], summary["latency"]
    # About 14 % of requests fail against a 20 % budget: roughly 30 % of it left.
    assert 5 < availability["budget"]["remaining_percent"] < 60, availability
    assert 0.4 < availability["windows"]["5m"]["burn_rate"] < 0.95
    # About 3.5 % are slower than 0.5 s against a 5 % budget.
    assert 0 < latency["budget"]["remaining_percent"] < 80, latency
    assert [a["factor"] for a in availability["alerts"]] == [3.36, 1.4]
