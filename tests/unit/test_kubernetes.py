"""The Kubernetes manifests: valid for the Prometheus Operator's and Kubernetes' own schemas
(vendored in tests/schemas/), following the configuration, and the rules inside the
PrometheusRule accepted and unit-tested by a real promtool."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator
from support import ROOT, require_binary

from asgi_monitor import MonitoringConfig
from asgi_monitor.config import GateSettings, KubernetesSettings, PathSettings, ServiceSettings
from asgi_monitor.config.metrics import MetricsSettings
from asgi_monitor.config.slo import SLOSettings
from asgi_monitor.errors import ConfigError
from asgi_monitor.exports.grafana import deploy_query, grafana_dashboard
from asgi_monitor.exports.kubernetes import (
    configmap_dashboard,
    manifests,
    monitor,
    probes,
    prometheus_rule,
    render,
)
from asgi_monitor.exports.prometheus_rules import prometheus_rules

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
TARGET = 'job="shop",instance="web-1:8000"'


# -- the schemas, read strictly as the API server does --------------------------------------------
def _strict(schema: Any) -> Any:
    """Unknown fields rejected (the server prunes them, `kubectl --validate=strict` refuses
    them), except where the schema says it keeps them."""
    if isinstance(schema, dict):
        out = {key: _strict(value) for key, value in schema.items()}
        if ("properties" in out and "additionalProperties" not in out
                and not out.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


@cache
def _kubernetes_definitions() -> dict[str, Any]:
    definitions = json.loads((SCHEMAS / "kubernetes" / "definitions.json").read_text())
    found: dict[str, Any] = _strict(definitions["definitions"])
    # OpenAPI v2 writes IntOrString as a string of format int-or-string: either is accepted.
    found["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] = {
        "anyOf": [{"type": "integer"}, {"type": "string"}]}
    return found


def kubernetes_validator(definition: str) -> Draft7Validator:
    return Draft7Validator({"$ref": f"#/definitions/{definition}",
                            "definitions": _kubernetes_definitions()})


@cache
def _operator_schema(plural: str) -> dict[str, Any]:
    crd = yaml.safe_load((SCHEMAS / "prometheus-operator" /
                          f"monitoring.coreos.com_{plural}.yaml").read_text())
    [v1] = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema: dict[str, Any] = _strict(v1["schema"]["openAPIV3Schema"])
    return schema


KINDS = {"ServiceMonitor": "servicemonitors", "PodMonitor": "podmonitors",
         "PrometheusRule": "prometheusrules"}
CORE = {"ConfigMap": "io.k8s.api.core.v1.ConfigMap", "Service": "io.k8s.api.core.v1.Service",
        "Secret": "io.k8s.api.core.v1.Secret", "Deployment": "io.k8s.api.apps.v1.Deployment"}


def errors(document: dict[str, Any]) -> list[str]:
    """Every way ``document`` breaks its kind's schema (and metadata Kubernetes' ObjectMeta)."""
    kind = document.get("kind")
    if kind in KINDS:
        validator = Draft7Validator(_operator_schema(KINDS[kind]))
        found = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]
        meta = kubernetes_validator("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
        found += [f"metadata {list(e.absolute_path)}: {e.message}"
                  for e in meta.iter_errors(document.get("metadata", {}))]
        assert document["apiVersion"] == "monitoring.coreos.com/v1"
        return found
    validator = kubernetes_validator(CORE[str(kind)])
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


def test_the_strict_schemas_refuse_what_the_server_would() -> None:
    # The check itself: a misspelt field, a wrong type and a missing required field are found.
    good = monitor(MonitoringConfig())
    assert errors(good) == []
    typo = copy.deepcopy(good)
    typo["spec"]["endpoints"][0]["paht"] = "/metrics"
    assert any("paht" in e for e in errors(typo))
    wrong = copy.deepcopy(good)
    wrong["spec"]["endpoints"][0]["scheme"] = "ftp"
    assert errors(wrong)
    missing = copy.deepcopy(good)
    del missing["spec"]["selector"]
    assert any("selector" in e for e in errors(missing))
    container = {"name": "app", "image": "shop:1", **probes(MonitoringConfig())}
    container["livenessProbe"]["httpGet"]["pathh"] = "/livez"
    assert list(kubernetes_validator("io.k8s.api.core.v1.Container").iter_errors(container))


# -- the objects ----------------------------------------------------------------------------------
SLO_CONFIG = dict(slo=SLOSettings(file=str(ROOT / "deploy" / "slo.example.json")))


@pytest.mark.parametrize("config", [
    MonitoringConfig(),
    MonitoringConfig(metrics=MetricsSettings(namespace="shop", metric_names="otel"), **SLO_CONFIG),
    MonitoringConfig(service=ServiceSettings(service_name="Shop API"),
                     gate=GateSettings(metrics_token="scrape-token-0123456789"),
                     kubernetes=KubernetesSettings(namespace="shop", scheme="https",
                                                   port_name="metrics", labels=())),
], ids=["defaults", "otel-slos", "token-https"])
@pytest.mark.parametrize("pod", [False, True], ids=["service", "pod"])
def test_every_object_is_valid_for_its_schema(config: MonitoringConfig, pod: bool) -> None:
    documents = list(yaml.safe_load_all(render(manifests(config, pod=pod), header="x")))
    assert [d["kind"] for d in documents] == [
        "PodMonitor" if pod else "ServiceMonitor", "PrometheusRule", "ConfigMap"]
    for document in documents:
        assert errors(document) == [], document["kind"]
    # What was written is what was meant: YAML read back equals the data.
    assert documents == manifests(config, pod=pod)


def test_the_monitor_follows_the_configuration() -> None:
    config = MonitoringConfig(
        service=ServiceSettings(service_name="Shop API"),
        paths=PathSettings(metrics="/internal/metrics"),
        gate=GateSettings(metrics_token="scrape-token-0123456789"),
        kubernetes=KubernetesSettings(namespace="shop", scheme="https", port_name="metrics",
                                      selector=(("app", "shop"),), token_secret_key="value",
                                      scrape_interval_seconds=15))
    service = monitor(config)
    assert service["metadata"] == {
        "name": "shop-api", "namespace": "shop",
        "labels": {"app.kubernetes.io/name": "shop-api", "release": "kube-prometheus-stack"}}
    assert service["spec"]["selector"] == {"matchLabels": {"app": "shop"}}
    assert service["spec"]["endpoints"] == [{
        "port": "metrics", "path": "/internal/metrics", "scheme": "https", "interval": "15s",
        "authorization": {"type": "Bearer",
                          "credentials": {"name": "shop-api-metrics-token", "key": "value"}}}]
    pods = monitor(config, pod=True)
    assert pods["kind"] == "PodMonitor"
    assert pods["spec"]["podMetricsEndpoints"] == service["spec"]["endpoints"]
    # The token itself is never written; without one, nothing is sent.
    assert "scrape-token" not in render(manifests(config))
    plain = monitor(MonitoringConfig())["spec"]["endpoints"][0]
    assert "authorization" not in plain and plain["path"] == "/api/metrics"
    named = monitor(MonitoringConfig(kubernetes=KubernetesSettings(token_secret="prom-token")))
    assert named["spec"]["endpoints"][0]["authorization"]["credentials"] == {
        "name": "prom-token", "key": "token"}


def test_the_rule_holds_the_rules_file_and_the_dashboard_is_for_the_sidecar() -> None:
    config = MonitoringConfig(**SLO_CONFIG)
    rule = prometheus_rule(config)
    assert rule["spec"] == prometheus_rules(config)
    assert {g["name"] for g in rule["spec"]["groups"]} >= {
        "asgi_monitor", "asgi_monitor_slo_availability", "asgi_monitor_slo_latency"}
    dashboard = configmap_dashboard(config)
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    [(key, text)] = dashboard["data"].items()
    assert key.endswith(".json")
    assert json.loads(text) == grafana_dashboard(slos=config.slo.all())


def test_probe_stanzas_are_a_valid_container_and_follow_the_paths() -> None:
    validator = kubernetes_validator("io.k8s.api.core.v1.Container")
    stanzas = probes(MonitoringConfig(kubernetes=KubernetesSettings(scheme="https",
                                                                    container_port=8080)))
    container = {"name": "app", "image": "shop:1.4.2", **stanzas}
    assert list(validator.iter_errors(container)) == []
    assert stanzas["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert {name: stanzas[name]["httpGet"] for name in
            ("startupProbe", "livenessProbe", "readinessProbe")} == {
        "startupProbe": {"path": "/startupz", "port": "http", "scheme": "HTTPS"},
        "livenessProbe": {"path": "/livez", "port": "http", "scheme": "HTTPS"},
        "readinessProbe": {"path": "/readyz", "port": "http", "scheme": "HTTPS"}}
    # Kubernetes: liveness and startup probes must have successThreshold 1 (the default).
    assert all("successThreshold" not in stanzas[name] for name in ("livenessProbe",
                                                                     "startupProbe"))
    # Probes switched off: the health API's own probes, and no startup probe.
    off = probes(MonitoringConfig(paths=PathSettings(livez="", readyz="", startupz="",
                                                     health="/ops/health")))
    assert "startupProbe" not in off
    assert off["livenessProbe"]["httpGet"]["path"] == "/ops/health/live"
    assert off["readinessProbe"]["httpGet"]["path"] == "/ops/health/ready"
    assert list(validator.iter_errors({"name": "app", "image": "x", **off})) == []


@pytest.mark.parametrize(("variable", "value"), [
    ("MONITORING_K8S_NAME", "Shop_API"), ("MONITORING_K8S_PORT_NAME", "a-very-long-port-name"),
    ("MONITORING_K8S_SCHEME", "ftp"), ("MONITORING_K8S_LABELS", "release=not ok"),
    ("MONITORING_K8S_CONTAINER_PORT", "70000"),
])
def test_bad_kubernetes_settings_name_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        MonitoringConfig.from_env({variable: value})


# -- the command line -----------------------------------------------------------------------------
def _cli(*args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run([sys.executable, "-m", "asgi_monitor", *args], capture_output=True,
                          text=True, check=True, timeout=60, cwd=ROOT,
                          env={"PATH": "/usr/bin:/bin", **(env or {})}).stdout


def test_cli_prints_what_the_functions_build() -> None:
    env = {"MONITORING_SERVICE_NAME": "shop", "MONITORING_K8S_PORT_NAME": "web"}
    config = MonitoringConfig.from_env(env)
    [rule] = yaml.safe_load_all(_cli("rules", "--format", "prometheusrule", env=env))
    assert rule == prometheus_rule(config)
    printed = list(yaml.safe_load_all(_cli("kubernetes", "--pod", "--namespace", "prod",
                                           env=env)))
    assert printed[0]["kind"] == "PodMonitor"
    assert printed[0]["metadata"]["namespace"] == "prod"
    assert printed[0]["spec"]["podMetricsEndpoints"][0]["port"] == "web"
    assert [errors(d) for d in printed] == [[], [], []]
    [stanzas] = yaml.safe_load_all(_cli("kubernetes", "--probes", env=env))
    assert stanzas == probes(config)
    # The plain rules file is unchanged by the new format.
    assert _cli("rules").startswith("# Generated by `asgi-monitor rules`")


# -- the rules inside, through promtool -----------------------------------------------------------
def _rule_file(tmp_path: Path, config: MonitoringConfig) -> Path:
    printed = render([prometheus_rule(config)])
    [rule] = yaml.safe_load_all(printed)
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    return path


def test_the_rules_inside_pass_promtool_check(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    path = _rule_file(tmp_path, MonitoringConfig(**SLO_CONFIG))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    found = re.search(r"SUCCESS: (\d+) rules found", result.stdout)
    assert found and int(found[1]) == sum(
        len(g["rules"]) for g in prometheus_rules(MonitoringConfig(**SLO_CONFIG))["groups"])


PAGES = ('ALERTS{alertname="SLOErrorBudgetBurn",slo="availability",severity="page",'
         'alertstate="firing"}')


def test_the_rules_inside_fire_under_promtool_test(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    _rule_file(tmp_path, MonitoringConfig(**SLO_CONFIG))
    # 10% of requests fail from the start: the error-rate alert fires for this target, and the
    # availability SLO (99.9%) burns its budget 100 times too fast, which pages.
    (tmp_path / "test.yml").write_text(f"""
rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'http_requests_total{{status="200",{TARGET}}}'
        values: '0+90x70'
      - series: 'http_requests_total{{status="500",{TARGET}}}'
        values: '0+10x70'
    alert_rule_test:
      - eval_time: 10m
        alertname: HighErrorRate
        exp_alerts:
          - exp_labels: {{severity: critical, service: shop, job: shop, instance: "web-1:8000"}}
            exp_annotations:
              summary: HTTP error rate above 5%
              description: 10% of requests failed with 5xx over 5 min.
    promql_expr_test:
      - expr: 'count by (long_window) ({PAGES})'
        eval_time: 65m
        exp_samples:
          - labels: '{{long_window="1h"}}'
            value: 1
          - labels: '{{long_window="6h"}}'
            value: 1
""")
    result = subprocess.run([promtool, "test", "rules", "test.yml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_dashboards_deploy_annotation_marks_a_new_version(tmp_path: Path) -> None:
    # build_info of one target: version 1.0 until minute 10, then 1.1 (a new series). The
    # annotation's query returns the new build for the lookback after it appears, then nothing.
    promtool = require_binary("promtool")
    expr = deploy_query("", 'job="shop"')
    labels = 'service="shop",job="shop",instance="web-1:8000",release="abc"'
    (tmp_path / "rules.yml").write_text("groups: []\n")
    (tmp_path / "test.yml").write_text(f"""
rule_files: [rules.yml]
tests:
  - interval: 1m
    input_series:
      - series: 'build_info{{version="1.0",{labels}}}'
        values: '1x9 _x20'
      - series: 'build_info{{version="1.1",{labels}}}'
        values: '_x10 1x20'
    promql_expr_test:
      - expr: '{expr}'
        eval_time: 5m
        exp_samples: []
      - expr: '{expr}'
        eval_time: 11m
        exp_samples:
          - labels: '{{job="shop",service="shop",version="1.1",release="abc"}}'
            value: 1
      - expr: '{expr}'
        eval_time: 15m
        exp_samples: []
""")
    result = subprocess.run([promtool, "test", "rules", "test.yml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


# -- docs/deployment.md's Kubernetes section, applied as it is ----------------------------------
def _kubernetes_section() -> str:
    text = (ROOT / "docs" / "deployment.md").read_text()
    return text.split("\n## Kubernetes\n", 1)[1].split("\n## ", 1)[0]


def test_the_documented_app_is_valid_and_matches_what_the_command_prints() -> None:
    section = _kubernetes_section()
    [block] = re.findall(r"```yaml\n(.*?)```", section, re.S)
    documents = {d["kind"]: d for d in yaml.safe_load_all(block)}
    assert sorted(documents) == ["Deployment", "Secret", "Service"]
    for document in documents.values():
        assert errors(document) == [], document["kind"]
    # The command the page runs, with its variable and flags.
    [command] = re.findall(r"```bash\n(.*?)```", section, re.S)
    env = dict(re.findall(r"(MONITORING_[A-Z0-9_]+)=(\S+)", command))
    name = re.search(r"--name (\S+)", command)
    namespace = re.search(r"--namespace (\S+)", command)
    assert name and namespace
    config = MonitoringConfig.from_env(env, kubernetes={"object_name": name[1],
                                                         "namespace": namespace[1]})
    service_monitor, rule, dashboard = manifests(config)
    deployment, service, secret = (documents[k] for k in ("Deployment", "Service", "Secret"))
    # The monitor finds the Service, its port, and the Secret the app reads its token from.
    assert service_monitor["metadata"]["namespace"] == service["metadata"]["namespace"]
    assert service_monitor["spec"]["selector"]["matchLabels"].items() <= \
        service["metadata"]["labels"].items()
    endpoint = service_monitor["spec"]["endpoints"][0]
    assert endpoint["port"] in [p["name"] for p in service["spec"]["ports"]]
    credentials = endpoint["authorization"]["credentials"]
    assert credentials["name"] == secret["metadata"]["name"]
    assert credentials["key"] in secret["stringData"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    token = next(e for e in container["env"] if e["name"] == "MONITORING_METRICS_TOKEN")
    assert token["valueFrom"]["secretKeyRef"] == {"name": credentials["name"],
                                                   "key": credentials["key"]}
    # The probes are what `asgi-monitor kubernetes --probes` prints.
    assert {k: container[k] for k in probes(config)} == probes(config)
    assert service["spec"]["selector"].items() <= \
        deployment["spec"]["template"]["metadata"]["labels"].items()
    for document in (service_monitor, rule, dashboard):
        assert errors(document) == []
