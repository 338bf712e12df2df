"""What users install: the wheel and sdist hold the right files and metadata, the installed
package works from a fresh venv and type-checks strictly in a user's code (a missing package-data
entry, extra or classifier fails here, not on a user's machine)."""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import venv
import zipfile
from email.message import Message
from email.parser import Parser
from pathlib import Path

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
    # The default wheel is pure Python; only `make install` compiles the hot path.
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


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel and its dependencies installed; its python."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], check=True,
                   timeout=300)
    return python


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
                         text=True, cwd=tmp_path, timeout=120).stdout.split()
    assert Path(out[0]).is_relative_to(installed.parent.parent)  # the venv's, not the checkout
    assert out[1] == "True"
    assert out[2] == VERSION  # read from the installed metadata

    script = installed.parent / "asgi-monitor"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True,
                            cwd=tmp_path, timeout=60)
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
