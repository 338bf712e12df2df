"""The leader lock by inode: a deleted or replaced lock file leaves one leader, a planted name is
refused, and a worker that sees no leader for two intervals says so.

Two ``LeaderLock`` objects in one process stand for two workers: ``flock`` locks belong to open
file descriptions, so they exclude each other as two processes' would (the real-process case is
tests/integration/test_alert_leader.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support import Clock

from asgi_monitor.alerting import locks
from asgi_monitor.alerting.files import UntrustedFile
from asgi_monitor.alerting.leader import LeaderLock, leader_check
from asgi_monitor.health.models import HealthStatus


def test_a_deleted_lock_file_leaves_one_leader(tmp_path: Path) -> None:
    path = tmp_path / "alerts.lock"
    holder, other = LeaderLock(str(path)), LeaderLock(str(path))
    assert holder.acquire() is True
    assert other.acquire() is False
    path.unlink()
    # The other worker still knows the holder's inode, finds it locked and creates nothing.
    assert other.acquire() is False
    assert not path.exists()
    # The holder's next check puts a file back under the name and moves its lock there.
    assert holder.acquire() is True
    assert path.exists()
    assert other.acquire() is False
    assert holder.acquire() is True
    holder.release()
    # The holder gone, the other takes over on the file the name names now.
    assert other.acquire() is True
    assert LeaderLock(str(path)).acquire() is False
    other.release()


def test_a_worker_started_after_the_deletion_makes_the_holder_yield(tmp_path: Path) -> None:
    path = tmp_path / "alerts.lock"
    holder = LeaderLock(str(path))
    assert holder.acquire() is True
    path.unlink()
    # A worker that never knew the old inode creates the name: the inode the name points to wins,
    # and the old holder steps down at its next check.
    late = LeaderLock(str(path))
    assert late.acquire() is True
    assert holder.acquire() is False
    assert holder.acquire() is False
    assert late.acquire() is True
    late.release()
    assert holder.acquire() is True
    holder.release()


def test_a_lock_file_replaced_under_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "alerts.lock"
    holder, other = LeaderLock(str(path)), LeaderLock(str(path))
    assert holder.acquire() is True
    assert other.acquire() is False
    # Replaced by a file nobody holds: the holder moves its lock to it and still leads alone.
    replacement = tmp_path / "new"
    replacement.write_text("")
    os.replace(replacement, path)
    assert holder.acquire() is True
    assert other.acquire() is False
    assert holder.acquire() is True
    holder.release()
    other.release()


def test_a_symlink_under_the_lock_name_is_refused_and_its_target_untouched(
        tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious contents\n")
    path = tmp_path / "alerts.lock"
    path.symlink_to(victim)
    with pytest.raises(OSError):
        LeaderLock(str(path)).acquire()
    assert victim.read_text() == "precious contents\n"
    # The same when the holder finds the name swapped for a symlink: it steps down.
    path.unlink()
    holder = LeaderLock(str(path))
    assert holder.acquire() is True
    path.unlink()
    path.symlink_to(victim)
    assert holder.acquire() is False
    with pytest.raises(UntrustedFile, match="is a symlink"):
        holder.acquire()
    assert victim.read_text() == "precious contents\n"
    holder.release()


def test_the_lock_file_is_not_truncated_and_is_private(tmp_path: Path) -> None:
    path = tmp_path / "alerts.lock"
    path.write_text("x" * 100)
    holder = LeaderLock(str(path))
    assert holder.acquire() is True
    # The pid and beat overwrite the start; nothing is cut.
    assert path.stat().st_size == 100
    assert path.read_text().startswith(f"{os.getpid()} 1 ")
    holder.release()
    fresh = tmp_path / "fresh.lock"
    LeaderLock(str(fresh)).acquire()
    assert fresh.stat().st_mode & 0o077 == 0


def test_a_fifo_under_the_lock_name_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "alerts.lock"
    os.mkfifo(path)
    with pytest.raises(UntrustedFile, match="not a regular file"):
        LeaderLock(str(path)).acquire()


def test_a_process_that_only_holds_the_lock_is_reported_after_two_intervals(
        tmp_path: Path) -> None:
    path = tmp_path / "alerts.lock"
    clock = Clock()
    squatter = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        assert locks.lock(squatter, blocking=False)
        worker = LeaderLock(str(path), interval=1.0, monotonic=clock)
        check = leader_check(worker)
        assert worker.acquire() is False
        clock.advance(1.5)
        assert worker.acquire() is False
        assert worker.leaderless_seconds() == 0.0
        assert check().status is HealthStatus.HEALTHY
        clock.advance(1.0)
        assert worker.acquire() is False
        assert worker.leaderless_seconds() == 2.5
        result = check()
        assert result.status is HealthStatus.WARNING
        assert "no worker has evaluated the alert rules for 2s" in result.message
        assert result.details["leaderless_seconds"] == 2.5
        # The squatter leaves: this worker leads, nothing is reported any more.
        os.close(squatter)
        squatter = -1
        assert worker.acquire() is True
        assert worker.leaderless_seconds() == 0.0
        assert check().status is HealthStatus.HEALTHY
        worker.release()
    finally:
        if squatter >= 0:
            os.close(squatter)


def test_a_live_leader_is_seen_by_its_beat(tmp_path: Path) -> None:
    path = str(tmp_path / "alerts.lock")
    clock = Clock()
    leader = LeaderLock(path, interval=1.0, monotonic=clock)
    follower = LeaderLock(path, interval=1.0, monotonic=clock)
    assert leader.acquire() is True
    for _ in range(10):
        clock.advance(1.0)
        assert leader.acquire() is True
        assert follower.acquire() is False
        assert follower.leaderless_seconds() == 0.0
    # The leader's loop stops (it still holds the lock): reported after two intervals.
    for _ in range(3):
        clock.advance(1.0)
        assert follower.acquire() is False
    assert follower.leaderless_seconds() == 3.0
    leader.release()
    follower.release()


def test_one_process_needs_no_lock() -> None:
    single = LeaderLock(None)
    assert single.acquire() is True
    assert single.leaderless_seconds() == 0.0
