"""The package's structure: no import circles, the core never imports the web layer, the hot
path imports only what a request needs, and ``import asgi_monitor`` loads no optional weight."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "asgi_monitor"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str) -> set[str]:
    """The package modules ``name`` imports at module level, ``if TYPE_CHECKING:`` included
    (a type-only circle is still a circle a reader has to untangle); imports inside functions
    are deliberate late imports and left out."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in node.names:
                    for candidate in (f"{base}.{alias.name}", base):
                        if candidate in MODULES:
                            found.add(candidate)
                            break
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name in MODULES)

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    found.discard(name)
    return found


GRAPH = {name: _imports(name) for name in MODULES}


def _reachable(start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(GRAPH[name])
    return seen


def test_the_graph_is_read() -> None:
    # So the tests below cannot pass on an empty graph: known arrows are found.
    assert "asgi_monitor.store.single" in GRAPH["asgi_monitor.middleware"]
    assert "asgi_monitor.monitor" in GRAPH["asgi_monitor.build"]
    assert "asgi_monitor.config.declare" in GRAPH["asgi_monitor.config.gate"]


def test_no_import_circles() -> None:
    circles = sorted({tuple(sorted({name, other})) for name in GRAPH for other in GRAPH[name]
                      if name in _reachable(other)})
    assert not circles, f"modules that import each other, directly or not: {circles}"


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
    # families and exposition: the store's scrape side (prometheus_client's family classes, and
    # the text written from the store's numbers), as request_metrics has always imported them.
    allowed = {"asgi_monitor.middleware", "asgi_monitor.store.single", "asgi_monitor.routes",
               "asgi_monitor.errors", "asgi_monitor.secret", "asgi_monitor.sampling.inputs",
               "asgi_monitor.store.families", "asgi_monitor.store.exposition"}
    reached = {m for m in _reachable("asgi_monitor.middleware")
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
