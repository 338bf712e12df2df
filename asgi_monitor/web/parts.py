"""What the web layer reads of a monitor, as protocols: the web layer never imports the Monitor,
so it sits beside it, not above it (:class:`~asgi_monitor.monitor.Monitor` is one)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

# Types only: the protocols name the components, and importing them here would put the web
# layer above every component it only reads.
if TYPE_CHECKING:
    from collections.abc import Callable

    from prometheus_client import CollectorRegistry

    from ..alerting.identity import Identity
    from ..alerting.manager import AlertManager
    from ..config import MonitoringConfig
    from ..health.checker import HealthChecker
    from ..instrumentation.cache import CacheMetrics
    from ..sampling.samples import SampleBuffer, Sampler
    from ..slo.evaluation import SLOTracker
    from ..timeseries import History

__all__ = ["CollectorParts", "MonitorParts"]


class CollectorParts(Protocol):
    """What the pages read of the metrics collector."""

    @property
    def cache(self) -> CacheMetrics: ...
    def get_performance_insights(self) -> dict[str, Any]: ...
    def internal_error(self, where: str, exc: BaseException) -> None: ...


class MonitorParts(Protocol):
    """The components the endpoints read, and the readiness the probes answer."""

    @property
    def config(self) -> MonitoringConfig: ...
    @property
    def collector(self) -> CollectorParts: ...
    @property
    def health(self) -> HealthChecker: ...
    @property
    def alerts(self) -> AlertManager: ...
    @property
    def history(self) -> History: ...
    @property
    def samples(self) -> SampleBuffer: ...
    @property
    def sampler(self) -> Sampler: ...
    @property
    def slos(self) -> SLOTracker | None: ...
    @property
    def identity(self) -> Identity: ...
    @property
    def ready(self) -> bool: ...
    @property
    def not_ready_reason(self) -> str: ...
    @property
    def scrape_registry(self) -> Callable[[], CollectorRegistry]: ...
