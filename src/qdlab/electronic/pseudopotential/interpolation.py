"""Per-atom cubic↔orthorhombic mixing weights from the Pb–I–Pb angles (seed 003 eqs. 11–12).

For an I bonded to two Pb the orthorhombic weight is w = 1 for θ ≤ 160.6° (the seed prints 106.6°, a
typo: SCIENCE.md §9), w = 0 for θ ≥ 175°, linear in between; I bonded to fewer than two Pb takes
the cubic set (w = 0); Pb takes the mean w of its bonded I; Cs carries no potential (w irrelevant,
0). The Hamiltonian mixes the operators, (1−w)·V_cubic + w·V_ortho, not the Table S4 numbers.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list

THETA_ORTHO_DEG = 160.6
THETA_CUBIC_DEG = 175.0
PB_I_CUTOFF_A = 3.8


def weight_from_angle(theta_deg: np.ndarray) -> np.ndarray:
    """Orthorhombic weight of an I from its Pb–I–Pb angle (degrees)."""
    t = np.asarray(theta_deg, float)
    return np.clip((THETA_CUBIC_DEG - t) / (THETA_CUBIC_DEG - THETA_ORTHO_DEG), 0.0, 1.0)


def orthorhombic_weights(atoms: Atoms, cutoff_A: float = PB_I_CUTOFF_A) -> tuple[np.ndarray, np.ndarray]:
    """(w per atom, Pb–I–Pb angle per atom in degrees, NaN where undefined)."""
    sym = np.asarray(atoms.get_chemical_symbols())
    i, j, D = neighbor_list("ijD", atoms, cutoff_A)
    pair = (sym[i] == "I") & (sym[j] == "Pb")
    i, j, D = i[pair], j[pair], D[pair]
    n = len(atoms)
    count = np.bincount(i, minlength=n)
    w = np.zeros(n)
    theta = np.full(n, np.nan)
    two = np.flatnonzero(count == 2)
    if len(two):
        order = np.argsort(i, kind="stable")
        i, j, D = i[order], j[order], D[order]
        start = np.searchsorted(i, two)
        d1, d2 = D[start], D[start + 1]
        cos = np.einsum("ij,ij->i", d1, d2) / (np.linalg.norm(d1, axis=1) * np.linalg.norm(d2, axis=1))
        theta[two] = np.degrees(np.arccos(np.clip(cos, -1, 1)))
        w[two] = weight_from_angle(theta[two])
    pb = np.flatnonzero(sym == "Pb")
    acc = np.bincount(j, weights=w[i], minlength=n)
    nb = np.bincount(j, minlength=n)
    w[pb] = np.where(nb[pb] > 0, acc[pb] / np.maximum(nb[pb], 1), 0.0)
    return w, theta
