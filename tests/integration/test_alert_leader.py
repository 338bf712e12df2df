"""Several workers: exactly one process evaluates and sends; another takes over if it dies."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from support import SUPPORT, HttpSink

from asgi_monitor.alerting.leader import LeaderLock

WORKER = SUPPORT / "alert_worker.py"


def test_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    path = str(tmp_path / "alerts.lock")
    first, second = LeaderLock(path), LeaderLock(path)
    assert first.acquire() is True
    assert second.acquire() is False
    assert first.acquire() is True  # idempotent for the holder
    first.release()
    assert second.acquire() is True
    second.release()
    assert LeaderLock(None).acquire() is True  # one process, no lock needed


async def test_two_processes_one_sender(tmp_path: Path) -> None:
    lock = str(tmp_path / "alerts.lock")
    async with HttpSink() as sink:
        workers = [await asyncio.create_subprocess_exec(
            sys.executable, str(WORKER), lock, sink.url, stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(WORKER.parent)}) for _ in range(2)]
        try:
            for worker in workers:
                assert worker.stdout is not None
                line = await asyncio.wait_for(worker.stdout.readline(), 20)
                assert line == b"started\n"
            await sink.wait_for(1, timeout=10)
            # Many evaluation intervals later, still one message: the other worker never sent.
            await asyncio.sleep(1.0)
            assert len(sink.requests) == 1
            first = sink.json(0)["alerts"][0]
            leader_pid = int(float(first["annotations"]["value"]))
            assert leader_pid in {w.pid for w in workers}

            # The leader dies: the other takes the lock within an interval, carries the firing
            # alert on (published by the leader: same alert, no duplicate "new" alert) and
            # repeats it once the cooldown is over.
            leader = next(w for w in workers if w.pid == leader_pid)
            leader.kill()
            await asyncio.wait_for(leader.wait(), 10)
            await sink.wait_for(2, timeout=10)
            second = sink.json(1)["alerts"][0]
            assert int(float(second["annotations"]["value"])) != leader_pid
            assert second["startsAt"] == first["startsAt"]
            assert len(sink.requests) == 2
        finally:
            for worker in workers:
                if worker.returncode is None:
                    worker.kill()
                    await asyncio.wait_for(worker.wait(), 10)
