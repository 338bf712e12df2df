"""Settings of the sampler and the in-memory history the dashboard charts."""

from __future__ import annotations

from .declare import Section, number, positive_seconds, setting, whole, whole_at_least

__all__ = ["HistorySettings"]


class HistorySettings(Section):
    """How often the metrics are sampled, how long the points are kept, how often charts poll."""

    name = "history"

    sample_interval_seconds: float = setting(
        30.0, env="METRICS_COLLECTION_INTERVAL", parse=number, check=positive_seconds,
        help="seconds between history samples (one chart point each)")
    retention_seconds: float = setting(
        3600.0, env="MONITORING_HISTORY_RETENTION", parse=number, check=positive_seconds,
        help="seconds of history kept in memory")
    top_routes: int = setting(
        20, env="MONITORING_HISTORY_TOP_ROUTES", parse=whole, check=whole_at_least(1),
        help="busiest routes each history point keeps (rate, 5xx ratio, p95)")
    dashboard_refresh_seconds: float = setting(
        5.0, env="MONITORING_DASHBOARD_REFRESH", parse=number, check=positive_seconds,
        help="seconds between the dashboard's fetches of new points")
