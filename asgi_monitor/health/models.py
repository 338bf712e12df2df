"""Health check results: :class:`HealthStatus` and :class:`HealthCheck`.

User checks build and return these, so their fields and values are public API.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

__all__ = ["HealthCheck", "HealthStatus", "worst"]


class HealthStatus(str, enum.Enum):
    """Status of one check or of the whole app.

    Overall status is the worst known one: CRITICAL > WARNING > HEALTHY. UNKNOWN (never run, or
    stale) only shows overall when nothing at all is known.
    """

    HEALTHY = "healthy"
    WARNING = "warning"
    CRITICAL = "critical"
    UNKNOWN = "unknown"

    @property
    def ietf(self) -> str:
        """The IETF health+json draft's word: pass / warn / fail."""
        return _IETF[self]


_IETF = {HealthStatus.HEALTHY: "pass", HealthStatus.WARNING: "warn",
         HealthStatus.CRITICAL: "fail", HealthStatus.UNKNOWN: "warn"}
_SEVERITY = {HealthStatus.UNKNOWN: 0, HealthStatus.HEALTHY: 1, HealthStatus.WARNING: 2,
             HealthStatus.CRITICAL: 3}


def worst(statuses: list[HealthStatus]) -> HealthStatus:
    """CRITICAL > WARNING > HEALTHY; UNKNOWN only if the list has nothing else."""
    return max(statuses, key=_SEVERITY.__getitem__, default=HealthStatus.UNKNOWN)


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class HealthCheck:
    """The result of one run of a check.

    ``observed_value``/``observed_unit`` are optional and appear in the health+json output
    (e.g. ``42.5`` / ``"percent"``). ``details`` are shown to admins only.
    """

    name: str
    status: HealthStatus
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    timestamp: datetime = field(default_factory=_now)
    duration_ms: float = 0.0
    observed_value: float | None = None
    observed_unit: str | None = None

    def public_view(self, *, admin: bool) -> dict[str, Any]:
        view: dict[str, Any] = {
            "name": self.name,
            "status": self.status.value,
            "message": self.message,
            "timestamp": self.timestamp.isoformat(),
            "duration_ms": round(self.duration_ms, 3),
        }
        if self.observed_value is not None:
            view["observed_value"] = self.observed_value
            view["observed_unit"] = self.observed_unit
        if admin:
            view["details"] = self.details
        return view
