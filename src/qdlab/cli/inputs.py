"""The CLI side of the input gate: read a structure and build an engine with one call each, so
that every command refuses bad files, NaN coordinates, overlapping atoms and unsupported elements
in one line before any work (:mod:`qdlab.build.gate`, :mod:`qdlab.engines.support`)."""

from __future__ import annotations

from pathlib import Path

from ase import Atoms
from ase.calculators.calculator import Calculator

from qdlab.build.gate import check_structure, read_structure
from qdlab.engines.spec import EngineSpec


def load_structure(path: Path, *, what: str | None = None, min_atoms: int = 1, check: bool = True) -> Atoms:
    """Read ``path`` through the gate (one-line refusal on any problem)."""
    atoms = read_structure(path)
    if check:
        check_structure(atoms, what=what or str(path), min_atoms=min_atoms)
    return atoms


def load_engine(atoms: Atoms | None, spec: EngineSpec) -> Calculator:
    """The engine of ``spec`` (registry name or ``module:factory``) after checking it supports ``atoms``."""
    from qdlab.engines.support import check_elements

    calc = spec.calculator()
    if atoms is not None:
        check_elements(atoms, calc, spec.name)
    return calc


def check_phonon_job(atoms: Atoms, *, fmax: float, relax_steps: int, delta: float, sigma: float, workers: int,
                     batch: int | None, method: str) -> None:
    """Every option of ``qdlab phonons`` and the Hessian's memory, before the relaxation starts."""
    from qdlab.build.gate import InputError, check_memory, check_option, hessian_bytes

    check_option("--fmax", fmax, gt=0, unit="eV/Å")
    check_option("--relax-steps", relax_steps, ge=0)
    check_option("--delta δ", delta, gt=0, le=0.2, unit="Å")
    check_option("--sigma", sigma, gt=0, unit="cm⁻¹")
    check_option("--workers", workers, ge=1)
    check_option("--batch", batch, ge=1)
    if method not in ("fd", "analytic"):
        raise InputError(f"--method must be fd or analytic, not {method!r}")
    check_memory(hessian_bytes(len(atoms)), f"the Hessian of {len(atoms)} atoms",
                 "use a smaller model or a machine with more memory")
