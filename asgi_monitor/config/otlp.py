"""Settings of the OTLP export (the optional `otlp` extra).

Besides our own ``MONITORING_OTLP_*`` variables, the OpenTelemetry SDK's standard ones are read
(https://opentelemetry.io/docs/specs/otel/protocol/exporter/ and
https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/), so a
platform that injects them for every service configures this one too. Where several set one
setting, the first of its declared variables wins: ours, then the metrics-specific OpenTelemetry
one, then the general one.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from ..secret import Secret
from .declare import (
    Check,
    Env,
    Section,
    http_url,
    milliseconds,
    number,
    positive_seconds,
    seconds_at_least,
    secret_text,
    setting,
)

__all__ = ["OTLPSettings", "key_value_pairs", "signal_url"]

# Below a second an export (a merge of every worker's series, a protobuf encoding and a POST)
# would run nearly back to back; the SDK's own default is a minute.
MIN_INTERVAL_SECONDS = 1.0


def signal_url(raw: str) -> str:
    """``OTEL_EXPORTER_OTLP_ENDPOINT`` is the base URL of every signal: the metrics are sent to
    its ``v1/metrics`` (the spec's rule for OTLP/HTTP), while the per-signal variable is used as
    given."""
    base = raw.strip()
    return f"{base}v1/metrics" if base.endswith("/") else f"{base}/v1/metrics"


def _interval(parse: Any) -> Any:
    def parse_interval(raw: str) -> float:
        seconds: float = parse(raw)
        if seconds < MIN_INTERVAL_SECONDS:
            unit = "milliseconds >= 1000" if parse is milliseconds else "seconds >= 1"
            raise ValueError(f"a number of {unit} (an export at most once a second)")
        return seconds

    return parse_interval


def key_value_pairs(raw: str) -> tuple[tuple[str, str], ...]:
    """``key=value`` pairs, comma-separated, values percent-encoded: the format of
    ``OTEL_EXPORTER_OTLP_HEADERS`` and ``OTEL_RESOURCE_ATTRIBUTES``."""
    pairs = []
    for part in raw.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ValueError("key=value pairs separated by commas (api-key=abc,tenant=shop)")
        pairs.append((key.strip(), unquote(value.strip())))
    return tuple(pairs)


def _headers(value: object) -> bool:
    if value is None:
        return True
    raw = value.get_secret_value() if isinstance(value, Secret) else value
    try:
        key_value_pairs(str(raw))
    except ValueError:
        return False
    return True


headers_check = Check("key=value pairs separated by commas (values percent-encoded)", _headers)
pairs_check = Check("(key, value) pairs with non-empty keys", lambda v: isinstance(v, tuple)
                    and all(isinstance(p, tuple) and len(p) == 2
                            and all(isinstance(x, str) for x in p) and p[0] for p in v))


class OTLPSettings(Section):
    """Where and how often the sampled metrics are pushed as OTLP; off without an endpoint."""

    name = "otlp"
    fallbacks = True

    endpoint: str = setting(
        "", env=("MONITORING_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                 Env("OTEL_EXPORTER_OTLP_ENDPOINT", signal_url)), check=http_url,
        help="OTLP/HTTP metrics URL, e.g. `http://collector:4318/v1/metrics` "
             "(`OTEL_EXPORTER_OTLP_ENDPOINT` is a base URL: `/v1/metrics` is appended); empty: "
             "no export (needs `pip install 'asgi-monitoring[otlp]'`)")
    interval_seconds: float = setting(
        60.0, env=(Env("MONITORING_OTLP_INTERVAL", _interval(number)),
                   Env("OTEL_METRIC_EXPORT_INTERVAL", _interval(milliseconds))),
        # Each export is a network round trip and, when the collector is down, a logged error:
        # a sub-second interval floods both for no reading the sampler has not already given.
        check=seconds_at_least(MIN_INTERVAL_SECONDS),
        help="seconds between OTLP exports, at least 1 (`OTEL_METRIC_EXPORT_INTERVAL` is in ms)")
    timeout_seconds: float = setting(
        10.0, env=("MONITORING_OTLP_TIMEOUT",
                   Env("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", milliseconds),
                   Env("OTEL_EXPORTER_OTLP_TIMEOUT", milliseconds)),
        parse=number, check=positive_seconds,
        help="seconds one export may take (the `OTEL_EXPORTER_OTLP_*` variables are in ms)")
    headers: Secret | None = setting(
        None, env=("MONITORING_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
                   "OTEL_EXPORTER_OTLP_HEADERS"),
        parse=secret_text, is_secret=True, check=headers_check,
        help="HTTP headers of every export, `key=value` pairs separated by commas, values "
             "percent-encoded (`api-key=abc`); a secret, never shown")
    resource_attributes: tuple[tuple[str, str], ...] = setting(
        (), env="OTEL_RESOURCE_ATTRIBUTES", parse=key_value_pairs, check=pairs_check,
        help="resource attributes of the export, `key=value` pairs separated by commas "
             "(`deployment.environment=prod`); `service.name`, `service.version` and "
             "`service.instance.id` come from the `service` settings")

    def header_pairs(self) -> dict[str, str]:
        """The headers as a mapping, for the exporter."""
        if self.headers is None:
            return {}
        return dict(key_value_pairs(self.headers.get_secret_value()))
