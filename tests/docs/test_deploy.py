"""deploy/ and the exports it ships: Prometheus rules valid for promtool and unit-tested with
synthetic series, configs accepted by promtool/amtool, and the shipped rules and Grafana
dashboard files exactly what the commands generate."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from support import ROOT, require_binary

from asgi_monitor import MonitoringConfig
from asgi_monitor.config import AlertSettings, MetricsSettings
from asgi_monitor.exports.grafana import grafana_dashboard
from asgi_monitor.exports.prometheus_rules import rules_yaml

DEPLOY = ROOT / "deploy"


def test_cli_prints_rules_that_promtool_accepts(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    out = subprocess.run([sys.executable, "-m", "asgi_monitor", "rules"], capture_output=True,
                         text=True, check=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "ALERT_ERROR_RATE_PERCENT": "7"}).stdout
    assert "> 7 and" in out
    path = tmp_path / "rules.yml"
    path.write_text(out)
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 7 rules found" in result.stdout


def test_deploy_rules_file_is_the_generated_one() -> None:
    assert (DEPLOY / "asgi_monitor.rules.yml").read_text() == rules_yaml(MonitoringConfig())


def test_namespace_is_applied() -> None:
    text = rules_yaml(MonitoringConfig(metrics=MetricsSettings(namespace="shop")))
    assert "shop_http_requests_total" in text
    assert " http_requests_total" not in text and "(http_requests_total" not in text


# Synthetic series of one target (job, instance), one minute apart. Requests grow 100/min; errors
# 10/min from minute 5 on (10% > 5%); a health check turns critical at minute 3; memory is 90%;
# 2 % disk free.
UNIT_TEST = """
rule_files:
  - rules.yml
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'http_requests_total{method="GET",route="/",status="200",$TARGET}'
        values: '0+100x15'
      - series: 'http_requests_total{method="GET",route="/",status="500",$TARGET}'
        values: '0x5 10+10x10'
      - series: 'http_request_duration_seconds_sum{method="GET",route="/",$TARGET}'
        values: '0+20x15'
      - series: 'http_request_duration_seconds_count{method="GET",route="/",$TARGET}'
        values: '0+100x15'
      - series: 'health_check_status{check="database",status="critical",$TARGET}'
        values: '0 0 0 1 1 1 1 1 1 1'
      - series: 'system_memory_usage_percent{$TARGET}'
        values: '90x10'
      - series: 'system_disk_usage_percent{path="/",$TARGET}'
        values: '98x10'
      - series: 'user_logins_total{result="failure",$TARGET}'
        values: '0+1x15'
      - series: 'db_queries_total{operation="SELECT",status="success",$TARGET}'
        values: '0+100x15'
      - series: 'db_queries_total{operation="SELECT",status="error",$TARGET}'
        values: '0x15'
    alert_rule_test:
      - eval_time: 4m
        alertname: HighErrorRate
        exp_alerts: []
      - eval_time: 10m
        alertname: HighErrorRate
        exp_alerts:
          - exp_labels: {severity: critical, service: shop, job: shop, instance: "web-1:8000"}
            exp_annotations:
              summary: HTTP error rate above 5%
              description: 9.091% of requests failed with 5xx over 5 min.
      - eval_time: 10m
        alertname: SlowResponses
        exp_alerts: []
      - eval_time: 2m
        alertname: HealthCheckFailing
        exp_alerts: []
      - eval_time: 5m
        alertname: HealthCheckFailing
        exp_alerts:
          - exp_labels: {severity: critical, check: database, status: critical, service: shop,
                       job: shop, instance: "web-1:8000"}
            exp_annotations:
              summary: Health check database is critical
              description: The database health check has been critical for a minute.
      - eval_time: 5m
        alertname: HighMemoryUsage
        exp_alerts:
          - exp_labels: {severity: warning, service: shop, job: shop, instance: "web-1:8000"}
            exp_annotations:
              summary: Memory use above 85%
              description: 90% of system memory is in use.
      - eval_time: 5m
        alertname: LowDiskSpace
        exp_alerts:
          - exp_labels: {severity: warning, path: /, service: shop, job: shop,
                       instance: "web-1:8000"}
            exp_annotations:
              summary: Less than 15% disk free
              description: Only 2% free on /.
      - eval_time: 10m
        alertname: FailedLoginSpike
        exp_alerts: []
      - eval_time: 10m
        alertname: DatabaseErrors
        exp_alerts: []
""".replace("$TARGET", 'job="shop",instance="web-1:8000"')


def test_promtool_unit_tests_fire_and_stay_quiet(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    (tmp_path / "rules.yml").write_text(rules_yaml(MonitoringConfig()))
    (tmp_path / "test.yml").write_text(UNIT_TEST)
    result = subprocess.run([promtool, "test", "rules", "test.yml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_each_target_alerts_on_its_own(tmp_path: Path) -> None:
    # One Prometheus scrapes two services: the failing one alerts under its own job and
    # instance, the healthy one does not, and neither hides the other in a sum.
    promtool = require_binary("promtool")
    (tmp_path / "rules.yml").write_text(rules_yaml(MonitoringConfig()))
    (tmp_path / "test.yml").write_text("""
rule_files: [rules.yml]
tests:
  - interval: 1m
    input_series:
      - series: 'http_requests_total{status="200",job="shop",instance="a:8000"}'
        values: '0+1000x10'
      - series: 'http_requests_total{status="200",job="billing",instance="b:8000"}'
        values: '0+90x10'
      - series: 'http_requests_total{status="500",job="billing",instance="b:8000"}'
        values: '0+10x10'
    alert_rule_test:
      - eval_time: 10m
        alertname: HighErrorRate
        exp_alerts:
          - exp_labels: {severity: critical, service: billing, job: billing, instance: "b:8000"}
            exp_annotations:
              summary: HTTP error rate above 5%
              description: 10% of requests failed with 5xx over 5 min.
""")
    result = subprocess.run([promtool, "test", "rules", "test.yml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_login_spike_fires_above_threshold(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    (tmp_path / "rules.yml").write_text(
        rules_yaml(MonitoringConfig(alerts=AlertSettings(login_failures=10))))
    (tmp_path / "test.yml").write_text("""
rule_files: [rules.yml]
tests:
  - interval: 1m
    input_series:
      - series: 'user_logins_total{result="failure"}'
        values: '0+5x10'
    alert_rule_test:
      - eval_time: 6m
        alertname: FailedLoginSpike
        exp_alerts:
          - exp_labels: {severity: warning}
            exp_annotations:
              summary: Spike of failed logins
              description: 25 failed logins over 5 min.
""")
    result = subprocess.run([promtool, "test", "rules", "test.yml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_deploy_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    for name in ("prometheus.yml", "asgi_monitor.rules.yml"):
        shutil.copy(DEPLOY / name, tmp_path / name)
    (tmp_path / "metrics_token").write_text("a-token\n")  # the secret compose mounts here
    result = subprocess.run([promtool, "check", "config", "prometheus.yml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_provisioned_grafana_dashboard_is_the_generated_one() -> None:
    out = subprocess.run([sys.executable, "-m", "asgi_monitor", "grafana"], capture_output=True,
                         text=True, check=True, timeout=60, env={"PATH": "/usr/bin:/bin"}).stdout
    shipped = DEPLOY / "grafana" / "dashboards" / "asgi_monitor.json"
    assert shipped.read_text() == out
    assert json.loads(out) == grafana_dashboard("")


def test_deploy_yaml_files_are_well_formed() -> None:
    paths = sorted(DEPLOY.rglob("*.yml"))
    assert len(paths) >= 5
    for path in paths:
        assert isinstance(yaml.safe_load(path.read_text()), dict), path


def test_deploy_alertmanager_config_passes_amtool() -> None:
    amtool = require_binary("amtool")
    result = subprocess.run([amtool, "check-config", str(DEPLOY / "alertmanager.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_otel_naming_rules_pass_promtool(tmp_path: Path) -> None:
    text = rules_yaml(MonitoringConfig(metrics=MetricsSettings(metric_names="otel")))
    # Requests are the duration histogram's count, by status, as the conventions count them.
    assert ('http_server_request_duration_seconds_count{http_response_status_code=~\\"5..\\"}'
            in text)
    assert "http_server_requests" not in text
    assert "http_server_request_duration_seconds_sum" in text
    assert "http_requests_total" not in text and "http_request_duration" not in text
    assert rules_yaml(MonitoringConfig(metrics=MetricsSettings(metric_names="both"))) == (
        rules_yaml(MonitoringConfig()))
    promtool = require_binary("promtool")
    path = tmp_path / "rules.yml"
    path.write_text(text)
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
