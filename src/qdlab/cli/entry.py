"""The ``qdlab`` console script: the typer app, with a Ctrl-C during start-up (the imports of
torch, ASE, Dask … take seconds) reported as the same one line as a Ctrl-C during a command."""

from __future__ import annotations

import sys

INTERRUPTED = "error: interrupted; rerun the same command to resume"


def main(prog_name: str | None = None) -> None:
    """Import the CLI and run it; Ctrl-C before a command starts → one line, exit 130."""
    try:
        from qdlab.cli.main import app
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        raise SystemExit(130) from None
    try:
        app(prog_name=prog_name)
    except KeyboardInterrupt:  # between typer's parsing and the command's own guard
        print(INTERRUPTED, file=sys.stderr)
        raise SystemExit(130) from None
