"""Alert rules and alerts: the data the alert manager evaluates, stores and notifies about.

States follow Prometheus: a rule whose condition holds is PENDING until it has held for
``for_seconds``, then FIRING; when the condition stops holding a firing alert becomes RESOLVED
(and a pending one is dropped without notifying: Prometheus' "inactive" is no alert at all).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["Alert", "AlertRule", "AlertSeverity", "AlertState", "Condition", "ConditionResult",
           "Silence", "fingerprint"]


class AlertSeverity(str, enum.Enum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"
    # The SLO burn-rate alerts' (the SRE workbook's words): a page wakes someone up now, a
    # ticket waits for working hours. Their ``level`` is critical and warning.
    PAGE = "page"
    TICKET = "ticket"

    @property
    def level(self) -> AlertSeverity:
        """How loud: CRITICAL, WARNING or INFO (what orders alerts, picks log levels, icons
        and colours)."""
        return _LEVELS.get(self, self)


_LEVELS = {AlertSeverity.PAGE: AlertSeverity.CRITICAL, AlertSeverity.TICKET: AlertSeverity.WARNING}


class AlertState(str, enum.Enum):
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
    silenced: bool = False  # a silence matched when it last would have notified
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])

    @property
    def identity(self) -> dict[str, str]:
        """The labels the alert carries outside: the rule's, plus ``alertname`` and
        ``severity`` (what silences match and Alertmanager identifies the alert by)."""
        return {**self.labels, "alertname": self.rule, "severity": self.severity.value}

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.identity)

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
            "silenced": self.silenced,
            "id": self.id,
            "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        """The inverse of :meth:`to_dict` (the history file is read back with it)."""
        def moment(key: str) -> datetime | None:
            raw = data.get(key)
            return datetime.fromisoformat(raw) if raw else None

        value = data.get("value")
        return cls(
            rule=str(data["rule"]), severity=AlertSeverity(data["severity"]),
            state=AlertState(data["state"]), summary=str(data.get("summary", "")),
            description=str(data.get("description", "")),
            labels={str(k): str(v) for k, v in dict(data.get("labels") or {}).items()},
            annotations={str(k): str(v) for k, v in dict(data.get("annotations") or {}).items()},
            value=float(value) if isinstance(value, (int, float)) else None,
            active_since=moment("active_since"), fired_at=moment("fired_at"),
            resolved_at=moment("resolved_at"), last_notified_at=moment("last_notified_at"),
            notifications=[dict(n) for n in data.get("notifications") or []],
            silenced=bool(data.get("silenced", False)),
            id=str(data.get("id") or uuid.uuid4().hex[:16]),
        )


@dataclass
class Silence:
    """Mutes the notifications of alerts whose labels match every matcher, until ``ends_at``.

    A rule's alerts carry ``alertname`` (the rule name) and ``severity`` among their labels, so
    silencing one rule is ``{"alertname": "high_error_rate"}``.
    """

    matchers: dict[str, str]
    starts_at: datetime
    ends_at: datetime
    comment: str = ""
    created_by: str = ""
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(name) == value for name, value in self.matchers.items())

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "matchers": dict(self.matchers),
                "starts_at": self.starts_at.isoformat(), "ends_at": self.ends_at.isoformat(),
                "comment": self.comment, "created_by": self.created_by}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Silence:
        return cls(matchers={str(k): str(v) for k, v in dict(data["matchers"]).items()},
                   starts_at=datetime.fromisoformat(data["starts_at"]),
                   ends_at=datetime.fromisoformat(data["ends_at"]),
                   comment=str(data.get("comment", "")),
                   created_by=str(data.get("created_by", "")), id=str(data["id"]))


def fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's alert identity: FNV-1a (64 bit) over the sorted labels, 16 hex digits.

    Same construction as prometheus/common's ``LabelSet.Fingerprint`` (name, 0xff, value, 0xff),
    so one alert keeps one fingerprint in our webhook payloads and in Alertmanager.
    """
    h = 0xcbf29ce484222325
    for name in sorted(labels):
        for part in (name.encode(), b"\xff", labels[name].encode(), b"\xff"):
            for byte in part:
                h = ((h ^ byte) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"
