"""The admin gate's settings: parsed from the environment, validated once, secrets kept secret."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from asgi_monitor import ConfigError, MonitoringConfig, Secret
from asgi_monitor.config import GateSettings

TOKEN = "config-test-token-5550123"
PASSWORD = "config-test-password-5550123"


def test_defaults_deny_admin_and_leave_metrics_public() -> None:
    config = MonitoringConfig()
    assert not config.gate.admin_configured
    assert config.gate.admin_token is None and config.gate.metrics_token is None
    assert config.gate.metrics_allowed_networks == ()
    assert (config.gate.rate_limit_per_second, config.gate.rate_limit_burst) == (10.0, 50)
    assert (config.gate.login_max_failures, config.gate.login_lockout_seconds) == (5, 300.0)
    assert config.gate.rate_limit_max_clients == 10_000


def test_from_env_reads_every_gate_variable() -> None:
    config = MonitoringConfig.from_env({
        "MONITORING_ADMIN_TOKEN": f" {TOKEN}\n",
        "MONITORING_ADMIN_USERNAME": "ops",
        "MONITORING_ADMIN_PASSWORD": PASSWORD,
        "MONITORING_METRICS_TOKEN": "scrape-token",
        "MONITORING_METRICS_ALLOWED_NETWORKS": "10.0.0.0/8, ::1/128,192.168.1.5",
        "MONITORING_RATE_LIMIT_PER_SECOND": "2.5",
        "MONITORING_RATE_LIMIT_BURST": "20",
        "MONITORING_RATE_LIMIT_MAX_CLIENTS": "100",
        "MONITORING_LOGIN_MAX_FAILURES": "3",
        "MONITORING_LOGIN_LOCKOUT_SECONDS": "60",
    })
    assert config.gate.admin_token == Secret(TOKEN)
    assert config.gate.admin_password == Secret(PASSWORD)
    assert config.gate.metrics_token == Secret("scrape-token")
    assert config.gate.admin_username == "ops"
    assert config.gate.metrics_allowed_networks == ("10.0.0.0/8", "::1/128", "192.168.1.5")
    assert (config.gate.rate_limit_per_second, config.gate.rate_limit_burst) == (2.5, 20)
    assert config.gate.rate_limit_max_clients == 100
    assert (config.gate.login_max_failures, config.gate.login_lockout_seconds) == (3, 60.0)
    assert config.gate.admin_configured


def test_plain_strings_from_code_are_held_as_secrets() -> None:
    config = MonitoringConfig(gate=GateSettings(admin_token=TOKEN, admin_username="ops", admin_password=PASSWORD, metrics_token="scrape-token"))  # type: ignore[arg-type]
    for name in ("admin_token", "admin_password", "metrics_token"):
        assert isinstance(getattr(config, name), Secret)
    for shown in (repr(config), str(config.public_dict())):
        assert TOKEN not in shown and PASSWORD not in shown and "scrape-token" not in shown


@pytest.mark.parametrize("variable", [
    "MONITORING_ADMIN_TOKEN", "MONITORING_ADMIN_PASSWORD", "MONITORING_METRICS_TOKEN"])
def test_secret_read_from_file_without_its_final_newline(variable: str, tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(f"{TOKEN}\n")
    env = {f"{variable}_FILE": str(secret_file)}
    if variable == "MONITORING_ADMIN_PASSWORD":
        env["MONITORING_ADMIN_USERNAME"] = "ops"
    config = MonitoringConfig.from_env(env)
    field = variable.removeprefix("MONITORING_").lower()
    assert getattr(config, field) == Secret(TOKEN)
    # dataclasses.replace() passes the value and the file back in; that is no conflict.
    assert getattr(dataclasses.replace(config, rate_limit_burst=7), field) == Secret(TOKEN)


def expect_error(match: str, **settings: Any) -> str:
    with pytest.raises(ConfigError, match=match) as info:
        MonitoringConfig(**settings)
    return str(info.value)


def test_missing_token_file_names_the_variable(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    message = expect_error("MONITORING_ADMIN_TOKEN_FILE", admin_token_file=str(missing))
    assert "readable" in message and str(missing) in message


def test_token_file_that_is_not_utf8(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(b"\xff\xfe")
    expect_error("MONITORING_ADMIN_PASSWORD_FILE .*UTF-8", gate=GateSettings(admin_username="ops"),
                 admin_password_file=str(secret_file))


def test_token_file_that_is_a_directory_or_empty(tmp_path: Path) -> None:
    expect_error("MONITORING_METRICS_TOKEN_FILE", metrics_token_file=str(tmp_path))
    empty = tmp_path / "empty"
    empty.write_text("\n")
    expect_error("MONITORING_ADMIN_TOKEN_FILE .* not an empty one", admin_token_file=str(empty))


def test_token_and_a_different_token_file_conflict(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-the-file")
    message = expect_error("MONITORING_ADMIN_TOKEN_FILE .*use one of the two",
                           gate=GateSettings(admin_token=TOKEN), admin_token_file=str(secret_file))
    assert TOKEN not in message and "from-the-file" not in message


@pytest.mark.parametrize(("env", "variable"), [
    ({"MONITORING_METRICS_ALLOWED_NETWORKS": "10.0.0.0/8,10.0.0.300/32"},
     "MONITORING_METRICS_ALLOWED_NETWORKS"),
    ({"MONITORING_METRICS_ALLOWED_NETWORKS": "localhost"}, "MONITORING_METRICS_ALLOWED_NETWORKS"),
    ({"MONITORING_ADMIN_USERNAME": "ops"}, "MONITORING_ADMIN_PASSWORD"),
    ({"MONITORING_ADMIN_PASSWORD": PASSWORD}, "MONITORING_ADMIN_USERNAME"),
    ({"MONITORING_ADMIN_USERNAME": "a:b", "MONITORING_ADMIN_PASSWORD": PASSWORD},
     "MONITORING_ADMIN_USERNAME"),
    ({"MONITORING_ADMIN_TOKEN": "two words"}, "MONITORING_ADMIN_TOKEN"),
    ({"MONITORING_RATE_LIMIT_PER_SECOND": "-1"}, "MONITORING_RATE_LIMIT_PER_SECOND"),
    ({"MONITORING_RATE_LIMIT_PER_SECOND": "inf"}, "MONITORING_RATE_LIMIT_PER_SECOND"),
    ({"MONITORING_RATE_LIMIT_PER_SECOND": "fast"}, "MONITORING_RATE_LIMIT_PER_SECOND"),
    ({"MONITORING_RATE_LIMIT_BURST": "0"}, "MONITORING_RATE_LIMIT_BURST"),
    ({"MONITORING_RATE_LIMIT_BURST": "1.5"}, "MONITORING_RATE_LIMIT_BURST"),
    ({"MONITORING_RATE_LIMIT_MAX_CLIENTS": "0"}, "MONITORING_RATE_LIMIT_MAX_CLIENTS"),
    ({"MONITORING_LOGIN_MAX_FAILURES": "0"}, "MONITORING_LOGIN_MAX_FAILURES"),
    ({"MONITORING_LOGIN_LOCKOUT_SECONDS": "0"}, "MONITORING_LOGIN_LOCKOUT_SECONDS"),
])
def test_bad_values_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError, match=variable) as info:
        MonitoringConfig.from_env(env)
    assert PASSWORD not in str(info.value)
    assert "two words" not in str(info.value)


def test_empty_secret_variables_mean_unset() -> None:
    config = MonitoringConfig.from_env({
        "MONITORING_ADMIN_TOKEN": "", "MONITORING_ADMIN_PASSWORD": " ",
        "MONITORING_METRICS_TOKEN": "\n"})
    assert (config.gate.admin_token, config.gate.admin_password, config.gate.metrics_token) == (None, None, None)
    assert not config.gate.admin_configured


def test_authorize_must_be_callable() -> None:
    expect_error("authorize", gate=GateSettings(authorize="admin"))


def test_authorize_hook_does_not_affect_equality() -> None:
    assert MonitoringConfig(gate=GateSettings(authorize=lambda scope: True)) == MonitoringConfig()
