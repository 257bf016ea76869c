"""qdlab.interrupts.deferred_sigint: a Ctrl-C inside the block (imports of compiled libraries, ML
weights) is raised when the block ends, even if code inside swallowed what it saw."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from qdlab.interrupts import deferred_sigint


def _ctrl_c_swallowed() -> None:
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
    except KeyboardInterrupt:   # what a library's `except` around a cut import does
        pass


def test_a_swallowed_ctrl_c_is_raised_at_the_end_of_the_block():
    before = signal.getsignal(signal.SIGINT)
    done = []
    with pytest.raises(KeyboardInterrupt):
        with deferred_sigint():
            _ctrl_c_swallowed()
            done.append("rest of the imports")      # the block still finishes its work first
    assert done == ["rest of the imports"]
    assert signal.getsignal(signal.SIGINT) is before          # the handler in place is put back


def test_a_second_ctrl_c_raises_at_once():
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with deferred_sigint():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.02)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            reached.append("after the second")
    assert reached == []


def test_no_ctrl_c_no_effect_and_other_errors_pass_through():
    before = signal.getsignal(signal.SIGINT)
    with deferred_sigint():
        pass
    with pytest.raises(ValueError, match="x"):
        with deferred_sigint():
            raise ValueError("x")
    assert signal.getsignal(signal.SIGINT) is before


def test_outside_the_main_thread_the_block_runs_unchanged():
    seen = []
    before = signal.getsignal(signal.SIGINT)

    def worker():
        with deferred_sigint():
            seen.append(signal.getsignal(signal.SIGINT) is before)
    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen == [True]
