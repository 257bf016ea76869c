"""Exclusive locks on output paths and stores: one writer at a time, stale locks taken over.

A lock on ``path`` is the file ``<path>.lock`` holding one JSON line (pid, host, command, start
time) and an exclusive ``flock`` for as long as the owner lives. The kernel drops the ``flock``
when the owner dies (SIGKILL included), so a lock file left behind by a dead process is stale and
the next writer takes it over; a live owner makes :func:`output_lock` raise :class:`LockError`
with one line naming it. On file systems without ``flock`` the pid of a lock written on this
host is checked instead.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from qdlab.errors import QdlabError
from qdlab.store.files import pid_alive


class LockError(QdlabError):
    """The output is being written by another live process."""


def lock_path(path: str | os.PathLike) -> Path:
    """The lock file of ``path`` (a file or a folder such as a campaign store)."""
    p = Path(path)
    return p.with_name(p.name + ".lock")


def _command() -> str:
    argv = [Path(sys.argv[0]).name if sys.argv else "python", *sys.argv[1:]]
    return " ".join(argv)[:300]


def read_owner(path: str | os.PathLike) -> dict | None:
    """The holder recorded in the lock of ``path`` (None if there is no readable record)."""
    try:
        return json.loads(lock_path(path).read_text() or "null")
    except (OSError, ValueError):
        return None


def _describe(owner: dict | None) -> str:
    if not owner:
        return "another process"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner.get("started", 0)))
    return f"pid {owner.get('pid')} on {owner.get('host')} since {since} ({owner.get('command', '?')})"


def _try_acquire(lock: Path) -> int | None:
    """An fd holding the flock of ``lock`` (the file the path names now), or None if held."""
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    try:  # the previous owner may have removed the file between our open and our flock
        same = os.fstat(fd).st_ino == os.stat(lock).st_ino
    except FileNotFoundError:
        same = False
    if not same:
        os.close(fd)
        return _try_acquire(lock)
    return fd


@contextlib.contextmanager
def output_lock(path: str | os.PathLike, *, wait_s: float = 0.0, what: str = "output") -> Iterator[Path]:
    """Hold the exclusive lock of ``path`` inside the ``with`` block.

    ``wait_s`` > 0 waits up to that many seconds for the owner to finish before refusing.
    Raises :class:`LockError` (one line naming the owner) if another live process holds it.
    """
    lock = lock_path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_s
    while True:
        fd = _try_acquire(lock)
        if fd is not None:
            break
        if time.monotonic() >= deadline:
            raise LockError(f"{what} {path} is being written by {_describe(read_owner(path))}; "
                            "wait for it to finish (or stop it) and run again")
        time.sleep(0.2)
    owner = read_owner(path)
    if owner and owner.get("host") == socket.gethostname() and owner.get("pid") != os.getpid() \
            and pid_alive(int(owner.get("pid", 0))) and not _flock_works(lock):
        os.close(fd)
        raise LockError(f"{what} {path} is being written by {_describe(owner)}; wait for it to finish and run again")
    record = {"pid": os.getpid(), "host": socket.gethostname(), "command": _command(), "started": time.time()}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
    try:
        yield lock
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)


def _flock_works(lock: Path) -> bool:
    """Whether a second open file description is refused the flock we hold (real exclusion)."""
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
