"""The command line: one clear line and a non-zero status on errors, never a traceback."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from asgi_monitor.__main__ import COMMANDS, _parser
from asgi_monitor.config import variables


def run(*args: str, env: dict[str, str] | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("MONITORING_", "SMTP_", "ALERT", "HEALTH_"))}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "asgi_monitor", *args], capture_output=True,
                          text=True, env=full_env, cwd=cwd, timeout=60)


def test_config_prints_effective_configuration_with_secrets_masked() -> None:
    result = run("config", env={"SMTP_PASSWORD": "do-not-print-me", "HEALTH_CHECK_INTERVAL": "7"})
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert config["health"]["interval_seconds"] == 7
    assert config["email"]["password"] == "**********"
    assert "do-not-print-me" not in result.stdout + result.stderr


def test_config_fails_on_invalid_values_with_one_line() -> None:
    result = run("config", env={"SMTP_PORT": "lots"})
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "SMTP_PORT" in result.stderr
    assert "Traceback" not in result.stderr


APP_MODULE = '''
from asgi_monitor import HealthSettings, MonitoringConfig, MonitoringMiddleware, get_health_checker
from asgi_monitor.health import HealthCheck, HealthStatus
import os

async def app(scope, receive, send):
    pass

config = MonitoringConfig(health=HealthSettings(default_checks=False))
monitored = MonitoringMiddleware(app, config)
get_health_checker().register_check(
    "payments", "Payment provider",
    lambda: HealthCheck("payments", HealthStatus[os.environ["PAYMENTS_STATUS"]], "as told"))
'''


@pytest.mark.parametrize(("status", "code"), [("HEALTHY", 0), ("WARNING", 0), ("CRITICAL", 1)])
def test_check_runs_the_apps_checks(tmp_path: Path, status: str, code: int) -> None:
    (tmp_path / "myapp.py").write_text(APP_MODULE)
    result = run("check", "myapp:monitored", env={"PAYMENTS_STATUS": status}, cwd=tmp_path)
    assert result.returncode == code, result.stderr
    assert "payments" in result.stdout
    assert f"overall: {status.lower()}" in result.stdout


def test_check_json_output(tmp_path: Path) -> None:
    (tmp_path / "myapp.py").write_text(APP_MODULE)
    result = run("check", "myapp:monitored", "--json", env={"PAYMENTS_STATUS": "HEALTHY"},
                 cwd=tmp_path)
    assert json.loads(result.stdout)["payments"]["status"] == "healthy"


@pytest.mark.parametrize(("target", "message"), [
    ("no_colon", "must look like"),
    ("missing_module:app", "cannot import 'missing_module'"),
    ("broken:app", "importing 'broken' failed: ZeroDivisionError"),
    ("myapp:nope", "has no attribute 'nope'"),
])
def test_check_errors_are_one_line(tmp_path: Path, target: str, message: str) -> None:
    (tmp_path / "myapp.py").write_text(APP_MODULE)
    (tmp_path / "broken.py").write_text("1 / 0\n")
    result = run("check", target, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0


def test_broken_pipe_is_not_a_traceback() -> None:
    shell = f"{sys.executable} -m asgi_monitor grafana | head -c 10 > /dev/null"
    result = subprocess.run(["bash", "-o", "pipefail", "-c", shell], capture_output=True,
                            text=True, timeout=60)
    assert "Traceback" not in result.stderr
    assert "BrokenPipe" not in result.stderr


def test_a_later_configuration_with_other_hooks_is_refused_not_ignored(tmp_path: Path) -> None:
    # A module calls get_metrics_collector() at import (the process-wide monitor is built from
    # the environment), the app is wrapped later with a resolver: rather than silently dropping
    # the resolver, or swapping it into a monitor built without it, wrapping fails and says how.
    script = '''
from asgi_monitor import (LifecycleError, MetricsSettings, MonitoringConfig, MonitoringMiddleware,
                          get_metrics_collector)
metrics = get_metrics_collector()
async def raw(scope, receive, send):
    pass
try:
    MonitoringMiddleware(raw, MonitoringConfig(metrics=MetricsSettings(
        route_resolver=lambda scope: "/users/{id}")))
except LifecycleError as exc:
    print(exc)
'''
    (tmp_path / "probe.py").write_text(script)
    result = subprocess.run([sys.executable, "probe.py"], capture_output=True, text=True,
                            cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "already exists with another configuration" in result.stdout
    assert "build_monitor" in result.stdout


def test_the_process_wide_monitor_uses_the_config_it_was_built_with(tmp_path: Path) -> None:
    # Wrapped first, with a resolver: get_metrics_collector() afterwards is that monitor's.
    script = """
import asyncio, httpx
from asgi_monitor import (MetricsSettings, MonitoringConfig, MonitoringMiddleware,
                          get_metrics_collector)
async def raw(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
app = MonitoringMiddleware(raw, MonitoringConfig(metrics=MetricsSettings(
    route_resolver=lambda scope: "/users/{id}")))
metrics = get_metrics_collector()
async def main():
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        await c.get("/users/7")
    print(metrics.registry.get_sample_value(
        "http_requests_total", {"method": "GET", "route": "/users/{id}", "status": "200"}))
asyncio.run(main())
"""
    (tmp_path / "probe.py").write_text(script)
    result = subprocess.run(
        [sys.executable, "probe.py"], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert float(result.stdout.strip().splitlines()[-1]) == 1.0


# -- help and version ----------------------------------------------------------------------------

def test_version_prints_the_installed_version() -> None:
    from asgi_monitor import __version__

    result = run("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"asgi-monitor {__version__}"


def _help(*command: str) -> str:
    result = run(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert not re.search(r"``|:(mod|class|func|attr):`|\.\. \w+::", result.stdout), \
        f"reST markup in asgi-monitor {' '.join(command)} --help:\n{result.stdout}"
    return result.stdout


def test_help_is_plain_text_with_every_command() -> None:
    text = _help()
    for name in COMMANDS:
        assert re.search(rf"^    {name} +\S", text, re.M), f"{name} is not listed with its help"
    assert "--version" in text
    assert "examples:\n  asgi-monitor " in text


def test_help_examples_explained_in_one_column() -> None:
    # An example with its explanation on the same line: every explanation starts in one column.
    examples = _help().split("\nexamples:\n", 1)[1]
    columns = {match.start(2) for line in examples.splitlines()
               if (match := re.match(r"  (asgi-monitor .*?\S) {2,}(\S)", line))}
    assert len(columns) == 1, f"explanations start at columns {sorted(columns)}:\n{examples}"


def test_documented_config_error_is_the_real_one() -> None:
    # docs/command-line.md shows this exact exchange: the line must be what a user sees.
    doc = (Path(__file__).parents[2] / "docs" / "command-line.md").read_text()
    shown = re.search(r"^\$ HEALTH_CHECK_INTERVAL=abc asgi-monitor config\n(.*)$", doc, re.M)
    assert shown is not None
    result = run("config", env={"HEALTH_CHECK_INTERVAL": "abc"})
    assert result.returncode == 2
    assert result.stderr.strip() == shown.group(1)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help_with_examples(name: str) -> None:
    text = _help(name)
    assert f"usage: asgi-monitor {name}" in text
    examples = text.split("\nexamples:\n", 1)
    assert len(examples) == 2, f"asgi-monitor {name} --help has no examples"
    assert f"asgi-monitor {name}" in examples[1]
    # A setting used in an example is a real one (the generated reference lists exactly those).
    for variable in re.findall(r"\b([A-Z][A-Z_]+)=", examples[1]):
        assert variable in variables(), f"{variable} in asgi-monitor {name} --help"


def test_every_command_help_is_written_by_the_parser() -> None:
    # The examples live beside the commands: a command added without them fails here.
    subparsers = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(subparsers.choices) == set(COMMANDS)


def test_demo_on_a_busy_port_is_one_line_before_the_banner() -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run("demo", "--port", str(port), "--no-traffic")
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""  # no banner, no password printed for a demo that never ran
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "--port" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["demo", "serve-metrics"])
@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_a_port_out_of_range_is_a_usage_error(command: str, port: str) -> None:
    extra = ["--no-traffic"] if command == "demo" else ["--dir", "/no/such/directory"]
    result = run(command, "--port", port, *extra)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"asgi-monitor {command}: error: argument --port: "
        f"must be a port number from 0 to 65535, got {port!r}")


def test_serve_metrics_on_a_busy_port_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run("serve-metrics", "--port", str(port), "--dir", str(tmp_path))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "--port" in result.stderr


CPU_APP = '''
from asgi_monitor import MonitoringConfig, MonitoringMiddleware
from asgi_monitor.config import SystemSettings

async def app(scope, receive, send):
    pass

config = MonitoringConfig(system=SystemSettings(cpu_warning_percent=40, cpu_critical_percent=60))
monitored = MonitoringMiddleware(app, config)
'''


def test_check_sees_a_saturated_cpu_on_its_first_reading(tmp_path: Path) -> None:
    (tmp_path / "cpuapp.py").write_text(CPU_APP)
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
               for _ in range(os.cpu_count() or 1)]
    try:
        result = run("check", "cpuapp:monitored", "--json", cwd=tmp_path)
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    cpu = json.loads(result.stdout)["cpu"]
    assert cpu["observed_value"] > 60, cpu
    assert cpu["status"] == "critical"
