"""The builder checks its own output: no two atoms too close, metal–anion bonds matching the
lattice constant it was given. A model that fails is refused with one line instead of written.

Bounds: any pair ≥ 0.6 Å (the closest legitimate pair in a model is an intramolecular H–H,
≥ 1.5 Å; C–H is 1.09 Å); every B (metal) atom's nearest X (anion) at a/2 within −20 %/+25 %
(octahedral tilts of an orthorhombic cut shorten the projection by < 5 %, relaxed models are
not built here); core–core contacts other than B–X ≥ 0.6·a/2.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from scipy.spatial import cKDTree

from qdlab.errors import BuildError

MIN_PAIR_A = 0.6


def check_built(atoms: Atoms, recipe=None) -> Atoms:
    """Return ``atoms`` if it is a sensible model, else raise :class:`BuildError` (one line)."""
    if len(atoms) == 0:
        raise BuildError("the recipe produced no atoms")
    if not np.isfinite(atoms.positions).all():
        raise BuildError("the builder produced non-finite coordinates")
    if len(atoms) > 1:
        d, idx = cKDTree(atoms.positions).query(atoms.positions, k=2)
        i = int(np.argmin(d[:, 1]))
        if d[i, 1] < MIN_PAIR_A:
            j = int(idx[i, 1])
            raise BuildError(f"the model would put atoms {i} ({atoms.symbols[i]}) and {j} ({atoms.symbols[j]}) "
                             f"{d[i, 1]:.2f} Å apart; choose a larger lattice constant, fewer ligands or a "
                             "larger --min-distance")
    a = atoms.info.get("lattice_A")
    role = atoms.arrays.get("role")
    if a is None or role is None:
        return atoms
    _check_bonds(atoms, np.asarray(role), float(a))
    return atoms


def _check_bonds(atoms: Atoms, role: np.ndarray, a: float) -> None:
    b = np.flatnonzero(role == "B")
    x = np.flatnonzero(role == "X")
    if b.size == 0 or x.size == 0:
        return
    d, _ = cKDTree(atoms.positions[x]).query(atoms.positions[b])
    half = a / 2
    lo, hi = 0.8 * half, 1.25 * half
    bad = np.flatnonzero((d < lo) | (d > hi))
    if bad.size:
        k = int(bad[0])
        raise BuildError(f"metal–anion bond {d[k]:.2f} Å at atom {int(b[k])} does not match the lattice "
                         f"constant {a:g} Å (expected {half:.2f} Å): the geometry cannot be made as asked")
    core = np.flatnonzero(np.isin(role, ["A", "B", "X"]))
    if core.size > 1:
        pairs = cKDTree(atoms.positions[core]).query_pairs(0.6 * half, output_type="ndarray")
        if len(pairs):
            i, j = core[pairs[0]]
            raise BuildError(f"core atoms {i} ({atoms.symbols[i]}) and {j} ({atoms.symbols[j]}) are closer than "
                             f"{0.6 * half:.2f} Å: the lattice constant {a:g} Å is too small for this structure")
