"""The alert engine's files in a shared directory (lock, silences, state, history), opened as
untrusted input.

Whoever can write the directory can plant a name there before us: a symlink to a file the app
can write (which ``O_CREAT`` then truncates or overwrites), a FIFO (a plain ``open`` for reading
waits forever for a writer), a huge or sparse file, or another user's file. So every open here
uses ``O_NOFOLLOW`` (and ``O_NONBLOCK`` where it reads), never ``O_TRUNC``, and ``fstat`` accepts
only a regular file owned by this process' user under a size cap; a new file is written under a
fresh ``mkstemp`` name in the same directory and renamed over the old one (``rename`` replaces a
symlink itself, never its target).
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import tempfile

__all__ = ["UntrustedFile", "check_owned", "open_owned", "read_owned", "write_atomically"]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation


class UntrustedFile(OSError):
    """A name in the directory that is not a regular file of ours (or is too large)."""


def _owner_ok(st: os.stat_result) -> bool:
    # Windows has no uid (st_uid is 0 for every file); its ACLs are the directory's business.
    return sys.platform == "win32" or st.st_uid == os.geteuid()


def check_owned(fd: int, path: str, max_bytes: int | None = None) -> os.stat_result:
    """``fstat`` the open ``fd``: a regular file of ours, at most ``max_bytes`` long."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise UntrustedFile(f"{path} is not a regular file")
    if not _owner_ok(st):
        raise UntrustedFile(f"{path} belongs to uid {st.st_uid}, not to this process' user")
    if max_bytes is not None and st.st_size > max_bytes:
        raise UntrustedFile(f"{path} holds {st.st_size} bytes, more than the {max_bytes} "
                            "this file can need")
    return st


def _open(path: str, flags: int, mode: int = 0o600) -> int:
    try:
        return os.open(path, flags, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symlink
            raise UntrustedFile(errno.ELOOP, f"{path} is a symlink; it is not followed") from None
        raise


def open_owned(path: str, flags: int, mode: int = 0o600) -> int:
    """``os.open`` without following a symlink, then :func:`check_owned`; the descriptor, or
    :class:`UntrustedFile` (closed). ``flags`` must not hold ``O_TRUNC``: truncating is only
    safe once the file is known to be ours."""
    assert not flags & os.O_TRUNC
    # O_NONBLOCK too: opening a FIFO for writing would otherwise wait for a reader for ever (it
    # fails with ENXIO instead); on a regular file the flag changes nothing.
    fd = _open(path, flags | _NOFOLLOW | _NONBLOCK | _CLOEXEC | _BINARY, mode)
    try:
        check_owned(fd, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_owned(path: str, max_bytes: int) -> bytes:
    """The bytes of ``path``: never blocks on a FIFO, never follows a symlink, never reads more
    than ``max_bytes`` (``FileNotFoundError`` when there is no such file)."""
    fd = _open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _CLOEXEC | _BINARY)
    try:
        st = check_owned(fd, path, max_bytes)
        chunks: list[bytes] = []
        left = st.st_size
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def write_atomically(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` whole: written under an unpredictable name in the same
    directory (``mkstemp``: ``O_EXCL``, mode 0600), then renamed over it, so a reader or a crash
    sees the old contents or the new ones, and no planted name is ever written through."""
    directory, name = os.path.split(path)
    fd, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
