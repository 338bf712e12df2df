"""Alert rules and alerts: the data the alert manager evaluates, stores and notifies about.

States follow Prometheus: a rule whose condition holds is PENDING until it has held for
``for_seconds``, then FIRING; when the condition stops holding a firing alert becomes RESOLVED
(and a pending one goes back to INACTIVE without notifying).
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["Alert", "AlertRule", "AlertSeverity", "AlertState", "Condition", "ConditionResult"]


class AlertSeverity(str, enum.Enum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class AlertState(str, enum.Enum):
    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


# A condition returns whether it holds, or (value, holds) so the alert can show the value.
ConditionResult = bool | tuple[float | None, bool]
Condition = Callable[[], ConditionResult | Awaitable[ConditionResult]]


@dataclass
class AlertRule:
    """A registered rule (see ``AlertManager.register_rule``)."""

    name: str
    description: str
    condition: Condition
    severity: AlertSeverity
    cooldown_seconds: float = 600.0  # the repeat interval while still firing
    for_seconds: float = 0.0
    labels: Mapping[str, str] = field(default_factory=dict)
    # summary, description, runbook_url
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Alert:
    """One alert instance: a rule that became pending/firing, until it resolves."""

    rule: str
    severity: AlertSeverity
    state: AlertState
    summary: str
    description: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    value: float | None = None
    active_since: datetime | None = None  # when the condition started holding (pending)
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    last_notified_at: datetime | None = None
    notifications: list[dict[str, Any]] = field(default_factory=list)  # channel outcomes

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (for the API, the history file and the dashboard)."""
        def iso(moment: datetime | None) -> str | None:
            return moment.isoformat() if moment else None

        return {
            "rule": self.rule,
            "severity": self.severity.value,
            "state": self.state.value,
            "summary": self.summary,
            "description": self.description,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "value": self.value,
            "active_since": iso(self.active_since),
            "fired_at": iso(self.fired_at),
            "resolved_at": iso(self.resolved_at),
            "last_notified_at": iso(self.last_notified_at),
            "notifications": list(self.notifications),
        }
