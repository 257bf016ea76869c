"""The CLI side of the input gate: read a structure and build an engine with one call each, so
that every command refuses bad files, NaN coordinates, overlapping atoms and unsupported elements
in one line before any work (:mod:`qdlab.build.gate`, :mod:`qdlab.engines.support`)."""

from __future__ import annotations

from pathlib import Path

from ase import Atoms
from ase.calculators.calculator import Calculator

from qdlab.build.gate import check_structure, read_structure


def load_structure(path: Path, *, what: str | None = None, min_atoms: int = 1, check: bool = True) -> Atoms:
    """Read ``path`` through the gate (one-line refusal on any problem)."""
    atoms = read_structure(path)
    if check:
        check_structure(atoms, what=what or str(path), min_atoms=min_atoms)
    return atoms


def load_engine(atoms: Atoms | None, engine: str, **options) -> Calculator:
    """The engine ``engine`` (registry name or ``module:factory``) after checking it supports ``atoms``."""
    from qdlab.engines.support import check_elements, make_calculator

    calc = make_calculator(engine, **options)
    if atoms is not None:
        check_elements(atoms, calc, engine)
    return calc
