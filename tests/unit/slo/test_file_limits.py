"""MONITORING_SLO_FILE is input from outside: every problem with it is a ConfigError that names
the file, the entry (``slos[i]``) and the field once, and its size, count, name length and
nesting are bounded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asgi_monitor import ConfigError, MonitoringConfig
from asgi_monitor.config import SLOSettings
from asgi_monitor.config.objectives import SLO

# The limits, written here rather than imported: a test that imported them would follow them
# wherever they moved.
MAX_DEPTH = 8
MAX_FILE_BYTES = 1024 * 1024
MAX_NAME_CHARS = 64
MAX_SLOS = 100


def _load(tmp_path: Path, content: object | str) -> str:
    """The ConfigError message for a file holding ``content`` (JSON text, or data to dump)."""
    path = tmp_path / "slos.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(ConfigError) as raised:
        MonitoringConfig.from_env({"MONITORING_SLO_FILE": str(path)})
    return str(raised.value)


@pytest.mark.parametrize(("entry", "field", "shown"), [
    ({"objective_percent": 99}, "name", "is missing"),
    ({"name": "a" * 100_000}, "name", "at most 64 characters"),
    ({"name": "api\n"}, "name", "letters, digits"),
    ({"name": "a", "objective": 1}, "", "has unknown field(s) objective"),
    ({"name": "a", "x\n" * 50_000: 1}, "", "has unknown field(s) x\\nx\\n"),
    ({"name": "a", "sli": {"kind": "latency", "threshold": 1}}, "sli",
     "has unknown field(s) threshold"),
    ({"name": "a", "sli": []}, "sli", "must be an object"),
    ({"name": "a", "sli": {"kind": "speed"}}, "sli.kind", "'availability' or 'latency'"),
    ({"name": "a", "sli": {"kind": "latency"}}, "sli.threshold_seconds", "> 0"),
    ({"name": "a", "sli": {"kind": "latency", "threshold_seconds": 0.5000000001}},
     "sli.threshold_seconds", "got 0.5000000001;"),
    ({"name": "a", "sli": {"bad_status": "4.."}}, "sli.bad_status", "cannot be evaluated"),
    ({"name": "a", "selector": {"routes": "/x"}}, "selector.routes", "must be a list"),
    ({"name": "a", "selector": {"methods": ["GET\n"]}}, "selector.methods", "HTTP methods"),
    ({"name": "a", "objective_percent": 100.0}, "objective_percent", "got 100.0"),
    ({"name": "a", "objective_percent": 1e999}, "objective_percent", "got inf"),
    ({"name": "a", "period_days": 10 ** 400}, "period_days", "characters)"),
])
def test_every_error_names_the_file_the_entry_and_the_field_once(
        tmp_path: Path, entry: dict[str, object], field: str, shown: str) -> None:
    message = _load(tmp_path, {"slos": [{"name": "ok"}, entry]})
    path = str(tmp_path / "slos.json")
    where = f"slos[1].{field}" if field else "slos[1] "
    assert where in message and shown in message, message
    assert message.count(path) == 1 and message.count("slos[1]") == 1, message
    assert not field or message.replace(path, "").count(field) == 1, message
    assert len(message) < 500  # a 100,000-character name is not echoed back


def test_deep_nesting_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    # Deeper than Python's recursion limit: json raised a bare RecursionError.
    message = _load(tmp_path, "[" * 100_000 + "]" * 100_000)
    assert "slos.json" in message and f"deeper than {MAX_DEPTH} levels" in message


def test_nesting_just_past_the_limit_is_refused(tmp_path: Path) -> None:
    routes: object = ["/a"]
    for _ in range(MAX_DEPTH - 4):  # the schema's own four levels hold the routes list
        routes = [routes]
    ok = {"slos": [{"name": "a", "selector": {"routes": ["/a"]}}]}
    assert MonitoringConfig(slo=SLOSettings(file=_write(tmp_path, ok))).slo.all()
    message = _load(tmp_path, {"slos": [{"name": "a", "selector": {"routes": routes}}]})
    assert f"deeper than {MAX_DEPTH} levels" in message


def _write(tmp_path: Path, data: object) -> str:
    path = tmp_path / "ok.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_a_number_too_long_to_read_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    message = _load(tmp_path, '{"slos": [{"name": "a", "period_days": ' + "9" * 4301 + "}]}")
    assert "slos.json" in message and "is not valid JSON" in message


def test_at_most_max_slos(tmp_path: Path) -> None:
    many = {"slos": [{"name": f"s{i}"} for i in range(MAX_SLOS)]}
    assert len(MonitoringConfig(slo=SLOSettings(file=_write(tmp_path, many))).slo.all()) == MAX_SLOS
    message = _load(tmp_path, {"slos": [{"name": f"s{i}"} for i in range(MAX_SLOS + 1)]})
    assert f"at most {MAX_SLOS} SLOs, got {MAX_SLOS + 1}" in message
    # Code and file together are bounded too.
    with pytest.raises(ConfigError, match=f"at most {MAX_SLOS} SLOs together"):
        MonitoringConfig(slo=SLOSettings(file=_write(tmp_path, many),
                                         objectives=(SLO("extra"),)))


def test_a_name_at_the_limit_is_accepted() -> None:
    assert SLO("a" * MAX_NAME_CHARS).name == "a" * MAX_NAME_CHARS
    with pytest.raises(ConfigError, match=f"at most {MAX_NAME_CHARS} characters"):
        SLO("a" * (MAX_NAME_CHARS + 1))


def test_a_file_over_the_size_cap_is_refused(tmp_path: Path) -> None:
    padding = " " * MAX_FILE_BYTES
    message = _load(tmp_path, '{"slos": []}' + padding)
    assert "slos.json" in message and f"larger than {MAX_FILE_BYTES} bytes" in message
