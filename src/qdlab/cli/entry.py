"""The ``qdlab`` console script: the typer app, with a Ctrl-C during start-up (the imports of
torch, ASE, Dask … take seconds) reported as the same one line as a Ctrl-C during a command."""

from __future__ import annotations

import signal
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
    """``qdlab.cli.main.app`` with a Ctrl-C during the imports deferred to their end: an interrupt
    raised inside a library's import can be swallowed (a ``try: import … except ImportError``
    around a compiled module whose initialisation it cut) or turned into another error, and the
    command then runs on. The first Ctrl-C is remembered and raised once the imports are done
    (at most the rest of the start-up, about 1 s); a second one raises at once."""
    pending: list[int] = []

    def remember(signum: int, frame: object) -> None:
        if pending:
            raise KeyboardInterrupt
        pending.append(signum)

    try:
        previous = signal.signal(signal.SIGINT, remember)
    except ValueError:  # not the main thread (an embedding host): imports as they are
        previous = None
    try:
        from qdlab.cli.main import app
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if pending:
        raise KeyboardInterrupt
    return app


def main(prog_name: str | None = None) -> None:
    """Import the CLI and run it; Ctrl-C before a command starts → one line, exit 130."""
    try:
        app = _import_app()
        app(prog_name=prog_name)
    except (KeyboardInterrupt, ImportError) as exc:  # start-up, or between parsing and the guard
        if not caused_by_interrupt(exc):
            raise
        print(INTERRUPTED, file=sys.stderr)
        raise SystemExit(130) from None
