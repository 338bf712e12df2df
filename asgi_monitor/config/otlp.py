"""Settings of the OTLP export (the optional `otlp` extra)."""

from __future__ import annotations

from dataclasses import dataclass

from .declare import Section, http_url, number, seconds_at_least, setting

__all__ = ["OTLPSettings"]


@dataclass(frozen=True)
class OTLPSettings(Section):
    """Where and how often the sampled metrics are pushed as OTLP; off without an endpoint."""

    name = "otlp"

    endpoint: str = setting(
        "", env="MONITORING_OTLP_ENDPOINT", check=http_url,
        help="OTLP/HTTP metrics URL, e.g. `http://collector:4318/v1/metrics`; empty: no export "
             "(needs `pip install 'asgi-monitoring[otlp]'`)")
    interval_seconds: float = setting(
        60.0, env="MONITORING_OTLP_INTERVAL", parse=number,
        # Each export is a network round trip and, when the collector is down, a logged error:
        # a sub-second interval floods both for no reading the sampler has not already given.
        check=seconds_at_least(1),
        help="seconds between OTLP exports (at least 1)")
