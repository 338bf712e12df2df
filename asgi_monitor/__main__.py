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

from ._version import __version__
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


def _serve_metrics(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError:
        raise CommandError("serve-metrics needs uvicorn: pip install uvicorn") from None
    from .demo.run import listen
    from .web.sidecar import metrics_app, metrics_directory

    directory = metrics_directory(args.dir)
    app = metrics_app(MonitoringConfig.from_env(), directory)
    # Bound here, as the demo binds its port: a port in use is one line and exit status 2,
    # not uvicorn's log line and its own exit status.
    sock = listen(args.host, args.port)
    with sock:
        server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port,
                                               log_level="warning", lifespan="off"))
        server.run(sockets=[sock])
    return 0


def _port(text: str) -> int:
    """A TCP port to listen on: a usage error naming the option, not a traceback from bind()."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, got {text!r}")
    return port


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
    dashboard = grafana_dashboard(config.metrics.namespace,
                                  metric_names=config.metrics.metric_names,
                                  slos=config.slo.all())
    print(json.dumps(dashboard, indent=2, sort_keys=True))
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


DESCRIPTION = """\
Prometheus metrics, health checks and alerts for an ASGI app, from the command line.

Settings are read from the environment, as the middleware reads them
(MonitoringConfig.from_env()). Errors are one line on stderr: exit status 2 for
usage and configuration errors, 1 when the check command finds the app critical."""

EPILOG = """\
examples:
  asgi-monitor demo                          the example app on http://127.0.0.1:8000
  asgi-monitor check myproject.main:app      the app's health checks, once
  asgi-monitor rules > asgi_monitor.rules.yml
  asgi-monitor serve-metrics --port 9464     the workers' metrics on their own port
  asgi-monitor COMMAND --help                a command's options and examples"""

# Each command: its one-line help (in the command list), a description and examples for its own
# --help. Plain text shown as written (RawDescriptionHelpFormatter), so no reST markup.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "demo": (
        "run the example app wrapped in the middleware",
        "Serve an example shop with synthetic traffic: charts move, a health check degrades\n"
        "and alerts fire within a minute. Needs the demo extra:\n"
        "pip install 'asgi-monitoring[demo]'.",
        "examples:\n"
        "  asgi-monitor demo\n"
        "  asgi-monitor demo --port 8001 --no-traffic\n"
        "  MONITORING_ADMIN_PASSWORD=secret asgi-monitor demo",
    ),
    "serve-metrics": (
        "serve the workers' merged metrics on a port of their own (a sidecar)",
        "Serve /metrics (and MONITORING_METRICS_PATH) from the files the server's workers\n"
        "keep in PROMETHEUS_MULTIPROC_DIR (or --dir), merged as the app's own metrics\n"
        "endpoint merges them, behind the same MONITORING_METRICS_TOKEN and allowed\n"
        "networks. Run it beside uvicorn --workers N or gunicorn, with the same\n"
        "environment; MONITORING_SERVE_METRICS=false stops the app's port serving metrics.\n"
        "It records nothing and is not counted as a worker. Needs uvicorn.",
        "examples:\n"
        "  asgi-monitor serve-metrics --port 9464\n"
        "  asgi-monitor serve-metrics --port 9464 --host 0.0.0.0 --dir /run/app-metrics\n"
        "  MONITORING_METRICS_TOKEN_FILE=/run/secrets/scrape asgi-monitor serve-metrics",
    ),
    "config": (
        "print the effective configuration from the environment (secrets masked)",
        "Print the configuration the middleware would use, read from the environment, as\n"
        "JSON with secrets masked. Exit status 2 names an invalid setting. With --reference,\n"
        "print every setting (its variables, default and meaning) as Markdown instead.",
        "examples:\n"
        "  asgi-monitor config\n"
        "  HEALTH_CHECK_INTERVAL=10 asgi-monitor config\n"
        "  asgi-monitor config --reference",
    ),
    "rules": (
        "print the default alert rules as a Prometheus rules file",
        "Print the default alert rules as a Prometheus rules file (PromQL), with the\n"
        "thresholds of the ALERT_* settings, and the recording rules and burn-rate\n"
        "alerts of the SLOs in MONITORING_SLO_FILE (if set).",
        "examples:\n"
        "  asgi-monitor rules > asgi_monitor.rules.yml\n"
        "  ALERT_ERROR_RATE_PERCENT=2 asgi-monitor rules > asgi_monitor.rules.yml\n"
        "  MONITORING_SLO_FILE=slos.json asgi-monitor rules > asgi_monitor.rules.yml\n"
        "  promtool check rules asgi_monitor.rules.yml",
    ),
    "grafana": (
        "print the Grafana dashboard JSON",
        "Print a Grafana dashboard for the exported metrics as JSON (MONITORING_NAMESPACE\n"
        "applied), to import or provision.",
        "examples:\n"
        "  asgi-monitor grafana > dashboard.json\n"
        "  MONITORING_NAMESPACE=shop asgi-monitor grafana > dashboard.json",
    ),
    "check": (
        "run an app's health checks once; exit 1 if the app is critical",
        "Import the app (package.module:app, from the current directory), run its\n"
        "registered health checks once and print them. Exit status 1 when the app is\n"
        "critical, so it works as a container health check.",
        "examples:\n"
        "  asgi-monitor check myproject.main:app\n"
        "  asgi-monitor check myproject.main:app --json\n"
        "  HEALTHCHECK CMD asgi-monitor check myproject.main:app     (in a Dockerfile)",
    ),
}


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """argparse measures the command names one indent less deep than it prints them, so a name
    over 11 characters (serve-metrics) put its help on a line of its own: measure them as
    printed."""

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        if isinstance(action, argparse._SubParsersAction) and action.help is not argparse.SUPPRESS:
            for sub in action._get_subactions():
                width = len(self._format_action_invocation(sub)) + self._current_indent + 4
                self._action_max_length = max(self._action_max_length, width)


def _command(commands: argparse._SubParsersAction[argparse.ArgumentParser],
             name: str) -> argparse.ArgumentParser:
    help_, description, epilog = COMMANDS[name]
    return commands.add_parser(name, help=help_, description=description, epilog=epilog,
                               formatter_class=argparse.RawDescriptionHelpFormatter)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asgi-monitor", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=_Formatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = _command(commands, "demo")
    demo.add_argument("--host", default="127.0.0.1", help="address to listen on (%(default)s)")
    demo.add_argument("--port", type=_port, default=8000, help="port to listen on (%(default)s)")
    demo.add_argument("--no-traffic", action="store_true",
                      help="do not generate synthetic traffic")
    demo.set_defaults(handler=_demo)

    config = _command(commands, "config")
    config.add_argument("--reference", action="store_true",
                        help="print every setting (variables, default, meaning) as Markdown")
    config.set_defaults(handler=_config)
    _command(commands, "rules").set_defaults(handler=_rules)
    _command(commands, "grafana").set_defaults(handler=_grafana)

    serve = _command(commands, "serve-metrics")
    serve.add_argument("--port", type=_port, default=9464, help="port to listen on (%(default)s)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (%(default)s)")
    serve.add_argument("--dir", default=None,
                       help="the workers' metrics directory (default: PROMETHEUS_MULTIPROC_DIR)")
    serve.set_defaults(handler=_serve_metrics)

    check = _command(commands, "check")
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
