"""What users install: the wheel and sdist hold the right files and metadata, the installed
package works from a fresh venv and type-checks strictly in a user's code (a missing package-data
entry, extra or classifier fails here, not on a user's machine). The compiled wheel for this
machine is built as the release workflow builds it (pyproject.toml's ``[tool.cibuildwheel]``) and
passes that configuration's test against its own install."""

from __future__ import annotations

import importlib.machinery
import os
import re
import subprocess
import sys
import tarfile
import venv
import zipfile
from email.message import Message
from email.parser import Parser
from pathlib import Path
from typing import Any

import pytest
from support import ROOT
from trove_classifiers import classifiers as known_classifiers

import asgi_monitor

# The one place the version is written.
_match = re.search(r'^version = "(.+)"$', (ROOT / "pyproject.toml").read_text("utf-8"), re.M)
assert _match is not None
VERSION = _match.group(1)
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An sdist, and a wheel built from that sdist (as `python -m build` does), so the wheel
    also proves the sdist is complete enough to build."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "-q", "-o", str(out), str(ROOT)], check=True,
                   capture_output=True, timeout=400)
    return out


@pytest.fixture(scope="module")
def wheel(dist: Path) -> Path:
    return next(dist.glob("asgi_monitoring-*.whl"))


@pytest.fixture(scope="module")
def sdist_names(dist: Path) -> set[str]:
    with tarfile.open(next(dist.glob("asgi_monitoring-*.tar.gz"))) as archive:
        return {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}


def wheel_metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return Parser().parsestr(archive.read(name).decode())


def test_wheel_files(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    dist_info = f"asgi_monitoring-{VERSION}.dist-info"
    for name in ["asgi_monitor/__init__.py", "asgi_monitor/py.typed",
                 "asgi_monitor/templates/base.html", "asgi_monitor/templates/dashboard.html",
                 "asgi_monitor/templates/static/uPlot.iife.min.js",
                 "asgi_monitor/templates/static/uPlot.LICENSE", f"{dist_info}/licenses/LICENSE"]:
        assert name in names, f"the wheel has no {name}"
    # The default build is pure Python: only the mypyc switch (the release workflow's
    # cibuildwheel, `make wheel`, `make install`) compiles the hot path.
    assert not [n for n in names if n.endswith((".so", ".pyd"))]
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "docs/"))]


def test_sdist_holds_what_the_readme_names(sdist_names: set[str]) -> None:
    for name in ["LICENSE", "CHANGELOG.md", "README.md", "Makefile", "pyproject.toml",
                 ".ci/run", "asgi_monitor/py.typed", "templates/base.html",
                 "templates/static/uPlot.iife.min.js", "tests/conftest.py",
                 "benchmarks/run.py", "deploy/Dockerfile", "deploy/grafana/provisioning"]:
        assert name in sdist_names or any(n.startswith(f"{name}/") for n in sdist_names), \
            f"the sdist has no {name}"
    # What the README links to, and what the docs pages it links to link to in turn.
    local: set[str] = set()
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        links = re.findall(r"\]\(([^)#\s]+)\)", text)
        named = re.findall(r"`((?:deploy|docs|benchmarks|templates|tests)/[\w./-]*\w)`", text)
        for target in links + named:
            if target.startswith(("http:", "https:")):
                continue
            if target in links and page.parent != ROOT:
                target = (page.parent / target).resolve().relative_to(ROOT).as_posix()
            local.add(target)
    assert "docs/security.md" in local and "deploy/Dockerfile" in local
    for target in local:
        assert target in sdist_names or any(n.startswith(f"{target.rstrip('/')}/")
                                            for n in sdist_names), f"the sdist has no {target}"
    assert not [n for n in sdist_names if n.endswith("_token") or "__pycache__" in n]


def test_metadata(wheel: Path) -> None:
    meta = wheel_metadata(wheel)
    assert meta["Name"] == "asgi-monitoring"
    assert meta["Version"] == VERSION == asgi_monitor.__version__
    assert meta["License-Expression"] == "MIT"
    assert meta.get_all("License-File") == ["LICENSE"]
    # Working on the project is dependency groups, not extras users could install.
    assert set(meta.get_all("Provides-Extra") or []) == {"demo", "otlp", "sqlalchemy"}
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or [])
    assert {"Homepage", "Source", "Changelog", "Issues", "Documentation"} <= set(urls)
    assert all(url.startswith("https://") for url in urls.values())

    classifiers = meta.get_all("Classifier") or []
    assert not set(classifiers) - known_classifiers, "a classifier PyPI would reject"
    # PEP 639: the license expression replaces the license classifiers (PyPI rejects both).
    assert not [c for c in classifiers if c.startswith("License ::")]
    for expected in ["Framework :: AsyncIO", "Typing :: Typed",
                     "Operating System :: OS Independent"]:
        assert expected in classifiers
    lowest = re.fullmatch(r">=3\.(\d+)", meta["Requires-Python"])
    assert lowest is not None
    minors = sorted(int(c.rsplit(".", 1)[1]) for c in classifiers
                    if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c))
    assert minors == list(range(int(lowest.group(1)), 15)), "one classifier per supported Python"


# A user's code, checked with `mypy --strict` against the installed wheel. user.py also has
# --disallow-any-expr: no value the public API hands back may be Any or contain it, so an untyped
# or Any-returning function fails here. The ASGI app is apart: ASGI messages are dicts of Any by
# the spec (starlette.types.Message).
MYPY_INI = """
[mypy]
strict = True
[mypy-user]
disallow_any_expr = True
"""

USER_APP = """
from starlette.types import Receive, Scope, Send


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
"""

USER_CODE = """
from __future__ import annotations

from typing_extensions import assert_type

import asgi_monitor
from asgi_monitor import (
    HealthSettings,
    MetricsCollector,
    Monitor,
    MonitoringConfig,
    MonitoringMiddleware,
    PathSettings,
    build_monitor,
    get_alert_manager,
    get_health_checker,
    get_metrics_collector,
    get_monitor,
)
from asgi_monitor.alerting import AlertManager, AlertSeverity
from asgi_monitor.health import HealthCheck, HealthChecker, HealthStatus
from user_app import app


def payments() -> HealthCheck:
    return HealthCheck("payments", HealthStatus.HEALTHY, "answers")


def backlog() -> bool:
    return False


config = MonitoringConfig(paths=PathSettings(metrics="/internal/metrics"),
                          health=HealthSettings(default_checks=False))
assert_type(config, MonitoringConfig)
assert_type(config.paths.metrics, str)
assert_type(MonitoringConfig.from_env(), MonitoringConfig)

monitored = MonitoringMiddleware(app, config)
assert_type(monitored, MonitoringMiddleware)
assert_type(get_monitor(), Monitor)
assert_type(MonitoringMiddleware(app, monitor=build_monitor(config)), MonitoringMiddleware)

metrics = get_metrics_collector()
assert_type(metrics, MetricsCollector)
metrics.increment_counter("signups_total", labels={"plan": "pro"})
metrics.set_gauge("queue_depth", 42)
metrics.record_histogram("job_duration_seconds", 1.5)

health = get_health_checker()
assert_type(health, HealthChecker)
health.register_check("payments", "Payment provider", payments)

alerts = get_alert_manager()
assert_type(alerts, AlertManager)
alerts.register_rule("backlog", "Backlog", backlog, AlertSeverity.WARNING)

assert_type(asgi_monitor.__version__, str)
"""


def fresh_venv(env_dir: Path, wheel: Path, groups: list[str] | None = None) -> Path:
    """A new venv with the wheel, its dependencies and these dependency groups; its python."""
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    # This venv's pip installing into the new one: `--group` needs pip >= 25.1, newer than the
    # pip ensurepip puts into a new venv.
    pyproject = ROOT / "pyproject.toml"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    str(wheel), *(f"--group={pyproject}:{group}" for group in groups or [])],
                   check=True, timeout=400)
    return python


def venv_env(python: Path) -> dict[str, str]:
    """The environment of a user of that venv: its bin first on PATH, and no PYTHONPATH pointing
    at the checkout (the tests themselves may run with one)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = f"{python.parent}{os.pathsep}{env['PATH']}"
    env["VIRTUAL_ENV"] = str(python.parent.parent)
    return env


def which_build(python: Path, cwd: Path) -> str:
    """What benchmarks/which_build.py says of the package ``python`` imports."""
    return subprocess.run([str(python), str(ROOT / "benchmarks" / "which_build.py")],
                          check=True, capture_output=True, text=True, cwd=cwd,
                          env=venv_env(python), timeout=120).stdout


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel and its dependencies installed; its python."""
    return fresh_venv(tmp_path_factory.mktemp("venv"), wheel)


def test_wheel_installs_into_a_fresh_venv_with_templates(installed: Path, tmp_path: Path) -> None:
    probe = (
        "import asgi_monitor, pathlib;"
        "from asgi_monitor.web.templating import environment;"
        "t = environment().get_template('base.html');"
        "print(pathlib.Path(asgi_monitor.__file__).parent);"
        "print('<' in t.render());"
        "print(asgi_monitor.__version__)"
    )
    out = subprocess.run([str(installed), "-c", probe], check=True, capture_output=True,
                         text=True, cwd=tmp_path, env=venv_env(installed),
                         timeout=120).stdout.split()
    assert Path(out[0]).is_relative_to(installed.parent.parent)  # the venv's, not the checkout
    assert out[1] == "True"
    assert out[2] == VERSION  # read from the installed metadata

    venv_package = installed.parent.parent / "lib"
    assert ", pure, from " in which_build(installed, tmp_path)
    assert str(venv_package) in which_build(installed, tmp_path)

    script = installed.parent / "asgi-monitor"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True,
                            cwd=tmp_path, env=venv_env(installed), timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"asgi-monitor {VERSION}"


def test_user_code_type_checks_strictly_against_the_installed_package(
        installed: Path, tmp_path: Path) -> None:
    (tmp_path / "mypy.ini").write_text(MYPY_INI)
    (tmp_path / "user_app.py").write_text(USER_APP)
    (tmp_path / "user.py").write_text(USER_CODE)
    # Every public name has a type of its own (a function may take Any, e.g. an SQLAlchemy engine,
    # but no name may be Any itself, as it is when the package's types are not found).
    (tmp_path / "names.py").write_text("import asgi_monitor\n" + "".join(
        f"reveal_type(asgi_monitor.{name})\n" for name in asgi_monitor.__all__))
    # This venv's mypy, resolving imports in the fresh venv: the installed wheel is what is
    # checked (without py.typed mypy would report "missing library stubs or py.typed marker").
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--python-executable", str(installed),
         "user_app.py", "user.py", "names.py"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    revealed = re.findall(r'^names\.py:\d+: note: Revealed type is "(.*)"$', result.stdout, re.M)
    assert len(revealed) == len(asgi_monitor.__all__), result.stdout
    assert "Any" not in revealed, result.stdout
    assert "Success: no issues found in 3 source files" in result.stdout


def test_the_version_is_written_once() -> None:
    assert asgi_monitor.__version__ == VERSION  # the installed package reads its metadata
    assert re.fullmatch(r"\d+\.\d+\.\d+", VERSION)
    sources = [p for p in (ROOT / "asgi_monitor").rglob("*.py")
               if re.search(r"^__version__\s*=\s*[\"']", p.read_text(encoding="utf-8"), re.M)]
    assert sources == []


def test_a_checkout_that_was_never_installed_reads_pyproject() -> None:
    probe = (
        "import importlib.metadata as m\n"
        "def missing(name): raise m.PackageNotFoundError(name)\n"
        "m.version = missing\n"
        "import asgi_monitor\n"
        "print(asgi_monitor.__file__)\n"
        "print(asgi_monitor.__version__)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True,
                         text=True, cwd=ROOT, timeout=120).stdout.split()
    assert Path(out[0]) == ROOT / "asgi_monitor" / "__init__.py"
    assert out[1] == VERSION


def test_a_source_checkout_finds_the_repository_templates() -> None:
    # `python -m asgi_monitor demo` in the repository, or an editable install, imports the
    # package from the checkout, where templates/ sits beside asgi_monitor/, not inside it.
    probe = (
        "import asgi_monitor, pathlib;"
        "from asgi_monitor.web.templating import environment, template_dir;"
        "environment().get_template('dashboard.html');"
        "print(pathlib.Path(asgi_monitor.__file__).parent);"
        "print(template_dir())"
    )
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True,
                         text=True, cwd=ROOT, timeout=120).stdout.split()
    assert Path(out[0]) == ROOT / "asgi_monitor"
    assert Path(out[1]) == ROOT / "templates"
    assert (Path(out[1]) / "static").is_dir()


def test_the_changelog_starts_at_the_current_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    versions = re.findall(r"^## \[([^\]]+)\]", changelog, re.M)
    assert versions[0] == "Unreleased"
    assert VERSION in versions
    for version in versions:  # Keep a Changelog: every heading links its comparison or tag
        assert re.search(rf"^\[{re.escape(version)}\]: https://", changelog, re.M), version
    assert "### Added" in changelog


# -- the compiled wheel -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cibuildwheel(pyproject: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = pyproject["tool"]["cibuildwheel"]
    return config


@pytest.fixture(scope="module")
def compiled_wheel(dist: Path, cibuildwheel: dict[str, Any],
                   tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This machine's compiled wheel, built from the sdist with cibuildwheel's environment (the
    mypyc switch), as `make wheel` builds it. From an unpacked copy: mypyc leaves its build
    products beside the sources, and the checkout must stay pure Python."""
    src = tmp_path_factory.mktemp("sdist")
    with tarfile.open(next(dist.glob("asgi_monitoring-*.tar.gz"))) as archive:
        archive.extractall(src, filter="data")
    out = tmp_path_factory.mktemp("compiled")
    env = {**os.environ, **cibuildwheel["environment"]}
    subprocess.run([sys.executable, "-m", "build", "-q", "--wheel", "-o", str(out),
                    str(next(src.iterdir()))], check=True, capture_output=True, env=env,
                   timeout=600)
    return next(out.glob("asgi_monitoring-*.whl"))


@pytest.fixture(scope="module")
def compiled_installed(compiled_wheel: Path, cibuildwheel: dict[str, Any],
                       tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the compiled wheel and cibuildwheel's test groups, as cibuildwheel
    prepares a wheel's test; its python."""
    return fresh_venv(tmp_path_factory.mktemp("compiled-venv"), compiled_wheel,
                      cibuildwheel["test-groups"])


def hot_path_modules(pyproject: dict[str, Any]) -> list[str]:
    """What the mypyc hook compiles, as module names."""
    include = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["hooks"]["mypyc"]["include"]
    return [path.removesuffix(".py").replace("/", ".") for path in include]


def test_the_compiled_wheel_is_for_this_interpreter_and_platform(
        compiled_wheel: Path, pyproject: dict[str, Any]) -> None:
    python = f"cp{sys.version_info.major}{sys.version_info.minor}"
    assert compiled_wheel.name.startswith(f"asgi_monitoring-{VERSION}-{python}-{python}-")
    assert not compiled_wheel.name.endswith("-none-any.whl")
    names = zipfile.ZipFile(compiled_wheel).namelist()
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    for module in hot_path_modules(pyproject):
        assert module.replace(".", "/") + suffix in names, f"{module} is not compiled"
        assert module.replace(".", "/") + ".py" in names  # the source ships beside it
    # Everything else ships as in the pure wheel.
    assert {"asgi_monitor/py.typed", "asgi_monitor/templates/dashboard.html"} <= set(names)


def test_the_installed_hot_path_is_extension_modules(compiled_installed: Path,
                                                     pyproject: dict[str, Any],
                                                     tmp_path: Path) -> None:
    modules = hot_path_modules(pyproject)
    probe = ("import importlib, importlib.machinery, sys\n"
             "print(importlib.import_module('asgi_monitor').__file__)\n"
             "for name in sys.argv[1:]:\n"
             "    print(importlib.import_module(name).__file__)\n"
             "print(*importlib.machinery.EXTENSION_SUFFIXES)\n")
    lines = subprocess.run([str(compiled_installed), "-c", probe, *modules], check=True,
                           capture_output=True, text=True, cwd=tmp_path,
                           env=venv_env(compiled_installed), timeout=120).stdout.splitlines()
    venv_dir = compiled_installed.parent.parent
    package, files, suffixes = Path(lines[0]), lines[1:-1], tuple(lines[-1].split())
    assert package.is_relative_to(venv_dir)  # the venv's, not the checkout
    assert package.name == "__init__.py"  # the package itself stays Python
    for module, file in zip(modules, files, strict=True):
        assert Path(file).is_relative_to(venv_dir), file
        assert file.endswith(suffixes), f"{module} loads from {file}, not an extension module"
    assert f", compiled, from {package.parent}" in which_build(compiled_installed, tmp_path)


def test_the_compiled_install_passes_the_release_test_command(
        compiled_installed: Path, cibuildwheel: dict[str, Any], tmp_path: Path) -> None:
    """cibuildwheel's test-command, run as cibuildwheel runs it: in a directory outside the
    checkout, with the wheel's venv first on PATH and nothing pointing at the checkout."""
    command = " && ".join(cibuildwheel["test-command"]).replace("{project}", str(ROOT))
    result = subprocess.run(command, shell=True, capture_output=True, text=True, cwd=tmp_path,
                            env=venv_env(compiled_installed), timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"compiled, from {compiled_installed.parent.parent}" in result.stdout
    assert re.search(r"^\d+ passed", result.stdout, re.M), result.stdout[-2000:]
