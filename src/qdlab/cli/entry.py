"""The ``qdlab`` console script: the typer app, with a Ctrl-C during start-up (the imports of
torch, ASE, Dask … take seconds) reported as the same one line as a Ctrl-C during a command."""

from __future__ import annotations

import sys

from qdlab.interrupts import caused_by_interrupt, ctrl_c_pressed, interrupt_reported, sigint_net

__all__ = ["INTERRUPTED", "caused_by_interrupt", "main", "report_interrupt"]

INTERRUPTED = "error: interrupted; rerun the same command to resume"


def _import_app():
    """``qdlab.cli.main.app``, imported with a Ctrl-C deferred to the end of the imports (at most the
    rest of the start-up, about 1 s): see :mod:`qdlab.interrupts`."""
    from qdlab.interrupts import deferred_sigint

    with deferred_sigint():
        from qdlab.cli.main import app
    return app


_reported = [False]


def report_interrupt() -> None:
    """Print the one line of a Ctrl-C (the commands' guard and :func:`main` both call this)."""
    print(INTERRUPTED, file=sys.stderr)
    _reported[0] = True
    interrupt_reported()


def main(prog_name: str | None = None) -> None:
    """Import the CLI and run it; Ctrl-C at any moment → one line, exit 130."""
    _reported[0] = False
    try:
        with sigint_net():
            _run(prog_name)
    finally:
        _clear_unhandled_interrupt_flag()


def _clear_unhandled_interrupt_flag() -> None:
    """CPython 3.11 sets ``_Py_UnhandledKeyboardInterrupt`` when code run through ``PyRun_*`` (by a
    library's C code) ends in KeyboardInterrupt, even if the caller swallows it, and ``python -m``
    then ends the process by SIGINT whatever exit code it was given (seen once in 200 real SIGINTs
    of ``python -m qdlab md``: exit by SIGINT after the one line). Every interrupt is handled by this
    function, so a flag left set is stale: cleared (no-op where the symbol does not exist)."""
    import ctypes

    try:
        ctypes.c_int.in_dll(ctypes.pythonapi, "_Py_UnhandledKeyboardInterrupt").value = 0
    except (ValueError, AttributeError, OSError):
        pass


def _run(prog_name: str | None) -> None:
    try:
        app = _import_app()
        app(prog_name=prog_name)
    except SystemExit as exc:
        # typer turns a Ctrl-C outside the commands' guard (while it parses the arguments) into a
        # silent exit 130: the line is printed here unless the guard printed it
        if exc.code == 130 and caused_by_interrupt(exc) and not _reported[0]:
            report_interrupt()
        raise
    except (KeyboardInterrupt, Exception) as exc:  # start-up, or between parsing and the guard
        if _reported[0] or not (caused_by_interrupt(exc) or ctrl_c_pressed()):  # reported: the guard's exit
            raise
        report_interrupt()
        raise SystemExit(130) from None
