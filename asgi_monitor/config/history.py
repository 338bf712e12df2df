"""Settings of the sampler and the in-memory history the dashboard charts."""

from __future__ import annotations

from urllib.parse import urlsplit

from .declare import (
    Check,
    Section,
    number,
    positive_seconds,
    setting,
    text,
    whole,
    whole_at_least,
)

__all__ = ["HistorySettings"]


def _trace_url(value: object) -> bool:
    """Empty (no links), or an http(s) URL with a host whose only field is ``{trace_id}``."""
    if value == "":
        return True
    if not isinstance(value, str) or any(c.isspace() for c in value):
        return False
    rest = value.replace("{trace_id}", "")
    if rest == value or "{" in rest or "}" in rest:
        return False
    try:
        parts = urlsplit(rest)
        return parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        return False


trace_url_template = Check(
    "an http:// or https:// URL template containing {trace_id} (and no other braces), e.g. "
    "https://tempo.example/trace/{trace_id}", _trace_url)


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
    trace_url: str = setting(
        "", env="MONITORING_TRACE_URL", parse=text, check=trace_url_template,
        help="where the dashboard's route view links an exemplar's trace: a URL with "
             "`{trace_id}`, e.g. `https://tempo.example/trace/{trace_id}`; empty: ids as text")
