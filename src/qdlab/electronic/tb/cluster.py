"""Cluster mode: states near the gap of a finite structure by sparse shift-invert (or dense eigh).

The sparse path factorises H − σ once (SuperLU with the MMD_AT_PLUS_A ordering: the default
COLAMD ordering was ~10× slower on 1,500-atom clusters) and lets ARPACK (``eigsh``) find the
eigenvalues nearest σ. σ starts at the mid-gap of the parameter set's bulk cell at R; states below
σ are occupied. If the states found are lopsided (σ near a band edge), σ moves to the middle of
the largest spacing found and the solve is repeated. The dense path (``numpy.linalg.eigh``) counts
electrons instead. Energies in eV, lengths in Å.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse.linalg as sla
from ase import Atoms

from qdlab.electronic.states import BandEdgeStates
from qdlab.electronic.tb.hamiltonian import TBSystem, hamiltonian, prepare
from qdlab.electronic.tb.params import TBParams, default_params_for, load_params
from qdlab.errors import QdlabError


@functools.lru_cache(maxsize=32)
def _edges_cached(path: str, eta: float) -> tuple[float, float]:
    from qdlab.electronic.tb.bulk import bulk_bands

    b = bulk_bands(load_params(path).with_changes(eta=eta), n_per_segment=2)
    return b.vbm_R_eV, b.cbm_R_eV


def _bulk_edges(params: TBParams) -> tuple[float, float]:
    if params.path and not params.undercoordinated_shift_eV:
        return _edges_cached(params.path, params.eta)
    from qdlab.electronic.tb.bulk import bulk_bands

    b = bulk_bands(params, n_per_segment=2)
    return b.vbm_R_eV, b.cbm_R_eV


def bulk_gap(params: TBParams) -> float:
    """Gap (eV) at R of the parameter set's bulk cell (the yardstick for a cluster's gap)."""
    return _bulk_edges(params)[1] - _bulk_edges(params)[0]


def bulk_midgap(params: TBParams) -> float:
    """Mid-gap energy (eV) at R of the parameter set's cubic bulk cell (the default shift σ)."""
    vbm, cbm = _bulk_edges(params)
    return 0.5 * (vbm + cbm)


@dataclass(frozen=True)
class TBSolution:
    """Eigenpairs near the gap of one structure (energies eV ascending, vectors (dim, n))."""

    system: TBSystem
    energies_eV: np.ndarray
    vectors: np.ndarray
    occupied: np.ndarray
    sigma_eV: float
    solver: str
    time_s: float

    @property
    def homo_index(self) -> int:
        return int(np.flatnonzero(self.occupied).max())

    @property
    def lumo_index(self) -> int:
        return int(np.flatnonzero(~self.occupied).min())

    @property
    def gap_eV(self) -> float:
        return float(self.energies_eV[self.lumo_index] - self.energies_eV[self.homo_index])


def _shift_invert(H, sigma: float, k: int):
    """The k eigenpairs just below σ and the k just above, from one factorisation of H − σ.

    In shift-invert mode ARPACK works on ν = 1/(λ − σ): the largest ν (``LA``) are the states just
    above σ, the smallest (``SA``) those just below, so a σ inside the gap yields both band edges
    however unevenly it sits between them.
    """
    n = H.shape[0]
    lu = sla.splu((H - sigma * _eye(n)).tocsc(), permc_spec="MMD_AT_PLUS_A")
    op = sla.LinearOperator((n, n), matvec=lu.solve, dtype=complex)
    v0 = np.full(n, 1.0 / np.sqrt(n), complex)
    parts = [sla.eigsh(H, k=min(k, n // 2 - 1), sigma=sigma, which=w, OPinv=op, v0=v0, tol=1e-12) for w in ("SA", "LA")]
    vals = np.concatenate([p[0] for p in parts])
    vecs = np.concatenate([p[1] for p in parts], axis=1)
    order = np.argsort(vals)
    return vals[order], vecs[:, order]


def _eye(n):
    import scipy.sparse as sp

    return sp.identity(n, dtype=complex, format="csr")


def solve(sys: TBSystem, n_states: int = 8, sigma: float | None = None, dense: bool | None = None) -> TBSolution:
    """At least ``n_states`` states each side of the gap (dense eigh below 600 spin-orbitals)."""
    t0 = time.perf_counter()
    H = hamiltonian(sys)
    dense = sys.dim <= 600 if dense is None else dense
    if dense:
        vals, vecs = np.linalg.eigh(H.toarray())
        n_occ = sys.n_electrons
        if not 0 < n_occ < sys.dim:
            raise QdlabError(f"cannot place {n_occ} electrons in {sys.dim} spin-orbitals")
        lo, hi = max(0, n_occ - n_states), min(sys.dim, n_occ + n_states)
        occ = np.arange(lo, hi) < n_occ
        mid = 0.5 * (vals[n_occ - 1] + vals[n_occ])
        return TBSolution(sys, vals[lo:hi], vecs[:, lo:hi], occ, float(mid), "dense-eigh", time.perf_counter() - t0)
    sigma = bulk_midgap(sys.params) if sigma is None else float(sigma)
    vals, vecs = _shift_invert(H, sigma, n_states + n_states % 2)
    occ = vals < sigma
    if occ.all() or not occ.any():
        raise QdlabError(f"shift-invert at {sigma:.3f} eV found states on one side only")
    gap = vals[~occ].min() - vals[occ].max()
    if gap < 0.5 * bulk_gap(sys.params):
        raise QdlabError(f"no clear gap at {sigma:.3f} eV (states {vals[occ].max():.3f} and {vals[~occ].min():.3f} eV; "
                         "in-gap states or a shifted band edge): try the dense solver")
    return TBSolution(sys, vals, vecs, occ, sigma, "shift-invert", time.perf_counter() - t0)


def atom_weights(sol: TBSolution, n_atoms: int) -> np.ndarray:
    """(n_states, n_atoms) |ψ|² summed per atom of the input structure (rows sum to 1)."""
    oa = sol.system.orbital_atom()
    p = np.abs(sol.vectors) ** 2                      # (dim, n_states)
    tb = np.zeros((len(sol.system.symbols), p.shape[1]))
    np.add.at(tb, oa, p)
    w = np.zeros((p.shape[1], n_atoms))
    w[:, sol.system.atom_index] = tb.T / tb.sum(axis=0)[:, None]
    return w


def weights_by(weights: np.ndarray, labels) -> dict:
    """Weight of each state per label value (element symbols, depth layers ...): {label: (n_states,)}."""
    labels = np.asarray(labels)
    return {(lab.item() if hasattr(lab, "item") else lab): weights[:, labels == lab].sum(axis=1)
            for lab in np.unique(labels)}


class TightBinding:
    """Band-edge engine (:class:`~qdlab.electronic.states.BandEdgeEngine`) for APbX3 structures.

    ``params``: a :class:`TBParams`, a shipped set name or a file; None picks the shipped set of the
    halide present. ``eta`` overrides the set's Harrison exponent.
    """

    name = "tight-binding"

    def __init__(self, params: TBParams | str | None = None, eta: float | None = None,
                 dense: bool | None = None, soc: bool = True):
        self._params = load_params(params) if isinstance(params, str) else params
        self.eta, self.dense, self.soc = eta, dense, soc
        self._sigma: dict[tuple, float] = {}   # last mid-gap per composition: MD frames reuse it

    def params_for(self, atoms: Atoms) -> TBParams:
        p = self._params or default_params_for(atoms.get_chemical_symbols())
        return p if self.eta is None else p.with_changes(eta=self.eta)

    def solve(self, atoms: Atoms, n_states: int = 8) -> TBSolution:
        """Eigenpairs near the gap (the wavefunctions, for couplings); see :func:`solve`."""
        if np.any(atoms.pbc):
            raise QdlabError("the gap of a periodic cell is `bulk_bands` (electronic bands); cluster mode needs pbc=False")
        sys = prepare(atoms, self.params_for(atoms))
        if not self.soc:
            sys = _without_soc(sys)
        key = (sys.params.name, sys.params.eta, self.soc, tuple(sorted(np.unique(sys.symbols, return_counts=True)[1])),
               tuple(np.unique(sys.symbols)))
        sol = solve(sys, n_states, sigma=self._sigma.get(key), dense=self.dense)
        self._sigma[key] = 0.5 * (sol.energies_eV[sol.homo_index] + sol.energies_eV[sol.lumo_index])
        return sol

    def gap_eV(self, atoms: Atoms) -> float:
        """HOMO–LUMO gap (eV) of a cluster, or at Γ of a 3D-periodic cell
        (:func:`~qdlab.electronic.tb.bulk.gamma_edges`: a frozen-phonon supercell as a Γ-point DFT run sees it)."""
        if np.all(atoms.pbc):
            from qdlab.electronic.tb.bulk import gamma_edges

            vb, cb = gamma_edges(atoms, self.params_for(atoms), soc=self.soc)
            return cb - vb
        return self.solve(atoms, 1).gap_eV

    def states(self, atoms: Atoms, n_states: int = 8) -> BandEdgeStates:
        sol = self.solve(atoms, n_states)
        return BandEdgeStates(energies_eV=sol.energies_eV, occupied=sol.occupied,
                              atom_weights=atom_weights(sol, len(atoms)), method=self.name,
                              info={"params": sol.system.params.name, "eta": sol.system.params.eta,
                                    "solver": sol.solver, "sigma_eV": sol.sigma_eV, "dim": sol.system.dim,
                                    "n_tb_atoms": len(sol.system.symbols), "time_s": sol.time_s,
                                    "soc": self.soc})


def _without_soc(sys: TBSystem) -> TBSystem:
    from dataclasses import replace

    return replace(sys, soc=np.zeros_like(sys.soc))
