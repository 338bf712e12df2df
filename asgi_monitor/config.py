"""The one way in for configuration: a frozen :class:`MonitoringConfig`.

Build it from keyword arguments or from the environment with :meth:`MonitoringConfig.from_env`.
Every field that can come from the environment names its variable in the field metadata, so the
parser, the error messages and the documentation table all come from one place.
Values are validated once, in ``__post_init__``; a bad value raises :class:`ConfigError` naming
the setting (and its variable) and the accepted form.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import re
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError
from .secret import Secret

__all__ = ["DEFAULT_DURATION_BUCKETS", "DEFAULT_SIZE_BUCKETS", "MonitoringConfig", "metric_prefix"]

# Web latencies: 5 ms .. 10 s, dense around the 100 ms - 1 s range where SLOs usually sit.
DEFAULT_DURATION_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)
# Body sizes: 100 B .. 10 MB in rough powers of ten.
DEFAULT_SIZE_BUCKETS: tuple[float, ...] = (
    100.0, 1_000.0, 10_000.0, 100_000.0, 1_000_000.0, 10_000_000.0,
)

RouteResolver = Callable[[Mapping[str, Any]], "str | None"]
# The admin gate's hook: gets the ASGI scope, returns (or resolves to) True to let the request in.
Authorize = Callable[[MutableMapping[str, Any]], "bool | Awaitable[bool]"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_NAMESPACE_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError("true/false (also 1/0, yes/no, on/off)")


def _parse_float(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ValueError("a number") from None


def _parse_int(raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ValueError("a whole number") from None


def _parse_str(raw: str) -> str:
    return raw.strip()


def _parse_secret(raw: str) -> Secret:
    return Secret(raw.strip())


def _parse_list(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _positive_number(value: object, *, allow_zero: bool = False) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return False
    return value >= 0 if allow_zero else value > 0


def metric_prefix(namespace: str) -> str:
    """What every metric name starts with for MONITORING_NAMESPACE ``namespace``."""
    return f"{namespace}_" if namespace else ""


def _env(name: str, parse: Callable[[str], Any]) -> dict[str, Any]:
    return {"env": name, "parse": parse}


@dataclass(frozen=True)
class MonitoringConfig:
    """Settings for :class:`~asgi_monitor.MonitoringMiddleware` and its background tasks.

    ``MonitoringConfig()`` gives the defaults; ``MonitoringConfig.from_env()`` reads the
    variables documented in the README (each field's ``env`` metadata) and accepts overrides.
    """

    enabled: bool = field(default=True, metadata=_env("ENABLE_MONITORING", _parse_bool))
    debug: bool = field(default=False, metadata=_env("MONITORING_DEBUG", _parse_bool))
    # The seed's logs/monitoring.log, opt-in: a library writes no file unless asked to.
    log_file: str = field(default="", metadata=_env("MONITORING_LOG_FILE", _parse_str))
    namespace: str = field(default="", metadata=_env("MONITORING_NAMESPACE", _parse_str))

    # Background task periods, in seconds.
    health_check_interval: float = field(
        default=60.0, metadata=_env("HEALTH_CHECK_INTERVAL", _parse_float)
    )
    metrics_collection_interval: float = field(
        default=30.0, metadata=_env("METRICS_COLLECTION_INTERVAL", _parse_float)
    )
    alert_check_interval: float = field(
        default=10.0, metadata=_env("ALERT_CHECK_INTERVAL", _parse_float)
    )

    # Alert channels.
    alert_email_enabled: bool = field(
        default=False, metadata=_env("ALERT_EMAIL_ENABLED", _parse_bool)
    )
    alert_console_enabled: bool = field(
        default=True, metadata=_env("ALERT_CONSOLE_ENABLED", _parse_bool)
    )
    smtp_server: str = field(default="", metadata=_env("SMTP_SERVER", _parse_str))
    smtp_port: int = field(default=587, metadata=_env("SMTP_PORT", _parse_int))
    smtp_username: str = field(default="", metadata=_env("SMTP_USERNAME", _parse_str))
    smtp_password: Secret | None = field(
        default=None, metadata=_env("SMTP_PASSWORD", _parse_secret)
    )
    from_email: str = field(default="", metadata=_env("FROM_EMAIL", _parse_str))

    # Alerting (issue 6). Channels: e-mail (above, plus recipients and TLS), webhook, Slack,
    # Alertmanager; every URL is a Secret (a Slack or webhook URL is a credential).
    # Recipients; unset, alerts go to FROM_EMAIL (the seed's variables alone must work).
    alert_email_to: tuple[str, ...] = field(
        default=(), metadata=_env("ALERT_EMAIL_TO", _parse_list)
    )
    # Implicit TLS (port 465) wins over STARTTLS; STARTTLS is required unless turned off.
    smtp_use_tls: bool = field(default=False, metadata=_env("SMTP_USE_TLS", _parse_bool))
    smtp_starttls: bool = field(default=True, metadata=_env("SMTP_STARTTLS", _parse_bool))
    # A CA bundle to verify the SMTP server's certificate with (a relay with a private CA);
    # empty: the system's trusted CAs.
    smtp_ca_file: str = field(default="", metadata=_env("SMTP_CA_FILE", _parse_str))
    alert_webhook_url: Secret | None = field(
        default=None, metadata=_env("ALERT_WEBHOOK_URL", _parse_secret)
    )
    alert_webhook_secret: Secret | None = field(
        default=None, metadata=_env("ALERT_WEBHOOK_SECRET", _parse_secret)
    )
    alert_slack_webhook_url: Secret | None = field(
        default=None, metadata=_env("ALERT_SLACK_WEBHOOK_URL", _parse_secret)
    )
    alertmanager_url: Secret | None = field(
        default=None, metadata=_env("ALERTMANAGER_URL", _parse_secret)
    )
    alert_external_url: str = field(default="", metadata=_env("ALERT_EXTERNAL_URL", _parse_str))
    alert_send_resolved: bool = field(
        default=True, metadata=_env("ALERT_SEND_RESOLVED", _parse_bool)
    )
    alert_channel_timeout: float = field(
        default=10.0, metadata=_env("ALERT_CHANNEL_TIMEOUT", _parse_float)
    )
    alert_channel_retries: int = field(
        default=2, metadata=_env("ALERT_CHANNEL_RETRIES", _parse_int)
    )
    alert_evaluation_timeout: float = field(
        default=10.0, metadata=_env("ALERT_EVALUATION_TIMEOUT", _parse_float)
    )
    alert_history_size: int = field(
        default=1000, metadata=_env("ALERT_HISTORY_SIZE", _parse_int)
    )
    alert_history_file: str = field(default="", metadata=_env("ALERT_HISTORY_FILE", _parse_str))
    alert_lock_path: str = field(default="", metadata=_env("ALERT_LOCK_PATH", _parse_str))
    alert_default_rules: bool = field(
        default=True, metadata=_env("ALERT_DEFAULT_RULES", _parse_bool)
    )
    alert_cooldown_minutes: float = field(
        default=10.0, metadata=_env("ALERT_COOLDOWN_MINUTES", _parse_float)
    )
    alert_window_seconds: float = field(
        default=300.0, metadata=_env("ALERT_WINDOW_SECONDS", _parse_float)
    )
    alert_min_requests: int = field(
        default=20, metadata=_env("ALERT_MIN_REQUESTS", _parse_int)
    )
    alert_error_rate_percent: float = field(
        default=5.0, metadata=_env("ALERT_ERROR_RATE_PERCENT", _parse_float)
    )
    alert_response_time_seconds: float = field(
        default=1.0, metadata=_env("ALERT_RESPONSE_TIME_SECONDS", _parse_float)
    )
    alert_memory_percent: float = field(
        default=85.0, metadata=_env("ALERT_MEMORY_PERCENT", _parse_float)
    )
    alert_db_error_rate_percent: float = field(
        default=5.0, metadata=_env("ALERT_DB_ERROR_RATE_PERCENT", _parse_float)
    )
    alert_login_failures: int = field(
        default=10, metadata=_env("ALERT_LOGIN_FAILURES", _parse_int)
    )
    alert_disk_free_percent: float = field(
        default=15.0, metadata=_env("ALERT_DISK_FREE_PERCENT", _parse_float)
    )

    # Health checks (issue 5). Thresholds of the built-in checks.
    health_check_timeout: float = field(
        default=10.0, metadata=_env("HEALTH_CHECK_TIMEOUT", _parse_float)
    )
    health_default_checks: bool = field(
        default=True, metadata=_env("HEALTH_DEFAULT_CHECKS", _parse_bool)
    )
    health_memory_warning_percent: float = field(
        default=85.0, metadata=_env("HEALTH_MEMORY_WARNING_PERCENT", _parse_float)
    )
    health_memory_critical_percent: float = field(
        default=95.0, metadata=_env("HEALTH_MEMORY_CRITICAL_PERCENT", _parse_float)
    )
    health_disk_path: str = field(default="/", metadata=_env("HEALTH_DISK_PATH", _parse_str))
    health_disk_warning_free_percent: float = field(
        default=15.0, metadata=_env("HEALTH_DISK_WARNING_FREE_PERCENT", _parse_float)
    )
    health_disk_critical_free_percent: float = field(
        default=5.0, metadata=_env("HEALTH_DISK_CRITICAL_FREE_PERCENT", _parse_float)
    )
    health_cpu_warning_percent: float = field(
        default=90.0, metadata=_env("HEALTH_CPU_WARNING_PERCENT", _parse_float)
    )
    health_cpu_critical_percent: float = field(
        default=98.0, metadata=_env("HEALTH_CPU_CRITICAL_PERCENT", _parse_float)
    )
    health_loop_lag_warning_ms: float = field(
        default=100.0, metadata=_env("HEALTH_LOOP_LAG_WARNING_MS", _parse_float)
    )
    health_loop_lag_critical_ms: float = field(
        default=500.0, metadata=_env("HEALTH_LOOP_LAG_CRITICAL_MS", _parse_float)
    )

    # Where the monitoring sub-app answers. Each is a path prefix owned by the package.
    metrics_path: str = field(
        default="/api/metrics", metadata=_env("MONITORING_METRICS_PATH", _parse_str)
    )
    health_path: str = field(
        default="/api/health", metadata=_env("MONITORING_HEALTH_PATH", _parse_str)
    )
    alerts_path: str = field(
        default="/api/alerts", metadata=_env("MONITORING_ALERTS_PATH", _parse_str)
    )
    dashboard_path: str = field(
        default="/admin/monitoring", metadata=_env("MONITORING_DASHBOARD_PATH", _parse_str)
    )

    # Admin gate (issue 3). Admin endpoints are denied until one way in is configured: a bearer
    # token, HTTP Basic credentials, or the code-only ``authorize`` hook. Each secret can also be
    # read from a file (``*_FILE``, e.g. a Docker/Kubernetes secret); the file is read here, once.
    admin_token: Secret | None = field(
        default=None, metadata=_env("MONITORING_ADMIN_TOKEN", _parse_secret)
    )
    admin_token_file: str = field(
        default="", metadata=_env("MONITORING_ADMIN_TOKEN_FILE", _parse_str)
    )
    admin_username: str = field(
        default="", metadata=_env("MONITORING_ADMIN_USERNAME", _parse_str)
    )
    admin_password: Secret | None = field(
        default=None, metadata=_env("MONITORING_ADMIN_PASSWORD", _parse_secret)
    )
    admin_password_file: str = field(
        default="", metadata=_env("MONITORING_ADMIN_PASSWORD_FILE", _parse_str)
    )
    # /api/metrics is public unless a metrics token and/or a network allowlist is set; a separate
    # token so Prometheus never holds the admin credential (admin credentials are accepted too).
    metrics_token: Secret | None = field(
        default=None, metadata=_env("MONITORING_METRICS_TOKEN", _parse_secret)
    )
    metrics_token_file: str = field(
        default="", metadata=_env("MONITORING_METRICS_TOKEN_FILE", _parse_str)
    )
    metrics_allowed_networks: tuple[str, ...] = field(
        default=(), metadata=_env("MONITORING_METRICS_ALLOWED_NETWORKS", _parse_list)
    )
    # Per client address, on every monitoring endpoint. 10/s with a burst of 50 leaves room for
    # Prometheus scrapes and a dashboard polling every few seconds; 0 disables the limit.
    rate_limit_per_second: float = field(
        default=10.0, metadata=_env("MONITORING_RATE_LIMIT_PER_SECOND", _parse_float)
    )
    rate_limit_burst: int = field(
        default=50, metadata=_env("MONITORING_RATE_LIMIT_BURST", _parse_int)
    )
    rate_limit_max_clients: int = field(
        default=10_000, metadata=_env("MONITORING_RATE_LIMIT_MAX_CLIENTS", _parse_int)
    )
    login_max_failures: int = field(
        default=5, metadata=_env("MONITORING_LOGIN_MAX_FAILURES", _parse_int)
    )
    login_lockout_seconds: float = field(
        default=300.0, metadata=_env("MONITORING_LOGIN_LOCKOUT_SECONDS", _parse_float)
    )
    authorize: Authorize | None = field(default=None, compare=False)

    # Instrumentation (issue 4).
    system_metrics: bool = field(
        default=True, metadata=_env("MONITORING_SYSTEM_METRICS", _parse_bool)
    )
    disk_paths: tuple[str, ...] = field(
        default=("/",), metadata=_env("MONITORING_DISK_PATHS", _parse_list)
    )

    # History and dashboard (issue 7). How long the in-memory history keeps points (one per
    # METRICS_COLLECTION_INTERVAL), how many of the busiest routes each point keeps, and how often
    # the dashboard's charts fetch new points.
    history_retention: float = field(
        default=3600.0, metadata=_env("MONITORING_HISTORY_RETENTION", _parse_float)
    )
    history_top_routes: int = field(
        default=20, metadata=_env("MONITORING_HISTORY_TOP_ROUTES", _parse_int)
    )
    dashboard_refresh: float = field(
        default=5.0, metadata=_env("MONITORING_DASHBOARD_REFRESH", _parse_float)
    )

    # Request metrics.
    excluded_paths: tuple[str, ...] = field(
        default=(), metadata=_env("MONITORING_EXCLUDED_PATHS", _parse_list)
    )
    max_series_per_metric: int = field(
        default=2000, metadata=_env("MONITORING_MAX_SERIES", _parse_int)
    )
    duration_buckets: tuple[float, ...] = DEFAULT_DURATION_BUCKETS
    size_buckets: tuple[float, ...] = DEFAULT_SIZE_BUCKETS
    route_resolver: RouteResolver | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        for name in ("health_check_interval", "metrics_collection_interval",
                     "alert_check_interval", "health_check_timeout", "history_retention",
                     "dashboard_refresh",
                     "health_loop_lag_warning_ms", "health_loop_lag_critical_ms"):
            value = getattr(self, name)
            if (not isinstance(value, (int, float)) or isinstance(value, bool)
                    or not math.isfinite(value) or value <= 0):
                self._fail(name, "a number of seconds > 0", value)
        for prefix in ("health_memory", "health_cpu", "health_disk"):
            kind = "free_percent" if prefix == "health_disk" else "percent"
            warning = getattr(self, f"{prefix}_warning_{kind}")
            critical = getattr(self, f"{prefix}_critical_{kind}")
            for name, value in ((f"{prefix}_warning_{kind}", warning),
                                (f"{prefix}_critical_{kind}", critical)):
                if not isinstance(value, (int, float)) or not 0 <= value <= 100:
                    self._fail(name, "a percentage from 0 to 100", value)
            ordered = warning > critical if prefix == "health_disk" else warning < critical
            if not ordered:
                self._fail(f"{prefix}_warning_{kind}",
                           f"{'above' if prefix == 'health_disk' else 'below'} the critical "
                           f"threshold ({critical!r})", warning)
        if self.health_loop_lag_warning_ms >= self.health_loop_lag_critical_ms:
            self._fail("health_loop_lag_warning_ms", "below HEALTH_LOOP_LAG_CRITICAL_MS",
                       self.health_loop_lag_warning_ms)
        if not isinstance(self.smtp_port, int) or not 0 < self.smtp_port < 65536:
            self._fail("smtp_port", "a port number from 1 to 65535", self.smtp_port)
        top = self.history_top_routes
        if not isinstance(top, int) or isinstance(top, bool) or top < 1:
            self._fail("history_top_routes", "a whole number >= 1", top)
        if not isinstance(self.max_series_per_metric, int) or self.max_series_per_metric < 1:
            self._fail("max_series_per_metric", "a whole number >= 1", self.max_series_per_metric)
        if self.namespace and not _NAMESPACE_RE.match(self.namespace):
            self._fail("namespace", "letters, digits and '_' not starting with a digit",
                       self.namespace)
        for name in ("metrics_path", "health_path", "alerts_path", "dashboard_path"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.startswith("/") or value.endswith("/"):
                self._fail(name, "a path starting with '/' and not ending with '/'", value)
        for path in self.excluded_paths:
            if not path.startswith("/"):
                self._fail("excluded_paths", "paths starting with '/'", path)
        if (not isinstance(self.disk_paths, tuple)
                or not all(isinstance(p, str) and p for p in self.disk_paths)):
            self._fail("disk_paths", "a tuple of non-empty paths (comma-separated in the "
                       "environment)", self.disk_paths)
        for name in ("duration_buckets", "size_buckets"):
            buckets = getattr(self, name)
            if not buckets or list(buckets) != sorted(set(buckets)):
                self._fail(name, "a non-empty, strictly increasing sequence of numbers", buckets)
        if self.alert_email_enabled and not (self.smtp_server and self.from_email):
            self._fail("alert_email_enabled",
                       "SMTP_SERVER and FROM_EMAIL set when e-mail alerts are enabled", True)
        if self.smtp_ca_file and not os.access(self.smtp_ca_file, os.R_OK):
            self._fail("smtp_ca_file", "a readable CA bundle file (PEM)", self.smtp_ca_file)
        if isinstance(self.smtp_password, str):
            # Accept a plain string from code, but hold it as a Secret from here on.
            object.__setattr__(self, "smtp_password", Secret(self.smtp_password))
        self._check_alerting()
        self._check_admin_gate()

    def _check_alerting(self) -> None:
        for name in ("alert_webhook_url", "alert_webhook_secret", "alert_slack_webhook_url",
                     "alertmanager_url"):
            value = getattr(self, name)
            # From code a plain string is fine; an empty one means unset.
            object.__setattr__(self, name, (Secret(value) if isinstance(value, str) else value)
                               or None)
        for name in ("alert_webhook_url", "alert_slack_webhook_url", "alertmanager_url"):
            url = getattr(self, name)
            if url is not None and not url.get_secret_value().startswith(("http://", "https://")):
                self._fail(name, "an http:// or https:// URL", url)
        if not all(isinstance(a, str) and "@" in a for a in self.alert_email_to):
            self._fail("alert_email_to", "comma-separated e-mail addresses", self.alert_email_to)
        for name in ("alert_channel_timeout", "alert_evaluation_timeout", "alert_window_seconds"):
            value = getattr(self, name)
            if not _positive_number(value):
                self._fail(name, "a number of seconds > 0", value)
        for name in ("alert_response_time_seconds", "alert_cooldown_minutes"):
            value = getattr(self, name)
            if not _positive_number(value, allow_zero=True):
                self._fail(name, "a number >= 0", value)
        for name in ("alert_error_rate_percent", "alert_memory_percent",
                     "alert_db_error_rate_percent", "alert_disk_free_percent"):
            value = getattr(self, name)
            if not _positive_number(value, allow_zero=True) or value > 100:
                self._fail(name, "a percentage from 0 to 100", value)
        for name, low in (("alert_channel_retries", 0), ("alert_min_requests", 0),
                          ("alert_login_failures", 0), ("alert_history_size", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                self._fail(name, f"a whole number >= {low}", value)
        if self.alert_external_url and not self.alert_external_url.startswith(
                ("http://", "https://")):
            self._fail("alert_external_url", "an http:// or https:// URL",
                       self.alert_external_url)

    def _check_admin_gate(self) -> None:
        for name in ("admin_token", "admin_password", "metrics_token"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = Secret(value)
            # An empty variable (common in compose files) means unset, not an empty secret.
            object.__setattr__(self, name, value or None)
            if getattr(self, f"{name}_file"):
                from_file = Secret(self._read_secret_file(f"{name}_file"))
                # Equal values are fine: dataclasses.replace() passes both back in.
                if value and value != from_file:
                    self._fail(f"{name}_file", f"unset when {self.env_var(name)} is set "
                               "(use one of the two)", getattr(self, f"{name}_file"))
                object.__setattr__(self, name, from_file)
        for name in ("admin_token", "metrics_token"):
            token = getattr(self, name)
            if token is not None and any(c.isspace() for c in token.get_secret_value()):
                self._fail(name, "a token without spaces", token)
        if bool(self.admin_username) != bool(self.admin_password):
            missing = "admin_password" if self.admin_username else "admin_username"
            self._fail(missing, "set too: Basic login needs both MONITORING_ADMIN_USERNAME "
                       "and MONITORING_ADMIN_PASSWORD", getattr(self, missing))
        if ":" in self.admin_username:
            self._fail("admin_username", "a user name without ':'", self.admin_username)
        for network in self.metrics_allowed_networks:
            try:
                ipaddress.ip_network(network, strict=False)
            except (TypeError, ValueError):
                self._fail("metrics_allowed_networks",
                           "comma-separated networks such as 10.0.0.0/8, 192.168.1.5 or ::1/128",
                           network)
        rate = self.rate_limit_per_second
        if (not isinstance(rate, (int, float)) or isinstance(rate, bool) or not math.isfinite(rate)
                or rate < 0):
            self._fail("rate_limit_per_second", "a number of requests per second >= 0 "
                       "(0 disables the limit)", rate)
        for name in ("rate_limit_burst", "rate_limit_max_clients", "login_max_failures"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                self._fail(name, "a whole number >= 1", value)
        lockout = self.login_lockout_seconds
        if (not isinstance(lockout, (int, float)) or isinstance(lockout, bool)
                or not math.isfinite(lockout) or lockout <= 0):
            self._fail("login_lockout_seconds", "a number of seconds > 0", lockout)
        if self.authorize is not None and not callable(self.authorize):
            self._fail("authorize", "a callable authorize(scope) -> bool | Awaitable[bool]",
                       self.authorize)

    def _read_secret_file(self, name: str) -> str:
        path = getattr(self, name)
        value = ""
        try:
            with open(path, encoding="utf-8") as f:
                value = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self._fail(name, f"a readable UTF-8 file ({reason})", path)
        # Editors and `echo` add a final newline; it is never part of the secret.
        value = value.rstrip("\r\n")
        if not value:
            self._fail(name, "a file holding the secret, not an empty one", path)
        return value

    @property
    def admin_configured(self) -> bool:
        """Whether any way into the admin endpoints is configured."""
        return bool(self.admin_token or self.admin_password or self.authorize is not None)

    @classmethod
    def _fail(cls, name: str, accepted: str, value: object) -> None:
        env = cls.env_var(name)
        where = f"{env} ({name})" if env else name
        shown = "<secret>" if isinstance(value, Secret) else repr(value)
        raise ConfigError(f"{where} must be {accepted}, got {shown}")

    @staticmethod
    def env_var(name: str) -> str | None:
        """The environment variable that sets field ``name``, if any."""
        for f in dataclasses.fields(MonitoringConfig):
            if f.name == name:
                env = f.metadata.get("env")
                return str(env) if env else None
        return None

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> MonitoringConfig:
        """Read every documented variable from ``environ`` (default ``os.environ``).

        Keyword ``overrides`` win over the environment (for things like ``route_resolver``
        that cannot come from a string).
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            var = f.metadata.get("env")
            if var is None or var not in env or f.name in overrides:
                continue
            raw = env[var]
            try:
                values[f.name] = f.metadata["parse"](raw)
            except ValueError as exc:
                shown = "<secret>" if f.metadata["parse"] is _parse_secret else repr(raw)
                raise ConfigError(f"{var} must be {exc}, got {shown}") from None
        values.update(overrides)
        return cls(**values)

    def public_dict(self) -> dict[str, Any]:
        """The settings as plain data with every secret masked (for logs, exports, the CLI)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Secret):
                value = str(value) if value else ""
            elif callable(value):
                value = getattr(value, "__qualname__", type(value).__name__)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out
