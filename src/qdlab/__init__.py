"""qdlab: computational toolkit for ligand-capped semiconductor nanocrystals.

Stages (one sub-package each): ``build`` (nanocrystal models), ``engines`` (ASE calculators),
``workflows`` (relax, phonons, MD, ...), ``analysis``, ``experiment``, ``store``, ``campaign``,
``report``; ``cli`` is a thin typer front end that library code never imports.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("qdlab")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
