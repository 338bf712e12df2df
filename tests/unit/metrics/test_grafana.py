"""The Grafana dashboard JSON: its structure and its queries (each evaluated by a real Prometheus
in integration/test_grafana_prometheus.py)."""

from __future__ import annotations

import re

from asgi_monitor.exports.grafana import grafana_dashboard, queries

NAMESPACE = "shop"


def test_dashboard_shape_for_import_and_provisioning() -> None:
    board = grafana_dashboard()
    assert board["uid"] == "asgi-monitor" == grafana_dashboard()["uid"]  # stable
    assert 8 <= len(board["uid"]) <= 40
    assert board["id"] is None and board["schemaVersion"] >= 36
    [source] = board["__inputs"]
    assert (source["name"], source["type"], source["pluginId"]) == (
        "DS_PROMETHEUS", "datasource", "prometheus")
    required = {(r["type"], r["id"]) for r in board["__requires"]}
    assert {("grafana", "grafana"), ("datasource", "prometheus"),
            ("panel", "timeseries"), ("panel", "stat")} <= required
    variable, job, instance = board["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource", "datasource", "prometheus")
    assert job["definition"] == "label_values(http_requests_total, job)"
    assert instance["definition"] == 'label_values(http_requests_total{job=~"$job"}, instance)'
    for target_variable in (job, instance):
        assert target_variable["type"] == "query" and target_variable["multi"]
        assert target_variable["includeAll"] and target_variable["allValue"] == ".*"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    kinds = {p["type"] for p in board["panels"]}
    assert kinds <= {r["id"] for r in board["__requires"] if r["type"] == "panel"} | {"row"}
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        for target in panel.get("targets", []):
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    titles = " ".join(p["title"] for p in board["panels"]).lower()
    for word in ("request rate", "error ratio", "latency", "in progress", "health",
                 "database", "cache", "cpu", "memory"):
        assert word in titles


def test_queries_cover_the_exported_metrics_and_honour_the_namespace() -> None:
    plain = " ".join(queries(grafana_dashboard()))
    for metric in ("http_requests_total", "http_request_duration_seconds_bucket",
                   "http_requests_in_progress", "health_check_status", "db_queries_total",
                   "db_query_duration_seconds_bucket", "cache_operations_total",
                   "system_cpu_usage_percent", "system_memory_usage_percent",
                   "app_process_resident_memory_bytes"):
        assert metric in plain
    assert "histogram_quantile(0.95" in plain and "$__rate_interval" in plain
    named = grafana_dashboard(NAMESPACE)
    assert named["uid"] == "asgi-monitor-shop"
    for expr in queries(named):
        names = [word for word in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", expr)
                 if word.endswith(("_total", "_bucket", "_percent", "_bytes", "_progress",
                                   "_status", "_info")) and not word.startswith("__")]
        assert names and all(n.startswith(f"{NAMESPACE}_") for n in names), expr


def test_every_series_is_selected_by_job_and_instance() -> None:
    # One Prometheus scrapes several services: no panel sums over every target.
    for expr in queries(grafana_dashboard(NAMESPACE)):
        selectors = re.findall(r"shop_[a-z_]+(\{[^}]*\})?", expr)
        assert selectors and all('job=~"$job", instance=~"$instance"' in s
                                 for s in selectors), expr


def test_otel_naming_queries_the_otel_names_and_labels() -> None:
    otel = queries(grafana_dashboard(metric_names="otel"))
    plain = " ".join(otel)
    # The conventions have no request counter: requests are the duration histogram's count.
    for metric in ("http_server_request_duration_seconds_count",
                   "http_server_request_duration_seconds_bucket",
                   "http_server_active_requests", 'http_response_status_code=~"5.."',
                   "by (http_route)", "by (http_request_method)"):
        assert metric in plain
    assert "http_server_requests_total" not in plain
    classic = r"\bhttp_requests_total|\bhttp_request_duration|\bhttp_requests_in|\bstatus=~"
    assert not re.search(classic + r"|\(route\)", plain)
    board = grafana_dashboard(metric_names="otel")
    assert board["templating"]["list"][1]["definition"] == (
        "label_values(http_server_request_duration_seconds_count, job)")
    # `both` keeps querying the classic names, which are still exposed.
    assert queries(grafana_dashboard(metric_names="both")) == queries(grafana_dashboard())


def test_latency_panels_show_exemplars() -> None:
    panels = {panel["title"]: panel for panel in grafana_dashboard("")["panels"]
              if "targets" in panel}
    for title in ("Latency quantiles", "p95 latency by route"):
        assert all(target["exemplar"] is True for target in panels[title]["targets"]), title
    assert not any(target.get("exemplar") for target in panels["Request rate by route"]["targets"])


def test_a_row_per_slo_declaration() -> None:
    from asgi_monitor.slo import SLI, SLO, Selector

    slos = (SLO("api", period_days=28),
            SLO("items-latency", SLI("latency", threshold_seconds=0.5), objective_percent=99,
                period_days=7, selector=Selector(routes=("/items/{id}",))))
    assert grafana_dashboard() == grafana_dashboard(slos=())
    board = grafana_dashboard(NAMESPACE, slos=slos)
    (row,) = [p for p in board["panels"] if p["title"] == "Service level objectives"]
    after = board["panels"][board["panels"].index(row) + 1:]
    assert [p["title"] for p in after] == [
        "api: SLI", "api: error budget left", "api: burn rate (x budget)",
        "items-latency: SLI", "items-latency: error budget left",
        "items-latency: burn rate (x budget)"]
    assert [p["gridPos"]["w"] for p in after] == [8] * 6
    assert len({p["gridPos"]["y"] for p in after}) == 2  # a line per SLO
    sli, left, burn = after[3:]
    exprs = [t["expr"] for t in sli["targets"]]
    assert exprs == [f'1 - slo:sli_error:ratio_rate{w}{{slo="items-latency", '
                     'job=~"$job", instance=~"$instance"}' for w in ("5m", "1h", "1d")]
    (budget,) = left["targets"]
    # Over the SLO's own period, on the chosen targets, with its selector and threshold.
    assert "[7d]" in budget["expr"] and budget["expr"].endswith(") / 0.01")
    assert 'shop_http_request_duration_seconds_bucket{le="0.5",job=~"$job", ' \
           'instance=~"$instance",route=~"/items/\\\\{id\\\\}"}' in budget["expr"]
    # A 7-day period keeps the four alerts, the pages at 3.36 and 1.4 and the tickets at 0.7
    # and 0.2333; the line is at the lowest page.
    assert [t["legendFormat"] for t in burn["targets"]] == [
        f"{{{{instance}}}} {w}" for w in ("5m", "30m", "1h", "2h", "6h", "1d", "3d")]
    assert burn["fieldConfig"]["defaults"]["thresholds"]["steps"][1]["value"] == 1.4
    assert "page when 1h and 5m are over 3.36" in burn["description"]
    assert "ticket when 3d and 6h are over 0.2333" in burn["description"]
    first = after[:3]
    assert "[28d]" in first[1]["targets"][0]["expr"]
    assert "ticket when 3d and 6h are over 0.9333" in first[2]["description"]


def test_a_slo_without_a_page_has_no_page_line() -> None:
    from asgi_monitor.slo import SLO

    # Two days: 2 % of the budget in 1h is a burn rate of 0.96, so the 1d/2h ticket only.
    board = grafana_dashboard(slos=(SLO("daily", period_days=2),))
    (burn,) = [p for p in board["panels"] if p["title"] == "daily: burn rate (x budget)"]
    assert [t["legendFormat"] for t in burn["targets"]] == [
        "{{instance}} 2h", "{{instance}} 1d"]
    assert burn["description"].endswith("Alerts: ticket when 1d and 2h are over 0.2.")
    assert "thresholds" not in burn["fieldConfig"]["defaults"]


def test_a_variable_and_a_panel_per_request_label() -> None:
    dashboard = grafana_dashboard(NAMESPACE, request_labels=("tenant", "plan"))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["tenant"]["definition"] == (
        'label_values(shop_http_requests_total{job=~"$job", instance=~"$instance"}, tenant)')
    assert variables["plan"]["allValue"] == ".*" and variables["plan"]["multi"]
    titles = [panel["title"] for panel in dashboard["panels"]]
    assert "Request rate by tenant" in titles and "Request rate by plan" in titles
    for expr in queries(dashboard):
        # The request series follow the label variables; the other families have no such label.
        request_series = re.findall(r"shop_http_[a-z_]+(?<!in_progress)\{[^}]*\}", expr)
        for selector in request_series:
            assert 'tenant=~"$tenant"' in selector and 'plan=~"$plan"' in selector, expr
        assert "in_progress{" not in expr or "$tenant" not in expr, expr
    assert "$tenant" not in " ".join(queries(grafana_dashboard(NAMESPACE)))
