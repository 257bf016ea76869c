"""One vacuum-box helper: a finite cluster in an orthorhombic box with vacuum on every side."""

from __future__ import annotations

import numpy as np
from ase import Atoms


def vacuum_box(atoms: Atoms, vacuum_A: float = 15.0, *, min_ratio: float = 0.0, move: bool = True) -> Atoms:
    """A copy of a cluster in an orthorhombic box of edge max(extent + 2·``vacuum_A``,
    ``min_ratio`` × extent) per axis (Å), calculator and constraints dropped; with ``move`` the
    atoms are centred in it (a rigid translation: energies, forces and Hessians do not change),
    otherwise only the cell is set. Periodic models are returned as unchanged copies."""
    a = atoms.copy()
    a.calc = None
    a.constraints = []
    if a.pbc.any():
        return a
    pos = a.positions
    extent = np.ptp(pos, axis=0) if len(a) else np.zeros(3)
    box = np.maximum(extent + 2 * vacuum_A, min_ratio * extent)
    a.cell = np.diag(box)
    if move and len(a):
        a.positions = pos - pos.min(0) + 0.5 * (box - extent)
    return a


def has_clear_cell(atoms: Atoms, clearance_A: float = 6.0) -> bool:
    """Whether a cluster's cell leaves at least ``clearance_A`` Å between periodic images along
    every axis (6 Å: CHGNet's cutoff)."""
    volume = abs(np.linalg.det(atoms.cell.array)) if atoms.cell.rank == 3 else 0.0
    if volume <= 1e-6:
        return False
    extent = np.ptp(atoms.positions, axis=0) if len(atoms) else np.zeros(3)
    heights = 1.0 / np.linalg.norm(np.linalg.inv(atoms.cell.array).T, axis=1)
    return bool((heights >= extent + 2 * clearance_A).all())
