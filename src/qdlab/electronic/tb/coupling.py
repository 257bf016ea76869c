"""Linear electron–phonon coupling: Hellmann–Feynman forces g = ⟨ψ|∂H/∂R|ψ⟩ and the linear gap model.

g is in eV/Å per atom of the input structure (ignored atoms get 0). For a degenerate level (Kramers
pairs always, more in symmetric clusters) g is the mean over the multiplet: the derivative of the
multiplet's centroid. The linear model E_g(R) ≈ E_g0 + Σ (g_LUMO − g_HOMO)·(R − R0) is applied
after removing the rigid translation and rotation of R against R0 (Kabsch).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms

from qdlab.electronic.tb.cluster import TBSolution
from qdlab.electronic.tb.slater_koster import sk_block_derivatives
from qdlab.errors import QdlabError


def _slot_vectors(sol: TBSolution, cols: np.ndarray) -> np.ndarray:
    """(n_sel, n_tb, 4, 2) the selected eigenvectors laid out on (atom, slot, spin), 0 on inactive slots."""
    sys = sol.system
    out = np.zeros((len(cols), len(sys.symbols), 4, 2), complex)
    v = sol.vectors[:, cols].T.reshape(len(cols), sys.n_orb, 2)
    out[:, sys.slot_active, :] = v
    return out


def level_gradient(sol: TBSolution, index: int, n_atoms: int, tol_eV: float = 1e-6) -> np.ndarray:
    """(n_atoms, 3) dE/dR (eV/Å) of the level containing state ``index`` (mean over its multiplet)."""
    sys = sol.system
    if sys.pbc:
        raise QdlabError("Hellmann–Feynman gradients are implemented for clusters (pbc=False)")
    e = sol.energies_eV
    cols = np.flatnonzero(np.abs(e - e[index]) < tol_eV)
    psi = _slot_vectors(sol, cols)
    dB = sk_block_derivatives(sys.D, sys.V0, sys.scale, sys.dscale)        # (n_pairs, 3, 4, 4)
    pi, pj = psi[:, sys.pair_i], psi[:, sys.pair_j]                        # (m, n_pairs, 4, 2)
    c = 2.0 * np.einsum("mpas,pcab,mpbs->pc", pi.conj(), dB, pj).real / len(cols)
    if sys.strain_kappa is not None:   # on-site strain term: κ·Σ[(d0/d)² − 1] on both atoms of each bond
        dens = (np.abs(psi) ** 2).sum(axis=3).sum(axis=0) / len(cols)          # (n_tb, 4)
        w = (dens * sys.strain_kappa).sum(axis=1)                              # ∂E/∂(Σx) per atom, eV
        unit = sys.D / np.linalg.norm(sys.D, axis=1)[:, None]
        c = c + ((w[sys.pair_i] + w[sys.pair_j]) * sys.strain_dx)[:, None] * unit
    g_tb = np.zeros((len(sys.symbols), 3))
    np.add.at(g_tb, sys.pair_j, c)
    np.add.at(g_tb, sys.pair_i, -c)
    g = np.zeros((n_atoms, 3))
    g[sys.atom_index] = g_tb
    return g


def gap_gradient(sol: TBSolution, n_atoms: int) -> tuple[np.ndarray, np.ndarray]:
    """(dHOMO/dR, dLUMO/dR), each (n_atoms, 3) eV/Å; the gap gradient is their difference."""
    return level_gradient(sol, sol.homo_index, n_atoms), level_gradient(sol, sol.lumo_index, n_atoms)


def kabsch_align(positions: np.ndarray, reference: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """``positions`` (Å) moved rigidly onto ``reference`` (least squares, optional weights)."""
    w = np.ones(len(reference)) if weights is None else np.asarray(weights, float)
    w = w / w.sum()
    pc, rc = w @ positions, w @ reference
    P, Q = positions - pc, reference - rc
    U, _, Vt = np.linalg.svd((P * w[:, None]).T @ Q)
    d = np.sign(np.linalg.det(U @ Vt))
    R = U @ np.diag([1.0, 1.0, d]) @ Vt
    return P @ R + rc


@dataclass(frozen=True)
class LinearGapModel:
    """E_g(R) ≈ gap0 + Σ g·(R − R0): a microsecond gap per frame once g is known (eV, Å)."""

    reference_A: np.ndarray        # (n_atoms, 3)
    gap0_eV: float
    gap_gradient_eV_A: np.ndarray  # (n_atoms, 3) d(LUMO − HOMO)/dR
    mask: np.ndarray               # atoms used for alignment (the TB atoms)

    @classmethod
    def from_solution(cls, atoms: Atoms, sol: TBSolution) -> "LinearGapModel":
        gh, gl = gap_gradient(sol, len(atoms))
        mask = np.zeros(len(atoms), bool)
        mask[sol.system.atom_index] = True
        return cls(atoms.positions.copy(), sol.gap_eV, gl - gh, mask)

    def gap(self, positions: np.ndarray) -> float:
        """Predicted gap (eV) of one frame's positions (Å), after rigid alignment on the TB atoms."""
        m = self.mask
        aligned = kabsch_align(positions[m], self.reference_A[m])
        return float(self.gap0_eV + np.sum(self.gap_gradient_eV_A[m] * (aligned - self.reference_A[m])))
