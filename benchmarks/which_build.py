"""Which asgi_monitor build a benchmark measures: the hot path compiled by mypyc, or pure Python.

The figures differ by thousands of instructions per request between the two, so every benchmark
prints this first. The build is the one this interpreter imports, from the same ``sys.path`` the
servers the harness starts get (they run with ``cwd=benchmarks/``, so a checkout is only measured
when ``PYTHONPATH`` points at it).

    python benchmarks/which_build.py [--expect compiled|pure]

``--expect`` exits 1 when the build is another; the wheel workflow checks its compiled wheels
with it before running the middleware tests against them.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["HOT_PATH", "Build", "measured_build"]

# What the wheel's mypyc hook compiles (pyproject.toml, [tool.hatch.build.targets.wheel.hooks.mypyc]
# include; tests/docs/test_wheels_config.py holds the two lists equal).
HOT_PATH = ("asgi_monitor.middleware", "asgi_monitor.store.single", "asgi_monitor.routes",
            "asgi_monitor.store.cap", "asgi_monitor.store.native",
            "asgi_monitor.store.multiprocess")


@dataclass(frozen=True)
class Build:
    kind: str  # "compiled", "pure" or "mixed"
    compiled: tuple[str, ...]  # the hot-path modules that load as extension modules
    location: Path  # the asgi_monitor package directory imported
    version: str

    @property
    def judged_as_compiled(self) -> bool | None:
        """Which build's budget a measurement is judged by: None (both) for a mixed build."""
        return {"compiled": True, "pure": False}.get(self.kind)

    def __str__(self) -> str:
        detail = ""
        if self.kind == "mixed":
            detail = f" (compiled: {', '.join(name.rsplit('.', 1)[1] for name in self.compiled)})"
        return f"asgi_monitor {self.version}, {self.kind}{detail}, from {self.location}"


def _origin(module: str) -> str:
    # find_spec, not import: the answer is the file the import system would load (an extension
    # module wins over the .py beside it), without running the module.
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"{module} is not importable here")
    return spec.origin


def measured_build() -> Build:
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    compiled = tuple(name for name in HOT_PATH if _origin(name).endswith(suffixes))
    kind = "compiled" if len(compiled) == len(HOT_PATH) else "mixed" if compiled else "pure"
    package = importlib.import_module("asgi_monitor")  # find_spec above imported it already
    return Build(kind, compiled, Path(_origin("asgi_monitor")).parent, package.__version__)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--expect", choices=("compiled", "pure"),
                        help="exit 1 unless the build is this one")
    args = parser.parse_args(argv)
    build = measured_build()
    print(f"measured build: {build}")
    if args.expect and build.kind != args.expect:
        print(f"expected the {args.expect} build", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
