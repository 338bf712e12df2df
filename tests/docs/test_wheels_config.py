"""The compiled wheels a release ships: pyproject.toml's ``[tool.cibuildwheel]`` and
.github/workflows/wheels.yml build one for every supported CPython on every platform
docs/installation.md names, with the mypyc switch on, each tested against its own install; the
sdist and the pure-Python wheel are built beside them. Nothing is built here (that takes Docker,
macOS and Windows): cibuildwheel itself says which wheels the configuration selects, as the
workflow's jobs run it. tests/docs/test_packaging.py builds and tests this machine's wheel."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

import pytest
import yaml
from support import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "wheels.yml"
# The platform tags of the compiled wheels, by cibuildwheel platform (glibc Linux only).
PLATFORM_TAGS = {"linux": ["manylinux_x86_64", "manylinux_aarch64"],
                 "macos": ["macosx_x86_64", "macosx_arm64"],
                 "windows": ["win_amd64"]}
RUNNER_PLATFORM = {"ubuntu": "linux", "macos": "macos", "windows": "windows"}


def supported_pythons(pyproject: dict[str, Any]) -> list[str]:
    """cp310, cp311, ...: one per Python version classifier."""
    found = [re.fullmatch(r"Programming Language :: Python :: 3\.(\d+)", c)
             for c in pyproject["project"]["classifiers"]]
    return [f"cp3{m.group(1)}" for m in found if m]


def expected(pyproject: dict[str, Any], platform: str) -> set[str]:
    return {f"{python}-{tag}" for python in supported_pythons(pyproject)
            for tag in PLATFORM_TAGS[platform]}


def selected(platform: str, env: dict[str, str] | None = None) -> set[str]:
    """The build identifiers cibuildwheel would build on ``platform``, with ``env`` set."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CIBW_")}
    result = subprocess.run(
        [sys.executable, "-m", "cibuildwheel", "--print-build-identifiers", "--platform", platform,
         str(ROOT)],
        capture_output=True, text=True, env={**clean, **(env or {})}, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    return loaded


def with_matrix(text: str, entry: dict[str, Any]) -> str:
    """``text`` with each ``${{ matrix.NAME }}`` replaced by the entry's value, as Actions does."""
    return re.sub(r"\$\{\{\s*matrix\.(\w+)\s*\}\}", lambda m: str(entry[m.group(1)]), text)


def cibuildwheel_step(job: dict[str, Any]) -> dict[str, Any]:
    steps = [s for s in job["steps"] if str(s.get("uses", "")).startswith("pypa/cibuildwheel@")]
    assert len(steps) == 1, "one cibuildwheel step per job"
    return steps[0]


def test_every_python_is_supported_from_3_10_to_3_14(pyproject: dict[str, Any]) -> None:
    assert supported_pythons(pyproject) == ["cp310", "cp311", "cp312", "cp313", "cp314"]


@pytest.mark.parametrize("platform", sorted(PLATFORM_TAGS))
def test_the_configuration_selects_every_target(pyproject: dict[str, Any], platform: str) -> None:
    # Free-threaded (cp314t), musllinux and 32-bit builds get the pure wheel: not selected.
    assert selected(platform) == expected(pyproject, platform)


def test_the_workflow_builds_every_target_once(pyproject: dict[str, Any],
                                               workflow: dict[str, Any]) -> None:
    job = workflow["jobs"]["compiled"]
    step = cibuildwheel_step(job)
    built: dict[str, str] = {}
    for entry in job["strategy"]["matrix"]["include"]:
        env = {name: with_matrix(str(value), entry) for name, value in step.get("env", {}).items()}
        platform = env["CIBW_PLATFORM"]
        assert RUNNER_PLATFORM[entry["os"].split("-")[0]] == platform, entry
        for identifier in selected(platform, env):
            assert identifier not in built, f"{identifier}: built by {built.get(identifier)} too"
            built[identifier] = entry["os"]
    assert set(built) == set().union(*(expected(pyproject, p) for p in PLATFORM_TAGS))
    # Each job's wheels in an artifact of their own (two jobs may not upload to one name).
    upload = next(s for s in job["steps"] if str(s.get("uses", "")).startswith(
        "actions/upload-artifact@"))
    assert "${{ matrix.platform }}" in upload["with"]["name"]
    assert "${{ matrix.archs }}" in upload["with"]["name"]


def test_the_mypyc_switch_is_on_for_every_compiled_wheel(pyproject: dict[str, Any],
                                                         workflow: dict[str, Any]) -> None:
    hooks = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["hooks"]
    assert hooks["mypyc"]["enable-by-default"] is False  # a plain build stays pure Python
    # Hatch's switch for a hook that is off by default.
    switch = "HATCH_BUILD_HOOK_ENABLE_MYPYC"
    config = pyproject["tool"]["cibuildwheel"]
    assert config["environment"][switch] == "1"
    for platform in PLATFORM_TAGS:  # no platform table replaces the environment without it
        assert config.get(platform, {}).get("environment", {switch: "1"})[switch] == "1"
    assert "overrides" not in config
    # Environment variables win over pyproject.toml: the workflow sets none that would.
    for job in workflow["jobs"].values():
        for where in [workflow, job, *job["steps"]]:
            names = set(where.get("env") or {})
            assert not {n for n in names if n.startswith(("CIBW_ENVIRONMENT", "CIBW_BUILD",
                                                          "CIBW_SKIP", "CIBW_TEST"))}, names
            if job is not workflow["jobs"]["compiled"]:
                assert switch not in names  # the pure wheel and sdist: hook off


def test_each_compiled_wheel_is_tested_against_its_own_install(pyproject: dict[str, Any]) -> None:
    config = pyproject["tool"]["cibuildwheel"]
    commands = config["test-command"]
    # First that the wheel's hot path is compiled, then the middleware tests. cibuildwheel runs
    # them in a temporary directory with the wheel installed, so they import the wheel; nothing
    # may point them back at the checkout.
    assert commands[0] == "python {project}/benchmarks/which_build.py --expect compiled"
    assert re.fullmatch(r"python -m pytest .*\{project\}/tests/unit/hot_path", commands[1])
    assert "PYTHONPATH" not in " ".join(commands) + str(config["environment"])
    assert "test-sources" not in config
    # The groups hold what those tests import (FastAPI and Litestar for the route templates).
    groups = pyproject["dependency-groups"]
    assert config["test-groups"] == ["test", "frameworks"]
    assert all(group in groups for group in config["test-groups"])
    assert {"pytest", "hypothesis", "fastapi", "litestar"} <= {
        re.split(r"[^\w-]", item, maxsplit=1)[0] for group in config["test-groups"]
        for item in groups[group] if isinstance(item, str)}


def test_the_same_workflow_builds_the_sdist_and_the_pure_wheel(workflow: dict[str, Any]) -> None:
    job = workflow["jobs"]["pure"]
    runs = [s["run"] for s in job["steps"] if "run" in s]
    assert any(re.fullmatch(r"python -m build( --outdir dist)?", r.strip()) for r in runs)
    assert any("py3-none-any.whl" in r for r in runs)
    assert set(workflow["jobs"]["dist"]["needs"]) == {"compiled", "pure"}


def test_the_benchmark_build_check_knows_the_compiled_modules(pyproject: dict[str, Any]) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import which_build
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    include = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["hooks"]["mypyc"]["include"]
    modules = [path.removesuffix(".py").replace("/", ".") for path in include]
    assert sorted(which_build.HOT_PATH) == sorted(modules)
