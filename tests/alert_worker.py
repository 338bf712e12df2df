"""A worker process for the one-sender test: ``python alert_worker.py LOCK_PATH WEBHOOK_URL``.

Runs a Monitor whose only rule always holds, evaluating every 0.1 s, until killed. The alert's
value is the sender's pid, so the test can tell which process sent.
"""

from __future__ import annotations

import asyncio
import os
import sys

from prometheus_client import CollectorRegistry

from asgi_monitor import Monitor, MonitoringConfig


async def main(lock_path: str, webhook_url: str) -> None:
    monitor = Monitor(MonitoringConfig(
        alert_lock_path=lock_path, alert_webhook_url=webhook_url, alert_check_interval=0.1,
        alert_default_rules=False, alert_console_enabled=False, health_default_checks=False,
        system_metrics=False, alert_channel_retries=0), registry=CollectorRegistry())
    # A 2 s cooldown, so a worker that takes over shows itself by repeating the notification.
    monitor.alerts.register_rule("always", "Always holds", lambda: (os.getpid(), True),
                                 cooldown_minutes=2 / 60)
    async with monitor.running():
        print("started", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
