"""Our default alert rules as a Prometheus rules file, for users who outgrow one process.

The same thresholds as the in-process rules (``ALERT_*`` settings), written in PromQL over the
metrics we export, so a real Prometheus + Alertmanager can take over alerting across many
workers and machines: ``asgi-monitor rules > asgi_monitor.rules.yml``, checked by
``promtool check rules`` and unit-tested with ``promtool test rules`` in our test suite.

Rates are summed ``by (job, instance)``, the target labels Prometheus adds to every scraped
series: one Prometheus scrapes several services and replicas, and each target alerts on its own
numbers, under its own labels (a sum over every target would hide one failing replica behind
healthy ones, and two services' alerts would be one).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..config.metrics import metric_prefix
from ..slo.promql import slo_rule_groups
from .metric_names import request_names

if TYPE_CHECKING:
    from ..config import MonitoringConfig

__all__ = ["prometheus_rules", "render_yaml", "rules_yaml", "slo_rules_yaml"]


def _duration(seconds: float) -> str:
    return f"{max(int(seconds), 1)}s"


def prometheus_rules(config: MonitoringConfig) -> dict[str, Any]:
    """The rules file as data (one group, ``asgi_monitor``)."""
    p = metric_prefix(config.metrics.namespace)
    w = _duration(config.alerts.window_seconds)
    minimum = config.alerts.min_requests
    by = "sum by (job, instance)"
    names = request_names(config.metrics.metric_names)
    requests = f"{by} (increase({p}{names.requests}[{w}]))"
    durations = f"{by} (increase({p}{names.duration}_count[{w}]))"
    queries = f"{by} (increase({p}db_queries_total[{w}]))"
    window_text = f"{config.alerts.window_seconds / 60:g} min"

    def rule(name: str, expr: str, severity: str, summary: str, description: str,
             for_: str = "0s") -> dict[str, Any]:
        # `service` as the in-process alerts carry it (deploy/alertmanager.yml groups by it).
        return {"alert": name, "expr": expr, "for": for_,
                "labels": {"severity": severity, "service": "{{ $labels.job }}"},
                "annotations": {"summary": summary, "description": description}}

    rules = [
        rule("HighErrorRate",
             f"({by} (increase({p}{names.requests}{{{names.status}=~\"5..\"}}[{w}])) "
             f"/ {requests}) "
             f"* 100 > {config.alerts.error_rate_percent:g} and {requests} >= {minimum}",
             "critical", "HTTP error rate above "
             f"{config.alerts.error_rate_percent:g}%",
             f"{{{{ $value | humanize }}}}% of requests failed with 5xx over {window_text}."),
        rule("SlowResponses",
             f"{by} (increase({p}{names.duration}_sum[{w}])) / {durations} "
             f"> {config.alerts.response_time_seconds:g} and {durations} >= {minimum}",
             "warning", f"Average response time above {config.alerts.response_time_seconds:g}s",
             f"Requests took {{{{ $value | humanizeDuration }}}} on average over {window_text}."),
        rule("HighMemoryUsage",
             f"{p}system_memory_usage_percent > {config.system.memory_warning_percent:g}",
             "warning", f"Memory use above {config.system.memory_warning_percent:g}%",
             "{{ $value | humanize }}% of system memory is in use."),
        rule("LowDiskSpace",
             f"100 - {p}system_disk_usage_percent < {config.system.disk_warning_free_percent:g}",
             "warning", f"Less than {config.system.disk_warning_free_percent:g}% disk free",
             "Only {{ $value | humanize }}% free on {{ $labels.path }}."),
        rule("HealthCheckFailing",
             f"{p}health_check_status{{status=\"critical\"}} == 1",
             "critical", "Health check {{ $labels.check }} is critical",
             "The {{ $labels.check }} health check has been critical for a minute.", "1m"),
        rule("DatabaseErrors",
             f"({by} (increase({p}db_queries_total{{status=\"error\"}}[{w}])) / {queries}) "
             "* 100 "
             f"> {config.alerts.db_error_rate_percent:g} and {queries} >= {minimum}",
             "critical", f"Database error rate above {config.alerts.db_error_rate_percent:g}%",
             f"{{{{ $value | humanize }}}}% of database queries failed over {window_text}."),
        rule("FailedLoginSpike",
             f"{by} (increase({p}user_logins_total{{result=\"failure\"}}[{w}])) "
             f"> {config.alerts.login_failures}",
             "warning", "Spike of failed logins",
             f"{{{{ $value | humanize }}}} failed logins over {window_text}."),
    ]
    return {"groups": [{"name": "asgi_monitor", "rules": rules}] + slo_rule_groups(config)}


def render_yaml(data: Any, indent: int = 0) -> str:
    """A small YAML emitter for the plain data above (no PyYAML dependency): strings are written
    as JSON strings, which are valid YAML double-quoted scalars."""
    pad = "  " * indent
    lines: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, (dict, list)) and value:
                lines.append(f"{pad}{key}:")
                lines.append(render_yaml(value, indent + 1))
            else:
                lines.append(f"{pad}{key}: {_scalar(value)}")
    elif isinstance(data, list):
        for item in data:
            if isinstance(item, dict) and item:
                nested = render_yaml(item, indent + 1).split("\n")
                lines.append(f"{pad}- {nested[0].lstrip()}")
                lines.extend(nested[1:])
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    return "\n".join(lines)


def _scalar(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return "{}" if isinstance(value, dict) else "[]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))


def rules_yaml(config: MonitoringConfig) -> str:
    header = ("# Generated by `asgi-monitor rules` from asgi_monitor's alert settings "
              "(ALERT_* variables).\n")
    return header + render_yaml(prometheus_rules(config)) + "\n"


def slo_rules_yaml(config: MonitoringConfig) -> str:
    """Only the SLO groups (deploy/asgi_monitor.slo.rules.yml, from deploy/slo.example.json)."""
    header = ("# Generated by `asgi-monitor rules` from asgi_monitor's SLOs "
              "(MONITORING_SLO_FILE): recording rules and burn-rate alerts.\n")
    return header + render_yaml({"groups": slo_rule_groups(config)}) + "\n"
