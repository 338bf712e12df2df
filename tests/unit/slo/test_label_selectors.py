"""SLO selectors that filter on request labels: in the Prometheus rules (checked by promtool on
synthetic series), in process over the monitor's own samples, and a selector label that names
no configured request label is refused."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from support import require_binary

from asgi_monitor import MonitoringConfig, build_monitor
from asgi_monitor.config import MetricsSettings, SLOSettings
from asgi_monitor.errors import ConfigError
from asgi_monitor.exports.prometheus_rules import slo_rules_yaml
from asgi_monitor.slo import SLI, SLO, Selector
from asgi_monitor.slo.evaluation import SLOTracker
from asgi_monitor.slo.promql import error_ratio

ACME = SLO("acme", selector=Selector(routes=("/api",), labels={"tenant": "acme"}))
ACME_FAST = SLO("acme-fast", SLI("latency", threshold_seconds=0.25),
                selector=Selector(labels={"tenant": "acme"}))


def config(*slos: SLO) -> MonitoringConfig:
    return MonitoringConfig(metrics=MetricsSettings(header_labels=(("tenant", "X-Tenant"),)),
                            slo=SLOSettings(objectives=slos))


@pytest.mark.parametrize("naming", ["classic", "otel"])
def test_the_promql_selects_the_label_value(naming: str) -> None:
    assert 'tenant="acme"' in error_ratio(ACME, "5m", naming=naming)
    assert 'tenant="acme"' in error_ratio(ACME_FAST, "5m", naming=naming)


def test_promtool_computes_the_selected_tenants_ratio_only(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    target = 'job="shop",instance="web-1:8000",route="/api",method="GET"'
    series = "\n".join(
        f"      - series: 'http_requests_total{{status=\"{status}\",tenant=\"{tenant}\","
        f"{target}}}'\n        values: '0+{per_minute}x20'"
        for status, tenant, per_minute in (("200", "acme", 60), ("500", "acme", 60),
                                           ("200", "globex", 6000)))
    (tmp_path / "rules.yml").write_text(slo_rules_yaml(config(ACME)))
    (tmp_path / "test.yml").write_text(
        "rule_files: [rules.yml]\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n"
        f"    input_series:\n{series}\n    promql_expr_test:\n"
        "      - expr: 'slo:sli_error:ratio_rate5m'\n        eval_time: 15m\n"
        "        exp_samples:\n"
        "          - labels: 'slo:sli_error:ratio_rate5m{slo=\"acme\",job=\"shop\","
        "instance=\"web-1:8000\"}'\n            value: 0.5\n")
    check = subprocess.run([promtool, "check", "rules", "rules.yml"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    result = subprocess.run([promtool, "test", "rules", "test.yml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_in_process_the_selector_counts_only_the_label_value() -> None:
    built = build_monitor(config(ACME, ACME_FAST), CollectorRegistry())
    store = built.requests
    tracker = SLOTracker((ACME, ACME_FAST), 3600)

    def record(tenant: str, status: int, count: int, seconds: float = 0.01) -> None:
        for _ in range(count):
            store.record_labelled("GET", "/api", status, "http", (tenant,), seconds, 0.001, 0,
                                  1, None)

    record("acme", 200, 1)
    record("globex", 200, 1)
    first = built.sampler.take()
    tracker.observe(first)
    record("acme", 200, 3)
    record("acme", 500, 1)
    record("acme", 200, 4, seconds=1.0)
    record("globex", 200, 100, seconds=1.0)
    record("globex", 500, 100)
    later = built.sampler.take()
    later.monotonic = (first.monotonic or first.time) + 60
    tracker.observe(later)
    assert tracker.error_ratio("acme", 300) == pytest.approx(1 / 8)
    assert tracker.error_ratio("acme-fast", 300) == pytest.approx(4 / 8)


def test_a_selector_label_must_be_a_configured_request_label() -> None:
    with pytest.raises(ConfigError, match=r"selector.labels.*'tenant'.*MONITORING_HEADER_LABELS"):
        MonitoringConfig(slo=SLOSettings(objectives=(ACME,)))
    with pytest.raises(ConfigError, match="selector.labels"):
        Selector(labels={"ten-ant": "acme"})


def test_a_slo_file_with_a_label_selector(tmp_path: Path) -> None:
    path = tmp_path / "slos.json"
    path.write_text(json.dumps({"slos": [{"name": "acme", "selector": {
        "routes": ["/api"], "labels": {"tenant": "acme"}}}]}))
    loaded = MonitoringConfig(metrics=MetricsSettings(header_labels=(("tenant", "X-Tenant"),)),
                              slo=SLOSettings(file=str(path)))
    [slo] = loaded.slo.all()
    assert slo.selector == ACME.selector
    path.write_text(json.dumps({"slos": [{"name": "acme", "selector": {"labels": ["x"]}}]}))
    with pytest.raises(ConfigError, match="selector.labels"):
        MonitoringConfig(slo=SLOSettings(file=str(path))).slo.all()
