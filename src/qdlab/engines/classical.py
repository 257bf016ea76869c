"""Classical Lennard-Jones + Coulomb force field for finite nanocrystals (seed 003, SCIENCE.md §2).

E = Σ_{i<j} 4ε_ij[(σ_ij/r)¹² − (σ_ij/r)⁶] + k_e q_i q_j / r, all pairs, no periodicity,
Lorentz–Berthelot mixing σ_ij = (σ_i+σ_j)/2, ε_ij = √(ε_i ε_j), k_e = 1/(4πε₀) = Hartree·Bohr
(eV·Å/e²). Charges come from ``atoms.get_initial_charges()`` (the builder's surface-charge
strategy stores seed 003's charges there, including the surface-Cs charge) unless ``charges``
maps elements to charges.

Evaluated block-pair by block-pair over the upper triangle (i < j) with numpy and BLAS, so
memory stays bounded (``block``² per block pair) and Newton's third law halves the work; no
Python loop over atom pairs.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator, all_changes

from qdlab.errors import QdlabError

#: Seed 003 parameters for CsPbI3: σ (Å), ε (eV). Cs core and surface share σ and ε.
SEED003_LJ = {"Pb": (3.210, 0.001086), "I": (4.014, 0.06389), "Cs": (3.584, 0.07728)}
#: Seed 003 charges (e); the surface-Cs charge is chosen for neutrality by the builder.
SEED003_CHARGES = {"Pb": 0.85, "I": -0.57, "Cs": 0.86}

COULOMB = units.Hartree * units.Bohr  # eV·Å / e²


class LJCoulomb(Calculator):
    """All-pairs LJ + Coulomb for non-periodic clusters (energy, forces, per-atom energies).

    Parameters
    ----------
    lj: element → (σ Å, ε eV); defaults to seed 003's CsPbI3 set.
    charges: element → q (e); default: the atoms' initial charges.
    block: rows per block (memory ∝ block²).
    """

    implemented_properties = ["energy", "free_energy", "forces", "energies"]

    def __init__(self, lj: dict[str, tuple[float, float]] | None = None,
                 charges: dict[str, float] | None = None, block: int = 128, **kwargs):
        super().__init__(**kwargs)
        self.lj = dict(lj or SEED003_LJ)
        self.charge_map = charges
        self.block = int(block)

    def _params(self, atoms: Atoms) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        symbols = atoms.get_chemical_symbols()
        missing = sorted(set(symbols) - set(self.lj))
        if missing:
            raise QdlabError(f"LJ+Coulomb has no parameters for {', '.join(missing)} "
                             f"(known: {', '.join(sorted(self.lj))}); pass lj={{element: (sigma, eps)}}")
        sigma = np.array([self.lj[s][0] for s in symbols])
        eps = np.array([self.lj[s][1] for s in symbols])
        if self.charge_map is not None:
            q = np.array([self.charge_map.get(s, 0.0) for s in symbols])
        else:
            q = atoms.get_initial_charges().astype(float)
        return sigma, eps, q

    def get_hessian(self, atoms: Atoms) -> np.ndarray:
        """Analytic Hessian (3N×3N, eV/Å²) of ``atoms`` (used by the phonon workflow)."""
        return lj_coulomb_hessian(atoms.positions, *self._params(atoms))

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if self.atoms.pbc.any():
            raise QdlabError("LJ+Coulomb is written for finite clusters: set pbc=False")
        energy, forces, energies = lj_coulomb(self.atoms.positions, *self._params(self.atoms), block=self.block)
        if not np.isfinite(energy) or not np.all(np.isfinite(forces)):
            raise QdlabError("LJ+Coulomb gave non-finite energy/forces (overlapping atoms?)")
        self.results = {"energy": energy, "free_energy": energy, "forces": forces, "energies": energies}


def _type_blocks(types: np.ndarray, block: int) -> list[tuple[int, int]]:
    """Contiguous [start, end) blocks of at most ``block`` atoms that never straddle two types."""
    edges = np.flatnonzero(np.diff(types)) + 1
    bounds = np.concatenate([[0], edges, [len(types)]])
    out = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        out += [(i, min(i + block, b)) for i in range(a, b, block)]
    return out


def lj_coulomb(pos: np.ndarray, sigma: np.ndarray, eps: np.ndarray, q: np.ndarray,
               block: int = 128) -> tuple[float, np.ndarray, np.ndarray]:
    """Energy (eV), forces (eV/Å) and per-atom energies (eV, each pair energy split in halves).

    Atoms are sorted by (σ, ε) type so that every block pair has scalar LJ parameters; squared
    distances come from a matrix product (BLAS) on centred coordinates, and forces from
    F_i = Σ_j w_ij (r_i − r_j) = (Σ_j w_ij) r_i − (W r)_i, again a matrix product, over the
    upper triangle of block pairs only (Newton's third law).
    """
    n = len(pos)
    keys = np.stack([sigma, eps], 1)
    uniq, tinv = np.unique(keys, axis=0, return_inverse=True)
    order = np.argsort(tinv, kind="stable")
    t = tinv[order]
    x = pos[order] - pos.mean(0)  # centring keeps |r|² small: no cancellation in r² = |a|²+|b|²−2a·b
    qs = q[order] * np.sqrt(COULOMB)
    nrm = np.einsum("ij,ij->i", x, x)
    forces = np.zeros((n, 3))
    energies = np.zeros(n)
    blocks = _type_blocks(t, block)
    for bi, (i0, i1) in enumerate(blocks):
        si, ei = uniq[t[i0]]
        for j0, j1 in blocks[bi:]:
            sj, ej = uniq[t[j0]]
            s6 = (0.5 * (si + sj)) ** 6
            e4 = 4.0 * np.sqrt(ei * ej)
            r2 = nrm[i0:i1, None] + nrm[None, j0:j1] - 2.0 * (x[i0:i1] @ x[j0:j1].T)
            if i0 == j0:  # diagonal block: i < j only
                r2[np.tril_indices(i1 - i0)] = np.inf
            ir2 = 1.0 / r2
            sr6 = s6 * ir2 * ir2 * ir2
            qq = np.sqrt(ir2) * qs[i0:i1, None] * qs[None, j0:j1]
            e_pair = e4 * sr6 * (sr6 - 1.0) + qq
            # w = −(dE/dr)/r: LJ 4ε(12 sr¹² − 6 sr⁶)/r², Coulomb qq/r²
            w = (e4 * sr6 * (12.0 * sr6 - 6.0) + qq) * ir2
            wi, wj = w.sum(1), w.sum(0)
            forces[i0:i1] += wi[:, None] * x[i0:i1] - w @ x[j0:j1]
            forces[j0:j1] += wj[:, None] * x[j0:j1] - w.T @ x[i0:i1]
            half = 0.5 * e_pair
            energies[i0:i1] += half.sum(1)
            energies[j0:j1] += half.sum(0)
    out_f = np.empty_like(forces)
    out_e = np.empty_like(energies)
    out_f[order] = forces
    out_e[order] = energies
    return float(out_e.sum()), out_f, out_e


def lj_coulomb_hessian(pos: np.ndarray, sigma: np.ndarray, eps: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Analytic Hessian ∂²E/∂r_i∂r_j (3N×3N, eV/Å²); dense, for clusters up to a few thousand atoms.

    Pair block: V''(r) n nᵀ + (V'(r)/r)(1 − n nᵀ) with n the unit vector; off-diagonal blocks
    carry the minus sign, diagonal blocks are minus the row sums (translation invariance).
    """
    n = len(pos)
    d = pos[:, None, :] - pos[None, :, :]
    r2 = np.einsum("ijk,ijk->ij", d, d)
    np.fill_diagonal(r2, np.inf)
    r = np.sqrt(r2)
    s = 0.5 * (sigma[:, None] + sigma[None, :])
    e4 = 4.0 * np.sqrt(eps[:, None] * eps[None, :])
    sr6 = (s / r) ** 6
    qq = COULOMB * q[:, None] * q[None, :]
    d1 = e4 * (-12.0 * sr6 * sr6 + 6.0 * sr6) / r - qq / r2  # V'(r)
    d2 = e4 * (156.0 * sr6 * sr6 - 42.0 * sr6) / r2 + 2.0 * qq / (r2 * r)  # V''(r)
    nvec = d / r[..., None]
    nn = nvec[..., :, None] * nvec[..., None, :]
    eye = np.eye(3)
    block = d2[..., None, None] * nn + (d1 / r)[..., None, None] * (eye - nn)  # ∂²V/∂r_i∂r_i
    hess = -block
    idx = np.arange(n)
    hess[idx, idx] = block.sum(1)
    return hess.transpose(0, 2, 1, 3).reshape(3 * n, 3 * n)
