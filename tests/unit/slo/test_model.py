"""Declaring SLOs in code and in a JSON file: valid ones load, invalid ones name the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asgi_monitor.config import MetricsSettings, MonitoringConfig, SLOSettings
from asgi_monitor.errors import ConfigError
from asgi_monitor.slo import SLI, SLO, WINDOWS, Selector, load_slo_file, slos_from_data


def test_defaults_are_availability_999_over_30_days() -> None:
    slo = SLO("api")
    assert slo.sli.kind == "availability"
    assert slo.objective_percent == 99.9 and slo.period_days == 30
    assert slo.error_budget == pytest.approx(0.001)
    assert slo.selector.matches("GET", "/anything")


@pytest.mark.parametrize(("sli", "status", "duration", "good"), [
    (SLI(), 200, 9.0, True),
    (SLI(), 404, 0.0, True),
    (SLI(), 503, 0.0, False),
    (SLI(bad_status="5..|429"), 429, 0.0, False),
    (SLI("latency", threshold_seconds=0.25), 500, 0.25, True),
    (SLI("latency", threshold_seconds=0.25), 200, 0.26, False),
])
def test_what_a_good_request_is(sli: SLI, status: int, duration: float, good: bool) -> None:
    assert sli.is_good(status, duration) is good


def test_selector_by_routes_and_methods() -> None:
    selector = Selector(routes=("/items/{item_id}",), methods=("get",))
    assert selector.methods == ("GET",)
    assert selector.matches("GET", "/items/{item_id}")
    assert not selector.matches("POST", "/items/{item_id}")
    assert not selector.matches("GET", "/users")


@pytest.mark.parametrize(("make", "message"), [
    (lambda: SLO("9lives"), "SLO: name must be letters"),
    (lambda: SLO("api\n"), "SLO: name must be letters"),
    (lambda: SLO("a" * 65), "at most 64 characters, got 'aaaa"),
    (lambda: SLO("a", objective_percent=10**400), "got 10000.*401 characters"),
    (lambda: SLO("a", period_days=float("nan")), "period_days must be"),
    (lambda: SLI("latency", threshold_seconds=10**400), "sli.threshold_seconds must be"),
    (lambda: Selector(methods=("GET\n",)), "selector.methods"),
    (lambda: SLO("a", objective_percent=100), "SLO 'a': objective_percent"),
    (lambda: SLO("a", objective_percent="99.9"), "objective_percent"),
    (lambda: SLO("a", period_days=0), "SLO 'a': period_days"),
    (lambda: SLI("speed"), "sli.kind"),
    (lambda: SLI("latency"), "sli.threshold_seconds must be a number of seconds > 0"),
    (lambda: SLI(threshold_seconds=0.1), "unset for an availability SLI"),
    (lambda: SLI(bad_status="5(("), "sli.bad_status"),
    (lambda: Selector(routes=("items",)), "selector.routes"),
    (lambda: Selector(methods=("GET POST",)), "selector.methods"),
])
def test_invalid_declarations_name_the_field(make: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        make()  # type: ignore[operator]


def test_latency_threshold_must_be_a_bucket_bound() -> None:
    slo = SLO("fast", SLI("latency", threshold_seconds=0.3))
    with pytest.raises(ConfigError, match=r"SLO 'fast': sli.threshold_seconds must be one of the "
                       r"duration histogram's bucket bounds .*0\.25, 0\.5.*got 0\.3"):
        MonitoringConfig(slo=SLOSettings(objectives=(slo,)))
    config = MonitoringConfig(slo=SLOSettings(objectives=(slo,)),
                              metrics=MetricsSettings(duration_buckets=(0.1, 0.3, 1.0)))
    assert config.slo.all() == (slo,)


FILE = {"slos": [
    {"name": "availability", "objective_percent": 99.9, "period_days": 30},
    {"name": "checkout-latency", "sli": {"kind": "latency", "threshold_seconds": 0.5},
     "objective_percent": 99, "selector": {"routes": ["/checkout"], "methods": ["POST"]}},
]}


def test_a_json_file_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "slos.json"
    path.write_text(json.dumps(FILE))
    config = MonitoringConfig.from_env({"MONITORING_SLO_FILE": str(path)})
    first, second = config.slo.all()
    assert first == SLO("availability")
    assert second == SLO("checkout-latency", SLI("latency", threshold_seconds=0.5), 99.0,
                         selector=Selector(routes=("/checkout",), methods=("POST",)))
    assert config.public_dict()["slo"]["file"] == str(path)


@pytest.mark.parametrize(("data", "message"), [
    ([], "must be an object"),
    ({"slo": []}, "unknown field.*slo; known: slos"),
    ({"slos": [{"objective_percent": 99}]}, r"^slos.json: slos\[0\]\.name is missing$"),
    ({"slos": [{"name": "a", "objective": 99}]}, r"slos\[0\] has unknown field\(s\) objective"),
    ({"slos": [{"name": "a", "sli": {"kind": "latency", "threshold": 1}}]},
     r"slos\[0\]\.sli has unknown field\(s\) threshold"),
    ({"slos": [{"name": "a", "objective_percent": 101}]},
     r"^slos.json: slos\[0\]\.objective_percent must be a percentage.*got 101$"),
    ({"slos": [{"name": "a", "selector": {"routes": "/x"}}]}, r"selector.routes must be a list"),
    ({"slos": [{"name": "a"}, {"name": "a"}]}, "names must be distinct, a repeated"),
])
def test_file_errors_name_the_field(data: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        slos_from_data(data, source="slos.json")


def test_unreadable_or_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="MONITORING_SLO_FILE .* must be a readable"):
        load_slo_file(str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        MonitoringConfig.from_env({"MONITORING_SLO_FILE": str(tmp_path / "bad.json")})


def test_file_and_code_names_must_differ(tmp_path: Path) -> None:
    path = tmp_path / "slos.json"
    path.write_text(json.dumps({"slos": [{"name": "api"}]}))
    with pytest.raises(ConfigError, match="repeats SLO name"):
        MonitoringConfig(slo=SLOSettings(file=str(path), objectives=(SLO("api"),)))


@pytest.mark.parametrize(("period_days", "alerts"), [
    # The workbook's own table.
    (30, [("1h_5m", 14.4, "page"), ("6h_30m", 6.0, "page"), ("1d_2h", 3.0, "ticket"),
          ("3d_6h", 1.0, "ticket")]),
    (90, [("1h_5m", 43.2, "page"), ("6h_30m", 18.0, "page"), ("1d_2h", 9.0, "ticket"),
          ("3d_6h", 3.0, "ticket")]),
    # 10 % of a 28-day budget over 3 days is a burn rate of 0.93: a ticket still, as in Sloth.
    (28, [("1h_5m", 13.44, "page"), ("6h_30m", 5.6, "page"), ("1d_2h", 2.8, "ticket"),
          ("3d_6h", 0.9333, "ticket")]),
    (7, [("1h_5m", 3.36, "page"), ("6h_30m", 1.4, "page"), ("1d_2h", 0.7, "ticket"),
         ("3d_6h", 0.2333, "ticket")]),
    # 5 % of a 3-day budget over 6h is a burn rate of 0.6: no page on it.
    (3, [("1h_5m", 1.44, "page"), ("1d_2h", 0.3, "ticket"), ("3d_6h", 0.1, "ticket")]),
    # 2 % of a 2-day budget over 1h is 0.96: no page at all; a 3-day window is longer than
    # the period.
    (2, [("1d_2h", 0.2, "ticket")]),
    (1, [("1d_2h", 0.1, "ticket")]),
])
def test_burn_factors_spend_the_same_share_of_any_period(
        period_days: float, alerts: list[tuple[str, float, str]]) -> None:
    found = SLO("api", period_days=period_days).burn_alerts
    assert [(a.name, a.factor, a.severity) for a in found] == alerts
    for alert in found:
        # factor x long window = the share of the period's budget it spends (to 4 decimals).
        long_seconds = dict(WINDOWS)[alert.long_window]
        assert alert.factor == pytest.approx(
            alert.budget_percent / 100 * period_days * 86400 / long_seconds, abs=5e-5)
        assert long_seconds <= period_days * 86400
        assert alert.severity == "ticket" or alert.factor >= 1


def test_a_period_too_short_for_any_burn_alert_is_refused() -> None:
    # The first page comes with 50 hours (2 % of the budget in 1h at a burn rate of 1).
    assert [(a.name, a.factor) for a in SLO("api", period_days=2.09).burn_alerts] == [
        ("1h_5m", 1.0032), ("1d_2h", 0.209)]
    # Under a day not even the 1d/2h ticket's long window fits.
    with pytest.raises(ConfigError, match=r"SLO 'api': period_days must be at least 1 day, "
                                          r"got 0\.99: a shorter period leaves no burn-rate "
                                          r"alert \(a ticket's long window"):
        SLO("api", period_days=0.99)
    with pytest.raises(ConfigError, match=r"^SLO file: slos\[0\]\.period_days must be at "
                                          r"least 1 day, got 0\.041666666666666664: "):
        slos_from_data({"slos": [{"name": "hourly", "period_days": 1 / 24}]})
