"""The SLOs' Prometheus rules: valid for promtool, the shipped example file is the generated one,
and `promtool test rules` on synthetic series shows the workbook's behaviour: a fast burn pages
within the detection time, a slow burn opens a ticket only, a short burst that stops resets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support import ROOT, require_binary

from asgi_monitor import MonitoringConfig
from asgi_monitor.config import MetricsSettings, SLOSettings
from asgi_monitor.exports.prometheus_rules import rules_yaml, slo_rules_yaml
from asgi_monitor.slo import SLI, SLO, Selector

DEPLOY = ROOT / "deploy"
EXAMPLE = MonitoringConfig(slo=SLOSettings(file=str(DEPLOY / "slo.example.json")))
TARGET = 'job="shop",instance="web-1:8000"'
# Every firing alert of one target, by the labels that tell the four burn-rate alerts apart.
FIRING = ('count by (slo, long_window, short_window, severity, service) '
          '(ALERTS{alertstate="firing"})')


def _firing(slo: str, *pairs: tuple[str, str, str]) -> str:
    """exp_samples lines for the alerts (long window, short window, page/ticket) of ``slo``."""
    lines = []
    for long_window, short_window, severity in pairs:
        lines.append(
            f"          - labels: '{{slo=\"{slo}\",long_window=\"{long_window}\","
            f"short_window=\"{short_window}\",severity=\"{severity}\","
            f"service=\"shop\"}}'\n            value: 1")
    return "\n".join(lines) if lines else "          []"


PAGE_FAST = ("1h", "5m", "page")
PAGE_SLOW = ("6h", "30m", "page")
TICKET_FAST = ("1d", "2h", "ticket")
TICKET_SLOW = ("3d", "6h", "ticket")


def _run(tmp_path: Path, rules: str, series: str, checks: list[tuple[str, str]]) -> None:
    promtool = require_binary("promtool")
    tests = "\n".join(f"      - expr: '{FIRING}'\n        eval_time: {at}\n        exp_samples:\n"
                      f"{samples}" for at, samples in checks)
    (tmp_path / "rules.yml").write_text(rules)
    (tmp_path / "test.yml").write_text(
        "rule_files: [rules.yml]\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n"
        f"    input_series:\n{series}\n    promql_expr_test:\n{tests}\n")
    result = subprocess.run([promtool, "test", "rules", "test.yml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def _series(good: str, bad: str) -> str:
    return (f"      - series: 'http_requests_total{{status=\"200\",{TARGET}}}'\n"
            f"        values: '{good}'\n"
            f"      - series: 'http_requests_total{{status=\"500\",{TARGET}}}'\n"
            f"        values: '{bad}'")


def test_deploy_slo_rules_file_is_the_generated_one() -> None:
    assert (DEPLOY / "asgi_monitor.slo.rules.yml").read_text() == slo_rules_yaml(EXAMPLE)


def test_cli_includes_the_slos_and_promtool_accepts_them(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    out = subprocess.run([sys.executable, "-m", "asgi_monitor", "rules"], capture_output=True,
                         text=True, check=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
                              "MONITORING_SLO_FILE": str(DEPLOY / "slo.example.json")}).stdout
    assert "asgi_monitor_slo_availability" in out and "slo:sli_error:ratio_rate3d" in out
    (tmp_path / "rules.yml").write_text(out)
    result = subprocess.run([promtool, "check", "rules", "rules.yml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    # 7 default rules, and per SLO 7 recording rules and 4 alerts.
    assert "SUCCESS: 29 rules found" in result.stdout


def test_no_slo_no_slo_rules() -> None:
    assert "slo" not in rules_yaml(MonitoringConfig())


def test_selector_and_namespace_are_in_the_queries() -> None:
    slo = SLO("items", SLI("latency", threshold_seconds=1.0),
              selector=Selector(routes=("/items/{item_id}", "/a.b"), methods=("GET",)))
    text = slo_rules_yaml(MonitoringConfig(metrics=MetricsSettings(namespace="shop"),
                                           slo=SLOSettings(objectives=(slo,))))
    assert 'shop_http_request_duration_seconds_bucket{le=\\"1.0\\",' in text
    assert 'route=~\\"/items/\\\\\\\\{item_id\\\\\\\\}|/a\\\\\\\\.b\\",method=~\\"GET\\"' in text


def test_a_fast_burn_pages_within_the_detection_time(tmp_path: Path) -> None:
    # Every request fails from minute 60 (a burn rate of 1000 for 99.9 %): the workbook's
    # 14.4x-over-1h alert detects it in 0.0144 h (52 s); one more scrape interval here.
    _run(tmp_path, slo_rules_yaml(EXAMPLE), _series("0+100x60 6000x60", "0x60 100+100x60"), [
        ("59m", _firing("availability")),
        ("62m", _firing("availability", PAGE_FAST, PAGE_SLOW, TICKET_FAST, TICKET_SLOW)),
    ])


def test_a_slow_burn_opens_a_ticket_but_pages_nobody(tmp_path: Path) -> None:
    # 0.5 % fail: a burn rate of 5, above the tickets' 3 and 1, below the pages' 14.4 and 6.
    _run(tmp_path, slo_rules_yaml(EXAMPLE), _series("0+995x240", "0+5x240"), [
        ("3h", _firing("availability", TICKET_FAST, TICKET_SLOW)),
    ])


def test_a_short_burst_that_stops_resets_the_pages(tmp_path: Path) -> None:
    # Half the requests fail for 3 minutes, then none: the pages fire, and stop once their
    # short window (5m, then 30m) no longer holds the burst; the budget it spent keeps a ticket.
    _run(tmp_path, slo_rules_yaml(EXAMPLE), _series("0+100x120", "0x60 50+50x2 150x60"), [
        ("63m", _firing("availability", PAGE_FAST, PAGE_SLOW, TICKET_FAST, TICKET_SLOW)),
        ("75m", _firing("availability", PAGE_SLOW, TICKET_FAST, TICKET_SLOW)),
        ("100m", _firing("availability", TICKET_FAST, TICKET_SLOW)),
    ])


def test_a_latency_slo_burns_on_slow_requests(tmp_path: Path) -> None:
    # The example's latency SLO (99 % within 0.5 s): from minute 30 every request is slower, a
    # burn rate of 100; 14.4x over 1h is 14.4 % of the requests, reached within minutes.
    series = (f"      - series: 'http_request_duration_seconds_bucket{{le=\"0.5\",{TARGET}}}'\n"
              "        values: '0+100x30 3000x30'\n"
              f"      - series: 'http_request_duration_seconds_count{{{TARGET}}}'\n"
              "        values: '0+100x60'")
    _run(tmp_path, slo_rules_yaml(EXAMPLE), series, [
        ("29m", _firing("latency")),
        ("40m", _firing("latency", PAGE_FAST, PAGE_SLOW, TICKET_FAST, TICKET_SLOW)),
    ])


def test_factors_follow_the_period(tmp_path: Path) -> None:
    # 0.2 % fail for 99.9 %: a burn rate of 2. Over 30 days that is a slow leak (above the 3d
    # ticket's 1 only); over 7 days it spends the budget 4x faster, and the factors, scaled to
    # the same shares of the budget (3.36 over 1h, 1.4 over 6h, 0.7 over 1d, 0.2333 over 3d),
    # page on it over 6h/30m and open both tickets. 28 days keeps its 3d ticket at 0.9333;
    # 1 day has only the 1d/2h ticket, at 0.1.
    monthly, weekly = SLO("monthly"), SLO("weekly", period_days=7)
    four_weeks, daily = SLO("four-weeks", period_days=28), SLO("daily", period_days=1)
    rules = slo_rules_yaml(MonitoringConfig(slo=SLOSettings(
        objectives=(monthly, weekly, four_weeks, daily))))
    for threshold in ("3.36", "1.4", "0.7", "0.2333", "0.9333", "0.1"):
        assert f"({threshold} * 0.001)" in rules, threshold
    assert "burns its error budget at over 0.9333x (10% of it in 3d)" in rules
    for slo, alerts in (("monthly", 4), ("weekly", 4), ("four-weeks", 4), ("daily", 1)):
        assert rules.count(f'slo: "{slo}"\n          service') == alerts, slo
    _run(tmp_path, rules, _series("0+998x480", "0+2x480"), [
        ("8h", "\n".join([_firing("monthly", TICKET_SLOW),
                          _firing("weekly", PAGE_SLOW, TICKET_FAST, TICKET_SLOW),
                          _firing("four-weeks", TICKET_SLOW),
                          _firing("daily", TICKET_FAST)])),
    ])


def test_a_28_day_slo_burning_at_0_95_opens_the_slow_ticket_and_pages_nobody(
        tmp_path: Path) -> None:
    # 0.095 % fail for 99.9 %: a burn rate of 0.95, which spends 9.5 % of a 28-day budget in
    # 3 days, over the 3d/6h ticket's 0.9333 and under the 1d/2h ticket's 2.8. Over 30 days
    # the same burn stays under the ticket's 1.
    rules = slo_rules_yaml(MonitoringConfig(slo=SLOSettings(
        objectives=(SLO("four-weeks", period_days=28), SLO("monthly")))))
    _run(tmp_path, rules, _series("0+99905x480", "0+95x480"), [
        ("8h", _firing("four-weeks", TICKET_SLOW)),
    ])
