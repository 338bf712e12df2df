"""Settings of the request metrics (the hot path's store) and of where the monitoring paths live."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from .declare import (
    Check,
    Section,
    any_callable,
    boolean,
    buckets,
    identifier,
    label_pairs,
    label_set,
    method_list,
    method_names,
    number,
    one_of,
    optional_path_prefix,
    path_list,
    path_or_off,
    path_prefix,
    pattern,
    setting,
    text_list,
    whole,
    whole_at_least,
)
from .labels import (
    SOURCES,
    Computed,
    LabelSource,
    RequestHeader,
    header_label_pairs,
    valid_header_name,
)

__all__ = ["DEFAULT_DURATION_BUCKETS", "DEFAULT_SIZE_BUCKETS", "METRIC_NAMES", "REQUEST_LABELS",
           "ExemplarHook", "MetricsSettings", "PathSettings", "RouteResolver", "metric_prefix"]

# Web latencies: 0.25 ms .. 10 s, dense around the 100 ms - 1 s range where SLOs usually sit. The
# four sub-5 ms bounds exist because a quantile is interpolated inside its bucket: with 5 ms as
# the first bound, an endpoint answering in 0.3 ms read as "p50 2.5 ms, p95 4.75 ms". Fast
# requests still stop the hot path's scan after a bound or two.
DEFAULT_DURATION_BUCKETS: tuple[float, ...] = (
    0.00025, 0.0005, 0.001, 0.0025,
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)
# Body sizes: 100 B .. 10 MB in rough powers of ten.
DEFAULT_SIZE_BUCKETS: tuple[float, ...] = (
    100.0, 1_000.0, 10_000.0, 100_000.0, 1_000_000.0, 10_000_000.0,
)

# Native histograms: the schemas Prometheus accepts, and what a zero threshold may be (a latency
# or a size is never negative; at most one second keeps the zero bucket a zero bucket).
NATIVE_SCHEMA = Check("a whole number from -4 to 8",
                      lambda v: isinstance(v, int) and not isinstance(v, bool) and -4 <= v <= 8)
NATIVE_ZERO_THRESHOLD = Check(
    "a number from 0 to 1", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
    and 0 <= v <= 1)

# classic: our own names; otel: OpenTelemetry's HTTP semantic conventions; both: during a migration.
METRIC_NAMES = ("classic", "otel", "both")

RouteResolver = Callable[[Mapping[str, Any]], "str | None"]
# exemplar(scope) -> the exemplar's labels (e.g. {"trace_id": ...}), or None for no exemplar.
ExemplarHook = Callable[[Mapping[str, Any]], "dict[str, str] | None"]
# Labels Prometheus adds to every scraped series from the target itself.
SCRAPE_TARGET_LABELS = ("job", "instance")
# The labels the request series carry themselves under any naming (and the histograms' bucket
# label; the files of several workers also hold the scheme).
REQUEST_LABELS = ("method", "route", "status", "scheme", "le", "http_request_method",
                  "http_route", "http_response_status_code", "url_scheme", "error_type")
# Never a request label's name either: the names above, what Prometheus and peers' dashboards
# take for other things, and the names Prometheus itself sets on the target's series.
RESERVED_REQUEST_LABELS = (*REQUEST_LABELS, "handler", "quantile", *SCRAPE_TARGET_LABELS)


def _label_sources(value: object) -> bool:
    return isinstance(value, tuple) and all(
        isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str)
        and isinstance(p[1], SOURCES) for p in value)


def _header_pairs(value: object) -> bool:
    return isinstance(value, tuple) and all(
        isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str)
        and valid_header_name(p[1]) for p in value)


def metric_prefix(namespace: str) -> str:
    """What every metric name starts with for MONITORING_NAMESPACE ``namespace``."""
    return f"{namespace}_" if namespace else ""


class MetricsSettings(Section):
    """The request series: names, what is recorded, and their bounds."""

    name = "metrics"

    namespace: str = setting(
        "", env="MONITORING_NAMESPACE", check=identifier,
        help="prefix for every metric name (letters, digits, `_`)")
    metric_names: str = setting(
        "classic", env="MONITORING_METRIC_NAMES", check=one_of(*METRIC_NAMES),
        help="names of the request series: `classic`, `otel` (OpenTelemetry's HTTP semantic "
             "conventions) or `both` while dashboards and rules migrate")
    excluded_paths: tuple[str, ...] = setting(
        (), env="MONITORING_EXCLUDED_PATHS", parse=text_list, check=path_list,
        help="paths not recorded: exact (`/healthz`), or a prefix when the entry ends with `*` "
             "(`/static/*`)")
    excluded_pattern: str = setting(
        "", env="MONITORING_EXCLUDED_PATTERN", check=pattern,
        help="a regular expression; paths it matches (`re.search`) are not recorded, e.g. "
             "`^/(static|media)/`")
    stream_routes: tuple[str, ...] = setting(
        (), env="MONITORING_STREAM_ROUTES", parse=text_list, check=path_list,
        help="routes whose responses are streams (NDJSON, long polls), besides every "
             "`text/event-stream` response: route templates (`/items/{id}/feed`), or a prefix "
             "when the entry ends with `*` (`/llm/*`). A stream's request duration is its time "
             "to first byte; its lifetime goes to the stream histogram")
    skip_methods: tuple[str, ...] = setting(
        (), env="MONITORING_SKIP_METHODS", parse=method_list, check=method_names,
        help="HTTP methods not recorded, e.g. `OPTIONS,HEAD`")
    constant_labels: tuple[tuple[str, str], ...] = setting(
        (), env="MONITORING_CONSTANT_LABELS", parse=label_pairs,
        check=label_set(REQUEST_LABELS),
        help="labels with a fixed value on every request series, e.g. `service=shop,env=prod` "
             "(a mapping in code)")
    header_labels: tuple[tuple[str, str], ...] = setting(
        (), env="MONITORING_HEADER_LABELS", parse=header_label_pairs,
        check=Check("label=Header-Name pairs, e.g. `tenant=X-Tenant,client=X-Client-Id`",
                    _header_pairs),
        help="request labels from request headers, e.g. `tenant=X-Tenant,client=X-Client-Id`: "
             "on the request counter and histograms; a request without the header gets `\"\"` "
             "(`metrics.request_labels` for other sources)")
    request_labels: tuple[tuple[str, LabelSource], ...] = setting(
        (), check=Check("a mapping of label name to RequestHeader, ResponseHeader, ScopeValue, "
                        "Computed or a callable(scope, status, response_headers)",
                        _label_sources),
        help="request labels from any source: a mapping of name to `RequestHeader(...)`, "
             "`ResponseHeader(...)`, `ScopeValue(\"state\", \"tenant\")` or a callable "
             "`(scope, status, response_headers) -> str | None`, each with optional `allowed` "
             "values; code only")
    label_max_values: int = setting(
        20, env="MONITORING_LABEL_MAX_VALUES", parse=whole, check=whole_at_least(1),
        help="per request label, the first N distinct values are kept; later ones count as "
             "`<other>`")
    status_classes: bool = setting(
        False, env="MONITORING_STATUS_CLASSES", parse=boolean,
        help="the status label as its class (`2xx`, `4xx`, `5xx`...) instead of the code, on "
             "every request family: fewer series; the in-process figures keep the codes")
    max_series: int = setting(
        2000, env="MONITORING_MAX_SERIES", parse=whole, check=whole_at_least(1),
        help="series cap per labelled metric; more go to `<overflow>`")
    duration_buckets: tuple[float, ...] = setting(
        DEFAULT_DURATION_BUCKETS, check=buckets,
        help="bucket bounds (seconds) of the duration histograms; code only")
    size_buckets: tuple[float, ...] = setting(
        DEFAULT_SIZE_BUCKETS, check=buckets,
        help="bucket bounds (bytes) of the body-size histograms; code only")
    route_resolver: RouteResolver | None = setting(
        None, check=any_callable,
        help="`resolver(scope) -> str | None`: the route label for apps the middleware cannot "
             "read a template from; code only")

    exemplars: bool = setting(
        False, env="MONITORING_EXEMPLARS", parse=boolean,
        help="attach the request's trace id to the duration histogram's buckets (OpenMetrics "
             "scrapes only): from the current OpenTelemetry span, else the `traceparent` "
             "header, else `metrics.exemplar`")
    exemplar: ExemplarHook | None = setting(
        None, check=any_callable,
        help="`exemplar(scope) -> dict | None`: exemplar labels when neither OpenTelemetry nor "
             "`traceparent` gives a trace id (with `metrics.exemplars` on); code only")

    native_histograms: bool = setting(
        False, env="MONITORING_NATIVE_HISTOGRAMS", parse=boolean,
        help="keep Prometheus native histograms (sparse exponential buckets) of the request "
             "duration and time to first byte beside the classic buckets, exposed to scrapes "
             "that ask for the protobuf format (Prometheus with "
             "`--enable-feature=native-histograms`) and to OTLP")
    native_histogram_schema: int = setting(
        3, env="MONITORING_NATIVE_HISTOGRAM_SCHEMA", parse=whole, check=NATIVE_SCHEMA,
        help="resolution of the native histograms: each power of two split into 2^schema "
             "buckets (3: bounds ~9 % apart, quantiles within ~4 %)")
    native_histogram_zero_threshold: float = setting(
        2.0 ** -128, env="MONITORING_NATIVE_HISTOGRAM_ZERO_THRESHOLD", parse=number,
        check=NATIVE_ZERO_THRESHOLD,
        help="values at or below it (seconds) count in the native histograms' zero bucket")
    native_histogram_max_buckets: int = setting(
        160, env="MONITORING_NATIVE_HISTOGRAM_MAX_BUCKETS", parse=whole,
        check=whole_at_least(1),
        help="buckets per native histogram series; past it the schema is reduced (half the "
             "resolution) until it fits")

    def __post_init__(self) -> None:
        # A mapping is the natural way to write labels in code; the frozen field keeps pairs.
        if isinstance(self.constant_labels, Mapping):
            object.__setattr__(self, "constant_labels", tuple(self.constant_labels.items()))
        if isinstance(self.request_labels, Mapping):
            object.__setattr__(self, "request_labels", tuple(
                (name, source if isinstance(source, SOURCES) or not callable(source)
                 else Computed(source))
                for name, source in self.request_labels.items()))
        super().__post_init__()

    def _check_together(self) -> None:
        # Prometheus attaches job and instance from the scrape target itself and, without
        # honor_labels, renames scraped ones to exported_job / exported_instance: the label
        # would never be where a query looks for it.
        taken = [n for n, _ in self.constant_labels if n in SCRAPE_TARGET_LABELS]
        if taken:
            self._fail("constant_labels", f"free of {' and '.join(map(repr, taken))}: "
                       "Prometheus sets job and instance from the scrape target and renames "
                       "a scraped one to exported_job / exported_instance; use another name "
                       "such as service or host", self.constant_labels)
        seen: set[str] = set()
        taken_names = {*RESERVED_REQUEST_LABELS, *(n for n, _ in self.constant_labels)}
        for field_name, pairs in (("header_labels", self.header_labels),
                                  ("request_labels", self.request_labels)):
            for name, _ in pairs:
                if not name.isascii() or not name.isidentifier() or name.startswith("__"):
                    self._fail(field_name, f"label names of letters, digits and '_' (not "
                               f"starting with a digit or '__'); label {name!r} is not one",
                               pairs)
                if name in taken_names:
                    self._fail(field_name, f"free of label {name!r}: it is reserved (taken by "
                               f"the request series, Prometheus or a constant label); "
                               f"choose another name", pairs)
                if name in seen:
                    self._fail(field_name, f"free of a second label {name!r}: request labels "
                               "need distinct names (header_labels and request_labels "
                               "together)", pairs)
                seen.add(name)

    @property
    def labels(self) -> tuple[tuple[str, LabelSource], ...]:
        """Every request label and its source: the header labels, then the others."""
        return (*((name, RequestHeader(header)) for name, header in self.header_labels),
                *self.request_labels)

    @property
    def label_names(self) -> tuple[str, ...]:
        """The request labels' names, in :attr:`labels`' order."""
        return tuple(name for name, _ in self.labels)

    @property
    def prefix(self) -> str:
        return metric_prefix(self.namespace)


class PathSettings(Section):
    """Where the monitoring sub-app answers: each is a path prefix the package owns."""

    name = "paths"

    metrics: str = setting(
        "/api/metrics", env="MONITORING_METRICS_PATH", check=path_prefix,
        help="where Prometheus scrapes (also the prefix of `/summary`, `/performance`)")
    health: str = setting(
        "/api/health", env="MONITORING_HEALTH_PATH", check=path_prefix,
        help="health API prefix")
    alerts: str = setting(
        "/api/alerts", env="MONITORING_ALERTS_PATH", check=path_prefix,
        help="alerts API prefix")
    dashboard: str = setting(
        "/admin/monitoring", env="MONITORING_DASHBOARD_PATH", check=path_prefix,
        help="dashboard prefix")
    slos: str = setting(
        "/api/slos", env="MONITORING_SLOS_PATH", check=path_prefix,
        help="service level objectives API (admin): SLIs, budgets and burn rates")
    serve_metrics: bool = setting(
        True, env="MONITORING_SERVE_METRICS", parse=boolean,
        help="serve the metrics path on the app's port; `false` when `asgi-monitor "
             "serve-metrics` serves them on a port of their own (the path then answers 404)")

    # The Kubernetes names (kube-apiserver's own since 1.16), beside the health API's probes so
    # a manifest written for any Kubernetes component works unchanged. Empty (`off` in the
    # environment, where blank means unset) switches one off.
    livez: str = setting(
        "/livez", env="MONITORING_LIVEZ_PATH", parse=path_or_off,
        check=optional_path_prefix,
        help="liveness probe (as `GET <health>/live`); `off` (empty in code): not served")
    readyz: str = setting(
        "/readyz", env="MONITORING_READYZ_PATH", parse=path_or_off,
        check=optional_path_prefix,
        help="readiness probe (as `GET <health>/ready`); `off`: not served")
    startupz: str = setting(
        "/startupz", env="MONITORING_STARTUPZ_PATH", parse=path_or_off,
        check=optional_path_prefix,
        help="startup probe: 200 once the app's startup completed and every health check ran "
             "once; `off`: not served")

    # The fields holding a prefix the package owns (every path under it), and those holding a
    # probe's path (that path only).
    PREFIXES: ClassVar[tuple[str, ...]] = ("metrics", "health", "alerts", "dashboard", "slos")
    PROBES: ClassVar[tuple[str, ...]] = ("livez", "readyz", "startupz")

    def all(self) -> tuple[str, ...]:
        """The prefixes the monitoring sub-app answers under."""
        return tuple(getattr(self, name) for name in self.PREFIXES)

    def probes(self) -> tuple[str, ...]:
        """The probe paths served (those switched off left out)."""
        return tuple(path for path in (getattr(self, name) for name in self.PROBES) if path)
