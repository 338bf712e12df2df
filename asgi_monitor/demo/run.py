"""``asgi-monitor demo``: the example app under uvicorn, with synthetic traffic and local sinks.

Settings a user did not set get demo values: short intervals so charts move and alerts fire and
resolve within about a minute, two SLOs whose budgets the traffic's error bursts and slow
requests visibly burn, the webhook channel pointed at the app's own ``/demo/webhook``
sink (which accepts only requests signed with the webhook secret, generated for this run),
e-mail to a local SMTP sink (when aiosmtpd is installed) that prints what it receives, and
an admin login generated for this run and printed once.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..config import MonitoringConfig
from ..config.objectives import SLI, SLO
from ..errors import MonitoringError

__all__ = ["DEMO_SLOS", "demo_config", "demo_environment", "listen", "mail_summary", "run_demo"]

SMTP_SINK_PORT = 8025
# Objectives for the demo's deliberately broken traffic (about 14 % of its requests fail, 3 %
# take over 0.5 s), so the budgets drop within minutes yet stay above zero, and sag with each
# error burst. Seven days keeps two burn-rate alerts (1h/5m at 3.36x, 6h/30m at 1.4x; see
# docs/slo.md), which an outage on top of the bursts fires.
DEMO_SLOS = (
    SLO("availability", objective_percent=80, period_days=7),
    SLO("latency", SLI("latency", threshold_seconds=0.5), objective_percent=95, period_days=7),
)


def demo_environment(port: int, *, email: bool) -> dict[str, str]:
    from .app import SINK_PATH  # the app (Starlette) loads when the demo runs, not on import

    defaults = {
        "METRICS_COLLECTION_INTERVAL": "5",
        "HEALTH_CHECK_INTERVAL": "10",
        "ALERT_CHECK_INTERVAL": "5",
        "ALERT_WINDOW_SECONDS": "30",
        "ALERT_MIN_REQUESTS": "10",
        "ALERT_COOLDOWN_MINUTES": "2",
        "ALERT_WEBHOOK_URL": f"http://127.0.0.1:{port}{SINK_PATH}",
        # The sink takes only requests signed with it: served on 0.0.0.0 (deploy/Dockerfile),
        # anyone could otherwise post alert lines into the console.
        "ALERT_WEBHOOK_SECRET": secrets.token_urlsafe(32),
        "MONITORING_ADMIN_USERNAME": "admin",
        "MONITORING_ADMIN_PASSWORD": secrets.token_urlsafe(12),
        # The demo's own traffic all comes from one address.
        "MONITORING_RATE_LIMIT_PER_SECOND": "50",
        "MONITORING_RATE_LIMIT_BURST": "200",
        # Six hours of SLO points (every 5 s): both pages of the 7-day SLOs evaluate (the
        # 1d and 3d tickets need more).
        "MONITORING_SLO_RETENTION": "21600",
    }
    if email:
        defaults.update({"ALERT_EMAIL_ENABLED": "true", "SMTP_SERVER": "127.0.0.1",
                         "SMTP_PORT": str(SMTP_SINK_PORT), "SMTP_STARTTLS": "false",
                         "FROM_EMAIL": "asgi-monitor-demo@localhost",
                         "ALERT_EMAIL_TO": "oncall@localhost"})
    # An empty variable means unset, as everywhere: it leaves the demo's value in place.
    return {**defaults, **{name: value for name, value in os.environ.items() if value.strip()}}


def demo_config(env: dict[str, str]) -> MonitoringConfig:
    """The configuration of ``env``, with :data:`DEMO_SLOS` unless it names an SLO file."""
    if env.get("MONITORING_SLO_FILE"):
        return MonitoringConfig.from_env(env)
    return MonitoringConfig.from_env(env, slo={"objectives": DEMO_SLOS})


def mail_summary(content: bytes, recipients: list[str]) -> str:
    """"to <recipients>: Subject: <subject>", the subject whole: a long one is folded over
    several lines (RFC 5322 section 2.2.3) and may be encoded (RFC 2047); the e-mail parser
    undoes both."""
    message = email.message_from_bytes(content, policy=email.policy.default)
    subject = " ".join(str(message.get("subject", "")).split())
    return f"to {', '.join(recipients)}: Subject: {subject}"


def listen(host: str, port: int) -> socket.socket:
    """The demo's listening socket, bound before anything is printed: a port in use is one
    line (exit status 2), not a banner followed by uvicorn's traceback."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                    flags=socket.AI_PASSIVE)[0][0]
        # SO_REUSEADDR (set by create_server on POSIX, as uvicorn does): a port left in
        # TIME_WAIT by the previous run is free; one another process listens on is not.
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise MonitoringError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); "
                              "is another server using it? Pick another with --port") from None


@contextmanager
def _smtp_sink() -> Iterator[bool]:
    """A local SMTP server that prints each message it receives (if aiosmtpd is installed)."""
    try:
        from aiosmtpd.controller import Controller
    except ImportError:
        yield False
        return

    class Printer:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            print(f"[e-mail sink] {mail_summary(envelope.content, envelope.rcpt_tos)}",
                  flush=True)
            return "250 OK"

    controller = Controller(Printer(), hostname="127.0.0.1", port=SMTP_SINK_PORT)
    try:
        controller.start()
    except OSError:
        print(f"[e-mail sink] port {SMTP_SINK_PORT} is busy: e-mail alerts are off", flush=True)
        yield False
        return
    try:
        yield True
    finally:
        controller.stop()


def run_demo(host: str, port: int, traffic: bool) -> None:
    import uvicorn

    from .app import create_app
    from .traffic import generate_traffic

    sock = listen(host, port)
    with sock, _smtp_sink() as mail:
        env = demo_environment(port, email=mail)
        config = demo_config(env)
        app = create_app(config)
        base = f"http://{host}:{port}"
        # The generated password is shown once, here, so the user can log in; one they set
        # themselves is never echoed.
        password = ("(yours, from MONITORING_ADMIN_PASSWORD)"
                    if os.environ.get("MONITORING_ADMIN_PASSWORD", "").strip()
                    else env["MONITORING_ADMIN_PASSWORD"])
        user = env["MONITORING_ADMIN_USERNAME"]
        print(f"\n  asgi_monitor demo on {base}/\n"
              f"  dashboard: {base}{config.paths.dashboard}  (user: {user}, password: {password})\n"
              f"  metrics:   {base}{config.paths.metrics}    health: {base}{config.paths.health}\n"
              f"  synthetic traffic: {'on' if traffic else 'off (--no-traffic)'}; alerts go to the "
              f"console, the webhook sink{' and the e-mail sink' if mail else ''}\n", flush=True)
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))

        async def main() -> None:
            serving = asyncio.ensure_future(server.serve(sockets=[sock]))
            while not server.started and not serving.done():
                await asyncio.sleep(0.05)
            generator = asyncio.ensure_future(generate_traffic(base)) if traffic else None
            try:
                await serving
            finally:
                if generator is not None:
                    generator.cancel()
                    await asyncio.gather(generator, return_exceptions=True)

        asyncio.run(main())
