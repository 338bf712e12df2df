"""Durations use a monotonic clock; wall time only labels. Each test steps the wall clock back
(or forward) an hour mid-run, with two fake clocks it controls: the dashboard's history poll keeps
returning new points, a ``for`` rule fires after its duration, cooldowns and re-sends hold, and
the alert rules' windows keep their length."""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client import CollectorRegistry
from support import Clock, hello

from asgi_monitor import (
    GateSettings,
    HealthSettings,
    MonitoringConfig,
    MonitoringMiddleware,
    SystemSettings,
    build_monitor,
)
from asgi_monitor.alerting import AlertManager, AlertState
from asgi_monitor.alerting.channels import Channel
from asgi_monitor.alerting.models import Alert
from asgi_monitor.alerting.payloads import status
from asgi_monitor.build import sampler_of
from asgi_monitor.sampling.samples import Sample, SampleBuffer

TOKEN = "t" * 40
HOUR = 3600.0


class Recorder(Channel):
    name = "recorder"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.sent: list[str] = []

    async def send(self, alert: Alert) -> None:
        self.sent.append(status(alert))


def clocks() -> tuple[Clock, Clock]:
    """(wall, monotonic): the wall one starts at a unix time, the monotonic one at boot."""
    return Clock(1_700_000_000.0), Clock(1000.0)


def advance(wall: Clock, mono: Clock, seconds: float) -> None:
    wall.advance(seconds)
    mono.advance(seconds)


# -- the dashboard's history poll --------------------------------------------------------------
async def test_the_history_poll_keeps_returning_points_when_the_wall_clock_steps_back() -> None:
    wall, mono = clocks()
    monitor = build_monitor(MonitoringConfig(
        gate=GateSettings(admin_token=TOKEN), health=HealthSettings(default_checks=False),
        system=SystemSettings(metrics=False)), CollectorRegistry())
    monitor.sampler = sampler_of(monitor.collector, clock=wall, monotonic=mono)
    app = MonitoringMiddleware(hello, monitor=monitor)
    transport = httpx.ASGITransport(app=app, client=("10.0.0.1", 1))
    url = "/admin/monitoring/history.json"

    for _ in range(3):
        monitor.take_sample()
        advance(wall, mono, 5)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver",
                                 headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        first = (await c.get(url)).json()
        assert len(first["points"]["time"]) == 2 and first["cursor"] == 2
        last_time = first["points"]["time"][-1]
        # since=<unix time> still answers for clients that use it (by wall time).
        since = (await c.get(url, params={"since": first["points"]["time"][0]})).json()
        assert since["points"]["time"] == [last_time]

        wall.advance(-HOUR)  # NTP steps the clock back mid-run
        for _ in range(2):
            monitor.take_sample()
            advance(wall, mono, 5)

        # The dashboard's poll: the cursor of the last answer.
        after = (await c.get(url, params={"after": first["cursor"]})).json()
        times = after["points"]["time"]
        assert len(times) == 2 and after["cursor"] == 4
        assert all(t < last_time for t in times)  # labelled with the (stepped) wall time
        assert after["points"]["seconds"] == [5.0, 5.0]  # intervals measured monotonically
        # "The last 10 s" (busiest routes, insights) is the last two points, not all four.
        assert len(monitor.history.points(seconds=10)) == 2
        # Nothing new since: an empty answer, not the whole history again.
        again = (await c.get(url, params={"after": after["cursor"]})).json()
        assert again["points"]["time"] == [] and again["cursor"] == 4
        # A cursor from before a restart (ahead of ours): every point is new to that client.
        assert len((await c.get(url, params={"after": 99})).json()["points"]["time"]) == 4
        for bad in ("-1", "1.5", "x", "9" * 30):
            response = await c.get(url, params={"after": bad})
            assert response.status_code == 400 and "cursor" in response.json()["error"]


def test_rule_windows_are_measured_on_the_monotonic_clock() -> None:
    buffer = SampleBuffer(retention_seconds=600)
    wall, mono = clocks()
    for n in range(5):  # one sample a minute, the wall clock stepping back an hour midway
        if n == 3:
            wall.advance(-HOUR)
        buffer.add(Sample(time=wall(), monotonic=mono(), requests=100.0 * n))
        advance(wall, mono, 60)
    window = buffer.window(120)
    assert window is not None
    assert window.seconds == 120 and window.increase("requests") == 200
    assert len(buffer) == 5  # nothing pruned as "an hour old"


# -- the alert state machine -------------------------------------------------------------------
def manager(wall: Clock, mono: Clock, **channel: Any) -> tuple[AlertManager, Recorder]:
    recorder = Recorder(**channel)
    return AlertManager(clock=wall, monotonic=mono, channels=[recorder]), recorder


async def evaluate(alerts: AlertManager) -> None:
    await alerts.evaluate()
    await alerts.flush()


async def test_a_for_rule_fires_after_its_duration_when_the_wall_clock_steps_back() -> None:
    wall, mono = clocks()
    alerts, recorder = manager(wall, mono)
    alerts.register_rule("r", "d", lambda: True, for_seconds=60)
    await evaluate(alerts)
    assert alerts.active()[0].state is AlertState.PENDING
    wall.advance(-HOUR)
    advance(wall, mono, 30)
    await evaluate(alerts)
    assert alerts.active()[0].state is AlertState.PENDING
    advance(wall, mono, 30)
    await evaluate(alerts)
    alert = alerts.active()[0]
    assert alert.state is AlertState.FIRING and recorder.sent == ["firing"]
    assert alert.fired_at is not None and alert.fired_at.timestamp() == wall()  # the label


async def test_a_for_rule_waits_its_duration_when_the_wall_clock_steps_forward() -> None:
    wall, mono = clocks()
    alerts, recorder = manager(wall, mono)
    alerts.register_rule("r", "d", lambda: True, for_seconds=60)
    await evaluate(alerts)
    wall.advance(HOUR)
    advance(wall, mono, 10)
    await evaluate(alerts)
    assert alerts.active()[0].state is AlertState.PENDING and recorder.sent == []


async def test_cooldowns_hold_whichever_way_the_wall_clock_steps() -> None:
    wall, mono = clocks()
    alerts, recorder = manager(wall, mono)
    alerts.register_rule("r", "d", lambda: True, cooldown_seconds=600)
    await evaluate(alerts)
    assert recorder.sent == ["firing"]
    wall.advance(HOUR)  # forward: no early repeat
    advance(wall, mono, 10)
    await evaluate(alerts)
    assert recorder.sent == ["firing"]
    wall.advance(-2 * HOUR)  # back: the repeat is not held off for an hour
    advance(wall, mono, 590)
    await evaluate(alerts)
    assert recorder.sent == ["firing"] * 2
    advance(wall, mono, 300)
    await evaluate(alerts)
    assert recorder.sent == ["firing"] * 2


async def test_resends_keep_their_interval_when_the_wall_clock_steps_back() -> None:
    wall, mono = clocks()
    recorder = Recorder()
    recorder.resend_interval = 60
    alerts = AlertManager(clock=wall, monotonic=mono, channels=[recorder])
    alerts.register_rule("r", "d", lambda: True, cooldown_seconds=HOUR)
    await evaluate(alerts)
    wall.advance(-HOUR)
    advance(wall, mono, 60)
    await evaluate(alerts)
    assert recorder.sent == ["firing"] * 2
    advance(wall, mono, 30)
    await evaluate(alerts)
    assert recorder.sent == ["firing"] * 2
