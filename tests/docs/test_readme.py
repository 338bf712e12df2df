"""The README and docs/ stay true: their examples run, and their references list exactly what the
code has.

- Python blocks preceded by ``<!-- test -->`` (in README.md and every docs/ page) are run, each
  in a fresh interpreter (the process-wide monitor can be created only once per process, as in a
  user's app). A block marked
  ``<!-- test: GET /items/42 counts as /items/{item_id} -->`` must also define ``app``; the request
  is sent to it and its own ``/api/metrics`` must count it under that route template.
- Every ``MonitoringConfig`` environment variable has a row in docs/configuration.md, with
  a default its own parser reads back as the field's default, and no row names a variable that
  does not exist.
- Every endpoint of the sub-app (``endpoints(monitor)``) has a row in the README's endpoint
  reference with its method and access level, and no row is stale.
- Every CLI command and option appears in docs/command-line.md; the benchmark figures in the
  README and docs/performance.md are copied from benchmarks/README.md.
- The README stays a front door (under 16 KiB, linking every docs/ page), and every relative link
  in the Markdown files names an existing file and section.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from support import ROOT

from asgi_monitor.__main__ import _parser
from asgi_monitor.config import reference, variables
from asgi_monitor.monitor import Monitor
from asgi_monitor.web.app import endpoints

README_PATH = ROOT / "README.md"
README = README_PATH.read_text(encoding="utf-8")
DOCS = ROOT / "docs"
CONFIGURATION = DOCS / "configuration.md"
COMMAND_LINE = DOCS / "command-line.md"
PERFORMANCE = DOCS / "performance.md"
BENCHMARKS = ROOT / "benchmarks" / "README.md"
# The pages a user reads: their examples run and the settings they name exist.
DOC_PAGES = [README_PATH, *sorted(DOCS.glob("*.md"))]
# Every Markdown file whose links are checked.
MARKDOWN = [*DOC_PAGES, BENCHMARKS, ROOT / "benchmarks" / "HISTORY.md"]
# The README is a front door; reference material lives in docs/.
README_MAX_BYTES = 16 * 1024

# Variables that are documented but are not MonitoringConfig fields.
EXTRA_VARIABLES = {"PROMETHEUS_MULTIPROC_DIR"}

_MARKED_BLOCK = re.compile(r"<!-- test(?P<spec>:[^>]*)? -->\n```python\n(?P<code>.*?)```",
                           re.DOTALL)
_SERVES = re.compile(r":\s*GET (?P<path>\S+) counts as (?P<template>\S+)\s*$")


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def section(title: str, path: Path = README_PATH) -> str:
    """The text of the ``## title`` section, up to the next section of the same level."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", read(path), re.M | re.S)
    assert match, f"{relative(path)} has no '## {title}' section"
    return match.group(1)


def without_code(text: str) -> str:
    """``text`` with its fenced code blocks blanked out (their lines kept, empty)."""
    return re.sub(r"^```.*?^```", lambda m: "\n" * m.group(0).count("\n"), text,
                  flags=re.M | re.S)


def table_rows(text: str) -> list[list[str]]:
    """Cells of every table row in ``text`` (header and separator rows excluded)."""
    def separator(line: str) -> bool:
        return line.startswith("|") and set(line.strip()) <= {"|", "-", ":", " "}

    lines = text.splitlines()
    rows = []
    for i, line in enumerate(lines):
        header = i + 1 < len(lines) and separator(lines[i + 1])
        if not line.startswith("|") or separator(line) or header:
            continue
        rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
    return rows


# -- runnable examples ---------------------------------------------------------------------------

def _marked_blocks() -> list[tuple[str, str, str]]:
    """(file:line, test spec, code) of every marked block in the README and docs/."""
    blocks = []
    for path in DOC_PAGES:
        text = read(path)
        for m in _MARKED_BLOCK.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            blocks.append((f"{relative(path)}:{line}", m.group("spec") or "", m.group("code")))
    return blocks


BLOCKS = _marked_blocks()

SERVE_CHECK = '''

# -- appended by tests/docs/test_readme.py --
import asyncio as _asyncio

import httpx as _httpx

from asgi_monitor import get_monitor as _get_monitor


async def _readme_check() -> None:
    transport = _httpx.ASGITransport(app=app)
    async with _httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get({path!r})
        assert response.status_code == 200, (response.status_code, response.text)
        metrics = await client.get("/api/metrics")
        assert metrics.status_code == 200, metrics.status_code
    await _get_monitor().stop()
    expected = {expected!r}
    assert expected in metrics.text, [line for line in metrics.text.splitlines()
                                      if line.startswith("http_requests_total")]


_asyncio.run(_readme_check())
'''


def _clean_env() -> dict[str, str]:
    names = set(variables()) | EXTRA_VARIABLES
    return {k: v for k, v in os.environ.items() if k not in names}


def test_readme_has_the_runnable_examples() -> None:
    serving = [spec for where, spec, _ in BLOCKS
               if where.startswith("README.md:") and _SERVES.match(spec)]
    assert len(serving) >= 4, "the Starlette, FastAPI, Litestar and raw ASGI examples are run"
    assert len(BLOCKS) >= 11, "the README's examples and the docs pages' run"
    for _, spec, _ in BLOCKS:
        assert not spec or _SERVES.match(spec), f"unknown test marker {spec!r}"


@pytest.mark.parametrize(("where", "spec", "code"), BLOCKS, ids=[where for where, _, _ in BLOCKS])
def test_readme_example_runs(tmp_path: Path, where: str, spec: str, code: str) -> None:
    serves = _SERVES.match(spec)
    if serves:
        expected = (f'http_requests_total{{method="GET",route="{serves["template"]}",'
                    f'status="200"}} 1.0')
        code += SERVE_CHECK.format(path=serves["path"], expected=expected)
    script = tmp_path / "readme_example.py"
    script.write_text(code, encoding="utf-8")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            cwd=tmp_path, env=_clean_env(), timeout=120)
    assert result.returncode == 0, (
        f"{where}: the example failed\n{result.stdout}\n{result.stderr}")


# -- configuration reference ---------------------------------------------------------------------

# The OpenTelemetry SDK's variables in milliseconds (their names are the spec's).
OTEL_MILLISECONDS = {"OTEL_METRIC_EXPORT_INTERVAL", "OTEL_EXPORTER_OTLP_TIMEOUT",
                     "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT"}


def _documented_variables() -> dict[str, str]:
    """variable -> its default cell, from every table of docs/configuration.md's settings."""
    documented: dict[str, str] = {}
    for cells in table_rows(section("Settings", CONFIGURATION)):
        if len(cells) != 4:
            continue
        for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0]):
            assert name not in documented, f"{name} is documented twice"
            documented[name] = cells[2]
    return documented


def test_settings_reference_is_generated_from_the_declarations() -> None:
    assert reference() in section("Settings", CONFIGURATION), (
        "docs/configuration.md's settings differ from `asgi-monitor config --reference`")


def test_every_environment_variable_is_documented_with_its_default() -> None:
    documented = _documented_variables()
    missing = [v for v in variables() if v not in documented]
    assert not missing, f"docs/configuration.md's settings lack {missing}"
    for variable, (_, meta, default) in variables().items():
        cell = documented[variable]
        value = re.match(r"`([^`]*)`", cell)
        if default in (None, "", ()):
            assert value is None and cell.startswith("(none"), (
                f"{variable}: default is unset, the docs say {cell!r}")
            continue
        assert value is not None, f"{variable}: no default in {cell!r}"
        parse = next((e.parse for e in meta.env if e.name == variable), None) or meta.parse
        if variable in OTEL_MILLISECONDS:
            # OpenTelemetry's names carry no unit; the docs show seconds, the variable is in ms.
            assert parse(str(float(value[1]) * 1000)) == default, variable
            continue
        if parse is None or variable.endswith(("_MS", "_MINUTES")):
            continue  # shown in the setting's unit (seconds), not the variable's
        assert parse(value[1]) == default, (
            f"{variable}: the docs say {value[1]!r}, the code {default!r}")


def test_no_documented_variable_is_stale() -> None:
    stale = sorted(set(_documented_variables()) - set(variables()))
    assert not stale, f"docs/configuration.md documents variables the code does not read: {stale}"
    for name in EXTRA_VARIABLES:
        assert name in section("Settings", CONFIGURATION)


@pytest.mark.parametrize("path", DOC_PAGES, ids=relative)
def test_every_variable_named_anywhere_in_the_readme_exists(path: Path) -> None:
    known = set(variables()) | EXTRA_VARIABLES | {"CI", "PYTEST_ARGS"}
    prefixes = ("MONITORING_", "ALERT", "SMTP_", "HEALTH_", "ENABLE_", "METRICS_", "FROM_")
    named = set(re.findall(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b", read(path)))
    # Prefix families written as `SMTP_*` and the like are not names.
    unknown = sorted(n for n in named if n.startswith(prefixes) and n not in known)
    assert not unknown, f"{relative(path)} names settings that do not exist: {unknown}"


# -- endpoint reference --------------------------------------------------------------------------

def test_every_endpoint_is_documented_with_its_access_level(
        make_monitor: Callable[..., Monitor]) -> None:
    monitor = make_monitor()
    expected = {(method, e.path, e.access) for e in endpoints(monitor) for method in e.methods}
    documented = set()
    for cells in table_rows(section("Endpoint reference")):
        match = re.fullmatch(r"`([A-Z]+) (/\S*)`", cells[0])
        assert match, f"endpoint row without `METHOD /path`: {cells}"
        documented.add((match[1], match[2], cells[1]))
    assert expected - documented == set(), "missing from README.md's endpoint reference"
    assert documented - expected == set(), "in README.md's endpoint reference but not the code"


# -- command line --------------------------------------------------------------------------------

def test_every_cli_command_and_option_is_documented() -> None:
    cli = read(COMMAND_LINE)
    subparsers = next(a for a in _parser()._actions
                      if isinstance(a, argparse._SubParsersAction))
    for name, parser in subparsers.choices.items():
        assert f"`asgi-monitor {name}" in cli, f"asgi-monitor {name} is not documented"
        for action in parser._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert option in cli, f"asgi-monitor {name} {option} is not documented"


def test_make_targets_in_the_quick_start_exist() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    quick = section("Quick start")
    commands = re.findall(r"^make (\w+)", quick, re.M)
    assert commands == ["demo", "test"], "the quick start is exactly `make demo` and `make test`"
    for target in commands + ["bench"]:
        assert re.search(rf"^{target}:", makefile, re.M), f"Makefile has no {target} target"


# -- links --------------------------------------------------------------------------------------

def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", without_code(read(path)), re.M)}


@pytest.mark.parametrize("path", MARKDOWN, ids=relative)
def test_links_point_at_existing_sections_and_files(path: Path) -> None:
    for target in re.findall(r"\]\(([^)\s]+)\)", without_code(read(path))):
        if target.startswith(("http://", "https://")):
            continue
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        assert linked.exists(), f"{relative(path)}: the link {target} names a missing file"
        if anchor:
            assert linked.suffix == ".md", f"{relative(path)}: {target} has an anchor in a non-page"
            assert anchor in _anchors(linked), f"{relative(path)}: no section for the link {target}"


def test_readme_is_a_front_door_linking_every_docs_page() -> None:
    size = len(README.encode("utf-8"))
    assert size <= README_MAX_BYTES, (
        f"README.md is {size} bytes; move reference material to docs/ (at most {README_MAX_BYTES})")
    linked = {target.partition("#")[0] for target in re.findall(r"\]\(([^)\s]+)\)", README)}
    unlinked = [relative(page) for page in DOC_PAGES[1:] if relative(page) not in linked]
    assert not unlinked, f"README.md does not link {unlinked}"


# -- benchmarks ----------------------------------------------------------------------------------

def _table_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("|")]


def test_benchmark_figures_are_copied_from_benchmarks_readme() -> None:
    source = set(read(BENCHMARKS).splitlines())
    rows = _table_lines(read(PERFORMANCE))
    assert len(rows) >= 20, "the in-process and uvicorn tables"
    for line in rows:
        assert line in source, f"docs/performance.md, not in benchmarks/README.md: {line}"


def test_readme_headline_figures_are_copied_from_benchmarks_readme() -> None:
    source = set(read(BENCHMARKS).splitlines())
    rows = _table_lines(section("Performance"))
    assert len(rows) >= 4, "the headline table: a header and the three measures"
    for line in rows:
        assert line in source, f"README.md, not in benchmarks/README.md: {line}"
    assert "benchmarks/run.py" in section("Performance"), "the command next to the figures"
