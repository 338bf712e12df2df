"""A worker process for the one-sender test: ``python alert_worker.py LOCK_PATH WEBHOOK_URL``.

Runs a Monitor whose only rule always holds, evaluating every 0.1 s, until killed. The alert's
value is the sender's pid, so the test can tell which process sent.
"""

from __future__ import annotations

import asyncio
import os
import sys

from prometheus_client import CollectorRegistry

from asgi_monitor import MonitoringConfig, build_monitor
from asgi_monitor.config import AlertSettings, HealthSettings, SystemSettings, WebhookSettings


async def main(lock_path: str, webhook_url: str) -> None:
    monitor = build_monitor(
        MonitoringConfig(
            alerts=AlertSettings(
                lock_path=lock_path,
                check_interval_seconds=0.1,
                default_rules=False,
                console_enabled=False,
                channel_retries=0),
            webhooks=WebhookSettings(url=webhook_url),
            health=HealthSettings(default_checks=False),
            system=SystemSettings(metrics=False)),
        CollectorRegistry())
    # A 2 s cooldown, so a worker that takes over shows itself by repeating the notification.
    monitor.alerts.register_rule("always", "Always holds", lambda: (os.getpid(), True),
                                 cooldown_minutes=2 / 60)
    async with monitor.running():
        print("started", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
