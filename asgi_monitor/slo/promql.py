"""The SLOs as Prometheus rules: the SLI's error ratio recorded over the standard windows, and
the four multi-window burn-rate alerts of the SRE workbook on top of them.

One group per SLO, recording rules first: Prometheus evaluates a group's rules in order, so the
alerts read the ratios of the same evaluation. Ratios are summed ``by (job, instance)`` like the
default rules, so each target's budget burns on its own numbers.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from prometheus_client.utils import floatToGoString

from ..config.metrics import metric_prefix
from ..config.objectives import SLO, WINDOWS
from ..exports.metric_names import RequestNames, request_names

if TYPE_CHECKING:
    from ..config import MonitoringConfig

__all__ = ["error_ratio", "record_name", "slo_rule_groups"]

_BY = "sum by (job, instance)"


def record_name(window: str) -> str:
    """The recorded series of the SLI's error ratio over ``window`` (label ``slo`` names it)."""
    return f"slo:sli_error:ratio_rate{window}"


def _matchers(slo: SLO, names: RequestNames, *extra: str) -> str:
    found = list(extra)
    if slo.selector.routes:
        # Templates hold regex metacharacters ("{item_id}", "."): match them literally.
        routes = "|".join(_regex_literal(r) for r in slo.selector.routes)
        found.append(f"{names.route}=~{json.dumps(routes)}")
    if slo.selector.methods:
        found.append(f"{names.method}=~{json.dumps('|'.join(slo.selector.methods))}")
    # Request labels keep their names in every naming; an exact match each.
    found.extend(f"{name}={json.dumps(value)}" for name, value in slo.selector.labels)
    return "{" + ",".join(found) + "}" if found else ""


def _regex_literal(text: str) -> str:
    return "".join(f"\\{c}" if c in r".^$*+?()[]{}|\\" else c for c in text)


def error_ratio(
    slo: SLO, window: str, namespace: str = "", naming: str = "classic", *, scope: str = "",
) -> str:
    """PromQL: the fraction of the selected requests that were bad over ``window``, on the
    series ``naming`` (MONITORING_METRIC_NAMES) exposes; ``scope`` adds matchers to every
    series (the Grafana dashboard's ``job``/``instance`` filters)."""
    p = metric_prefix(namespace)
    names = request_names(naming)
    only = (scope,) if scope else ()
    if slo.sli.kind == "latency":
        assert slo.sli.threshold_seconds is not None
        # The bucket label exactly as the exposition writes it ("1.0", "0.25").
        bound = str(floatToGoString(slo.sli.threshold_seconds))  # type: ignore[no-untyped-call]
        le = f"le={json.dumps(bound)}"
        histogram = f"{p}{names.duration}"
        fast = f"{_BY} (rate({histogram}_bucket{_matchers(slo, names, le, *only)}[{window}]))"
        total = f"{_BY} (rate({histogram}_count{_matchers(slo, names, *only)}[{window}]))"
        return f"1 - {fast} / {total}"
    # Under OpenTelemetry names the requests are the duration histogram's count, by status.
    requests = f"{p}{names.requests}"
    total = f"{_BY} (rate({requests}{_matchers(slo, names, *only)}[{window}]))"
    status = f"{names.status}=~{json.dumps(slo.sli.bad_status)}"
    bad = f"{_BY} (rate({requests}{_matchers(slo, names, status, *only)}[{window}]))"
    # No bad series at all is a ratio of 0, not an absent one.
    return f"({bad} or 0 * {total}) / {total}"


def _group(slo: SLO, namespace: str, naming: str) -> dict[str, Any]:
    rules: list[dict[str, Any]] = [
        {"record": record_name(window), "expr": error_ratio(slo, window, namespace, naming),
         "labels": {"slo": slo.name}}
        for window, _ in WINDOWS]
    budget = slo.error_budget
    what = (f"{slo.objective_percent:g}% of requests good over {slo.period_days:g} days")
    for alert in slo.burn_alerts:
        threshold = f"{alert.factor:g} * {budget:.6g}"
        selector = f"{{slo={json.dumps(slo.name)}}}"
        expr = (f"{record_name(alert.long_window)}{selector} > ({threshold}) and "
                f"{record_name(alert.short_window)}{selector} > ({threshold})")
        rules.append({
            "alert": "SLOErrorBudgetBurn", "expr": expr, "for": "0s",
            # page or ticket, as the in-process alerts have it.
            "labels": {"severity": alert.severity, "slo": slo.name,
                       "service": "{{ $labels.job }}",
                       "long_window": alert.long_window, "short_window": alert.short_window},
            "annotations": {
                # "at over 0.9333x", not "too fast": a ticket's factor can be under 1.
                "summary": (f"SLO {slo.name} burns its error budget at over {alert.factor:g}x "
                            f"({alert.budget_percent:g}% of it in {alert.long_window})"),
                "description": (f"{{{{ $value | humanizePercentage }}}} of requests were bad "
                                f"over {alert.long_window} (and still over "
                                f"{alert.short_window}); the objective is {what}, a budget of "
                                f"{budget * 100:.4g}%, and {alert.factor:g}x spends "
                                f"{alert.budget_percent:g}% of it in {alert.long_window}."),
            }})
    return {"name": f"asgi_monitor_slo_{slo.name}", "rules": rules}


def slo_rule_groups(config: MonitoringConfig) -> list[dict[str, Any]]:
    """One rule group per declared SLO (none when there are none)."""
    return [_group(slo, config.metrics.namespace, config.metrics.metric_names)
            for slo in config.slo.all()]
