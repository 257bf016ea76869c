"""The ``qdlab`` console script: the typer app, with a Ctrl-C during start-up (the imports of
torch, ASE, Dask … take seconds) reported as the same one line as a Ctrl-C during a command."""

from __future__ import annotations

import sys

INTERRUPTED = "error: interrupted; rerun the same command to resume"


def caused_by_interrupt(exc: BaseException) -> bool:
    """True when ``exc`` is a KeyboardInterrupt or was raised because of one: a Ctrl-C while a
    compiled module initialises surfaces as ``ImportError: initialization failed`` whose cause is
    the KeyboardInterrupt (seen with scipy's HiGHS extension)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, KeyboardInterrupt):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


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


def main(prog_name: str | None = None) -> None:
    """Import the CLI and run it; Ctrl-C at any moment → one line, exit 130."""
    _reported[0] = False
    try:
        app = _import_app()
        app(prog_name=prog_name)
    except SystemExit as exc:
        # typer turns a Ctrl-C outside the commands' guard (while it parses the arguments) into a
        # silent exit 130: the line is printed here unless the guard printed it
        if exc.code == 130 and caused_by_interrupt(exc) and not _reported[0]:
            report_interrupt()
        raise
    except (KeyboardInterrupt, ImportError) as exc:  # start-up, or between parsing and the guard
        if not caused_by_interrupt(exc):
            raise
        report_interrupt()
        raise SystemExit(130) from None
