"""User activity: logins, active sessions and audit events.

``user_logins_total{result}`` (``success``/``failure``), ``user_login_failures_total{reason}``,
``user_active_sessions`` and ``audit_events_total{event_type}``::

    users = get_metrics_collector().users
    users.login_succeeded()
    users.login_failed("bad_credentials")
    users.sample_active_sessions(session_store.count)   # read at scrape time; or
    users.set_active_sessions(12)                      # set by the app
    users.audit_event("password_changed")

Why no user id, username or e-mail address is ever a label: every distinct label value is a new
time series kept in memory here and in Prometheus, so per-user labels grow without bound with
the user base; and labels are copied to every scraper, dashboard and long-term store, where a
personal identifier is personal data (GDPR and the like) that cannot be deleted on request.
So a failure ``reason`` is one of :data:`LOGIN_FAILURE_REASONS` (anything else counts as
``other``), and audit event types are capped like every label from user input. Per-user trails
belong in logs or an audit table, not in metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..errors import MetricError
from ..labels import BoundedChildren, SeriesCap
from ..sampling.inputs import UserSnapshot
from ..store.metric_kinds import GAUGE_MODE, PROMETHEUS_KINDS, MetricKinds
from .system import ScrapeReader

__all__ = ["LOGIN_FAILURE_REASONS", "USER_LOGINS", "UserMetrics"]

LOGIN_FAILURE_REASONS: tuple[str, ...] = (
    "bad_credentials", "disabled", "expired", "locked", "mfa_failed", "other", "rate_limited",
    "unknown_user",
)

_SESSIONS_DOC = "Active user sessions."
# The counter the sampler reads back from the merged files under several workers.
USER_LOGINS = "user_logins"


class _SessionsSampler(Collector):
    def __init__(self, name: str, source: Callable[[], float]) -> None:
        self._name = name
        self._source = source
        self._reader = ScrapeReader("asgi_monitor.users")

    def collect(self) -> Iterator[Metric]:
        value = self._reader.read("active sessions", self._source)
        if value is not None:
            yield GaugeMetricFamily(self._name, _SESSIONS_DOC, value=value)


class UserMetrics:
    """``collector.users``: login outcomes, active sessions, audit events."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        prefix: str,
        cap: SeriesCap,
        kinds: MetricKinds = PROMETHEUS_KINDS,
        add_scrape_collector: Callable[[Collector], None],
    ) -> None:
        self._registry = registry
        self._kinds = kinds
        self._prefix = prefix
        self._add_scrape_collector = add_scrape_collector
        logins = kinds.counter(f"{prefix}{USER_LOGINS}",
                               "Login attempts by result (success, failure).", ("result",),
                               registry=registry)
        self._success = logins.labels("success")
        self._failure = logins.labels("failure")
        failures = kinds.counter(f"{prefix}user_login_failures", "Failed logins by reason (a "
                                 "fixed set; unknown reasons count as 'other').", ("reason",),
                                 registry=registry)
        self._reasons = {reason: failures.labels(reason) for reason in LOGIN_FAILURE_REASONS}
        audit = kinds.counter(f"{prefix}audit_events", "Audit events by type.", ("event_type",),
                              registry=registry)
        self._audit: BoundedChildren[tuple[str], Any] = cap.children(
            "audit_events_total", lambda key: audit.labels(*key))
        self._sessions: Gauge | None = None
        self._sampled = False
        # Counted in this process too, for snapshot() (the failed-login rule).
        self._logins = 0
        self._failures = 0

    def login_succeeded(self) -> None:
        self._success.inc()
        self._logins += 1

    def login_failed(self, reason: str = "other") -> None:
        self._failure.inc()
        self._reasons.get(reason, self._reasons["other"]).inc()
        self._logins += 1
        self._failures += 1

    def snapshot(self) -> UserSnapshot:
        """Login attempts and failed ones so far, counted in this process."""
        return UserSnapshot(logins=float(self._logins), failures=float(self._failures))

    def audit_event(self, event_type: str) -> None:
        self._audit.get((event_type,)).inc()

    def set_active_sessions(self, value: float) -> None:
        if self._sampled:
            raise MetricError("active sessions are sampled from a callable "
                              "(sample_active_sessions); do not also set them")
        if self._sessions is None:
            # Created on first use so that an app sampling a callable has no second family.
            self._sessions = self._kinds.gauge(f"{self._prefix}user_active_sessions",
                                               _SESSIONS_DOC, multiprocess_mode=GAUGE_MODE,
                                               registry=self._registry)
        self._sessions.set(value)

    def sample_active_sessions(self, source: Callable[[], float]) -> None:
        """Read ``source()`` at each scrape; a call that raises leaves the sample out."""
        if self._sessions is not None or self._sampled:
            raise MetricError("active sessions are already set or sampled; choose one, once")
        self._sampled = True
        self._add_scrape_collector(_SessionsSampler(f"{self._prefix}user_active_sessions", source))
