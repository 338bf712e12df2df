"""The cache health check against a real Redis server, before and after it is killed."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from support import free_port, require_binary

from asgi_monitor.health import HealthChecker, HealthStatus, cache_check


async def test_cache_check_against_a_real_redis_that_is_then_killed(tmp_path: Path) -> None:
    import redis
    import redis.asyncio

    server = require_binary("redis-server")
    port = free_port()
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sync_client = redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1)
        async_client = redis.asyncio.Redis(port=port, socket_timeout=1,
                                           socket_connect_timeout=1)
        for _ in range(100):
            try:
                if sync_client.ping():
                    break
            except redis.ConnectionError:
                time.sleep(0.05)
        checker = HealthChecker()
        checker.register_check("cache", "", cache_check(sync_client))
        checker.register_check("cache_async", "", cache_check(async_client))
        up = await checker.run_all()
        assert up["cache"].status is HealthStatus.HEALTHY
        assert up["cache_async"].status is HealthStatus.HEALTHY, up["cache_async"].details
        process.kill()
        process.wait(10)
        down = await checker.run_all()
        assert down["cache"].status is HealthStatus.CRITICAL
        assert down["cache_async"].status is HealthStatus.CRITICAL
        assert "Connection" in down["cache"].details["error"]
        await async_client.aclose()
        sync_client.close()
    finally:
        process.kill()
        process.wait(10)
