"""Rock-salt (PbS) octahedral nanocrystals bounded by eight metal-terminated {111} facets.

Sites of the rock-salt lattice are (a/2)(i, j, k) with integer i, j, k; the cation sits on even
i+j+k when the centre is a cation. The octahedron of "radius" m keeps every site with
|i|+|j|+|k| ≤ m; the outermost shell must be metal, so the centre is Pb for even m and S for
odd m: m=1 Pb6S1, m=2 Pb19S6 (seed 001's core), m=3 Pb44S19, m=4 Pb85S44. Carboxylates sit on
the empty anion sites of shell m+1 (outside the {111} facets) to reach neutrality.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

from qdlab.build.attach import SitePool
from qdlab.build.model import NONE, check_element, formal_charge, new_labels
from qdlab.errors import BuildError

PBS_LATTICE = 5.936  # Å, rock-salt PbS (SCIENCE.md §1)


def _shell_points(radius: int) -> np.ndarray:
    """Integer points with |i|+|j|+|k| ≤ radius, as an (N, 3) array."""
    r = np.arange(-radius, radius + 1)
    g = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
    return g[np.abs(g).sum(1) <= radius]


def _octant_label(p: np.ndarray) -> str:
    return "".join("+" if v > 0 else "-" if v < 0 else "0" for v in p)


def octahedron(metal: str, anion: str, m: int, a: float) -> tuple[Atoms, SitePool]:
    """Bare metal-terminated octahedron of radius ``m`` and the pool of outer anion sites.

    Labels: role ``"B"`` for the metal and ``"X"`` for the anion; depth = m − (|i|+|j|+|k|) in
    half unit cells; facet = octant sign pattern (e.g. ``"++-"``, ``0`` on an edge) for depth ≤ 1.
    Formal charges: metal +2 (−q of the anion), anion from its group (S²⁻).
    """
    check_element(metal)
    check_element(anion)
    if m < 1:
        raise BuildError(f"octahedron size must be ≥ 1, got {m}")
    q_x = formal_charge(anion, "X")
    q_b = -q_x
    pts = _shell_points(m)
    s = np.abs(pts).sum(1)
    is_metal = (s % 2) == (m % 2)  # outermost shell s = m is metal
    symbols = np.where(is_metal, metal, anion)
    atoms = Atoms(symbols=list(symbols), positions=pts * a / 2)
    depth = m - s
    facet = np.array([_octant_label(p) if d <= 1 else NONE for p, d in zip(pts, depth)], dtype="U16")
    new_labels(atoms, np.where(is_metal, "B", "X"), depth, facet)
    atoms.set_initial_charges(np.where(is_metal, q_b, q_x).astype(float))

    outer = _shell_points(m + 1)
    outer = outer[np.abs(outer).sum(1) == m + 1]
    normals = np.sign(outer).astype(float)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    pool = SitePool(kind="X", positions=outer * a / 2, normals=normals,
                    facets=np.array([_octant_label(p) for p in outer], dtype="U16"),
                    atom_index=np.full(len(outer), -1), ion_charge=np.zeros(len(outer)))
    return atoms, pool
