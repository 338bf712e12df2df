"""The admin gate's settings: parsed from the environment, validated once, secrets kept secret."""

from __future__ import annotations

from pathlib import Path

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
    config = MonitoringConfig(  # type: ignore[arg-type]
        gate=GateSettings(
            admin_token=TOKEN,
            admin_username="ops",
            admin_password=PASSWORD,
            metrics_token="scrape-token"))
    for name in ("admin_token", "admin_password", "metrics_token"):
        assert isinstance(getattr(config.gate, name), Secret)
    for shown in (repr(config), str(config.public_dict())):
        assert TOKEN not in shown and PASSWORD not in shown and "scrape-token" not in shown


@pytest.mark.parametrize(
    "variable", ["MONITORING_ADMIN_TOKEN", "MONITORING_ADMIN_PASSWORD", "MONITORING_METRICS_TOKEN"]
)
@pytest.mark.parametrize("content", [f"{TOKEN}\n", f"\ufeff{TOKEN}\r\n", f"{TOKEN}  \t\n"])
def test_secret_read_from_file_as_the_variable_would_be(
    variable: str, content: str, tmp_path: Path
) -> None:
    # A final newline, a byte-order mark or trailing blanks (editors, echo) are never the secret.
    secret_file = tmp_path / "secret"
    secret_file.write_text(content, encoding="utf-8")
    env = {f"{variable}_FILE": str(secret_file)}
    if variable == "MONITORING_ADMIN_PASSWORD":
        env["MONITORING_ADMIN_USERNAME"] = "ops"
    config = MonitoringConfig.from_env(env)
    field = variable.removeprefix("MONITORING_").lower()
    assert getattr(config.gate, field) == Secret(TOKEN)
    assert Secret.from_file(str(secret_file)) == Secret(TOKEN)


def expect_error(match: str, env: dict[str, str]) -> str:
    with pytest.raises(ConfigError, match=match) as info:
        MonitoringConfig.from_env(env)
    return str(info.value)


def test_missing_token_file_names_the_variable(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    message = expect_error(
        "MONITORING_ADMIN_TOKEN_FILE", {"MONITORING_ADMIN_TOKEN_FILE": str(missing)}
    )
    assert "readable" in message and str(missing) in message


def test_token_file_that_is_not_utf8(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(b"\xff\xfe\xff")
    expect_error(
        "MONITORING_ADMIN_PASSWORD_FILE .*UTF-8",
        {"MONITORING_ADMIN_USERNAME": "ops", "MONITORING_ADMIN_PASSWORD_FILE": str(secret_file)},
    )


def test_token_file_that_is_a_directory_or_empty(tmp_path: Path) -> None:
    expect_error("MONITORING_METRICS_TOKEN_FILE", {"MONITORING_METRICS_TOKEN_FILE": str(tmp_path)})
    empty = tmp_path / "empty"
    empty.write_text("\n")
    expect_error(
        "MONITORING_ADMIN_TOKEN_FILE .* not an empty one",
        {"MONITORING_ADMIN_TOKEN_FILE": str(empty)},
    )


def test_token_and_a_different_token_file_conflict(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-the-file")
    message = expect_error(
        "MONITORING_ADMIN_TOKEN_FILE .*use one of the two",
        {"MONITORING_ADMIN_TOKEN": TOKEN, "MONITORING_ADMIN_TOKEN_FILE": str(secret_file)},
    )
    assert TOKEN not in message and "from-the-file" not in message
    # The same value twice is no conflict.
    secret_file.write_text(TOKEN)
    config = MonitoringConfig.from_env(
        {"MONITORING_ADMIN_TOKEN": TOKEN, "MONITORING_ADMIN_TOKEN_FILE": str(secret_file)}
    )
    assert config.gate.admin_token == Secret(TOKEN)


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
    gate = config.gate
    assert (gate.admin_token, gate.admin_password, gate.metrics_token) == (None, None, None)
    assert not config.gate.admin_configured


def test_authorize_must_be_callable() -> None:
    with pytest.raises(ConfigError, match="authorize"):
        GateSettings(authorize="admin")  # type: ignore[arg-type]


def test_a_configuration_is_equal_only_with_the_same_hook() -> None:
    # So the process-wide monitor refuses a second configuration with another hook, instead of
    # keeping the first one's hook without a word.
    def hook(scope: object) -> bool:
        return True

    assert MonitoringConfig(gate=GateSettings(authorize=hook)) == MonitoringConfig(
        gate=GateSettings(authorize=hook)
    )
    assert MonitoringConfig(gate=GateSettings(authorize=hook)) != MonitoringConfig()


def test_an_empty_secret_variable_beside_its_file_is_no_conflict(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(TOKEN)
    config = MonitoringConfig.from_env({"MONITORING_ADMIN_TOKEN": "",
                                        "MONITORING_ADMIN_TOKEN_FILE": str(secret_file)})
    assert config.gate.admin_token == Secret(TOKEN)


def _metrics_token_file(tmp_path: Path) -> dict[str, str]:
    # A byte-order mark and a final CRLF: still the same token as the variable.
    secret_file = tmp_path / "metrics-token"
    secret_file.write_text(f"\ufeff{TOKEN}\r\n", encoding="utf-8")
    return {"MONITORING_METRICS_TOKEN_FILE": str(secret_file)}


@pytest.mark.parametrize("source", ["variables", "file"])
def test_metrics_token_equal_to_the_admin_token_is_refused(source: str, tmp_path: Path) -> None:
    # Prometheus holds the metrics token; if it were the admin token it would open admin pages.
    metrics = (_metrics_token_file(tmp_path) if source == "file"
               else {"MONITORING_METRICS_TOKEN": TOKEN})
    message = expect_error("MONITORING_METRICS_TOKEN.*MONITORING_ADMIN_TOKEN",
                           {"MONITORING_ADMIN_TOKEN": TOKEN, **metrics})
    assert TOKEN not in message


def test_metrics_token_equal_to_the_admin_token_is_refused_from_code() -> None:
    match = "MONITORING_METRICS_TOKEN.*MONITORING_ADMIN_TOKEN"
    with pytest.raises(ConfigError, match=match) as info:
        GateSettings(admin_token=TOKEN, metrics_token=TOKEN)
    assert TOKEN not in str(info.value)
    # Different tokens are fine, and so is a metrics token alone.
    assert GateSettings(admin_token=TOKEN, metrics_token=TOKEN + "-metrics").metrics_token
    assert GateSettings(metrics_token=TOKEN).metrics_token == Secret(TOKEN)
