"""The package's structure: no import circles, the core never imports the web layer, the hot
path imports only what a request needs, and ``import asgi_monitor`` loads no optional weight."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "asgi_monitor"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str, *, module_level: bool = False, typing: bool = True) -> set[str]:
    """The package modules ``name`` imports: everywhere (inside functions too, as the code runs
    them), or with ``module_level`` only those its own import runs; ``if TYPE_CHECKING:``
    blocks count unless ``typing`` is false (a type-only circle is still a circle a reader has
    to untangle, but such an import never runs)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If):
                if typing or not ast.unparse(node.test).endswith("TYPE_CHECKING"):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
            elif isinstance(node, (ast.ImportFrom, ast.Import)):
                found.update(_targets(node, package))
            elif not module_level:
                for inner in ast.walk(node):
                    if isinstance(inner, (ast.ImportFrom, ast.Import)):
                        found.update(_targets(inner, package))

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    found.discard(name)
    return found


def _targets(node: ast.Import | ast.ImportFrom, package: str) -> set[str]:
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in MODULES}
    found: set[str] = set()
    base = node.module or ""
    if node.level:
        anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
        base = ".".join(anchor + ([base] if base else []))
    for alias in node.names:
        for candidate in (f"{base}.{alias.name}", base):
            if candidate in MODULES:
                found.add(candidate)
                break
    return found


GRAPH = {name: _imports(name) for name in MODULES}
# What importing a module runs: the hot path's budget is about this one.
MODULE_GRAPH = {name: _imports(name, module_level=True) for name in MODULES}


def _reachable(start: str, graph: dict[str, set[str]] = GRAPH) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(graph[name])
    return seen


def _floors(graph: dict[str, set[str]]) -> dict[str, int]:
    """A module's floor: one above the highest floor among the modules it imports (the graph
    has no circle, which the tests below hold)."""
    floors: dict[str, int] = {}

    def floor(name: str) -> int:
        if name not in floors:
            floors[name] = 1 + max((floor(other) for other in graph[name]), default=0)
        return floors[name]

    for name in graph:
        floor(name)
    return floors


def test_the_graph_is_read() -> None:
    # So the tests below cannot pass on an empty graph: known arrows are found, those inside
    # functions too (the composition root loads the web layer on first use).
    assert "asgi_monitor.store.single" in GRAPH["asgi_monitor.middleware"]
    assert "asgi_monitor.monitor" in GRAPH["asgi_monitor.build"]
    assert "asgi_monitor.config.declare" in GRAPH["asgi_monitor.config.gate"]
    assert "asgi_monitor.web.app" in GRAPH["asgi_monitor.build"]
    assert "asgi_monitor.web.app" not in MODULE_GRAPH["asgi_monitor.build"]


def test_no_import_circles() -> None:
    circles = sorted({tuple(sorted({name, other})) for name in GRAPH for other in GRAPH[name]
                      if name in _reachable(other)})
    assert not circles, f"modules that import each other, directly or not: {circles}"


def test_the_floors_stay_few() -> None:
    # Imports inside functions count (they run on first use), type-only ones do not (they never
    # run). A new floor is a layer a reader has to learn: raise this bound only for a reason.
    floors = _floors({name: _imports(name, typing=False) for name in MODULES})
    assert max(floors.values()) <= 9, sorted(floors.items(), key=lambda item: -item[1])[:8]
    # The composition root sits above what it assembles: the process default, the hot path, the
    # store choice, the collector, the monitor and the web layer.
    build = floors["asgi_monitor.build"]
    for part in ("default", "middleware", "store.choice", "collector", "monitor", "web.app"):
        assert floors[f"asgi_monitor.{part}"] < build, part


def test_a_circle_is_found_when_there_is_one() -> None:
    # The check itself: add one back-arrow and it must see the circle.
    GRAPH["asgi_monitor.config.declare"].add("asgi_monitor.config.gate")
    try:
        assert "asgi_monitor.config.gate" in _reachable("asgi_monitor.config.declare")
        assert "asgi_monitor.config.declare" in _reachable("asgi_monitor.config.gate")
    finally:
        GRAPH["asgi_monitor.config.declare"].discard("asgi_monitor.config.gate")


@pytest.mark.parametrize("core", sorted(
    name for name in MODULES
    if not name.startswith(("asgi_monitor.web", "asgi_monitor.demo", "asgi_monitor.__main__"))
    and name not in ("asgi_monitor", "asgi_monitor.build")))
def test_the_core_never_imports_the_web_layer(core: str) -> None:
    assert not {m for m in _reachable(core) if m.startswith("asgi_monitor.web")}


def test_the_hot_path_imports_only_what_a_request_needs() -> None:
    # families, exposition and protobuf_scrape: the store's scrape side
    # (prometheus_client's family classes, the text written from the store's numbers, whether
    # protobuf is asked for), as the single-process store has always imported them. Imports
    # inside functions are left out here: the middleware loads the process default and the
    # optional parts when it is built, not per request.
    allowed = {"asgi_monitor.middleware", "asgi_monitor.store.single", "asgi_monitor.routes",
               "asgi_monitor.errors", "asgi_monitor.secret", "asgi_monitor.sampling.inputs",
               "asgi_monitor.store.families", "asgi_monitor.store.exposition",
               "asgi_monitor.store.cap", "asgi_monitor.store.settings",
               # the native histograms' buckets, observed per request when they are on
               "asgi_monitor.store.native", "asgi_monitor.store.protobuf_scrape"}
    reached = {m for m in _reachable("asgi_monitor.middleware", MODULE_GRAPH)
               if not m.startswith("asgi_monitor.config")}
    assert reached <= allowed, sorted(reached - allowed)


PROBE = """
import sys
{imports}
heavy = ("httpx", "aiosmtplib", "jinja2", "psutil", "asgi_monitor.web", "asgi_monitor.alerting",
         "asgi_monitor.health", "asgi_monitor.monitor")
print(sorted(name for name in heavy if name in sys.modules))
"""


@pytest.mark.parametrize("imports", [
    "import asgi_monitor",
    "from asgi_monitor import MonitoringMiddleware, MonitoringConfig, GateSettings",
])
def test_importing_the_package_loads_no_optional_weight(imports: str) -> None:
    result = subprocess.run([sys.executable, "-c", PROBE.format(imports=imports)],
                            capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]", result.stdout


def test_each_weight_loads_when_its_feature_starts() -> None:
    # The same probe can see them: building a monitor with e-mail and webhooks on loads the
    # components, and sending through a channel loads its client (here: the import only).
    code = PROBE.format(imports="import asgi_monitor\nm = asgi_monitor.build_monitor()")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=True)
    loaded = result.stdout.strip()
    assert "asgi_monitor.monitor" in loaded and "psutil" in loaded, loaded
    assert "httpx" not in loaded and "jinja2" not in loaded, loaded



DECLARATIONS = """
import json, re, sys
{imports}
from asgi_monitor.config.declare import Section
config = [m for name, m in list(sys.modules.items()) if name.startswith("asgi_monitor.config")]
sections = {{c for m in config for c in vars(m).values()
            if isinstance(c, type) and issubclass(c, Section) and c is not Section}}
print(json.dumps({{
    "sections": len(sections),
    "made": sorted(c.__name__ for c in sections if "__dataclass_fields__" in vars(c)),
    "patterns": sorted(m.__name__ + "." + k for m in config for k, v in vars(m).items()
                       if isinstance(v, re.Pattern)),
    "slo_model": "asgi_monitor.config.objectives" in sys.modules,
}}))
"""


def _declarations(imports: str) -> dict[str, Any]:
    result = subprocess.run([sys.executable, "-c", DECLARATIONS.format(imports=imports)],
                            capture_output=True, text=True, timeout=60, check=True)
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def test_importing_the_package_makes_no_dataclass_and_compiles_no_pattern() -> None:
    # The sections' dataclass methods are generated on first use, regular expressions are
    # compiled when a value is checked, and the SLO model loads when there are SLOs: the
    # declarations were most of what `import asgi_monitor` cost (benchmarks/README.md).
    found = _declarations("import asgi_monitor")
    assert found["sections"] >= 13, found
    assert (found["made"], found["patterns"], found["slo_model"]) == ([], [], False), found


def test_the_first_configuration_makes_every_section() -> None:
    # The probe above can see them: building the default configuration makes all of them.
    found = _declarations("import asgi_monitor\nasgi_monitor.MonitoringConfig()")
    assert len(found["made"]) == found["sections"] >= 13, found


if __name__ == "__main__":
    # `python tests/unit/test_structure.py` prints every module's floor (docs/architecture.md).
    for floor, name in sorted((f, n) for n, f in _floors(
            {name: _imports(name, typing=False) for name in MODULES}).items()):
        print(floor, name)
