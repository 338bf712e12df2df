"""Faults in alerting while the app serves: each leaves requests answered at once, shows in
metrics and logs, and loses nothing already recorded.

Covered here, through a running monitor and real requests: hung and raising alert conditions
(sync and async); an SMTP server that is down or too slow beside a webhook that works; a webhook
endpoint answering 500, timing out or refusing connections beside a Slack webhook that works; an
alert history file that cannot be written, and one that hits a file-size limit (a full disk,
RLIMIT_FSIZE in a subprocess). integration/test_alert_channels.py and unit/alerting/test_manager.py
cover the same channels and conditions one call at a time, without an app.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from prometheus_client import CollectorRegistry
from support import HttpSink, client, free_port, run_script, sample, starlette_app

from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.config import (
    AlertSettings,
    EmailSettings,
    GateSettings,
    HealthSettings,
    SystemSettings,
    WebhookSettings,
)

TOKEN = "faults-alerting-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# A channel's timeout where a test waits for one: long enough that a healthy local sink never
# reaches it on a busy host, short of the faults' own hangs (3 s, 10 s).
CHANNEL_TIMEOUT = 1.5
# The app's answers while alerting misbehaves: a call blocking the event loop would hold every
# request for a whole channel timeout at least (or the fault's hang itself).
FAST = CHANNEL_TIMEOUT


def monitored(registry: CollectorRegistry, *, backoff: float = 0.05,
              alerts: dict[str, Any] | None = None, **sections: Any) -> MonitoringMiddleware:
    """``alerts`` holds AlertSettings fields over this file's defaults; other sections whole."""
    alert_settings = AlertSettings(
        **{
            "default_rules": False,
            "console_enabled": False,
            "check_interval_seconds": 0.05,
            **(alerts or {})})
    config = MonitoringConfig(
                 gate=GateSettings(admin_token=TOKEN, rate_limit_per_second=0),
                 health=HealthSettings(default_checks=False),
                 system=SystemSettings(metrics=False),
                 alerts=alert_settings,
                 **sections)
    mw = MonitoringMiddleware(starlette_app(), monitor=build_monitor(config, registry))
    for channel in mw.monitor.alerts.channels:
        channel.backoff = backoff  # retries still happen, without seconds of waiting
    return mw


class Served:
    """What the app answered while a fault was going on."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.metrics = ""

    async def get(self, c: Any) -> None:
        started = time.perf_counter()
        response = await c.get("/")
        assert (response.status_code, response.text) == (200, "ok")
        self.latencies.append(time.perf_counter() - started)


async def serve_until(mw: MonitoringMiddleware, done: Callable[[], bool], *,
                      timeout: float = 10.0) -> Served:
    """Run the monitor and send requests (some concurrently) until ``done()``; then scrape."""
    served = Served()
    async with mw.monitor.running(), client(mw, headers=AUTH) as c:
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, "the fault never showed"
            await asyncio.gather(*(served.get(c) for _ in range(5)))
            await asyncio.sleep(0.02)
        scrape = await c.get("/api/metrics")
        assert scrape.status_code == 200
        served.metrics = scrape.text
    assert max(served.latencies) < FAST, max(served.latencies)
    return served


def outcomes(mw: MonitoringMiddleware, rule: str) -> dict[str, dict[str, Any]]:
    [alert] = [a for a in mw.monitor.alerts.active() if a.rule == rule]
    return {n["channel"]: n for n in alert.notifications}


def notifications(registry: CollectorRegistry, channel: str, outcome: str) -> float | None:
    return sample(registry, "asgi_monitor_alert_notifications_total", channel=channel,
                  outcome=outcome)


def requests_counted(registry: CollectorRegistry) -> float | None:
    return sample(registry, "http_requests_total", method="GET", route="/", status="200")


def assert_isolated(registry: CollectorRegistry, served: Served,
                    caplog: pytest.LogCaptureFixture, *, failed: str, sent: str,
                    attempts: int) -> None:
    """One notification failed on ``failed`` (counted, exposed, logged), one went out on
    ``sent``, and every request the app answered meanwhile was counted."""
    assert notifications(registry, failed, "failed") == 1
    assert notifications(registry, sent, "sent") == 1
    assert (f'asgi_monitor_alert_notifications_total{{channel="{failed}",outcome="failed"}} 1.0'
            in served.metrics)
    assert any(f"channel {failed} failed after {attempts} attempt(s)" in r.getMessage()
               for r in caplog.records)
    assert requests_counted(registry) == len(served.latencies)


# -- conditions -------------------------------------------------------------------------------
async def test_hung_and_raising_conditions_leave_the_app_serving(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="asgi_monitor.alerts")
    release = threading.Event()

    def sync_hang() -> bool:
        release.wait(5)  # long past the timeout; short if a regression runs it on the loop
        return True

    async def async_hang() -> bool:
        await asyncio.sleep(3600)
        return True

    def sync_raise() -> bool:
        raise ConnectionRefusedError("sync boom")

    async def async_raise() -> bool:
        raise RuntimeError("async boom")

    async def fine_async() -> tuple[float, bool]:
        return 2.0, True

    failing = {"sync_hang": sync_hang, "async_hang": async_hang, "sync_raise": sync_raise,
               "async_raise": async_raise}
    async with HttpSink() as sink:
        mw = monitored(
                 registry,
                 alerts={'evaluation_timeout_seconds': 0.2, 'channel_retries': 0},
                 webhooks=WebhookSettings(url=sink.url))
        alerts = mw.monitor.alerts
        for name, condition in failing.items():
            alerts.register_rule(name, "d", condition)
        alerts.register_rule("fine", "d", lambda: (1.0, True))
        alerts.register_rule("fine_async", "d", fine_async)
        try:
            served = await serve_until(
                mw,
                lambda: (
                    len(sink.requests) >= 2
                    and all(alerts.evaluation_failures.get(name, 0) >= 3 for name in failing)
                ),
            )
        finally:
            release.set()

    # The other rules were evaluated and notified; the failing ones are "no data", not alerts.
    assert sorted(sink.json(i)["alerts"][0]["labels"]["alertname"]
                  for i in range(len(sink.requests))) == ["fine", "fine_async"]
    assert sorted(a.rule for a in alerts.active()) == ["fine", "fine_async"]
    for name in failing:
        assert sample(registry, "asgi_monitor_alert_evaluation_failures_total",
                      rule=name) == alerts.evaluation_failures[name] >= 3
        assert f'asgi_monitor_alert_evaluation_failures_total{{rule="{name}"}}' in served.metrics
    logged = [r.getMessage() for r in caplog.records if "evaluation failed" in r.getMessage()]
    for text in ("sync_hang", "async_hang", "sync boom", "async boom"):
        assert any(text in line for line in logged), (text, logged)
    # Logged once per rule (rate-limited), counted every time.
    assert len(logged) == len(failing)
    assert requests_counted(registry) == len(served.latencies)


# -- e-mail down or slow, webhook fine --------------------------------------------------------
class SlowMailbox:
    """An aiosmtpd handler that answers DATA only after ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(self.seconds)
        return "250 OK"


@contextlib.contextmanager
def smtp_server(mode: str) -> Iterator[int]:
    """The port of an SMTP server that is "down" (nothing listens) or "slow"."""
    port = free_port()
    if mode == "down":
        yield port
        return
    controller = Controller(SlowMailbox(3.0), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@pytest.mark.parametrize("mode", ["down", "slow"])
async def test_smtp_down_or_slow_leaves_the_webhook_and_the_app_alone(
    mode: str, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    with smtp_server(mode) as port:
        async with HttpSink() as sink:
            mw = monitored(
                     registry,
                     email=EmailSettings(
                               enabled=True,
                               server='127.0.0.1',
                               port=port,
                               from_address='monitor@example.com',
                               starttls=False),
                     webhooks=WebhookSettings(url=sink.url),
                     alerts={'channel_timeout_seconds': CHANNEL_TIMEOUT, 'channel_retries': 1})
            mw.monitor.alerts.register_rule("r", "d", lambda: True)
            served = await serve_until(
                mw, lambda: ("email", False) in mw.monitor.alerts.notification_counts
            )

    sent = outcomes(mw, "r")
    assert sent["webhook"]["ok"] is True and len(sink.requests) == 1
    assert sent["email"]["ok"] is False and sent["email"]["attempts"] == 2
    if mode == "slow":
        assert sent["email"]["error"] == f"timed out after {CHANNEL_TIMEOUT}s"
        # The webhook went out at once, not after the e-mail's two timed-out attempts.
        assert sent["webhook"]["at"] < sent["email"]["at"]
    assert_isolated(registry, served, caplog, failed="email", sent="webhook", attempts=2)


# -- a webhook that fails, Slack fine ---------------------------------------------------------
@contextlib.asynccontextmanager
async def broken_webhook(mode: str) -> Any:
    """(URL, the sink behind it or None) for a webhook answering 500, hanging or refusing."""
    if mode == "refused":
        yield f"http://127.0.0.1:{free_port()}/hook", None
        return
    async with HttpSink(status=500) if mode == "500" else HttpSink(delay=10) as sink:
        yield sink.url + "/hook", sink


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("500", "ChannelError: HTTP 500"),
        ("timeout", f"timed out after {CHANNEL_TIMEOUT}s"),
        ("refused", "ConnectError"),
    ],
)
async def test_a_failing_webhook_is_retried_recorded_and_isolated(
    mode: str, error: str, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    async with broken_webhook(mode) as (url, broken), HttpSink(body=b"ok") as slack:
        # Backoff 0.2 s: the webhook's failure comes >= 0.6 s after Slack's single post.
        mw = monitored(
                 registry,
                 backoff=0.2,
                 webhooks=WebhookSettings(url=url, slack_url=slack.url),
                 alerts={'channel_timeout_seconds': CHANNEL_TIMEOUT, 'channel_retries': 2})
        mw.monitor.alerts.register_rule("r", "d", lambda: True)
        served = await serve_until(
            mw, lambda: ("webhook", False) in mw.monitor.alerts.notification_counts
        )

    sent = outcomes(mw, "r")
    assert sent["webhook"]["ok"] is False
    assert sent["webhook"]["attempts"] == 3
    assert sent["webhook"]["error"].startswith(error)
    assert "/hook" not in sent["webhook"]["error"]
    if broken is not None:
        assert len(broken.requests) == 3  # retried twice
    assert sent["slack"]["ok"] is True and len(slack.requests) == 1
    assert sent["slack"]["at"] < sent["webhook"]["at"]
    assert_isolated(registry, served, caplog, failed="webhook", sent="slack", attempts=3)


# -- the alert history file -------------------------------------------------------------------
def unwritable(tmp_path: Path, kind: str) -> str:
    # (A read-only directory is no test here: the suite runs as root, which writes anyway.)
    if kind == "under a file":
        (tmp_path / "file").write_text("")
        return str(tmp_path / "file" / "alerts.jsonl")
    (tmp_path / "a-directory").mkdir()
    return str(tmp_path / "a-directory")


@pytest.mark.parametrize("kind", ["under a file", "a directory"])
async def test_an_unwritable_history_file_loses_nothing_in_memory(
    kind: str, tmp_path: Path, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    path = unwritable(tmp_path, kind)
    async with HttpSink() as sink:
        mw = monitored(
                 registry,
                 alerts={'history_file': path, 'channel_retries': 0},
                 webhooks=WebhookSettings(url=sink.url))
        alerts = mw.monitor.alerts
        holds = {"r": True}
        alerts.register_rule("r", "d", lambda: holds["r"])
        alerts.register_rule("other", "d", lambda: True)
        first = await serve_until(mw, lambda: len(sink.requests) >= 2)
        holds["r"] = False
        second = await serve_until(mw, lambda: len(sink.requests) >= 3)
        async with client(mw, headers=AUTH) as c:
            history = (await c.get("/api/alerts/history")).json()["alerts"]
            active = (await c.get("/api/alerts")).json()["alerts"]

    assert sorted((a["rule"], a["state"]) for a in history) == [("other", "firing"),
                                                               ("r", "resolved")]
    assert [a["rule"] for a in active] == ["other"]
    writes = sample(registry, "asgi_monitor_internal_errors_total",
                    where="alert_history_write")
    assert writes is not None and writes >= 3  # two fired, one resolved: none written
    assert 'asgi_monitor_internal_errors_total{where="alert_history_write"}' in second.metrics
    assert any("alert_history_write" in r.getMessage() for r in caplog.records)
    assert notifications(registry, "webhook", "sent") == 3
    assert requests_counted(registry) == len(first.latencies) + len(second.latencies)


def test_history_file_over_its_size_limit_loses_nothing(tmp_path: Path) -> None:
    history = tmp_path / "alerts.jsonl"
    script = tmp_path / "full_history.py"
    script.write_text(
        textwrap.dedent(f"""
        import asyncio, json, os, resource
        from prometheus_client import CollectorRegistry
        from asgi_monitor import (AlertSettings, GateSettings, HealthSettings, MonitoringConfig,
                                  MonitoringMiddleware, SystemSettings, build_monitor)
        from asgi_monitor.alerting import AlertManager

        HISTORY = {str(history)!r}

        async def app(scope, receive, send):
            await send({{"type": "http.response.start", "status": 200, "headers": []}})
            await send({{"type": "http.response.body", "body": b"ok"}})

        registry = CollectorRegistry()
        config = MonitoringConfig(
            alerts=AlertSettings(history_file=HISTORY, default_rules=False,
                                 check_interval_seconds=3600),
            gate=GateSettings(admin_token={TOKEN!r}, rate_limit_per_second=0),
            health=HealthSettings(default_checks=False), system=SystemSettings(metrics=False))
        mw = MonitoringMiddleware(app, monitor=build_monitor(config, registry))
        alerts = mw.monitor.alerts
        holds = {{"a": True, "b": False, "c": False}}
        for name in holds:
            alerts.register_rule(name, "d", lambda name=name: holds[name])

        async def request(path):
            sent = []
            scope = {{"type": "http", "asgi": {{"version": "3.0"}}, "http_version": "1.1",
                      "method": "GET", "scheme": "http", "path": path,
                      "raw_path": path.encode(), "root_path": "", "query_string": b"",
                      "headers": [(b"authorization", b"Bearer {TOKEN}")],
                      "client": ("10.0.0.1", 1), "server": ("t", 80)}}
            async def receive():
                return {{"type": "http.request", "body": b""}}
            async def send(message):
                sent.append(message)
            await mw(scope, receive, send)
            return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])

        async def main():
            statuses = [(await request("/"))[0]]
            await alerts.evaluate()  # "a" fires: written
            statuses += [(await request("/"))[0] for _ in range(50)]
            written = os.path.getsize(HISTORY)
            # From here on the file may grow by 100 bytes only (less than one record).
            limit = written + 100
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
            holds["b"] = True
            await alerts.evaluate()  # "b" fires: not written
            holds["a"] = False
            await alerts.evaluate()  # "a" resolves: not written
            statuses += [(await request("/"))[0] for _ in range(50)]
            scrape_status, scrape = await request("/api/metrics")
            history_status, body = await request("/api/alerts/history")
            full = os.path.getsize(HISTORY)
            # Space again: the next record must come back whole.
            resource.setrlimit(resource.RLIMIT_FSIZE,
                               (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
            holds["c"] = True
            await alerts.evaluate()
            await mw.monitor.stop()
            reloaded = AlertManager(history_file=HISTORY).history()
            print(json.dumps({{
                "statuses": sorted(set(statuses)), "served": len(statuses),
                "scrape": scrape_status, "history_status": history_status,
                "history": sorted((a["rule"], a["state"]) for a in json.loads(body)["alerts"]),
                "count": registry.get_sample_value("http_requests_total", {{
                    "method": "GET", "route": "<unmatched>", "status": "200"}}),
                "errors": mw.monitor.collector.internal_errors.get("alert_history_write"),
                "exposed": 'asgi_monitor_internal_errors_total{{where="alert_history_write"}}'
                           in scrape.decode(),
                "limit": limit, "full": full,
                "reloaded": sorted((a["rule"], a["state"]) for a in reloaded)}}))

        asyncio.run(main())
    """)
    )
    done = run_script(script, 60)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["statuses"] == [200]
    assert result["count"] == result["served"] == 101
    assert (result["scrape"], result["history_status"]) == (200, 200)
    # In memory and in the API: everything, including what the disk refused.
    assert result["history"] == [["a", "resolved"], ["b", "firing"]]
    assert result["errors"] >= 2 and result["exposed"]
    assert result["full"] <= result["limit"]
    # In the file: what was written before the disk filled, and what came after it had space.
    assert ["a", "firing"] in result["reloaded"]
    assert ["c", "firing"] in result["reloaded"]
    assert "alert_history_write" in done.stderr and "File too large" in done.stderr
