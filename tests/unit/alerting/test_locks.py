"""File locks: the POSIX primitive for real, the Windows one against a stand-in for msvcrt, and
the package on a Python that has no fcntl at all (as on Windows)."""

from __future__ import annotations

import errno
import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
from support import ROOT

from asgi_monitor.alerting import locks
from asgi_monitor.alerting.leader import LeaderLock

# Put on PYTHONPATH as sitecustomize.py: `import fcntl` then raises ImportError, as on Windows.
NO_FCNTL = """
import sys
sys.modules["fcntl"] = None
"""


def test_a_second_descriptor_waits_or_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    first = os.open(path, os.O_RDWR | os.O_CREAT)
    second = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        assert locks.lock(first, blocking=False) is True
        assert locks.lock(second, blocking=False) is False
        locks.unlock(first)
        assert locks.lock(second, blocking=True) is True
    finally:
        os.close(first)
        os.close(second)


class FakeMsvcrt(ModuleType):
    """msvcrt.locking's rules: a byte range from the file position, refused while another
    descriptor of the same file holds it, unlocked only at the exact range that was locked."""

    LK_UNLCK, LK_LOCK, LK_NBLCK = 0, 1, 2

    def __init__(self) -> None:
        super().__init__("msvcrt")
        self.held: dict[tuple[int, int], int] = {}  # (inode, offset) -> descriptor

    def locking(self, fd: int, mode: int, nbytes: int) -> None:
        assert nbytes == 1
        key = (os.fstat(fd).st_ino, os.lseek(fd, 0, os.SEEK_CUR))
        if mode == self.LK_UNLCK:
            if self.held.get(key) != fd:
                raise PermissionError(errno.EACCES, "not locked by this descriptor")
            del self.held[key]
        elif mode == self.LK_NBLCK:
            if self.held.setdefault(key, fd) != fd:
                raise PermissionError(errno.EACCES, "locked by another descriptor")
        else:
            raise AssertionError("LK_LOCK gives up after 10 s; lock() must not use it")


@pytest.fixture
def windows_locks(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """A fresh copy of the locks module as it loads on Windows, and the fake msvcrt it uses."""
    fake = FakeMsvcrt()
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setitem(sys.modules, "msvcrt", fake)
    spec = importlib.util.spec_from_file_location("windows_locks", locks.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "_WINDOWS_RETRY_SECONDS", 0.001)
    return SimpleNamespace(lock=module.lock, unlock=module.unlock, msvcrt=fake)


def test_windows_locks_the_first_byte_whatever_the_holder_wrote(
        tmp_path: Path, windows_locks: SimpleNamespace) -> None:
    path = tmp_path / "x.lock"
    first = os.open(path, os.O_RDWR | os.O_CREAT)
    second = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        assert windows_locks.lock(first, blocking=False) is True
        os.write(first, b"1234\n")  # the leader writes its pid: the file position moves
        assert windows_locks.lock(second, blocking=False) is False
        windows_locks.unlock(first)
        assert windows_locks.msvcrt.held == {}
        assert windows_locks.lock(second, blocking=True) is True
    finally:
        os.close(first)
        os.close(second)


def test_without_fcntl_a_lock_is_a_clear_oserror(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "fcntl", None)
    with pytest.raises(OSError, match="run a single worker") as caught:
        LeaderLock(str(tmp_path / "alerts.lock")).acquire()
    assert caught.value.errno == errno.ENOTSUP
    assert LeaderLock(None).acquire() is True  # one process needs no lock


@pytest.fixture
def no_fcntl_env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "sitecustomize.py").write_text(NO_FCNTL)
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(ROOT / "tests")])
    return env


def test_the_package_imports_without_fcntl(no_fcntl_env: dict[str, str], tmp_path: Path) -> None:
    probe = textwrap.dedent("""
        import sys
        try:
            import fcntl
        except ImportError:
            pass
        else:
            raise SystemExit("the sitecustomize did not hide fcntl")
        import asgi_monitor, asgi_monitor.alerting.leader, asgi_monitor.alerting.silences
        from asgi_monitor.__main__ import main
        print("imported")
    """)
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            env=no_fcntl_env, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "imported"


@pytest.mark.timeout(300)
def test_the_middleware_tests_pass_without_fcntl(no_fcntl_env: dict[str, str]) -> None:
    tests = ["tests/unit/hot_path/test_middleware.py", "tests/unit/web/test_metrics.py"]
    # Without FastAPI and Litestar tests: what is checked here is the missing fcntl, and the
    # lowest-versions run, which runs this test too, has no FastAPI.
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not frameworks",
         *tests],
        capture_output=True, text=True, env=no_fcntl_env, cwd=ROOT, timeout=280)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " passed" in result.stdout
