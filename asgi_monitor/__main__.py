"""Command line: ``python -m asgi_monitor`` / ``asgi-monitor``."""

from __future__ import annotations

import argparse
import sys

from .errors import MonitoringError

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError:
        print("error: the demo needs uvicorn: pip install 'asgi-monitoring[demo]'",
              file=sys.stderr)
        return 2
    from .demo.app import create_app

    print(f"asgi_monitor demo on http://{args.host}:{args.port}/ "
          f"(metrics: http://{args.host}:{args.port}/api/metrics)", flush=True)
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="info")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="asgi-monitor", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the example app wrapped in the middleware")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.set_defaults(handler=_demo)
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except MonitoringError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
