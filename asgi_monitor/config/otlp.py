"""Settings of the OTLP export (the optional `otlp` extra)."""

from __future__ import annotations

from .declare import Section, http_url, number, positive_seconds, setting

__all__ = ["OTLPSettings"]


class OTLPSettings(Section):
    """Where and how often the sampled metrics are pushed as OTLP; off without an endpoint."""

    name = "otlp"

    endpoint: str = setting(
        "", env="MONITORING_OTLP_ENDPOINT", check=http_url,
        help="OTLP/HTTP metrics URL, e.g. `http://collector:4318/v1/metrics`; empty: no export "
             "(needs `pip install 'asgi-monitoring[otlp]'`)")
    interval_seconds: float = setting(
        60.0, env="MONITORING_OTLP_INTERVAL", parse=number, check=positive_seconds,
        help="seconds between OTLP exports")
