"""qdlab: computational toolkit for ligand-capped semiconductor nanocrystals.

Stages (one sub-package each): ``build`` (nanocrystal models), ``engines`` (ASE calculators),
``workflows`` (relax, phonons, MD, ...), ``analysis``, ``experiment``, ``store``, ``campaign``,
``report``; ``cli`` is a thin typer front end that library code never imports.
"""

__all__ = ["__version__"]


def __getattr__(name: str):
    """``qdlab.__version__``, looked up on first use: importing qdlab stays instant, so that a
    Ctrl-C in the first moments of a command already reaches the CLI's one-line handler."""
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("qdlab")
        except PackageNotFoundError:  # running from a source tree without installation
            return "0.0.0+unknown"
    raise AttributeError(f"module 'qdlab' has no attribute {name!r}")
