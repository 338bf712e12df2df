from __future__ import annotations

import dataclasses

import pytest

from asgi_monitor import ConfigError, MonitoringConfig, Secret
from asgi_monitor.config import (
    AlertSettings,
    EmailSettings,
    GateSettings,
    HealthSettings,
    HistorySettings,
    MetricsSettings,
    WebhookSettings,
    reference,
    variables,
)


def test_defaults_match_the_documented_values() -> None:
    config = MonitoringConfig.from_env({})
    assert config.enabled is True
    assert config.health.interval_seconds == 60
    assert config.history.sample_interval_seconds == 30
    assert config.alerts.check_interval_seconds == 10
    assert config.email.enabled is False
    assert config.alerts.console_enabled is True
    assert config.email.port == 587
    assert config.paths.metrics == "/api/metrics"


def test_reads_every_documented_variable() -> None:
    env = {
        "ENABLE_MONITORING": "false",
        "HEALTH_CHECK_INTERVAL": "15",
        "METRICS_COLLECTION_INTERVAL": "5.5",
        "ALERT_CHECK_INTERVAL": "2",
        "ALERT_EMAIL_ENABLED": "yes",
        "ALERT_CONSOLE_ENABLED": "0",
        "SMTP_SERVER": "mail.example.org",
        "SMTP_PORT": "465",
        "SMTP_USERNAME": "alerts",
        "SMTP_PASSWORD": "hunter2-not-shown",
        "FROM_EMAIL": "alerts@example.org",
        "MONITORING_DEBUG": "on",
    }
    config = MonitoringConfig.from_env(env)
    assert config.enabled is False
    assert config.health.interval_seconds == 15
    assert config.history.sample_interval_seconds == 5.5
    assert config.alerts.check_interval_seconds == 2
    assert config.email.enabled is True
    assert config.alerts.console_enabled is False
    assert config.email.server == "mail.example.org"
    assert config.email.port == 465
    assert config.email.username == "alerts"
    assert isinstance(config.email.password, Secret)
    assert config.email.password.get_secret_value() == "hunter2-not-shown"
    assert config.email.from_address == "alerts@example.org"
    assert config.debug is True
    assert "hunter2" not in repr(config)
    assert "hunter2" not in str(config.public_dict())


@pytest.mark.parametrize(
    ("variable", "value", "accepted"),
    [
        ("HEALTH_CHECK_INTERVAL", "soon", "a number"),
        ("HEALTH_CHECK_INTERVAL", "-1", "> 0"),
        ("METRICS_COLLECTION_INTERVAL", "0", "> 0"),
        ("ALERT_CHECK_INTERVAL", "nan", "> 0"),
        ("ENABLE_MONITORING", "maybe", "true/false"),
        ("ALERT_CONSOLE_ENABLED", "2", "true/false"),
        ("SMTP_PORT", "smtp", "a whole number"),
        ("SMTP_PORT", "70000", "1 to 65535"),
        ("MONITORING_MAX_SERIES", "0", ">= 1"),
        ("MONITORING_NAMESPACE", "my-app", "letters"),
        ("MONITORING_METRICS_PATH", "metrics", "starting with '/'"),
        ("MONITORING_EXCLUDED_PATHS", "/ok,health", "starting with '/'"),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str, accepted: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        MonitoringConfig.from_env({variable: value})
    message = str(excinfo.value)
    assert variable in message
    assert accepted in message


def test_email_alerts_need_a_server() -> None:
    with pytest.raises(ConfigError, match="ALERT_EMAIL_ENABLED"):
        MonitoringConfig.from_env({"ALERT_EMAIL_ENABLED": "true"})


def test_secret_value_never_in_error_messages() -> None:
    # SMTP_PASSWORD cannot be invalid, but a secret echoed by _fail must be masked anyway.
    with pytest.raises(ConfigError) as excinfo:
        MonitoringConfig._fail("smtp_password", "something", Secret("topsecret"))
    assert "topsecret" not in str(excinfo.value)


def test_config_is_frozen() -> None:
    config = MonitoringConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.enabled = False  # type: ignore[misc]


def test_overrides_win_over_environment() -> None:
    config = MonitoringConfig.from_env(
        {"MONITORING_NAMESPACE": "env"}, metrics={"namespace": "code"})
    assert config.metrics.namespace == "code"


def test_excluded_paths_parse_as_list() -> None:
    config = MonitoringConfig.from_env({"MONITORING_EXCLUDED_PATHS": "/healthz, /ready,,"})
    assert config.metrics.excluded_paths == ("/healthz", "/ready")


def test_alerting_variables() -> None:
    config = MonitoringConfig.from_env({
        "ALERT_EMAIL_TO": "ops@example.com, dev@example.com",
        "SMTP_USE_TLS": "true", "SMTP_STARTTLS": "false",
        "ALERT_WEBHOOK_URL": "https://hooks.example/secret-path",
        "ALERT_WEBHOOK_SECRET": "sign-me", "ALERT_SLACK_WEBHOOK_URL": "https://hooks.slack/x",
        "ALERTMANAGER_URL": "http://127.0.0.1:9093", "ALERT_SEND_RESOLVED": "false",
        "ALERT_CHANNEL_TIMEOUT": "3", "ALERT_CHANNEL_RETRIES": "0",
        "ALERT_HISTORY_FILE": "/var/lib/app/alerts.jsonl", "ALERT_LOCK_PATH": "/run/app.lock",
        "ALERT_DEFAULT_RULES": "off", "ALERT_ERROR_RATE_PERCENT": "2.5",
        "ALERT_MIN_REQUESTS": "50", "ALERT_WINDOW_SECONDS": "600",
        "ALERT_DISK_FREE_PERCENT": "10", "ALERT_LOGIN_FAILURES": "100",
    })
    assert config.email.recipients == ("ops@example.com", "dev@example.com")
    assert (config.email.use_tls, config.email.starttls) == (True, False)
    assert isinstance(config.webhooks.url, Secret)
    assert config.webhooks.url.get_secret_value() == "https://hooks.example/secret-path"
    assert config.alerts.send_resolved is False
    assert (config.alerts.channel_timeout_seconds, config.alerts.channel_retries) == (3, 0)
    assert config.alerts.history_file == "/var/lib/app/alerts.jsonl"
    assert config.alerts.lock_path == "/run/app.lock"
    assert config.alerts.default_rules is False
    assert (config.alerts.error_rate_percent, config.alerts.min_requests) == (2.5, 50)
    assert config.alerts.window_seconds == 600
    assert (config.system.disk_warning_free_percent, config.alerts.login_failures) == (10, 100)
    shown = repr(config) + str(config.public_dict())
    assert "secret-path" not in shown and "sign-me" not in shown and "hooks.slack" not in shown


def test_alerting_defaults() -> None:
    config = MonitoringConfig()
    assert (config.alerts.error_rate_percent, config.alerts.min_requests) == (5, 20)
    assert (config.alerts.response_time_seconds, config.system.memory_warning_percent) == (1, 85)
    assert (config.system.disk_warning_free_percent, config.alerts.window_seconds) == (15, 300)
    assert config.alerts.default_rules is True and config.alerts.send_resolved is True
    assert config.webhooks.url is None
    assert MonitoringConfig(webhooks=WebhookSettings(url="")).webhooks.url is None


@pytest.mark.parametrize(("variable", "value", "accepted"), [
    ("ALERT_WEBHOOK_URL", "hooks.example/x", "http:// or https://"),
    ("ALERTMANAGER_URL", "localhost:9093", "http:// or https://"),
    ("ALERT_EMAIL_TO", "ops", "e-mail addresses"),
    ("ALERT_CHANNEL_TIMEOUT", "0", "> 0"),
    ("ALERT_CHANNEL_RETRIES", "-1", ">= 0"),
    ("ALERT_CHANNEL_RETRIES", "two", "a whole number"),
    ("ALERT_ERROR_RATE_PERCENT", "150", "0 to 100"),
    ("ALERT_MEMORY_PERCENT", "-5", "0 to 100"),
    ("ALERT_HISTORY_SIZE", "0", ">= 1"),
    ("ALERT_WINDOW_SECONDS", "inf", "> 0"),
    ("ALERT_DEFAULT_RULES", "perhaps", "true/false"),
    ("ALERT_EXTERNAL_URL", "app.example", "http:// or https://"),
])
def test_bad_alerting_values_name_the_variable(variable: str, value: str, accepted: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        MonitoringConfig.from_env({variable: value})
    assert variable in str(excinfo.value) and accepted in str(excinfo.value)
    if variable in ("ALERT_WEBHOOK_URL", "ALERTMANAGER_URL"):
        assert value not in str(excinfo.value)  # a URL that may hold a token is never echoed


def test_a_partial_override_keeps_the_rest_of_the_section_from_the_environment() -> None:
    def resolver(scope: object) -> str:
        return "/x"

    config = MonitoringConfig.from_env(
        {"MONITORING_NAMESPACE": "shop", "MONITORING_MAX_SERIES": "50"},
        metrics={"route_resolver": resolver})
    assert (config.metrics.namespace, config.metrics.max_series) == ("shop", 50)
    assert config.metrics.route_resolver is resolver
    # A whole section replaces the environment's.
    whole = MonitoringConfig.from_env({"MONITORING_NAMESPACE": "shop"},
                                      metrics=MetricsSettings(max_series=7))
    assert (whole.metrics.namespace, whole.metrics.max_series) == ("", 7)


def test_every_duration_is_in_seconds_whatever_unit_its_variable_has() -> None:
    config = MonitoringConfig.from_env({
        "ALERT_COOLDOWN_MINUTES": "2", "HEALTH_LOOP_LAG_WARNING_MS": "50",
        "HEALTH_LOOP_LAG_CRITICAL_MS": "250"})
    assert config.alerts.cooldown_seconds == 120
    assert (config.health.loop_lag_warning_seconds,
            config.health.loop_lag_critical_seconds) == (0.05, 0.25)
    assert MonitoringConfig.from_env(
        {"ALERT_COOLDOWN_SECONDS": "90"}).alerts.cooldown_seconds == 90
    fields = [f.name for section in (AlertSettings, HealthSettings, HistorySettings, GateSettings)
              for f in dataclasses.fields(section)]
    assert not [name for name in fields if name.endswith(("_ms", "_minutes"))]


def test_one_threshold_for_health_and_alerts() -> None:
    # The memory check turns WARNING where the memory alert fires: one setting, two variables.
    by_alert = MonitoringConfig.from_env({"ALERT_MEMORY_PERCENT": "70"})
    by_health = MonitoringConfig.from_env({"HEALTH_MEMORY_WARNING_PERCENT": "70"})
    assert by_alert.system.memory_warning_percent == by_health.system.memory_warning_percent == 70
    assert MonitoringConfig.from_env({"ALERT_DISK_FREE_PERCENT": "20"}).system \
        .disk_warning_free_percent == 20
    with pytest.raises(ConfigError, match="HEALTH_MEMORY_WARNING_PERCENT and ALERT_MEMORY_PERCENT"):
        MonitoringConfig.from_env({"HEALTH_MEMORY_WARNING_PERCENT": "80",
                                   "ALERT_MEMORY_PERCENT": "70"})
    # The same value twice is fine.
    MonitoringConfig.from_env({"HEALTH_MEMORY_WARNING_PERCENT": "80", "ALERT_MEMORY_PERCENT": "80"})


def test_a_section_validates_itself_and_names_its_setting() -> None:
    with pytest.raises(ConfigError, match=r"HEALTH_CHECK_TIMEOUT \(health.timeout_seconds\)"):
        HealthSettings(timeout_seconds=0)
    with pytest.raises(ConfigError, match=r"SMTP_PORT \(email.port\) must be a port number"):
        EmailSettings(port=0)
    with pytest.raises(ConfigError, match=r"metrics.duration_buckets must be a non-empty"):
        MetricsSettings(duration_buckets=(1.0, 0.5))
    with pytest.raises(ConfigError, match="gate must be a GateSettings"):
        MonitoringConfig(gate={"admin_token": "x"})  # type: ignore[arg-type]


def test_the_reference_lists_every_variable_once_with_its_setting() -> None:
    text = reference()
    for variable, (name, _, _) in variables().items():
        rows = [line for line in text.splitlines()
                if line.startswith("| ") and f"`{variable}`" in line.split("|")[1]]
        assert len(rows) == 1, variable
        assert f"`{name}`" in rows[0]
    # Code-only settings are listed too, so the page documents every field.
    assert "`metrics.route_resolver`" in text and "`gate.authorize`" in text


# Every variable the flat configuration read before it was split into sections: each must still
# set a setting, so no deployment's environment silently stops working.
VARIABLES_BEFORE_SECTIONS = [
    "ALERTMANAGER_URL",
    "ALERT_CHANNEL_RETRIES",
    "ALERT_CHANNEL_TIMEOUT",
    "ALERT_CHECK_INTERVAL",
    "ALERT_CONSOLE_ENABLED",
    "ALERT_COOLDOWN_MINUTES",
    "ALERT_DB_ERROR_RATE_PERCENT",
    "ALERT_DEFAULT_RULES",
    "ALERT_DISK_FREE_PERCENT",
    "ALERT_EMAIL_ENABLED",
    "ALERT_EMAIL_TO",
    "ALERT_ERROR_RATE_PERCENT",
    "ALERT_EVALUATION_TIMEOUT",
    "ALERT_EXTERNAL_URL",
    "ALERT_HISTORY_FILE",
    "ALERT_HISTORY_SIZE",
    "ALERT_LOCK_PATH",
    "ALERT_LOGIN_FAILURES",
    "ALERT_MEMORY_PERCENT",
    "ALERT_MIN_REQUESTS",
    "ALERT_RESPONSE_TIME_SECONDS",
    "ALERT_SEND_RESOLVED",
    "ALERT_SLACK_WEBHOOK_URL",
    "ALERT_WEBHOOK_SECRET",
    "ALERT_WEBHOOK_URL",
    "ALERT_WINDOW_SECONDS",
    "ENABLE_MONITORING",
    "FROM_EMAIL",
    "HEALTH_CHECK_INTERVAL",
    "HEALTH_CHECK_TIMEOUT",
    "HEALTH_CPU_CRITICAL_PERCENT",
    "HEALTH_CPU_WARNING_PERCENT",
    "HEALTH_DEFAULT_CHECKS",
    "HEALTH_DISK_CRITICAL_FREE_PERCENT",
    "HEALTH_DISK_PATH",
    "HEALTH_DISK_WARNING_FREE_PERCENT",
    "HEALTH_LOOP_LAG_CRITICAL_MS",
    "HEALTH_LOOP_LAG_WARNING_MS",
    "HEALTH_MEMORY_CRITICAL_PERCENT",
    "HEALTH_MEMORY_WARNING_PERCENT",
    "METRICS_COLLECTION_INTERVAL",
    "MONITORING_ADMIN_PASSWORD",
    "MONITORING_ADMIN_PASSWORD_FILE",
    "MONITORING_ADMIN_TOKEN",
    "MONITORING_ADMIN_TOKEN_FILE",
    "MONITORING_ADMIN_USERNAME",
    "MONITORING_ALERTS_PATH",
    "MONITORING_DASHBOARD_PATH",
    "MONITORING_DASHBOARD_REFRESH",
    "MONITORING_DEBUG",
    "MONITORING_DISK_PATHS",
    "MONITORING_EXCLUDED_PATHS",
    "MONITORING_HEALTH_PATH",
    "MONITORING_HISTORY_RETENTION",
    "MONITORING_HISTORY_TOP_ROUTES",
    "MONITORING_LOGIN_LOCKOUT_SECONDS",
    "MONITORING_LOGIN_MAX_FAILURES",
    "MONITORING_LOG_FILE",
    "MONITORING_MAX_SERIES",
    "MONITORING_METRICS_ALLOWED_NETWORKS",
    "MONITORING_METRICS_PATH",
    "MONITORING_METRICS_TOKEN",
    "MONITORING_METRICS_TOKEN_FILE",
    "MONITORING_NAMESPACE",
    "MONITORING_RATE_LIMIT_BURST",
    "MONITORING_RATE_LIMIT_MAX_CLIENTS",
    "MONITORING_RATE_LIMIT_PER_SECOND",
    "MONITORING_SYSTEM_METRICS",
    "SMTP_CA_FILE",
    "SMTP_PASSWORD",
    "SMTP_PORT",
    "SMTP_SERVER",
    "SMTP_STARTTLS",
    "SMTP_USERNAME",
    "SMTP_USE_TLS",
]


@pytest.mark.parametrize("variable", VARIABLES_BEFORE_SECTIONS)
def test_every_variable_that_worked_before_still_sets_a_setting(variable: str) -> None:
    assert variable in variables()


@pytest.mark.parametrize("variable", sorted(variables()))
def test_an_empty_variable_means_unset(variable: str) -> None:
    # Compose files write VAR="" for a variable they pass through.
    assert MonitoringConfig.from_env({variable: ""}) == MonitoringConfig.from_env({})
    assert MonitoringConfig.from_env({variable: "  "}) == MonitoringConfig.from_env({})


def test_empty_enable_monitoring_keeps_the_default() -> None:
    assert MonitoringConfig.from_env({"ENABLE_MONITORING": ""}).enabled is True


def test_empty_smtp_port_with_email_off_starts() -> None:
    config = MonitoringConfig.from_env({"SMTP_PORT": "", "SMTP_SERVER": "", "FROM_EMAIL": ""})
    assert config.email.port == 587


@pytest.mark.parametrize(("variable", "value"), [
    ("SMTP_PORT", "abc"), ("SMTP_PORT", "0"), ("ALERT_EMAIL_TO", "nobody"),
])
def test_bad_setting_of_a_disabled_feature_says_it_is_off(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        MonitoringConfig.from_env({variable: value})
    message = str(excinfo.value)
    assert variable in message
    assert "e-mail alerts are off" in message
    assert "ALERT_EMAIL_ENABLED" in message


def test_bad_setting_of_an_enabled_feature_does_not_say_it_is_off() -> None:
    with pytest.raises(ConfigError) as excinfo:
        MonitoringConfig.from_env({"ALERT_EMAIL_ENABLED": "true", "SMTP_PORT": "abc",
                                   "SMTP_SERVER": "mail", "FROM_EMAIL": "a@b"})
    assert "SMTP_PORT" in str(excinfo.value)
    assert "are off" not in str(excinfo.value)


def test_request_controls_from_the_environment() -> None:
    metrics = MonitoringConfig.from_env({
        "MONITORING_EXCLUDED_PATHS": "/healthz,/static/*",
        "MONITORING_EXCLUDED_PATTERN": r"\.(png|css)$",
        "MONITORING_SKIP_METHODS": "options, head",
        "MONITORING_CONSTANT_LABELS": "service=shop, env = prod",
    }).metrics
    assert metrics.excluded_paths == ("/healthz", "/static/*")
    assert metrics.excluded_pattern == r"\.(png|css)$"
    assert metrics.skip_methods == ("OPTIONS", "HEAD")
    assert metrics.constant_labels == (("service", "shop"), ("env", "prod"))


def test_constant_labels_from_a_mapping_in_code() -> None:
    assert MetricsSettings(constant_labels={"service": "shop"}).constant_labels == (
        ("service", "shop"),)


@pytest.mark.parametrize(("variable", "value", "accepted"), [
    ("MONITORING_EXCLUDED_PATTERN", "(unclosed", "a regular expression"),
    ("MONITORING_SKIP_METHODS", "OPTIONS,GET/1", "HTTP methods"),
    ("MONITORING_CONSTANT_LABELS", "service", "name=value"),
    ("MONITORING_CONSTANT_LABELS", "route=x", "not method, route, status, scheme, le"),
    ("MONITORING_CONSTANT_LABELS", "url_scheme=x", "url_scheme, error_type"),
    ("MONITORING_CONSTANT_LABELS", "status=x", "not method"),
    ("MONITORING_CONSTANT_LABELS", "my-service=x", "letters, digits"),
    ("MONITORING_CONSTANT_LABELS", "__name__=x", "'__'"),
    ("MONITORING_CONSTANT_LABELS", "env=a,env=b", "distinct"),
    ("MONITORING_CONSTANT_LABELS", "env=", "non-empty"),
])
def test_bad_request_controls_name_the_variable(variable: str, value: str, accepted: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        MonitoringConfig.from_env({variable: value})
    assert variable in str(excinfo.value)
    assert accepted in str(excinfo.value)
