"""Ctrl-C that reaches the end of the command.

* During imports of compiled libraries (torch, scipy, the ML potentials' weights) it is deferred to
  their end (:func:`deferred_sigint`): an interrupt raised inside a library's import can be swallowed
  (a ``try: import … except ImportError`` around a compiled module whose initialisation it cut) or
  turned into another error, after which the command would run on as if nothing had been pressed.
* Anywhere else, the console script's handler (:func:`install_sigint_net`) raises KeyboardInterrupt
  as Python's does and then checks that it arrives: while the command has not reported the interrupt,
  it is raised again every ``interval_s``, unless the first one is still on its way out (cleanup in a
  ``finally`` or ``__exit__`` is left to finish). A library that swallows the KeyboardInterrupt
  (a bare ``except``) can no longer keep the command running.
"""

from __future__ import annotations

import _thread
import os
import signal
import sys
import threading
import time
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
        if _NET.take_redelivery():  # the net's reminder of an earlier press: pending, not a second one
            if not (pending or _NET.reported):
                pending.append(signum)
            return
        if pending:
            raise KeyboardInterrupt
        _NET.pressed()
        pending.append(signum)

    remember.qdlab_net = True  # type: ignore[attr-defined]
    with kept_sigint():
        signal.signal(signal.SIGINT, remember)
        yield
    if pending:
        raise KeyboardInterrupt


def caused_by_interrupt(exc: BaseException | None) -> bool:
    """True when ``exc`` is a KeyboardInterrupt or was raised because of one: a Ctrl-C while a
    compiled module initialises surfaces as ``ImportError: initialization failed`` whose cause is
    the KeyboardInterrupt (seen with scipy's HiGHS extension)."""
    seen: set[int] = set()
    cur = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, KeyboardInterrupt):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


class _Net:
    """State of the console script's SIGINT handler (one per process)."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.interval_s = 2.0
        self.reported = False
        self.redelivering = False
        self.watching = False
        self.lock = threading.Lock()  # a reminder is sent, or the interrupt reported, never both at once

    def set_reported(self) -> None:
        """No reminder after this; one already sent is ignored by the handlers (it sees ``reported``)."""
        with self.lock:
            self.reported = True

    def take_redelivery(self) -> bool:
        """Whether this SIGINT is the net's own reminder (and consume the mark)."""
        mine, self.redelivering = self.redelivering, False
        return mine

    def pressed(self) -> None:
        """A real Ctrl-C: from now on, watch that the command reports it (installed process only)."""
        if os.getpid() == self.pid and not self.watching:
            self.watching = True
            threading.Thread(target=self._watch, name="qdlab-sigint-net", daemon=True).start()

    def handler(self, signum: int, frame: object) -> None:
        if self.take_redelivery():
            if self.reported or caused_by_interrupt(sys.exc_info()[1]):
                return  # reported already, or the first KeyboardInterrupt is still propagating (cleanup runs)
        else:
            self.pressed()
        raise KeyboardInterrupt

    def _watch(self) -> None:
        while True:
            time.sleep(self.interval_s)
            with self.lock:
                if self.reported or os.getpid() != self.pid:
                    return
                if getattr(signal.getsignal(signal.SIGINT), "qdlab_net", False):  # ours or deferred_sigint's
                    self.redelivering = True
                    _thread.interrupt_main(signal.SIGINT)


_Net.handler.qdlab_net = True  # type: ignore[attr-defined]
_NET = _Net()


def ctrl_c_pressed() -> bool:
    """Whether a real Ctrl-C reached the console script's handlers in this process (after
    :func:`install_sigint_net`): an error that follows it is its consequence, even when a library
    turned the KeyboardInterrupt into a fresh error without a link to it (numpy's structured-dtype
    comparison gave a bare TypeError once in 200 real SIGINTs of ``md``)."""
    return _NET.watching and os.getpid() == _NET.pid


def install_sigint_net(interval_s: float = 2.0) -> None:
    """Install the console script's SIGINT handler in this (main-thread) process: a KeyboardInterrupt
    as usual, raised again every ``interval_s`` s until :func:`interrupt_reported` is called."""
    _NET.pid, _NET.interval_s, _NET.reported, _NET.watching = os.getpid(), interval_s, False, False
    signal.signal(signal.SIGINT, _NET.handler)


@contextmanager
def sigint_net(interval_s: float = 2.0) -> Iterator[None]:
    """:func:`install_sigint_net` for the block; afterwards the reminders stop and the handler in place
    before is put back (for callers in a longer-lived process: tests, an embedding host)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with kept_sigint():
        install_sigint_net(interval_s)
        try:
            yield
        finally:
            _NET.set_reported()
            _handle_pending()  # a reminder sent just before is taken by our handler, not the one put back
            _NET.pid = None    # uninstalled: ctrl_c_pressed() is False again in this process


def interrupt_reported() -> None:
    """The command has reported the interrupt (its one line): the net stops raising it."""
    _NET.set_reported()


def _handle_pending() -> None:
    """A Python-level call: the interpreter runs the handlers of signals pending in this thread here."""
