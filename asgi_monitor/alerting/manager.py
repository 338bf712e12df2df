"""The alert manager: rules, the alerts they produce, their history and statistics.

Issue 6 completes this module with the evaluation loop, channels, silences and the single-sender
lock; the read side below (``active``, ``history``, ``stats``) is what the API and the dashboard
use, and keeps its shape.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import MonitoringError
from .models import Alert, AlertRule, AlertSeverity, AlertState, Condition

__all__ = ["AlertManager"]


class AlertManager:
    """Register rules with :meth:`register_rule`; read alerts with :meth:`active`."""

    def __init__(self, *, history_size: int = 1000) -> None:
        self._rules: dict[str, AlertRule] = {}
        self._active: dict[str, Alert] = {}  # by rule name: pending or firing
        self._history: deque[Alert] = deque(maxlen=history_size)  # fired/resolved, newest last

    def register_rule(
        self,
        name: str,
        description: str,
        condition: Condition,
        severity: AlertSeverity = AlertSeverity.WARNING,
        cooldown_minutes: float = 10.0,
        *,
        for_seconds: float = 0.0,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> AlertRule:
        if not name or not isinstance(name, str):
            raise MonitoringError(f"invalid alert rule name {name!r}")
        if name in self._rules:
            raise MonitoringError(f"an alert rule named {name!r} is already registered")
        if not callable(condition):
            raise MonitoringError(f"alert rule {name!r}: condition {condition!r} is not callable")
        if cooldown_minutes < 0 or for_seconds < 0:
            raise MonitoringError(f"alert rule {name!r}: cooldown_minutes and for_seconds must "
                                  "be >= 0")
        rule = AlertRule(name, description, condition, AlertSeverity(severity),
                         cooldown_minutes * 60.0, for_seconds, dict(labels or {}),
                         dict(annotations or {}))
        self._rules[name] = rule
        return rule

    @property
    def rules(self) -> dict[str, AlertRule]:
        return dict(self._rules)

    def active(self) -> list[Alert]:
        """Pending and firing alerts, most severe first."""
        order = {AlertSeverity.CRITICAL: 0, AlertSeverity.WARNING: 1, AlertSeverity.INFO: 2}
        return sorted(self._active.values(), key=lambda a: (a.state is not AlertState.FIRING,
                                                            order[a.severity], a.rule))

    def history(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest ``limit`` fired or resolved alerts, newest first."""
        return [alert.to_dict() for alert in list(self._history)[::-1][:limit]]

    def stats(self) -> dict[str, Any]:
        alerts: Iterable[Alert] = list(self._history)
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
            "total": len(self._history),
            "by_severity": by_severity,
            "by_rule": by_rule,
            "notifications": channels,
            "mean_time_to_resolve_seconds": (sum(resolve_times) / len(resolve_times)
                                             if resolve_times else None),
        }
