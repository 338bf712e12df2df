"""The SLO rules loaded into a real Prometheus scraping a test app: every recording rule and
alert evaluates with health "ok", the recorded error ratios have data, and so does every query
of the Grafana dashboard's SLO row."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from support import running_prometheus, serve, wait_until

from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.config import MetricsSettings, SLOSettings, SystemSettings
from asgi_monitor.exports.grafana import grafana_dashboard
from asgi_monitor.exports.prometheus_rules import slo_rules_yaml
from asgi_monitor.slo import SLI, SLO, Selector

SLOS = (SLO("availability"),
        SLO("items-latency", SLI("latency", threshold_seconds=0.5), objective_percent=99,
            period_days=7, selector=Selector(routes=("/items/{id}",), methods=("GET",))))


async def item(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok", status_code=500 if request.path_params["id"] == "0" else 200)


@pytest.mark.integration
@pytest.mark.timeout(180)
@pytest.mark.parametrize("naming", ["classic", "otel", "both"])
def test_every_slo_rule_evaluates_ok_in_a_real_prometheus(tmp_path: Path, naming: str) -> None:
    config = MonitoringConfig(system=SystemSettings(metrics=False),
                              metrics=MetricsSettings(metric_names=naming),
                              slo=SLOSettings(objectives=SLOS))
    app = MonitoringMiddleware(Starlette(routes=[Route("/items/{id}", item)]),
                               monitor=build_monitor(config, CollectorRegistry()))
    rules_text = slo_rules_yaml(config)
    # The rules query the names this naming exposes (under otel, the classic ones are gone).
    assert ("http_requests_total" in rules_text) == (naming != "otel")
    (tmp_path / "slo.rules.yml").write_text(rules_text)
    with serve(app) as base:
        target = base.removeprefix("http://")
        with running_prometheus(tmp_path, target,
                                rule_files=(tmp_path / "slo.rules.yml",)) as (api, client):
            app_client = httpx.Client(base_url=base, timeout=5)

            def recorded() -> bool:
                # Traffic until a rate over it is recorded: NaN (0/0) before two scrapes
                # saw the counters change.
                # Each SLO's group is evaluated on its own schedule: wait for both.
                for i in range(5):
                    app_client.get(f"/items/{i}")
                body = client.get(f"{api}/api/v1/query", params={
                    "query": "slo:sli_error:ratio_rate5m >= 0"}).json()
                return {r["metric"]["slo"] for r in body["data"]["result"]} == {
                    "availability", "items-latency"}

            wait_until(recorded, timeout=30, what="the recorded error ratios")
            app_client.close()
            groups = client.get(f"{api}/api/v1/rules").json()["data"]["groups"]
            rules = [r for g in groups for r in g["rules"]]
            assert len(rules) == 2 * 7 + 4 + 4  # 7 days keeps the four alerts too
            assert {r["health"] for r in rules} == {"ok"}, [
                (r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
            body = client.get(f"{api}/api/v1/query", params={
                "query": 'slo:sli_error:ratio_rate5m{slo="availability"}'}).json()
            (series,) = body["data"]["result"]
            assert series["metric"]["job"] == "asgi" and series["metric"]["instance"] == target
            assert 0.1 < float(series["value"][1]) < 0.3  # one request in five fails
            body = client.get(f"{api}/api/v1/query", params={
                "query": 'slo:sli_error:ratio_rate5m{slo="items-latency"}'}).json()
            (series,) = body["data"]["result"]
            assert float(series["value"][1]) == 0  # every request well under 0.5 s

            # The Grafana row, with the variables as Grafana fills them in for this target.
            row = grafana_dashboard(metric_names=naming, slos=SLOS)["panels"]
            row = row[[p["title"] for p in row].index("Service level objectives") + 1:]
            expressions = [t["expr"].replace("$job", "asgi").replace("$instance", target)
                           for panel in row for t in panel["targets"]]
            assert len(expressions) == 2 * (3 + 1) + 7 + 7  # the burn panels: 7 windows each
            answers: dict[str, list[float]] = {}

            def answered(expr: str) -> bool:
                # Each SLO's group is evaluated on its own schedule: wait for its first round.
                body = client.get(f"{api}/api/v1/query", params={"query": expr}).json()
                assert body["status"] == "success", (expr, body)
                answers[expr] = [float(r["value"][1]) for r in body["data"]["result"]]
                return bool(answers[expr])

            for expr in expressions:
                wait_until(lambda expr=expr: answered(expr), timeout=20, what=expr)
            assert {e: v for e, v in answers.items() if len(v) != 1} == {}
            # One request in five fails: the availability budget (0.1 %) is long spent.
            budget = next(e for e in expressions if "[30d]" in e)
            assert answers[budget][0] < -100

