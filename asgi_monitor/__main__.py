"""Command line: ``python -m asgi_monitor`` / ``asgi-monitor``.

Every failure is one clear line on stderr and a non-zero exit status, never a traceback:
2 for usage and configuration errors, 1 for "a health check is critical".
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from .config import MonitoringConfig
from .errors import MonitoringError

__all__ = ["main"]


class CommandError(Exception):
    """A failure to report as one line (exit status 2)."""


def _demo(args: argparse.Namespace) -> int:
    try:
        import uvicorn  # noqa: F401
    except ImportError:
        raise CommandError("the demo needs uvicorn: pip install 'asgi-monitoring[demo]'") from None
    from .demo.run import run_demo

    run_demo(args.host, args.port, traffic=not args.no_traffic)
    return 0


def _config(args: argparse.Namespace) -> int:
    if args.reference:
        from .config import reference

        sys.stdout.write(reference())
        return 0
    config = MonitoringConfig.from_env()
    print(json.dumps(config.public_dict(), indent=2, sort_keys=True, default=str))
    return 0


def _rules(args: argparse.Namespace) -> int:
    from .prometheus_rules import rules_yaml

    sys.stdout.write(rules_yaml(MonitoringConfig.from_env()))
    return 0


def _grafana(args: argparse.Namespace) -> int:
    from .grafana import grafana_dashboard

    config = MonitoringConfig.from_env()
    print(json.dumps(grafana_dashboard(config.metrics.namespace), indent=2, sort_keys=True))
    return 0


def _load_app(path: str) -> Any:
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise CommandError(f"APP_IMPORT_PATH must look like 'package.module:app', got {path!r}")
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CommandError(f"cannot import {module_name!r}: {exc}") from None
    except Exception as exc:  # the app's own module failed while importing
        raise CommandError(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}") \
            from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise CommandError(f"module {module_name!r} has no attribute {attribute!r}") from None


def _check(args: argparse.Namespace) -> int:
    from .default import get_monitor
    from .health.models import HealthStatus
    from .middleware import MonitoringMiddleware
    from .monitor import Monitor

    app = _load_app(args.app)
    # The checks live on the app's monitor: the middleware's own, or the process-wide one the
    # app's module registered its checks on.
    own = app.monitor if isinstance(app, MonitoringMiddleware) else None
    monitor = own if isinstance(own, Monitor) else get_monitor()
    results = asyncio.run(monitor.health.run_all())
    if args.json:
        print(json.dumps({name: r.public_view(admin=True) for name, r in results.items()},
                         indent=2, default=str))
    else:
        width = max((len(name) for name in results), default=5)
        for name, result in results.items():
            print(f"{name:<{width}}  {result.status.value:<8}  {result.message}")
    overall = monitor.health.overall()
    if not args.json:
        print(f"overall: {overall.value}")
    return 1 if overall is HealthStatus.CRITICAL else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asgi-monitor", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the example app wrapped in the middleware")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--no-traffic", action="store_true",
                      help="do not generate synthetic traffic")
    demo.set_defaults(handler=_demo)

    config = commands.add_parser(
        "config", help="print the effective configuration from the environment (secrets masked)")
    config.add_argument("--reference", action="store_true",
                        help="print every setting (variable, default, meaning) as Markdown")
    config.set_defaults(handler=_config)

    rules = commands.add_parser(
        "rules", help="print the default alert rules as a Prometheus rules file")
    rules.set_defaults(handler=_rules)

    grafana = commands.add_parser("grafana", help="print the Grafana dashboard JSON")
    grafana.set_defaults(handler=_grafana)

    check = commands.add_parser(
        "check", help="run an app's health checks once; exit 1 if the app is critical")
    check.add_argument("app", metavar="APP_IMPORT_PATH", help="e.g. myproject.main:app")
    check.add_argument("--json", action="store_true", help="print the results as JSON")
    check.set_defaults(handler=_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except (CommandError, MonitoringError) as exc:
        print(f"asgi-monitor: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `asgi-monitor rules | head`: the reader left. Point stdout at /dev/null so the
        # interpreter's final flush does not print a traceback either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
