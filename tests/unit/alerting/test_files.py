"""The alert engine's shared files as untrusted input: a symlink, a FIFO or an oversized file
planted under the state, silences, history or temporary names is refused, never written through,
never waited on."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from support import Clock

from asgi_monitor.alerting import AlertManager
from asgi_monitor.alerting.files import UntrustedFile, read_owned, write_atomically

PRECIOUS = "precious contents\n"


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    path = tmp_path / "elsewhere" / "victim"
    path.parent.mkdir()
    path.write_text(PRECIOUS)
    return path


def _errors() -> tuple[list[tuple[str, BaseException]], Any]:
    seen: list[tuple[str, BaseException]] = []
    return seen, lambda where, exc: seen.append((where, exc))


async def _publish(state: str, **options: Any) -> AlertManager:
    manager = AlertManager(state_file=state, clock=Clock(), monotonic=Clock(), **options)
    manager.register_rule("r", "d", lambda: True)
    await manager.evaluate()
    return manager


async def test_the_state_file_replaces_a_planted_symlink_and_leaves_its_target(
        tmp_path: Path, victim: Path) -> None:
    state = tmp_path / "alerts.lock.state.json"
    state.symlink_to(victim)
    # The old temporary names were predictable (pid-based); plant them too.
    for name in (f"{state}.{os.getpid()}.tmp", f"{state}.tmp"):
        Path(name).symlink_to(victim)
    await _publish(str(state))
    assert victim.read_text() == PRECIOUS
    assert not state.is_symlink()
    assert json.loads(state.read_text())["active"][0]["rule"] == "r"
    # No temporary file is left behind.
    leftovers = {p.name for p in tmp_path.iterdir()} - {state.name, "elsewhere",
                                                        f"{state.name}.{os.getpid()}.tmp",
                                                        f"{state.name}.tmp"}
    assert leftovers == set()


async def test_a_follower_refuses_a_symlinked_or_fifo_state_file(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    await _publish(str(real))
    state = tmp_path / "state.json"
    state.symlink_to(real)
    errors, on_error = _errors()
    follower = AlertManager(state_file=str(state), on_error=on_error)
    await follower.follow_async()
    assert follower.active() == []
    assert errors and errors[-1][0] == "alert_state_read"
    assert "symlink" in str(errors[-1][1])
    # A FIFO: a plain open for reading would wait for a writer for ever.
    state.unlink()
    os.mkfifo(state)
    await follower.follow_async()
    assert follower.active() == []
    assert "not a regular file" in str(errors[-1][1])


async def test_a_follower_refuses_a_state_file_larger_than_its_alerts_can_be(
        tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with open(state, "wb") as f:
        f.truncate(1 << 40)  # sparse: a terabyte of nothing
    errors, on_error = _errors()
    follower = AlertManager(state_file=str(state), history_size=10, on_error=on_error)
    follower.follow()
    assert follower.active() == []
    assert "more than the" in str(errors[-1][1])


async def test_a_follower_keeps_going_after_a_deep_or_malformed_state_file(
        tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    errors, on_error = _errors()
    follower = AlertManager(state_file=str(state), on_error=on_error)
    for junk in ("[" * 100_000, '{"active": [1], "history": []}', '{"active": "x"}', "null"):
        state.write_text(junk)
        follower.follow()
        assert follower.active() == []
    assert [where for where, _ in errors] == ["alert_state_read"] * 4


def test_silences_refuse_a_symlinked_lock_and_keep_its_target(tmp_path: Path,
                                                               victim: Path) -> None:
    path = tmp_path / "silences.json"
    Path(f"{path}.lock").symlink_to(victim)
    manager = AlertManager(silences_file=str(path))
    with pytest.raises(UntrustedFile, match="is a symlink"):
        manager.silences.create({"alertname": "r"}, 60)
    assert victim.read_text() == PRECIOUS
    assert not path.exists()


def test_silences_replace_a_symlinked_file_and_read_no_planted_one(
        tmp_path: Path, victim: Path) -> None:
    path = tmp_path / "silences.json"
    planted = tmp_path / "planted.json"
    one = AlertManager(silences_file=str(planted))
    one.silences.create({"alertname": "planted"}, 600)
    path.symlink_to(planted)
    manager = AlertManager(silences_file=str(path))
    assert manager.silences.list() == []  # the symlink is not read
    path.unlink()
    path.symlink_to(victim)
    silence = manager.silences.create({"alertname": "r"}, 60)
    assert victim.read_text() == PRECIOUS
    assert not path.is_symlink()
    assert [s.id for s in manager.silences.list()] == [silence.id]
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)


def test_the_history_file_is_neither_read_nor_appended_through_a_symlink(
        tmp_path: Path, victim: Path) -> None:
    path = tmp_path / "history.jsonl"
    path.symlink_to(victim)
    errors, on_error = _errors()
    manager = AlertManager(history_file=str(path), on_error=on_error)
    assert errors[0][0] == "alert_history_read"
    manager.register_rule("r", "d", lambda: True)
    asyncio.run(manager.evaluate())
    assert victim.read_text() == PRECIOUS
    assert errors[-1][0] == "alert_history_write"
    assert "symlink" in str(errors[-1][1])


def test_a_fifo_under_the_history_name_is_neither_waited_on_nor_written(
        tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    os.mkfifo(path)
    errors, on_error = _errors()
    manager = AlertManager(history_file=str(path), on_error=on_error)
    assert "not a regular file" in str(errors[0][1])
    manager.register_rule("r", "d", lambda: True)
    asyncio.run(manager.evaluate())  # the append: a plain open for writing would wait here
    assert errors[-1][0] == "alert_history_write"
    assert len(manager.history()) == 1  # kept in memory all the same


def test_history_compaction_writes_through_a_fresh_name(tmp_path: Path, victim: Path) -> None:
    path = tmp_path / "history.jsonl"
    Path(f"{path}.tmp").symlink_to(victim)  # the old fixed temporary name
    clock = Clock()
    manager = AlertManager(history_file=str(path), history_size=2, clock=clock,
                           monotonic=clock)
    holds = {"now": True}
    manager.register_rule("r", "d", lambda: holds["now"], cooldown_seconds=0)
    for _ in range(8):  # fire, repeat...: past twice the size, the file is compacted
        clock.advance(1)
        asyncio.run(manager.evaluate())
    assert victim.read_text() == PRECIOUS
    assert len(path.read_text().splitlines()) <= 2 * 2 + 1


def test_read_owned_and_write_atomically(tmp_path: Path) -> None:
    path = tmp_path / "f"
    write_atomically(str(path), b"abc")
    assert read_owned(str(path), 3) == b"abc"
    with pytest.raises(UntrustedFile, match="more than the 2"):
        read_owned(str(path), 2)
    with pytest.raises(FileNotFoundError):
        read_owned(str(tmp_path / "missing"), 10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]
