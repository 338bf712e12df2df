"""The alert manager: rules, their evaluation, the alerts they produce and notifications.

Each :meth:`AlertManager.evaluate` runs every rule's condition (concurrently, each with a
timeout; sync ones in threads) and moves its alert through Prometheus' states:
inactive -> pending (the condition holds) -> firing (it has held ``for_seconds``) -> resolved
(it stopped holding; a pending alert just goes back to inactive). A firing alert notifies every
channel once, then again after the rule's cooldown while it still fires; resolution notifies the
channels that ``send_resolved``. Channels that want re-sends (Alertmanager) get the firing alert
every ``resend_interval``. A silenced alert changes state but notifies nobody. Notifying only
queues (alerting/delivery.py): evaluation never waits for a channel. A condition that
raises or times out is logged (at most once a minute per rule), counted and read as "no data":
the alert keeps its state.

The read side (``active``, ``history``, ``stats``) is what the API and the dashboard use.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ..errors import MonitoringError
from ..logs import RateLimitedLog
from ..runner import Failed, Runner
from .channels import Channel
from .delivery import ChannelStatus, Outbox
from .history import AlertHistory, ErrorHook
from .models import Alert, AlertRule, AlertSeverity, AlertState, Condition
from .published import Published, publish, read_published
from .silences import Silences

__all__ = ["AlertManager"]

logger = logging.getLogger("asgi_monitor.alerts")

# Outcomes kept on one alert (a long incident re-sent to Alertmanager every minute).
MAX_NOTIFICATIONS_PER_ALERT = 100
_ORDER = {AlertSeverity.CRITICAL: 0, AlertSeverity.WARNING: 1, AlertSeverity.INFO: 2}


class AlertManager:
    """Register rules with :meth:`register_rule`; read alerts with :meth:`active`.

    ``clock`` (unix seconds) is the wall time alerts show and silences end at; ``monotonic``
    measures ``for``, cooldowns and re-sends, so a wall clock stepped back or forward neither
    holds an alert pending nor repeats it early. Tests pass both.
    ``channel_queue_size``: notifications each channel may have waiting (then the oldest is
    dropped, counted).
    ``identity`` gives the labels every new alert carries besides its rule's (``service``,
    ``instance``); a rule's own labels win.
    """

    def __init__(
        self,
        *,
        history_size: int = 1000,
        history_file: str | None = None,
        silences_file: str | None = None,
        state_file: str | None = None,
        channels: list[Channel] | None = None,
        evaluation_timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        channel_queue_size: int = 100,
        on_error: ErrorHook | None = None,
        identity: Callable[[], Mapping[str, str]] | None = None,
    ) -> None:
        self._clock = clock
        self._monotonic = monotonic
        # The service and instance labels every alert carries (alerting/identity.py).
        self._identity = identity
        self.evaluation_timeout = evaluation_timeout
        self._rules: dict[str, AlertRule] = {}
        self._active: dict[str, Alert] = {}  # by rule name: pending or firing
        self._on_error = on_error
        self._history = AlertHistory(history_size, history_file, on_error)
        # Under several workers the sender publishes its alerts here, so the API answers the
        # same in every worker (and a worker that takes over carries on, without re-notifying).
        self.state_file = state_file
        self._state_seen: tuple[int, int] | None = None
        # What the state file was last written from (see _fingerprint): an evaluation that
        # changed nothing leaves the file, often megabytes of history, as it is.
        self._changes = 0
        self._published: tuple[object, ...] | None = None
        self.silences = Silences(self.now, silences_file)
        self.channels: list[Channel] = list(channels or [])
        # Alerts that were firing when the history file was written: a rule takes its alert
        # back on its first evaluation, so a restart neither re-notifies nor forgets to resolve.
        self._restored = {a.rule: a for a in self._history if a.state is AlertState.FIRING}
        self._marks: dict[str, _Marks] = {}  # alert id -> its monotonic times
        self._awaited: dict[str, int] = {}  # alert id -> outcomes its history line waits for
        self._outbox = Outbox(self._record, capacity=channel_queue_size, clock=monotonic)
        self.evaluation_failures: dict[str, int] = {}
        self.notification_counts: dict[tuple[str, bool], int] = {}
        self._failure_log = RateLimitedLog(logger, logging.WARNING)
        self._runner = Runner("asgi_monitor-alerts")

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), timezone.utc)

    # -- rules ----------------------------------------------------------------------------------
    def register_rule(
        self,
        name: str,
        description: str,
        condition: Condition,
        severity: AlertSeverity = AlertSeverity.WARNING,
        cooldown_minutes: float = 10.0,
        *,
        cooldown_seconds: float | None = None,
        for_seconds: float = 0.0,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> AlertRule:
        """Register a rule. The repeat interval while it fires is ``cooldown_seconds`` when
        given, else ``cooldown_minutes`` (kept for callers that count in minutes)."""
        cooldown = cooldown_minutes * 60.0 if cooldown_seconds is None else cooldown_seconds
        if not name or not isinstance(name, str):
            raise MonitoringError(f"invalid alert rule name {name!r}")
        if name in self._rules:
            raise MonitoringError(f"an alert rule named {name!r} is already registered")
        if not callable(condition):
            raise MonitoringError(f"alert rule {name!r}: condition {condition!r} is not callable")
        if cooldown < 0 or for_seconds < 0:
            raise MonitoringError(f"alert rule {name!r}: the cooldown and for_seconds must "
                                  "be >= 0")
        rule = AlertRule(name, description, condition, AlertSeverity(severity),
                         cooldown, for_seconds, dict(labels or {}),
                         dict(annotations or {}))
        self._rules[name] = rule
        return rule

    @property
    def rules(self) -> dict[str, AlertRule]:
        return dict(self._rules)

    def add_channel(self, channel: Channel) -> None:
        self.channels.append(channel)

    # -- evaluation -----------------------------------------------------------------------------
    async def evaluate(self) -> None:
        """Evaluate every rule once, then queue the notifications that are due."""
        rules = list(self._rules.values())
        results = await asyncio.gather(*(self._check(rule) for rule in rules))
        for rule, result in zip(rules, results, strict=True):
            step = self._transition(rule, result)
            if step is not None:
                self._notify(*step)
        if self.state_file is not None and self._fingerprint() != self._published:
            self._publish(self.state_file)

    def _fingerprint(self) -> tuple[object, ...]:
        """Cheap to compare, and different whenever the published state would be: the active
        alerts' fields that evaluations move, plus a count of every other change (a
        notification queued or its outcome, which also go through the history)."""
        return (self._changes, *((a.id, a.state, a.value, a.silenced)
                                 for a in self._active.values()))

    def _publish(self, path: str) -> None:
        fingerprint = self._fingerprint()
        try:
            publish(path, self._active.values(), self._history)
        except (OSError, TypeError, ValueError) as exc:
            self._report("alert_state_write", exc)
            return
        self._published = fingerprint

    def follow(self) -> None:
        """Read the sender's published alerts (a worker that does not evaluate calls this)."""
        self.adopt(self.read_published())

    async def follow_async(self) -> None:
        """:meth:`follow` with the file read and parsed in a thread: the state file holds the
        whole history (megabytes), and a file planted under its name must not hold the loop."""
        self.adopt(await asyncio.to_thread(self.read_published))

    def read_published(self) -> Published | None:
        """The state file's alerts when it changed since the last :meth:`adopt`, else None.
        Touches no state of the manager, so it may run in another thread."""
        if self.state_file is None:
            return None
        try:
            # Every alert the file may hold: the history and one active alert per rule.
            return read_published(self.state_file, self._state_seen,
                                  self._history.size + len(self._rules) + 1)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError,
                RecursionError) as exc:
            self._report("alert_state_read", exc)
            return None

    def adopt(self, published: Published | None) -> None:
        """Take the sender's alerts read by :meth:`read_published` (on the loop)."""
        if published is None:
            return
        self._state_seen = published.seen
        self._published = None  # taking over, this process writes the state it read once
        # One object per alert id in both views, as in the sender (both were written at once).
        by_id = {a.id: a for a in published.history}
        self._active = {a.rule: by_id.get(a.id, a) for a in published.active}
        self._history.replace(published.history)
        self._restored.clear()
        self._marks = {k: m for k, m in self._marks.items() if k in by_id}

    def _report(self, where: str, exc: BaseException) -> None:
        if self._on_error is not None:
            self._on_error(where, exc)

    async def _check(self, rule: AlertRule) -> tuple[float | None, bool] | None:
        """The condition's (value, holds), or None for "no data" (it raised or timed out)."""
        outcome = await self._runner.run(rule.name, rule.condition, self.evaluation_timeout)
        error: Exception
        if isinstance(outcome, Failed):
            error = outcome.error or TimeoutError(outcome.message)
        else:
            try:
                return _as_reading(outcome.value)
            except TypeError as exc:
                error = exc
        self.evaluation_failures[rule.name] = self.evaluation_failures.get(rule.name, 0) + 1
        self._failure_log.log(rule.name, "alert rule %s: evaluation failed, treated as no "
                              "data: %r", rule.name, error, exc_info=error)
        return None

    def _transition(self, rule: AlertRule,
                    result: tuple[float | None, bool] | None) -> tuple[Alert, str] | None:
        """Apply one result to the rule's alert; what to notify, if anything."""
        if result is None:
            return None  # no data: the alert keeps its state
        value, holds = result
        # Wall time is what the alert shows; durations are measured on the monotonic clock.
        now, mono = self.now(), self._monotonic()
        alert = self._active.get(rule.name)
        if alert is None:
            alert = self._restored.pop(rule.name, None)
            if alert is not None:
                self._active[rule.name] = alert
        if not holds:
            if alert is None:
                return None
            del self._active[rule.name]
            self._marks.pop(alert.id, None)
            if alert.state is AlertState.PENDING:
                return None  # back to inactive: it never fired, nobody hears of it
            alert.state, alert.resolved_at, alert.value = AlertState.RESOLVED, now, value
            return alert, "resolve"
        if alert is None:
            labels = {**(self._identity() if self._identity else {}), **rule.labels}
            alert = self._active[rule.name] = Alert(
                rule.name, rule.severity, AlertState.PENDING,
                summary=rule.annotations.get("summary") or rule.description,
                description=rule.annotations.get("description", ""), labels=labels,
                annotations=dict(rule.annotations), active_since=now)
        marks = self._marks_of(alert, now, mono)
        alert.value = value
        if alert.state is AlertState.PENDING:
            if mono - marks.since < rule.for_seconds:
                return None
            alert.state, alert.fired_at = AlertState.FIRING, now
            return alert, "fire"
        if marks.notified is None or mono - marks.notified >= rule.cooldown_seconds:
            return alert, "repeat"
        if self._resend_due(alert, mono):
            return alert, "resend"
        return None

    def _marks_of(self, alert: Alert, now: datetime, mono: float) -> _Marks:
        marks = self._marks.get(alert.id)
        if marks is None:
            # An alert this process did not start (restored from the history file, or taken
            # over from the sender): its wall times, once, on the monotonic clock.
            def ago(moment: datetime | None) -> float | None:
                return None if moment is None else mono - (now - moment).total_seconds()

            since = ago(alert.active_since)
            marks = self._marks[alert.id] = _Marks(
                since=mono if since is None else since, notified=ago(alert.last_notified_at))
        return marks

    def _resend_due(self, alert: Alert, mono: float) -> list[Channel]:
        marks = self._marks.get(alert.id)
        last = -math.inf if marks is None or marks.resent is None else marks.resent
        return [c for c in self.channels
                if c.resend_interval is not None and mono - last >= c.resend_interval]

    def _notify(self, alert: Alert, kind: str) -> None:
        self._changes += 1
        mono = self._monotonic()
        marks = self._marks.get(alert.id)
        if kind == "resolve":
            # Alertmanager needs the resolution whatever send_resolved says, or it waits endsAt.
            channels = [c for c in self.channels
                        if c.send_resolved or c.resend_interval is not None]
        elif kind == "resend":
            channels = self._resend_due(alert, mono)
        else:
            channels = list(self.channels)
        alert.silenced = self.silences.matching(alert.identity) is not None
        recorded = kind in ("fire", "resolve") or (kind == "repeat" and not alert.silenced)
        if not alert.silenced:
            if recorded and channels:
                # Written again once these outcomes are in, so the file keeps them too.
                self._awaited[alert.id] = self._awaited.get(alert.id, 0) + len(channels)
            for channel in channels:
                dropped = self._outbox.put(channel, alert)
                if dropped is not None:
                    self._settle(dropped)  # it will have no outcome
            if marks is not None and any(c.resend_interval is not None for c in channels):
                marks.resent = mono
            # Set with no channel too: the cooldown counts from this round either way, or a
            # manager without channels would repeat (and write history) every evaluation.
            if kind != "resend":
                alert.last_notified_at = self.now()
                if marks is not None:
                    marks.notified = mono
        if recorded:
            self._history.record(alert)

    def _record(self, channel: Channel, alert: Alert, outcome: dict[str, Any]) -> None:
        self._changes += 1
        alert.notifications.append(outcome)
        del alert.notifications[:-MAX_NOTIFICATIONS_PER_ALERT]
        key = (str(outcome["channel"]), bool(outcome["ok"]))
        self.notification_counts[key] = self.notification_counts.get(key, 0) + 1
        self._settle(alert)

    def _settle(self, alert: Alert) -> None:
        """One of the alert's queued notifications is done (sent, failed or dropped)."""
        awaited = self._awaited.get(alert.id)
        if awaited is not None:
            if awaited > 1:
                self._awaited[alert.id] = awaited - 1
            else:
                del self._awaited[alert.id]
                self._history.record(alert)
                if self.state_file is not None:
                    self._publish(self.state_file)

    # -- delivery (each channel's queue and worker: alerting/delivery.py) ----------------------
    async def deliver_forever(self) -> None:
        """Run every channel's worker until cancelled (a monitor service)."""
        await self._outbox.run()

    async def flush(self) -> None:
        """Until the queued notifications were delivered or failed (sent here when no
        :meth:`deliver_forever` runs: a manager used on its own)."""
        await self._outbox.flush()

    def channel_status(self) -> list[ChannelStatus]:
        """Each channel's queue: depth, drops, oldest age, recent failures."""
        return self._outbox.status()

    # -- read side ------------------------------------------------------------------------------
    def active(self) -> list[Alert]:
        """Pending and firing alerts, most severe first."""
        return sorted(self._active.values(), key=lambda a: (a.state is not AlertState.FIRING,
                                                            _ORDER[a.severity.level], a.rule))

    def history(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest ``limit`` fired or resolved alerts, newest first."""
        return [alert.to_dict() for alert in list(self._history)[::-1][:limit]]

    def stats(self) -> dict[str, Any]:
        alerts = list(self._history)
        by_severity: dict[str, int] = {s.value: 0 for s in AlertSeverity}
        by_rule: dict[str, int] = {}
        resolve_times: list[float] = []
        channels: dict[str, dict[str, int]] = {}
        for alert in alerts:
            by_severity[alert.severity.value] += 1
            by_rule[alert.rule] = by_rule.get(alert.rule, 0) + 1
            if alert.fired_at and alert.resolved_at:
                resolve_times.append((alert.resolved_at - alert.fired_at).total_seconds())
            for outcome in alert.notifications:
                counts = channels.setdefault(str(outcome.get("channel")), {"sent": 0, "failed": 0})
                counts["sent" if outcome.get("ok") else "failed"] += 1
        active = list(self._active.values())
        return {
            "firing": sum(a.state is AlertState.FIRING for a in active),
            "pending": sum(a.state is AlertState.PENDING for a in active),
            "total": len(alerts),
            "by_severity": by_severity,
            "by_rule": by_rule,
            "notifications": channels,
            "mean_time_to_resolve_seconds": (sum(resolve_times) / len(resolve_times)
                                             if resolve_times else None),
        }


def _as_reading(raw: Any) -> tuple[float | None, bool]:
    """A condition's result as (value, holds): it returns a bool or (value, bool)."""
    if isinstance(raw, bool):
        return None, raw
    if isinstance(raw, tuple) and len(raw) == 2 and isinstance(raw[1], bool):
        value = raw[0]
        if value is not None and not isinstance(value, (int, float)):
            raise TypeError(f"condition value must be a number or None, got {value!r}")
        return (None if value is None else float(value)), raw[1]
    raise TypeError(f"a condition returns a bool or (value, bool), got {raw!r}")


@dataclass
class _Marks:
    """An active alert's times on the monotonic clock (what durations are measured from)."""

    since: float  # the condition started holding
    notified: float | None = None  # the last notification round (the cooldown's start)
    resent: float | None = None  # the last push to the channels that want re-sends
