"""A Grafana dashboard (classic JSON model) for the metrics asgi_monitor exports.

``grafana_dashboard(namespace)`` returns a dict ready for ``json.dump``; the sub-app serves it at
``GET {dashboard_path}/grafana``. It works both ways Grafana loads dashboards:

- the import UI reads ``__inputs`` (asks which Prometheus data source to use, replacing
  ``${DS_PROMETHEUS}``) and ``__requires``;
- file provisioning ignores those, so every panel and query uses the ``datasource`` template
  variable (``type: datasource``, ``query: prometheus``), which picks the default Prometheus data
  source when ``${DS_PROMETHEUS}`` was never substituted.

The uid is stable (derived from the namespace only), so re-importing updates the same dashboard.
One Prometheus usually scrapes several services and replicas: the ``job`` and ``instance``
variables (``label_values(...)`` of the request counter, several or all selectable) filter every
query, so the panels show the chosen targets, not a sum over everything scraped. The "Deploys"
annotation marks each new version or release of ``build_info`` on every panel.
Every query honours the metric-name namespace;
``tests/integration/test_grafana_prometheus.py`` evaluates each one against a real Prometheus
scraping a test app.
"""

from __future__ import annotations

from typing import Any

from ..config.metrics import metric_prefix
from ..config.objectives import SLO, WINDOWS
from ..slo.promql import error_ratio, record_name
from .build_info import build_info_name
from .metric_names import RequestNames, request_names

__all__ = ["DEPLOY_LOOKBACK", "deploy_query", "grafana_dashboard", "queries"]

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Every series is filtered by the target variables ("All" is the regex .*).
TARGET = 'job=~"$job", instance=~"$instance"'
_WIDTH = 24  # Grafana's grid is 24 columns wide


def _target(expr: str, legend: str, ref: str) -> dict[str, Any]:
    return {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": ref,
            "range": True, "editorMode": "code"}


def _panel(title: str, unit: str, targets: list[tuple[str, str]], *, kind: str = "timeseries",
           description: str = "", exemplars: bool = False) -> dict[str, Any]:
    refs = "ABCDEFGHIJ"
    panel: dict[str, Any] = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
        "targets": [_target(expr, legend, refs[i]) for i, (expr, legend) in enumerate(targets)],
    }
    if exemplars:
        # Shown only when the app has MONITORING_EXEMPLARS on and Prometheus runs with
        # --enable-feature=exemplar-storage; otherwise the query returns none and costs nothing.
        for target in panel["targets"]:
            target["exemplar"] = True
    if kind == "stat":
        panel["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "",
                                              "values": False},
                            "colorMode": "background", "graphMode": "none",
                            "textMode": "name"}
    return panel


def _panels(p: str, names: RequestNames, request_labels: tuple[str, ...] = (),
            ) -> list[tuple[str, list[dict[str, Any]]]]:
    """Rows of panels; ``p`` is the metric-name prefix (namespace + "_" or ""), ``names`` the
    request series' names under the chosen naming, ``request_labels`` the request labels the
    user chose (each a variable that filters the request series)."""
    rate = "$__rate_interval"
    route, method = names.route, names.method
    # The request labels' variables ("All" is .*, which also matches the empty value).
    chosen = "".join(f', {label}=~"${label}"' for label in request_labels)

    def m(name: str, matchers: str = "") -> str:
        """The series ``name`` of the chosen targets, with ``matchers`` if any."""
        return f"{p}{name}{{{matchers + ', ' if matchers else ''}{TARGET}}}"

    def r(name: str, matchers: str = "") -> str:
        """A request series (one that carries the request labels) of the chosen targets and
        request label values."""
        return f"{p}{name}{{{matchers + ', ' if matchers else ''}{TARGET}{chosen}}}"

    requests = r(names.requests)
    errors = r(names.requests, f'{names.status}=~"5.."')
    duration = r(f"{names.duration}_bucket")
    hits = m("cache_operations_total", 'operation="hit"')
    lookups = m("cache_operations_total", 'operation=~"hit|miss"')

    native = r(names.duration)

    def quantile(q: str, by: str = "le") -> str:
        # The native histogram first (MONITORING_NATIVE_HISTOGRAMS, scraped by a Prometheus
        # with native histograms on, which then keeps no _bucket series), else the classic
        # buckets: either way the same labels come out, so one query serves both.
        grouped = ", ".join(label for label in by.split(", ") if label != "le")
        native_sum = f"sum by ({grouped})" if grouped else "sum"
        return (f"histogram_quantile({q}, {native_sum} (rate({native}[{rate}]))) or "
                f"histogram_quantile({q}, sum by ({by}) (rate({duration}[{rate}])))")

    return [
        ("HTTP", [
            _panel("Request rate by route", "reqps", [
                (f"sum by ({route}) (rate({requests}[{rate}]))", f"{{{{{route}}}}}")]),
            _panel("5xx error ratio", "percentunit", [
                (f"(sum(rate({errors}[{rate}])) or vector(0)) "
                 f"/ sum(rate({requests}[{rate}]))", "5xx / all")],
                description="Server errors over all requests; 0 when there were none."),
            _panel("Latency quantiles", "s", [
                (quantile("0.5"), "p50"), (quantile("0.95"), "p95"), (quantile("0.99"), "p99")],
                description=f"histogram_quantile over {names.duration}: its native histogram "
                            "where Prometheus stores one, else its classic buckets.",
                exemplars=True),
            _panel("p95 latency by route", "s", [
                (quantile("0.95", f"le, {route}"), f"{{{{{route}}}}}")], exemplars=True),
            _panel("Requests in progress", "short", [
                (f"sum by ({method}) ({m(names.in_progress)})", f"{{{{{method}}}}}")]),
            *(_panel(f"Request rate by {label}", "reqps", [
                (f"sum by ({label}) (rate({requests}[{rate}]))", f"{{{{{label}}}}}")])
              for label in request_labels),
        ]),
        ("Health", [
            _panel("Health checks", "short", [
                (f"{m('health_check_status')} == 1", "{{check}}: {{status}}")], kind="stat",
                description="Each check's current status (the series whose value is 1)."),
            _panel("Overall health status", "short", [
                (f"{m('health_status')} == 1", "{{status}}")], kind="stat"),
        ]),
        ("Database and cache", [
            _panel("Database queries by operation and status", "ops", [
                (f"sum by (operation, status) (rate({m('db_queries_total')}[{rate}]))",
                 "{{operation}} {{status}}")]),
            _panel("Database p95 latency", "s", [
                (f"histogram_quantile(0.95, sum by (le, operation) "
                 f"(rate({m('db_query_duration_seconds_bucket')}[{rate}])))", "{{operation}}")]),
            _panel("Cache operations", "ops", [
                (f"sum by (cache, operation) (rate({m('cache_operations_total')}[{rate}]))",
                 "{{cache}} {{operation}}")]),
            _panel("Cache hit ratio", "percentunit", [
                (f"sum by (cache) (rate({hits}[{rate}])) "
                 f"/ sum by (cache) (rate({lookups}[{rate}]))", "{{cache}}")]),
        ]),
        ("System", [
            _panel("CPU and memory", "percent", [
                (m("system_cpu_usage_percent"), "CPU {{instance}}"),
                (m("system_memory_usage_percent"), "memory {{instance}}")]),
            _panel("Disk use", "percent", [
                (m("system_disk_usage_percent"), "{{instance}} {{path}}")]),
            _panel("Process resident memory", "bytes", [
                (m("app_process_resident_memory_bytes"), "{{instance}}")]),
        ]),
    ]


def _duration(seconds: float) -> str:
    """A PromQL duration: whole days as such (``30d``), anything else in seconds."""
    return f"{seconds / 86400:g}d" if seconds % 86400 == 0 else f"{round(seconds)}s"


def _slo_panels(slo: SLO, namespace: str, naming: str) -> list[dict[str, Any]]:
    """An SLO's three panels: its SLI over the recorded windows, the error budget left over
    its period, and the burn rate over the windows of its alerts (with their factors)."""
    budget = f"{slo.error_budget:.6g}"

    def recorded(window: str) -> str:
        return f'{record_name(window)}{{slo="{slo.name}", {TARGET}}}'

    what = f"{slo.objective_percent:g}% over {slo.period_days:g} days"
    sli = _panel(f"{slo.name}: SLI", "percentunit", [
        (f"1 - {recorded(window)}", f"{{{{instance}}}} {window}") for window in ("5m", "1h", "1d")],
        description=f"The share of good requests over 5m, 1h and 1d (objective {what}); "
                    "from the recording rules of `asgi-monitor rules`.")
    sli["fieldConfig"]["defaults"]["thresholds"] = {"mode": "absolute", "steps": [
        {"color": "red", "value": None}, {"color": "green", "value": slo.objective_percent / 100}]}
    sli["fieldConfig"]["defaults"]["custom"] = {"thresholdsStyle": {"mode": "line"}}
    period = _duration(slo.period_seconds)
    left = _panel(f"{slo.name}: error budget left", "percentunit", [
        (f"1 - ({error_ratio(slo, period, namespace, naming, scope=TARGET)}) / {budget}",
         "{{instance}}")], kind="stat",
        description=f"1 - the error ratio over the last {period} / the budget ({what}); "
                    "below 0 the objective is missed.")
    left["options"].update({"textMode": "value_and_name", "colorMode": "value"})
    left["fieldConfig"]["defaults"]["thresholds"] = {"mode": "absolute", "steps": [
        {"color": "red", "value": None}, {"color": "orange", "value": 0},
        {"color": "green", "value": 0.25}]}
    alerts = slo.burn_alerts
    windows = sorted({w for a in alerts for w in (a.long_window, a.short_window)},
                     key=dict(WINDOWS).__getitem__)
    burn = _panel(f"{slo.name}: burn rate (x budget)", "none", [
        (f"{recorded(window)} / {budget}", f"{{{{instance}}}} {window}") for window in windows],
        description="The error ratio over each window of the burn-rate alerts, divided by the "
                    "budget (1 spends it exactly over the period). Alerts: " + "; ".join(
                        f"{a.severity} when {a.long_window} and {a.short_window} are over "
                        f"{a.factor:g}" for a in alerts) + ".")
    # The lowest page factor as a line: above it on both windows of a pair pages someone.
    # A period under 50 hours has tickets only, and then no line.
    pages = [a.factor for a in alerts if a.severity == "page"]
    if pages:
        burn["fieldConfig"]["defaults"]["thresholds"] = {"mode": "absolute", "steps": [
            {"color": "green", "value": None}, {"color": "red", "value": min(pages)}]}
        burn["fieldConfig"]["defaults"]["custom"] = {"thresholdsStyle": {"mode": "line"}}
    return [sli, left, burn]


def grafana_dashboard(namespace: str = "", *, title: str | None = None,
                      metric_names: str = "classic",
                      slos: tuple[SLO, ...] = (),
                      request_labels: tuple[str, ...] = ()) -> dict[str, Any]:
    """The dashboard JSON for metrics named with ``namespace`` (as MONITORING_NAMESPACE) and
    ``metric_names`` (as MONITORING_METRIC_NAMES), with a row for ``slos`` if any (their
    SLI and burn-rate panels read the recording rules of ``asgi-monitor rules``), and a
    variable and a request-rate panel per request label (``request_labels``: their names)."""
    prefix = metric_prefix(namespace)
    names = request_names(metric_names)
    panels: list[dict[str, Any]] = []
    y = 0
    next_id = 1
    rows = _panels(prefix, names, request_labels)
    if slos:
        slo_panels = [panel for slo in slos for panel in _slo_panels(slo, namespace, metric_names)]
        rows.append(("Service level objectives", slo_panels))
    for row_title, row in rows:
        panels.append({"type": "row", "title": row_title, "collapsed": False, "id": next_id,
                       "gridPos": {"h": 1, "w": _WIDTH, "x": 0, "y": y}, "panels": []})
        next_id += 1
        y += 1
        width = 8 if len(row) % 3 == 0 or len(row) % 2 else 12
        for i, panel in enumerate(row):
            x = (i * width) % _WIDTH
            if i and x == 0:
                y += 8
            panel["id"] = next_id
            panel["gridPos"] = {"h": 8, "w": width, "x": x, "y": y}
            panels.append(panel)
            next_id += 1
        y += 8
    uid = f"asgi-monitor-{namespace}"[:40] if namespace else "asgi-monitor"
    return {
        "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus",
                      "description": "The Prometheus that scrapes this app's /api/metrics",
                      "type": "datasource", "pluginId": "prometheus",
                      "pluginName": "Prometheus"}],
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "9.0.0"},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
            {"type": "panel", "id": "timeseries", "name": "Time series", "version": ""},
            {"type": "panel", "id": "stat", "name": "Stat", "version": ""},
        ],
        "id": None,
        "uid": uid,
        "title": title or (f"ASGI monitoring ({namespace})" if namespace else "ASGI monitoring"),
        "description": "Request, health, database, cache and system metrics from asgi_monitor.",
        "tags": ["asgi", "asgi_monitor"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {"refresh_intervals": ["10s", "30s", "1m", "5m"]},
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "links": [],
        "annotations": {"list": [_deploys(prefix)]},
        "templating": {"list": [{
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "current": {"text": "${DS_PROMETHEUS}", "value": "${DS_PROMETHEUS}"},
            "hide": 0,
            "refresh": 1,
            "regex": "",
            "options": [],
        },
            _target_variable("job", "Job", f"label_values({prefix}{names.requests}, job)"),
            _target_variable("instance", "Instance",
                             f'label_values({prefix}{names.requests}{{job=~"$job"}}, '
                             "instance)"),
            *(_target_variable(label, label, f'label_values({prefix}{names.requests}'
                               f'{{job=~"$job", instance=~"$instance"}}, {label})')
              for label in request_labels),
        ]},
        "panels": panels,
    }


# How far back a build must be absent to count as new: longer than a scrape interval and a
# rolling update's gap, short enough that the mark stays a thin band on an hour's graph.
DEPLOY_LOOKBACK = "2m"


def deploy_query(prefix: str, matchers: str = TARGET) -> str:
    """Each (job, service, version, release) of ``build_info`` that was absent ``DEPLOY_LOOKBACK``
    ago: a new version or release coming up. Not ``changes()``: the gauge is 1 for ever, and a
    new build is a new series (its labels change), which ``changes()`` of any one series never
    sees."""
    by = "job, service, version, release"
    series = f"{build_info_name(prefix)}{{{matchers}}}"
    return (f"count by ({by}) ({series}) unless "
            f"count by ({by}) ({series} offset {DEPLOY_LOOKBACK})")


def _deploys(prefix: str) -> dict[str, Any]:
    """The annotation marking each deploy (a version or release appearing) on every panel."""
    return {
        "name": "Deploys",
        "datasource": DATASOURCE,
        "enable": True,
        "hide": False,
        "iconColor": "#8AB8FF",
        "expr": deploy_query(prefix),
        "step": "30s",
        "titleFormat": "Deploy: {{service}} {{version}}",
        "textFormat": "release {{release}} on {{job}}",
        "tagKeys": "service,version,release",
        "useValueForTime": False,
    }


def _target_variable(name: str, label: str, query: str) -> dict[str, Any]:
    """A query variable over the scraped targets; "All" by default, several selectable."""
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"{name}-values"},
        "definition": query,
        "current": {"text": ["All"], "value": ["$__all"]},
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "hide": 0,
        "refresh": 2,  # on time range change: targets come and go
        "regex": "",
        "sort": 1,
        "options": [],
    }


def queries(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression in ``dashboard``, its annotations' too (for tests and for
    checking by hand)."""
    return [target["expr"] for panel in dashboard["panels"]
            for target in panel.get("targets", [])] + [
        annotation["expr"] for annotation in dashboard["annotations"]["list"]
        if "expr" in annotation]
