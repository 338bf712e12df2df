"""Reading a file from the shared multiprocess directory, which is untrusted input.

Anyone who can write ``PROMETHEUS_MULTIPROC_DIR`` can plant a file named like a worker's: a
symlink to a secret (its bytes would be exposed as metric values), a FIFO (an ``open`` for
reading blocks until a writer comes, so a worker would hang for good), ``/dev/zero`` or a sparse
file of a GiB (read whole, it grows the worker by as much). So a reader opens with
``O_NOFOLLOW | O_NONBLOCK``, then ``fstat``s the descriptor it got (no race with a rename) and
accepts only a regular file with one link, owned by this process' user, no larger than the
format allows; and it reads at most what it asked for.

A refused file raises :class:`Untrusted` with a short reason, which the merge counts by reason
and logs once per file.
"""

from __future__ import annotations

import errno
import os
import stat
import sys

__all__ = ["Untrusted", "open_untrusted", "read_fd", "read_untrusted"]

# Windows has neither flag; there the directory's ACL is the only guard.
_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) \
    | getattr(os, "O_BINARY", 0)


class Untrusted(Exception):
    """A file the reader refused; ``reason`` is one of: not_regular, not_owner, too_large."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def open_untrusted(path: str, max_size: int) -> tuple[int, int]:
    """An open read-only descriptor of ``path`` and its size, after the checks above.

    Raises :class:`Untrusted` (the descriptor closed) or OSError (missing, unreadable; a
    symlink raises ELOOP, which is reported as not_regular)."""
    try:
        fd = os.open(path, _FLAGS)
    except OSError as exc:
        # ELOOP: a symlink (O_NOFOLLOW); EMLINK on FreeBSD; ENXIO: a socket.
        if exc.errno in (errno.ELOOP, errno.EMLINK, errno.ENXIO):
            raise Untrusted(path, "not_regular") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            raise Untrusted(path, "not_regular")
        if sys.platform != "win32" and info.st_uid != os.geteuid():
            raise Untrusted(path, "not_owner")
        if info.st_size > max_size:
            raise Untrusted(path, "too_large")
    except BaseException:
        os.close(fd)
        raise
    return fd, info.st_size


def read_untrusted(path: str, max_size: int, *, offset: int = 0, limit: int | None = None,
                   ) -> bytes:
    """Up to ``limit`` bytes of ``path`` from ``offset`` (default: to its end), after the checks
    of :func:`open_untrusted`."""
    fd, size = open_untrusted(path, max_size)
    try:
        return read_fd(fd, size, offset=offset, limit=limit)
    finally:
        os.close(fd)


def read_fd(fd: int, size: int, *, offset: int = 0, limit: int | None = None) -> bytes:
    """At most ``size - offset`` (and ``limit``) bytes from ``offset``; a file that shrinks
    meanwhile gives fewer, one that grows no more."""
    want = max(0, size - offset)
    if limit is not None:
        want = min(want, limit)
    if want == 0:
        return b""
    os.lseek(fd, offset, os.SEEK_SET)
    pieces = []
    got = 0
    while got < want:
        more = os.read(fd, want - got)
        if not more:
            break
        pieces.append(more)
        got += len(more)
    return b"".join(pieces)
