"""Several workers: exactly one process evaluates and sends; another takes over if it dies."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from support import SUPPORT, HttpSink

from asgi_monitor.alerting.leader import LeaderLock

WORKER = SUPPORT / "alert_worker.py"
# The workers import the package the test imports (a source tree first on PYTHONPATH included).
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    p for p in (str(WORKER.parent), os.environ.get("PYTHONPATH", "")) if p)}


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
            env=ENV) for _ in range(2)]
        try:
            for worker in workers:
                assert worker.stdout is not None
                line = await asyncio.wait_for(worker.stdout.readline(), 20)
                assert line == b"started\n"
            await sink.wait_for(1, timeout=10)
            # Many evaluation intervals later, one sender still: the other worker never sent.
            # (Counted by sender, not by message: on a slow host the leader's repeat after its
            # 2 s cooldown may already be in.)
            await asyncio.sleep(1.0)
            first = sink.json(0)["alerts"][0]
            leader_pid = _sender(first)
            assert leader_pid in {w.pid for w in workers}
            assert {_sender(alert) for alert in _alerts(sink)} == {leader_pid}

            # The leader dies: the other takes the lock within an interval and carries the
            # firing alert on (published by the leader: the same alert, its start unchanged, no
            # duplicate "new" alert), repeating it once the cooldown is over.
            leader = next(w for w in workers if w.pid == leader_pid)
            leader.kill()
            await asyncio.wait_for(leader.wait(), 10)
            await _until(lambda: any(_sender(a) != leader_pid for a in _alerts(sink)), 10)
            taken_over = [a for a in _alerts(sink) if _sender(a) != leader_pid]
            assert {_sender(alert) for alert in taken_over} == {
                w.pid for w in workers if w.pid != leader_pid}
            assert all(alert["startsAt"] == first["startsAt"] for alert in taken_over)
        finally:
            for worker in workers:
                if worker.returncode is None:
                    worker.kill()
                    await asyncio.wait_for(worker.wait(), 10)


def _alerts(sink: HttpSink) -> list[dict[str, Any]]:
    return [sink.json(i)["alerts"][0] for i in range(len(sink.requests))]


def _sender(alert: dict[str, Any]) -> int:
    return int(float(alert["annotations"]["value"]))


async def _until(condition: Callable[[], bool], timeout: float) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), timeout)


async def test_a_deleted_lock_file_leaves_one_sender(tmp_path: Path) -> None:
    # Deleting the lock file (by hand, or a deploy script emptying the directory) while both
    # workers run: the other worker knows the holder's inode and stays out; the holder puts a
    # file back under the name. Every notification from then on still comes from one process.
    lock = tmp_path / "alerts.lock"
    async with HttpSink() as sink:
        workers = [await asyncio.create_subprocess_exec(
            sys.executable, str(WORKER), str(lock), sink.url, stdout=asyncio.subprocess.PIPE,
            env=ENV) for _ in range(2)]
        try:
            for worker in workers:
                assert worker.stdout is not None
                assert await asyncio.wait_for(worker.stdout.readline(), 20) == b"started\n"
            await sink.wait_for(1, timeout=10)
            leader_pid = _sender(sink.json(0)["alerts"][0])
            lock.unlink()
            # Three more rounds of the 2 s cooldown: a second sender would have repeated the
            # alert it mirrors at least once in that time, under its own pid.
            await sink.wait_for(4, timeout=20)
            assert {_sender(alert) for alert in _alerts(sink)} == {leader_pid}
            assert lock.exists() and not lock.is_symlink()
            assert lock.read_text().split()[0] == str(leader_pid)
        finally:
            for worker in workers:
                if worker.returncode is None:
                    worker.kill()
                    await asyncio.wait_for(worker.wait(), 10)
