"""The alert manager: states with a controllable clock, cooldown, resolution, silences, failing
conditions, history (file and restart) and statistics."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from support import Clock

from asgi_monitor.alerting import AlertManager, AlertSeverity, AlertState
from asgi_monitor.alerting.channels import Channel
from asgi_monitor.alerting.metrics import AlertMetrics
from asgi_monitor.alerting.models import Alert, fingerprint
from asgi_monitor.alerting.payloads import status
from asgi_monitor.config import AlertSettings, HealthSettings
from asgi_monitor.errors import MonitoringError


class Recorder(Channel):
    """Records (rule, status) of every notification it gets."""

    def __init__(self, name: str = "recorder", **options: Any) -> None:
        super().__init__(**options)
        self.name = name
        self.sent: list[tuple[str, str]] = []

    async def send(self, alert: Alert) -> None:
        self.sent.append((alert.rule, status(alert)))


class Switch:
    """A condition whose answer the test sets."""

    def __init__(self, holds: bool = False, value: float | None = None) -> None:
        self.holds = holds
        self.value = value

    def __call__(self) -> tuple[float | None, bool]:
        return self.value, self.holds


def make(**options: Any) -> tuple[AlertManager, Recorder, Clock]:
    clock = Clock()
    recorder = Recorder()
    manager = AlertManager(clock=clock, monotonic=clock, channels=[recorder], **options)
    return manager, recorder, clock


async def evaluate(manager: AlertManager) -> None:
    """One evaluation, then its notifications sent: evaluation only queues them."""
    await manager.evaluate()
    await manager.flush()


async def test_prometheus_states_with_for_seconds() -> None:
    manager, recorder, clock = make()
    cond = Switch()
    manager.register_rule("r", "Something is wrong", cond, AlertSeverity.CRITICAL,
                          for_seconds=60)
    await evaluate(manager)
    assert manager.active() == []

    cond.holds, cond.value = True, 7.0
    await evaluate(manager)
    [alert] = manager.active()
    assert (alert.state, alert.value, alert.fired_at) == (AlertState.PENDING, 7.0, None)
    assert recorder.sent == []

    clock.advance(59)
    await evaluate(manager)
    assert manager.active()[0].state is AlertState.PENDING
    clock.advance(1)
    await evaluate(manager)
    assert manager.active()[0].state is AlertState.FIRING
    assert recorder.sent == [("r", "firing")]
    assert manager.history()[0]["state"] == "firing"

    cond.holds = False
    clock.advance(30)
    await evaluate(manager)
    assert manager.active() == []
    assert recorder.sent == [("r", "firing"), ("r", "resolved")]
    [entry] = manager.history()
    assert entry["state"] == "resolved"
    assert entry["summary"] == "Something is wrong"
    assert manager.stats()["mean_time_to_resolve_seconds"] == 30


async def test_pending_that_stops_holding_goes_back_to_inactive_silently() -> None:
    manager, recorder, clock = make()
    cond = Switch(True)
    manager.register_rule("r", "d", cond, for_seconds=60)
    await evaluate(manager)
    cond.holds = False
    clock.advance(10)
    await evaluate(manager)
    assert manager.active() == [] and recorder.sent == [] and manager.history() == []


async def test_for_zero_fires_on_first_evaluation() -> None:
    manager, recorder, _ = make()
    manager.register_rule("r", "d", lambda: True)
    await evaluate(manager)
    assert manager.active()[0].state is AlertState.FIRING
    assert recorder.sent == [("r", "firing")]


async def test_cooldown_repeats_while_firing() -> None:
    manager, recorder, clock = make()
    manager.register_rule("r", "d", lambda: True, cooldown_minutes=10)
    await evaluate(manager)
    for _ in range(9):
        clock.advance(60)
        await evaluate(manager)
    assert recorder.sent == [("r", "firing")]
    clock.advance(60)
    await evaluate(manager)
    assert recorder.sent == [("r", "firing")] * 2
    clock.advance(60)
    await evaluate(manager)
    assert len(recorder.sent) == 2


async def test_without_channels_the_cooldown_still_paces_history(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "history.jsonl"
    manager = AlertManager(clock=clock, monotonic=clock, channels=[], history_file=str(path))
    manager.register_rule("r", "d", lambda: True, cooldown_minutes=10)
    for _ in range(10):  # ten evaluations within one cooldown: one write, the firing
        await evaluate(manager)
        clock.advance(30)
    assert len(path.read_text().splitlines()) == 1
    clock.advance(600)
    await evaluate(manager)
    assert len(path.read_text().splitlines()) == 2  # the repeat after the cooldown
    assert len(manager.history(limit=100)) == 1  # one alert instance


async def test_send_resolved_is_per_channel() -> None:
    quiet = Recorder("quiet", send_resolved=False)
    manager, recorder, _ = make()
    manager.add_channel(quiet)
    cond = Switch(True)
    manager.register_rule("r", "d", cond)
    await evaluate(manager)
    cond.holds = False
    await evaluate(manager)
    assert recorder.sent == [("r", "firing"), ("r", "resolved")]
    assert quiet.sent == [("r", "firing")]


async def test_resend_channels_get_the_alert_again_while_firing() -> None:
    pusher = Recorder("pusher")
    pusher.resend_interval = 60
    manager, recorder, clock = make()
    manager.add_channel(pusher)
    manager.register_rule("r", "d", lambda: True, cooldown_minutes=60)
    await evaluate(manager)
    clock.advance(30)
    await evaluate(manager)
    clock.advance(30)
    await evaluate(manager)
    assert recorder.sent == [("r", "firing")]
    assert pusher.sent == [("r", "firing")] * 2


async def test_async_conditions_and_values() -> None:
    manager, _, _ = make()

    async def high() -> tuple[float, bool]:
        return 42.5, True

    manager.register_rule("r", "d", high)
    await evaluate(manager)
    assert manager.active()[0].value == 42.5


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_raising_condition_is_no_data_counted_and_logged(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    manager, recorder, clock = make()
    cond = Switch(True)
    manager.register_rule("r", "d", cond)
    await evaluate(manager)
    assert manager.active()[0].state is AlertState.FIRING

    def broken_sync() -> bool:
        raise RuntimeError("metrics backend down")

    async def broken_async() -> bool:
        raise RuntimeError("metrics backend down")

    manager._rules["r"].condition = broken_sync if kind == "sync" else broken_async
    for _ in range(3):
        clock.advance(1)
        await evaluate(manager)
    # No data: still firing, nothing resolved, nothing new sent; logged once, counted thrice.
    assert manager.active()[0].state is AlertState.FIRING
    assert recorder.sent == [("r", "firing")]
    assert manager.evaluation_failures == {"r": 3}
    assert sum("metrics backend down" in r.getMessage() for r in caplog.records) == 1
    registry = CollectorRegistry()
    registry.register(AlertMetrics(manager))
    assert registry.get_sample_value("asgi_monitor_alert_evaluation_failures_total",
                                     {"rule": "r"}) == 3
    assert registry.get_sample_value("asgi_monitor_alerts", {"state": "firing"}) == 1


async def test_slow_conditions_time_out_without_blocking_the_loop() -> None:
    manager, _, _ = make(evaluation_timeout=0.2)
    release = threading.Event()

    def slow_sync() -> bool:
        release.wait(5)
        return True

    async def slow_async() -> bool:
        await asyncio.sleep(5)
        return True

    manager.register_rule("slow_sync", "d", slow_sync)
    manager.register_rule("slow_async", "d", slow_async)
    manager.register_rule("fine", "d", lambda: True)
    try:
        await asyncio.wait_for(manager.evaluate(), 2)
        assert [a.rule for a in manager.active()] == ["fine"]
        assert manager.evaluation_failures == {"slow_sync": 1, "slow_async": 1}
        # The hung thread is not doubled: the next evaluation fails fast for that rule.
        await asyncio.wait_for(manager.evaluate(), 2)
        assert manager.evaluation_failures["slow_sync"] == 2
    finally:
        release.set()


@pytest.mark.parametrize("bad", [None, 1, "yes", (1, 2), ("x", True)])
async def test_a_condition_must_return_bool_or_value_and_bool(bad: object) -> None:
    manager, _, _ = make()
    manager.register_rule("r", "d", lambda: bad)
    await evaluate(manager)
    assert manager.evaluation_failures == {"r": 1}


def test_register_rule_validation() -> None:
    manager = AlertManager()
    manager.register_rule("custom_alert", "Custom condition detected", lambda: False,
                          AlertSeverity.WARNING, cooldown_minutes=10)
    with pytest.raises(MonitoringError, match="already registered"):
        manager.register_rule("custom_alert", "again", lambda: False)
    with pytest.raises(MonitoringError, match="not callable"):
        manager.register_rule("x", "d", 42)  # type: ignore[arg-type]
    with pytest.raises(MonitoringError, match=">= 0"):
        manager.register_rule("y", "d", lambda: True, for_seconds=-1)


async def test_labels_and_annotations_reach_the_alert() -> None:
    manager, _, _ = make()
    manager.register_rule("r", "desc", lambda: True, labels={"team": "db"},
                          annotations={"summary": "DB slow", "runbook_url": "https://x/rb"})
    await evaluate(manager)
    alert = manager.active()[0]
    assert alert.summary == "DB slow"
    assert alert.to_dict()["labels"] == {"team": "db"}
    assert alert.fingerprint == fingerprint({"team": "db", "alertname": "r",
                                             "severity": "warning"})


async def test_silences_mute_notifications_but_not_states() -> None:
    manager, recorder, clock = make()
    cond = Switch(True)
    manager.register_rule("r", "d", cond, cooldown_minutes=1)
    manager.register_rule("other", "d", lambda: True, labels={"team": "web"})
    silence = manager.silences.create({"alertname": "r"}, 600, comment="deploy",
                                      created_by="ops")
    manager.silences.create({"team": "web"}, 60)
    await evaluate(manager)
    assert {a.rule: a.state for a in manager.active()} == {"r": AlertState.FIRING,
                                                           "other": AlertState.FIRING}
    assert all(a.silenced for a in manager.active())
    assert recorder.sent == []
    # The label silence ends: "other" notifies on the next evaluation.
    clock.advance(61)
    await evaluate(manager)
    assert recorder.sent == [("other", "firing")]
    # Expiring the rule's silence lets its (due) notification through.
    assert [s.id for s in manager.silences.list()] == [silence.id]
    assert manager.silences.expire(silence.id) is True
    assert manager.silences.expire(silence.id) is False
    clock.advance(1)
    await evaluate(manager)
    assert ("r", "firing") in recorder.sent
    assert manager.active()[0].silenced is False


async def test_silence_shared_through_a_file(tmp_path: Path) -> None:
    clock = Clock()
    path = str(tmp_path / "silences.json")
    one, other = (AlertManager(clock=clock, silences_file=path) for _ in range(2))
    silence = one.silences.create({"alertname": "r"}, 60)
    assert [s.id for s in other.silences.list()] == [silence.id]
    assert other.silences.expire(silence.id)
    assert one.silences.list() == []


async def test_a_failing_channel_does_not_block_another() -> None:
    class Broken(Channel):
        name = "broken"

        async def send(self, alert: Alert) -> None:
            raise ConnectionRefusedError("nobody home")

    class Hung(Channel):
        name = "hung"

        async def send(self, alert: Alert) -> None:
            await asyncio.sleep(30)

    sleeps: list[float] = []

    async def no_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    manager, recorder, _ = make()
    manager.add_channel(Broken(retries=3, backoff=0.5, sleep=no_sleep))
    manager.add_channel(Hung(timeout=0.1, retries=0))
    manager.register_rule("r", "d", lambda: True)
    await asyncio.wait_for(evaluate(manager), 5)
    assert recorder.sent == [("r", "firing")]
    outcomes = {n["channel"]: n for n in manager.active()[0].notifications}
    assert outcomes["recorder"]["ok"] is True
    assert outcomes["broken"]["ok"] is False
    assert outcomes["broken"]["attempts"] == 4
    assert "nobody home" in outcomes["broken"]["error"]
    assert sleeps == [0.5, 1.0, 2.0]  # exponential backoff
    assert outcomes["hung"]["error"] == "timed out after 0.1s"
    stats = manager.stats()["notifications"]
    assert stats == {"recorder": {"sent": 1, "failed": 0}, "broken": {"sent": 0, "failed": 1},
                     "hung": {"sent": 0, "failed": 1}}


async def test_history_is_bounded_newest_first_and_stats_count() -> None:
    manager, _, clock = make(history_size=3)
    conds = {name: Switch() for name in "abcd"}
    for name, cond in conds.items():
        manager.register_rule(name, "d", cond,
                              AlertSeverity.CRITICAL if name == "a" else AlertSeverity.INFO)
    for cond in conds.values():
        cond.holds = True
        clock.advance(1)
        await evaluate(manager)
    assert [h["rule"] for h in manager.history()] == ["d", "c", "b"]
    assert [h["rule"] for h in manager.history(limit=2)] == ["d", "c"]
    stats = manager.stats()
    assert stats["firing"] == 4
    assert stats["total"] == 3
    assert stats["by_rule"] == {"b": 1, "c": 1, "d": 1}
    assert stats["by_severity"] == {"info": 3, "warning": 0, "critical": 0, "page": 0, "ticket": 0}
    assert [a.rule for a in manager.active()][0] == "a"  # most severe first


async def test_history_file_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    manager, recorder, clock = make(history_file=str(path))
    done, ongoing = Switch(True), Switch(True)
    manager.register_rule("done", "d", done)
    manager.register_rule("ongoing", "d", ongoing, cooldown_minutes=10)
    await evaluate(manager)
    done.holds = False
    clock.advance(5)
    await evaluate(manager)
    before = manager.history()
    assert len(path.read_text().splitlines()) >= 3

    # A new process: same file. History is back; the firing alert is taken back by its rule,
    # so it neither notifies again within its cooldown nor forgets to resolve.
    again, recorder2, _ = make(history_file=str(path))
    again._clock = again._monotonic = clock
    assert again.history() == before
    again.register_rule("done", "d", done)
    again.register_rule("ongoing", "d", ongoing, cooldown_minutes=10)
    clock.advance(60)
    await evaluate(again)
    assert recorder2.sent == []
    assert [a.rule for a in again.active()] == ["ongoing"]
    ongoing.holds = False
    await evaluate(again)
    assert recorder2.sent == [("ongoing", "resolved")]
    assert again.stats()["total"] == 2


async def test_history_file_compacts_and_skips_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    manager, _, clock = make(history_file=str(path), history_size=2)
    cond = Switch()
    manager.register_rule("r", "d", cond)
    for _ in range(5):
        cond.holds = not cond.holds
        clock.advance(1)
        await evaluate(manager)
    lines = path.read_text().splitlines()
    assert len(lines) <= 4
    with path.open("a") as f:
        f.write('{"rule": "torn"')
    errors: list[str] = []
    again = AlertManager(history_file=str(path), history_size=2,
                         on_error=lambda where, exc: errors.append(where))
    assert len(again.history()) == 2
    assert errors == ["alert_history_read"]
    assert all(json.loads(line)["rule"] == "r" for line in lines)


async def test_history_write_failure_is_reported_not_raised(tmp_path: Path) -> None:
    errors: list[tuple[str, BaseException]] = []
    manager = AlertManager(history_file=str(tmp_path / "missing-dir" / "alerts.jsonl"),
                           on_error=lambda where, exc: errors.append((where, exc)))
    manager.register_rule("r", "d", lambda: True)
    await evaluate(manager)
    assert manager.active()[0].state is AlertState.FIRING
    assert [where for where, _ in errors] == ["alert_history_write"]
    assert isinstance(errors[0][1], OSError)


async def test_the_monitor_runs_the_alert_loop(make_monitor: Any,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="asgi_monitor.alerts")
    monitor = make_monitor(
        alerts=AlertSettings(check_interval_seconds=0.05, default_rules=False),
        health=HealthSettings(default_checks=False))
    monitor.alerts.register_rule("always", "Always on", lambda: True)
    async with monitor.running():
        for _ in range(100):
            if monitor.alerts.active():
                break
            await asyncio.sleep(0.02)
    assert monitor.alerts.active()[0].state is AlertState.FIRING
    assert len(monitor.samples) >= 1  # the loop took a fresh sample
    assert any("always FIRING" in r.getMessage() for r in caplog.records)  # console channel


async def test_a_follower_mirrors_the_sender_and_carries_on(tmp_path: Path) -> None:
    state = str(tmp_path / "state.json")
    sender, sent, clock = make(state_file=state)
    follower, follower_sent, _ = make(state_file=state)
    follower._clock = follower._monotonic = clock
    for manager in (sender, follower):
        manager.register_rule("r", "d", lambda: True, cooldown_minutes=10)
    follower.follow()  # nothing published yet
    assert follower.active() == []
    await evaluate(sender)
    follower.follow()
    assert [a.to_dict() for a in follower.active()] == [a.to_dict() for a in sender.active()]
    assert follower.history() == sender.history()
    assert follower.stats() == sender.stats()
    # The sender dies; the follower evaluates from here on: same alert, no re-notification
    # within the cooldown, a repeat after it.
    clock.advance(60)
    await evaluate(follower)
    assert follower_sent.sent == []
    clock.advance(600)
    await evaluate(follower)
    assert follower_sent.sent == [("r", "firing")]
    assert len(follower.history()) == 1


async def test_the_state_file_is_rewritten_only_when_the_state_changed(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    manager, recorder, clock = make(state_file=str(state))
    cond = Switch(holds=True, value=1.0)
    manager.register_rule("r", "d", cond, cooldown_minutes=10)

    def written() -> tuple[int, int]:
        stat = state.stat()
        return stat.st_ino, stat.st_mtime_ns

    await evaluate(manager)  # fires, notifies: the file has the alert and its outcome
    first = written()
    assert json.loads(state.read_text())["active"][0]["notifications"][0]["ok"] is True
    for _ in range(3):  # the same state, evaluated again within the cooldown
        clock.advance(10)
        await evaluate(manager)
        assert written() == first
    assert list(tmp_path.iterdir()) == [state]  # no temporary left behind either

    cond.value = 2.0  # the value the alert shows changed
    await evaluate(manager)
    second = written()
    assert second != first
    assert json.loads(state.read_text())["active"][0]["value"] == 2.0
    await evaluate(manager)
    assert written() == second

    clock.advance(600)  # the cooldown is over: a repeat, and its outcome, are changes
    await evaluate(manager)
    assert written() != second
    assert len(json.loads(state.read_text())["active"][0]["notifications"]) == 2
    assert recorder.sent == [("r", "firing"), ("r", "firing")]

    cond.holds = False  # resolved
    third = written()
    await evaluate(manager)
    assert written() != third
    data = json.loads(state.read_text())
    assert data["active"] == [] and data["history"][0]["state"] == "resolved"


async def test_evaluation_only_queues_and_flush_delivers() -> None:
    release = asyncio.Event()

    class Slow(Channel):
        name = "slow"

        async def send(self, alert: Alert) -> None:
            await release.wait()

    manager, recorder, _ = make()
    manager.add_channel(Slow(timeout=30))
    manager.register_rule("r", "d", lambda: True)
    await asyncio.wait_for(manager.evaluate(), 1)  # no delivery was awaited
    assert manager.active()[0].state is AlertState.FIRING and recorder.sent == []
    assert {s.channel: s.depth for s in manager.channel_status()} == {"recorder": 1, "slow": 1}
    release.set()
    await manager.flush()
    assert recorder.sent == [("r", "firing")]
    assert [n["ok"] for n in manager.active()[0].notifications] == [True, True]
    assert {s.channel: s.depth for s in manager.channel_status()} == {"recorder": 0, "slow": 0}


async def test_a_channel_queue_drops_its_oldest_when_full() -> None:
    manager, recorder, _ = make(channel_queue_size=2)
    for name in ("a", "b", "c"):
        manager.register_rule(name, "d", lambda: True)
    await manager.evaluate()
    [status] = manager.channel_status()
    assert (status.depth, status.dropped, status.backing_up) == (2, 1, True)
    await manager.flush()
    assert recorder.sent == [("b", "firing"), ("c", "firing")]
    registry = CollectorRegistry()
    registry.register(AlertMetrics(manager))
    assert registry.get_sample_value("asgi_monitor_alert_notifications_dropped_total",
                                     {"channel": "recorder"}) == 1
