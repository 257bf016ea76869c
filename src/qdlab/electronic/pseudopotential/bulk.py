"""Bulk plane-wave mode: bands, gap and effective masses of periodic CsPbI3 cells.

The check of the parameters and conventions (SCIENCE.md §9): cubic CsPbI3 (a = 6.289 Å) with the
cubic Table S4 set, gap and masses at R; an orthorhombic (a⁻a⁻c⁺ tilted 2×2×2) cell with the
orthorhombic set, gap and masses at Γ (where R folds). Energies in eV at the boundary, masses in
electron masses, k in 1/Bohr inside.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from ase import Atoms

from qdlab.electronic.eigensolvers import filtered_subspace
from qdlab.electronic.pseudopotential.hamiltonian import planewave_hamiltonian
from qdlab.electronic.pseudopotential.params import BOHR_A, CUBIC_A_ANG, HARTREE_EV, n_occupied
from qdlab.errors import QdlabError


def cubic_cell(a_ang: float = CUBIC_A_ANG) -> Atoms:
    """Cubic CsPbI3 (Pm-3m): Cs at the corner, Pb at the body centre, I at the face centres."""
    frac = [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    return Atoms("CsPbI3", scaled_positions=frac, cell=np.eye(3) * a_ang, pbc=True)


def orthorhombic_cell(a_pc_ang: float = 6.203, tilts_deg=(8.0, 8.0, 8.0), primitive: bool = True) -> Atoms:
    """Pbnm-like γ-CsPbI3 model: rigid a⁻a⁻c⁺ octahedral tilts of the cubic perovskite.

    Octahedron (i, j, k) of a 2×2×2 supercell is rotated by R_z R_y R_x (anti-phase x, y tilts and an
    in-phase z tilt); each I sits at the mean of the positions its two octahedra give it (periodic
    images included). ``a_pc_ang`` (default: the volume per formula unit, 238.6 Å³, of the
    room-temperature orthorhombic phase of Sutton et al. 2018) is the Pb–Pb grid spacing along the
    axes. ``primitive`` reduces to the 20-atom √2×√2×2 cell (a⁻a⁻c⁺ is periodic on it).
    """
    from qdlab.build.perovskite import glazer_rotations

    cells = np.array([[i, j, k] for i in range(2) for j in range(2) for k in range(2)])
    R = glazer_rotations(cells, "a-a-c+", tilts_deg)
    L = 2 * a_pc_ang
    pb = (cells + 0.5) * a_pc_ang
    acc: dict = {}
    for n in range(8):
        for ax in range(3):
            for sgn in (1, -1):
                off = np.zeros(3)
                off[ax] = sgn * 0.5
                site = np.mod(cells[n] + 0.5 + off, 2)
                pos = pb[n] + R[n] @ (off * a_pc_ang)
                d = pos - site * a_pc_ang
                d -= L * np.round(d / L)
                acc.setdefault(tuple(np.round(site, 3)), []).append(site * a_pc_ang + d)
    i_pos = np.array([np.mean(v, axis=0) for v in acc.values()])
    pos = np.vstack([cells * a_pc_ang, pb, i_pos])
    atoms = Atoms(["Cs"] * 8 + ["Pb"] * 8 + ["I"] * len(i_pos), positions=pos, cell=np.eye(3) * L, pbc=True)
    if not primitive:
        return atoms
    prim = np.array([[1, 1, 0], [-1, 1, 0], [0, 0, 2]], float) * a_pc_ang
    frac = np.mod(atoms.positions @ np.linalg.inv(prim) + 1e-6, 1.0)
    _, first = np.unique(np.round(frac, 3) % 1.0, axis=0, return_index=True)
    first = np.sort(first)
    return Atoms(np.asarray(atoms.get_chemical_symbols())[first], scaled_positions=frac[first] - 1e-6,
                 cell=prim, pbc=True)


@dataclass(frozen=True)
class BulkBands:
    """Band-edge result of a bulk cell: energies in eV, masses in m_e, k in 1/Bohr."""

    phase: str
    ecut_Ha: float
    kpoint_frac: tuple
    gap_eV: float
    vbm_eV: float
    cbm_eV: float
    m_h: float
    m_e: float
    m_h_dirs: dict = field(default_factory=dict)
    m_e_dirs: dict = field(default_factory=dict)
    n_pw: int = 0
    info: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def band_energies(atoms: Atoms, kpt_frac, ecut_Ha: float, n_bands: int, phase: str,
                  x0=None, tol: float = 1e-8, centre_frac=None, dense_max: int = 2600):
    """Lowest ``n_bands`` spinor eigenvalues (Hartree) at fractional k, the eigenvectors and H.

    Dense diagonalisation up to ``dense_max`` basis functions (×2 spin), the Chebyshev-filtered
    subspace iteration above (seeded with ``x0``, e.g. the states of a neighbouring k in the same
    basis).
    """
    cell_B = np.asarray(atoms.cell) / BOHR_A
    recip = 2 * np.pi * np.linalg.inv(cell_B).T
    kpt = np.asarray(kpt_frac, float) @ recip
    centre = None if centre_frac is None else np.asarray(centre_frac, float) @ recip
    w = np.full(len(atoms), 1.0 if phase == "orthorhombic" else 0.0)
    H = planewave_hamiltonian(cell_B, atoms.get_scaled_positions(), atoms.get_chemical_symbols(),
                              w, kpt, ecut_Ha, centre_B=centre)
    if H.n <= dense_max:
        from scipy.linalg import eigh

        vals, vecs = eigh(H.dense(), subset_by_index=[0, n_bands - 1])
        return vals, vecs, H
    res = filtered_subspace(H.apply, H.dim, n_bands, tol=tol, x0=x0, degree=8)
    if not res.converged:
        raise QdlabError(f"bands at k={tuple(kpt_frac)} did not converge (residual {res.residuals.max():.1e})")
    return res.values, res.vectors, H


def effective_masses(atoms: Atoms, phase: str, kpt_frac, ecut_Ha: float = 8.0, dk_B: float = 0.01,
                     directions=("x", "y", "z"), dense_max: int = 1500) -> BulkBands:
    """Gap at ``kpt_frac`` and masses m = ħ²/(∂²E/∂k²) (m_e) along ``directions`` by central
    differences (±dk, 1/Bohr) in one plane-wave basis centred at ``kpt_frac``; the displaced k-points
    are solved iteratively from the edge states unless the basis is below ``dense_max``."""
    nocc = n_occupied(atoms.get_chemical_symbols())
    nb = nocc + 4
    e0, v0, H = band_energies(atoms, kpt_frac, ecut_Ha, nb, phase)
    cell_B = np.asarray(atoms.cell) / BOHR_A
    unit = {"x": [1, 0, 0], "y": [0, 1, 0], "z": [0, 0, 1], "111": np.ones(3) / np.sqrt(3),
            "110": np.array([1, 1, 0]) / np.sqrt(2)}
    mh, me = {}, {}
    for name in directions:
        ev = []
        for sgn in (1, -1):
            dfrac = sgn * dk_B * np.asarray(unit[name], float) @ cell_B.T / (2 * np.pi)
            e, _, _ = band_energies(atoms, np.asarray(kpt_frac) + dfrac, ecut_Ha, nb, phase, x0=v0,
                                    centre_frac=kpt_frac, dense_max=dense_max)
            ev.append(e)
        curv = (ev[0] + ev[1] - 2 * e0) / dk_B**2
        mh[name], me[name] = float(-1.0 / curv[nocc - 1]), float(1.0 / curv[nocc])
    vbm, cbm = e0[nocc - 1] * HARTREE_EV, e0[nocc] * HARTREE_EV
    return BulkBands(phase=phase, ecut_Ha=ecut_Ha, kpoint_frac=tuple(float(x) for x in kpt_frac),
                     gap_eV=float(cbm - vbm), vbm_eV=float(vbm), cbm_eV=float(cbm),
                     m_h=float(np.mean(list(mh.values()))), m_e=float(np.mean(list(me.values()))),
                     m_h_dirs=mh, m_e_dirs=me, n_pw=int(H.n),
                     info={"dk_B": dk_B, "n_occupied": nocc,
                           "edge_spinor_eV": (e0[nocc - 2:nocc + 2] * HARTREE_EV).tolist()})
