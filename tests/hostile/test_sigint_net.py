"""The console script's SIGINT net (qdlab.interrupts.install_sigint_net): a Ctrl-C that a library
swallows is raised again until the command reports it, cleanup of an interrupt on its way out is not
cut, a second real Ctrl-C still is, and deferred_sigint blocks keep their meaning.

Each case runs in a fresh interpreter (the net is process state: a handler and a watch thread) that
sends itself SIGINT at fixed points, so nothing depends on the timing of a second process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")

PRELUDE = """
import os, signal, sys, time
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # as a shell starts it, whatever the test's state
# and with Python's own handler: started in the background (nohup, `cmd &` without job control) SIGINT is
# inherited as ignored, Python then installs no handler, and the "without the net" cases never see the press
signal.signal(signal.SIGINT, signal.default_int_handler)
from qdlab.interrupts import deferred_sigint, install_sigint_net, interrupt_reported

def press():
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.05)

def reported_exit():  # what the commands' guard does: the one line (here a word), then exit 130
    interrupt_reported()
    print("interrupted", flush=True)
    sys.exit(130)

def busy(seconds):  # the command running on (pure Python, as most of a command's loop is)
    t = time.monotonic()
    while time.monotonic() - t < seconds:
        time.sleep(0.01)
"""


def _run(body: str) -> tuple[int, list[str], float, str]:
    """Run PRELUDE + ``body`` in a fresh interpreter; returns (exit code, printed lines, seconds, stderr)."""
    env = os.environ | {"PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(body)], env=env, capture_output=True,
                         text=True, timeout=60)
    return out.returncode, out.stdout.split(), time.monotonic() - t0, out.stderr


def test_a_swallowed_ctrl_c_is_raised_again_until_reported():
    """A library's bare ``except`` eats the KeyboardInterrupt and the command runs on (20 s of work):
    the net raises it again 0.3 s later, and the command ends by its interrupt path. Without the net
    (the same script, not installed) it runs the 20 s to the end."""
    body = """
    {install}
    try:
        try:
            press()
        except KeyboardInterrupt:
            print("swallowed", flush=True)
        busy(20)
        print("ran-on", flush=True)
    except KeyboardInterrupt:
        reported_exit()
    """
    rc, lines, secs, _ = _run(body.format(install="install_sigint_net(0.3)"))
    assert (rc, lines) == (130, ["swallowed", "interrupted"]) and secs < 10
    rc, lines, secs, _ = _run(body.format(install="pass").replace("busy(20)", "busy(3)"))
    assert (rc, lines) == (0, ["swallowed", "ran-on"])  # the defect the net closes


def test_cleanup_of_a_propagating_interrupt_is_not_cut_but_a_second_press_cuts_it():
    """A ``finally`` that takes 1.5 s (five reminders at 0.3 s) finishes; a real second Ctrl-C during
    it ends it at once, as it does without the net."""
    body = """
    install_sigint_net(0.3)
    try:
        try:
            press()
            busy(20)
        finally:
            {second}
            busy(1.5)
            print("cleaned", flush=True)
    except KeyboardInterrupt:
        reported_exit()
    """
    assert _run(body.format(second="pass"))[:2] == (130, ["cleaned", "interrupted"])
    assert _run(body.format(second="press()"))[:2] == (130, ["interrupted"])


def test_reminders_stop_once_the_interrupt_is_reported():
    body = """
    install_sigint_net(0.2)
    try:
        press()
        busy(20)
    except KeyboardInterrupt:
        interrupt_reported()
    busy(1.5)  # e.g. an interactive host that goes on after the command
    print("went-on", flush=True)
    """
    assert _run(body)[:2] == (0, ["went-on"])


def test_a_deferred_block_still_finishes_before_the_interrupt():
    """A press inside a deferred_sigint block (imports) whose block lasts 1.5 s: the reminders are
    not taken as a second press, the block finishes, then the interrupt is raised."""
    body = """
    install_sigint_net(0.3)
    try:
        with deferred_sigint():
            press()
            busy(1.5)
            print("block-done", flush=True)
        print("after-block", flush=True)
    except KeyboardInterrupt:
        reported_exit()
    """
    assert _run(body)[:2] == (130, ["block-done", "interrupted"])


def test_the_console_script_installs_the_net():
    """`qdlab.cli.entry.main` with a command (behind the commands' guard) that swallows the first
    KeyboardInterrupt: the one-line message and exit 130, not 20 s of work."""
    body = """
    import typer
    import qdlab.cli.entry as entry
    from qdlab.cli.common import guarded

    @guarded
    def command(prog_name=None):
        try:
            press()
        except KeyboardInterrupt:
            pass
        busy(20)

    entry._import_app = lambda: command
    try:
        entry.main()
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    """
    rc, _, secs, err = _run(body)
    assert rc == 130 and err.strip().splitlines() == ["error: interrupted; rerun the same command to resume"]
    assert secs < 15


def test_a_reminder_crossing_the_report_is_ignored():
    """The watch thread may send its reminder just as the command reports (a race seen once in 150
    real `qdlab md` runs: exit by SIGINT after the one line). A reminder pending after the report is
    taken by the net's handler and ignored, inside the block and when the block ends."""
    body = """
    import _thread
    from qdlab.interrupts import _NET, sigint_net
    with sigint_net(60):
        try:
            press()
            busy(20)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        interrupt_reported()
        _NET.redelivering = True
        _thread.interrupt_main(signal.SIGINT)
        busy(0.2)
        _NET.redelivering = True
        _thread.interrupt_main(signal.SIGINT)
    busy(0.2)
    print("clean", flush=True)
    """
    assert _run(body)[:2] == (0, ["interrupted", "clean"])


def test_an_error_raised_by_the_interrupt_is_reported_as_the_interrupt(capsys):
    """A Ctrl-C inside np.savez's zip writing surfaced as ``ValueError: Can't close the ZIP file while
    there is an open writing handle`` (raised by the zip's close in a ``finally`` while the
    KeyboardInterrupt propagated): a traceback and exit 1, seen once in 200 real SIGINTs of `md`. The
    commands' guard reports any error caused by a Ctrl-C as the interrupt; other errors pass through."""
    import pytest
    import typer

    from qdlab.cli.common import guarded

    @guarded
    def command(interrupted: bool):
        try:
            if interrupted:
                raise KeyboardInterrupt
        finally:
            raise ValueError("Can't close the ZIP file while there is an open writing handle on it")

    with pytest.raises(typer.Exit) as exc:
        command(True)
    assert exc.value.exit_code == 130
    assert capsys.readouterr().err.strip().splitlines() == ["error: interrupted; rerun the same command to resume"]
    with pytest.raises(ValueError, match="ZIP"):
        command(False)


def test_python_m_exits_with_its_code_after_a_library_swallowed_an_interrupt(tmp_path):
    """CPython 3.11 remembers a KeyboardInterrupt that ended code run by exec()/eval() of a string (or
    any ``PyRun_*``), even when the caller swallowed it, until the next such call; ``python -m`` then
    ends the process by SIGINT whatever its exit code (seen once in 200 real SIGINTs of ``python -m
    qdlab md``: killed by SIGINT after the one line). With a command that swallows such an interrupt
    and exits 0, ``main`` exits 0; without its clearing of the flag the same host dies by SIGINT."""
    (tmp_path / "swallowing_host.py").write_text(textwrap.dedent("""
        import os, sys
        import qdlab.cli.entry as entry

        def app(prog_name=None):
            try:
                exec("raise KeyboardInterrupt")   # a Ctrl-C inside a library's eval() of an annotation …
            except KeyboardInterrupt:
                pass                              # … which the library swallows
            sys.exit(0)

        entry._import_app = lambda: app
        if os.environ.get("NO_CLEAR"):
            entry._clear_unhandled_interrupt_flag = lambda: None
        entry.main()
        """))
    env = os.environ | {"PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}

    def rc(**extra: str) -> int:
        return subprocess.run([sys.executable, "-m", "swallowing_host"], cwd=tmp_path, env=env | extra,
                              capture_output=True, timeout=120).returncode

    assert rc() == 0
    assert rc(NO_CLEAR="1") == -2  # the CPython behaviour the clearing works around


def test_an_error_without_a_link_after_a_ctrl_c_is_reported_as_the_interrupt():
    """numpy turned a Ctrl-C inside its structured-dtype comparison into a bare ``TypeError: Cannot
    compare structured arrays …`` with no link to the KeyboardInterrupt (a traceback and exit 1, once
    in 200 real SIGINTs of `md`). After a real Ctrl-C reached the console script, any error ends the
    command as the interrupt; without a Ctrl-C the same error is a traceback, as before."""
    body = """
    import typer
    import qdlab.cli.entry as entry
    from qdlab.cli.common import guarded

    @guarded
    def command(prog_name=None):
        try:
            {press}
        except KeyboardInterrupt:
            pass                      # the library drops the interrupt …
        raise TypeError("Cannot compare structured arrays unless they have a common dtype")  # … and fails

    entry._import_app = lambda: command
    try:
        entry.main()
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    """
    rc, _, _, err = _run(body.format(press="press()"))
    assert rc == 130 and err.strip().splitlines() == ["error: interrupted; rerun the same command to resume"]
    rc, _, _, err = _run(body.format(press="pass"))
    assert rc == 1 and "TypeError: Cannot compare structured arrays" in err
