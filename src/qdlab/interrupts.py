"""Ctrl-C during imports of compiled libraries (torch, scipy, the ML potentials' weights) is deferred
to their end: an interrupt raised inside a library's import can be swallowed (a ``try: import …
except ImportError`` around a compiled module whose initialisation it cut) or turned into another
error, after which the command would run on as if nothing had been pressed."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def kept_sigint() -> Iterator[None]:
    """The SIGINT handler in place before the block is put back after it: some libraries replace it
    when imported (dask_jobqueue's runner installs ``sys.exit()``). Main thread only; a handler
    installed outside Python (``getsignal`` gives None) cannot be put back and is left alone."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


@contextmanager
def deferred_sigint() -> Iterator[None]:
    """Inside: the first Ctrl-C is remembered and raised as KeyboardInterrupt when the block ends
    (a second one raises at once). Outside the main thread (a Dask worker, an embedding host) the
    block runs unchanged, since only the main thread can hold a signal handler."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def remember(signum: int, frame: object) -> None:
        if pending:
            raise KeyboardInterrupt
        pending.append(signum)

    with kept_sigint():
        signal.signal(signal.SIGINT, remember)
        yield
    if pending:
        raise KeyboardInterrupt
