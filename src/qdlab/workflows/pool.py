"""Worker processes that stop at once on Ctrl-C: the parent decides, the workers never see SIGINT.

A Ctrl-C in a terminal sends SIGINT to the whole foreground process group, workers included:
each then prints its own KeyboardInterrupt traceback (dozens of lines from Dask workers), and a
graceful pool shutdown waits for the work in flight (measured 3–5 s for `qdlab phonons --workers 2`
and `qdlab campaign run` on 2 cores). Here instead:

- :func:`sigint_blocked_children`: processes started inside it have SIGINT *blocked* (the signal
  mask is inherited through fork + exec; an ignored disposition would also be lost in the parent).
  The parent's own Ctrl-C during that time is kept pending and raised when the block ends.
- :func:`stop_processes`: SIGKILL and join worker processes (their units are checkpointed atomically
  or with per-record checksums, so a killed unit is simply redone on the next run).
- :func:`worker_pool`: a spawn :class:`~concurrent.futures.ProcessPoolExecutor` built from both: on
  an exception (Ctrl-C included) its processes are killed and nothing is waited for.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any


@contextmanager
def sigint_blocked_children() -> Iterator[None]:
    """Block SIGINT in the calling (main) thread while child processes are started, so that they
    inherit it blocked; restore the mask after (a Ctrl-C that arrived meanwhile is raised then).

    Threads started inside also inherit the block, which only makes the main thread the one that
    receives Ctrl-C. Outside the main thread or without ``pthread_sigmask`` this does nothing.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()  # it unblocks SIGINT itself when it starts: start it first
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def stop_processes(procs: Iterable[Any], timeout_s: float = 2.0) -> None:
    """SIGKILL ``procs`` (:class:`multiprocessing.Process` objects) and join them (at most
    ``timeout_s`` each). They are reaped through their own objects, so that the pool or cluster
    that owns them sees them gone (reaping them elsewhere leaves it waiting for ever)."""
    procs = [p for p in procs if p is not None]
    for p in procs:
        try:
            p.kill()
        except (OSError, ValueError, AttributeError):
            continue
    for p in procs:
        try:
            p.join(timeout_s)
        except (OSError, ValueError, AssertionError):
            continue


class _QuietPool(ProcessPoolExecutor):
    """A process pool whose workers (spawned on demand by ``submit``) have SIGINT blocked."""

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any):
        with sigint_blocked_children():
            return super().submit(fn, *args, **kwargs)

    def kill(self) -> None:
        """Cancel what is queued and kill the workers without waiting for the work in flight."""
        procs = dict(getattr(self, "_processes", None) or {})
        self.shutdown(wait=False, cancel_futures=True)
        stop_processes(procs.values())


def end_with_parent(parent_pid: int) -> None:
    """In a worker process: end (SIGTERM) when the parent dies (Linux ``PR_SET_PDEATHSIG``), so a
    killed run leaves no workers computing for nothing; exit at once if the parent is already gone
    (killed while this worker was still starting: the death signal would never come)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:
        os._exit(1)


def _start_worker(parent_pid: int, initializer: Callable | None, initargs: tuple) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    end_with_parent(parent_pid)
    if initializer is not None:
        initializer(*initargs)


@contextmanager
def worker_pool(workers: int, initializer: Callable | None = None, initargs: tuple = ()) -> Iterator[_QuietPool]:
    """``workers`` spawned processes (one OpenMP thread, ended with the parent, then
    ``initializer(*initargs)`` in each); on leaving normally the pool is shut down as usual, on any
    exception (Ctrl-C, a failed unit) its processes are killed."""
    import multiprocessing as mp

    pool = _QuietPool(workers, mp_context=mp.get_context("spawn"), initializer=_start_worker,
                      initargs=(os.getpid(), initializer, initargs))
    try:
        yield pool
    except BaseException:
        pool.kill()
        raise
    pool.shutdown(wait=True)
