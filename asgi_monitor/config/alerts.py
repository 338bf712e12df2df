"""Settings of the alert engine, its default rules, and the channels that deliver alerts."""

from __future__ import annotations

import os

from ..secret import Secret
from .declare import (
    Env,
    Section,
    boolean,
    email_list,
    http_url,
    minutes,
    non_negative,
    number,
    percent,
    port,
    positive_seconds,
    secret_text,
    setting,
    text_list,
    whole,
    whole_at_least,
)

__all__ = ["AlertSettings", "EmailSettings", "WebhookSettings"]


class AlertSettings(Section):
    """Evaluation, the default rules' thresholds, the alert log and delivery."""

    name = "alerts"

    check_interval_seconds: float = setting(
        10.0, env="ALERT_CHECK_INTERVAL", parse=number, check=positive_seconds,
        help="seconds between rule evaluations")
    evaluation_timeout_seconds: float = setting(
        10.0, env="ALERT_EVALUATION_TIMEOUT", parse=number, check=positive_seconds,
        help="seconds a rule's condition may take (then: no data)")
    default_rules: bool = setting(
        True, env="ALERT_DEFAULT_RULES", parse=boolean, help="install the default rules")
    cooldown_seconds: float = setting(
        600.0, env=(Env("ALERT_COOLDOWN_SECONDS", number), Env("ALERT_COOLDOWN_MINUTES", minutes)),
        check=non_negative,
        help="repeat interval of the default rules while firing (`ALERT_COOLDOWN_MINUTES` "
             "is read too, in minutes)")
    window_seconds: float = setting(
        300.0, env="ALERT_WINDOW_SECONDS", parse=number, check=positive_seconds,
        help="window of the rate-based default rules")
    min_requests: int = setting(
        20, env="ALERT_MIN_REQUESTS", parse=whole, check=whole_at_least(0),
        help="requests (or DB queries) a window needs before its rates count")
    error_rate_percent: float = setting(
        5.0, env="ALERT_ERROR_RATE_PERCENT", parse=number, check=percent,
        help="`high_error_rate` threshold (5xx %)")
    response_time_seconds: float = setting(
        1.0, env="ALERT_RESPONSE_TIME_SECONDS", parse=number, check=non_negative,
        help="`slow_responses` threshold (average)")
    db_error_rate_percent: float = setting(
        5.0, env="ALERT_DB_ERROR_RATE_PERCENT", parse=number, check=percent,
        help="`database_issues` threshold (failed queries %)")
    login_failures: int = setting(
        10, env="ALERT_LOGIN_FAILURES", parse=whole, check=whole_at_least(0),
        help="`login_failure_spike` threshold (failures in the window)")
    history_size: int = setting(
        1000, env="ALERT_HISTORY_SIZE", parse=whole, check=whole_at_least(1),
        help="alerts kept in memory")
    history_file: str = setting(
        "", env="ALERT_HISTORY_FILE",
        help="JSON-lines file the alert history is appended to and reloaded from")
    lock_path: str = setting(
        "", env="ALERT_LOCK_PATH",
        help="lock file electing the one process that evaluates and sends (default: "
             "`asgi_monitor_alerts.lock` in `PROMETHEUS_MULTIPROC_DIR`)")
    external_url: str = setting(
        "", env="ALERT_EXTERNAL_URL", check=http_url,
        help="this app's public URL, for links (`externalURL`, `generatorURL`)")
    console_enabled: bool = setting(
        True, env="ALERT_CONSOLE_ENABLED", parse=boolean,
        help="log alerts on `asgi_monitor.alerts`")
    send_resolved: bool = setting(
        True, env="ALERT_SEND_RESOLVED", parse=boolean,
        help="notify resolutions too (Alertmanager always gets them)")
    channel_timeout_seconds: float = setting(
        10.0, env="ALERT_CHANNEL_TIMEOUT", parse=number, check=positive_seconds,
        help="seconds per delivery attempt")
    channel_retries: int = setting(
        2, env="ALERT_CHANNEL_RETRIES", parse=whole, check=whole_at_least(0),
        help="retries after a failed attempt (backoff 0.5 s, 1 s, 2 s, ...)")
    channel_queue_size: int = setting(
        100, env="ALERT_CHANNEL_QUEUE_SIZE", parse=whole, check=whole_at_least(1),
        help="notifications each channel may have waiting; when full the oldest is dropped "
             "and counted")


class EmailSettings(Section):
    """The e-mail channel (aiosmtplib)."""

    name = "email"
    switch = "enabled"
    feature = "e-mail alerts"

    enabled: bool = setting(
        False, env="ALERT_EMAIL_ENABLED", parse=boolean,
        help="send alerts by e-mail (needs `SMTP_SERVER` and `FROM_EMAIL`)")
    server: str = setting("", env="SMTP_SERVER", help="SMTP host")
    port: int = setting(587, env="SMTP_PORT", parse=whole, check=port, help="SMTP port")
    username: str = setting("", env="SMTP_USERNAME", help="SMTP login")
    password: Secret | None = setting(
        None, env="SMTP_PASSWORD", parse=secret_text, is_secret=True,
        help="SMTP password (a secret)")
    from_address: str = setting("", env="FROM_EMAIL", help="sender address")
    recipients: tuple[str, ...] = setting(
        (), env="ALERT_EMAIL_TO", parse=text_list, check=email_list,
        help="comma-separated recipients (default: `FROM_EMAIL`)")
    use_tls: bool = setting(
        False, env="SMTP_USE_TLS", parse=boolean,
        help="implicit TLS (port 465); wins over STARTTLS")
    starttls: bool = setting(
        True, env="SMTP_STARTTLS", parse=boolean,
        help="require STARTTLS (`false` only for a local relay without TLS)")
    ca_file: str = setting(
        "", env="SMTP_CA_FILE",
        help="CA bundle (PEM) to verify the SMTP server's certificate, for a relay with a "
             "private CA; default: the system's CAs")

    def _check_together(self) -> None:
        if self.enabled and not (self.server and self.from_address):
            self._fail("enabled", "SMTP_SERVER and FROM_EMAIL set when e-mail alerts are "
                       "enabled", True)
        if self.ca_file and not os.access(self.ca_file, os.R_OK):
            self._fail("ca_file", "a readable CA bundle file (PEM)", self.ca_file,
                       note=self._off_note("ca_file"))


class WebhookSettings(Section):
    """The HTTP channels (httpx). Every URL is a secret: a Slack or webhook URL is a credential."""

    name = "webhooks"

    url: Secret | None = setting(
        None, env="ALERT_WEBHOOK_URL", parse=secret_text, is_secret=True, check=http_url,
        help="webhook receiving Alertmanager's v4 JSON (a secret)")
    secret: Secret | None = setting(
        None, env="ALERT_WEBHOOK_SECRET", parse=secret_text, is_secret=True,
        help="HMAC-SHA256 key signing webhook requests")
    slack_url: Secret | None = setting(
        None, env="ALERT_SLACK_WEBHOOK_URL", parse=secret_text, is_secret=True, check=http_url,
        help="Slack incoming webhook (a secret)")
    alertmanager_url: Secret | None = setting(
        None, env="ALERTMANAGER_URL", parse=secret_text, is_secret=True, check=http_url,
        help="Alertmanager base URL; alerts are pushed to `/api/v2/alerts` (a secret)")
