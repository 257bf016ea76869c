"""The tight-binding Hamiltonian of a structure: atom selection, bonds, sparse/Bloch assembly.

Basis: per atom the slots (s, px, py, pz) ⊗ (↑, ↓); slots an element lacks are dropped.
Spin-orbital index = 2·(compact orbital index) + spin. Energies in eV, lengths in Å.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from ase import Atoms

from qdlab.electronic.tb.params import TBParams
from qdlab.electronic.tb.slater_koster import radial, sk_blocks, soc_matrix
from qdlab.errors import QdlabError

# A-site cations and ligand elements: not part of the Hamiltonian (band edges are B/X states).
IGNORED = frozenset({"H", "Li", "B", "C", "N", "O", "F", "Na", "Si", "P", "S", "K", "Rb", "Cs"})


@dataclass(frozen=True)
class TBSystem:
    """A structure prepared for tight binding: TB atoms, bonds, orbital map (positions in Å)."""

    params: TBParams
    atom_index: np.ndarray       # (n_tb,) index into the input Atoms
    symbols: np.ndarray          # (n_tb,) element of each TB atom
    positions: np.ndarray        # (n_tb, 3) Å
    pbc: bool
    cell: np.ndarray
    pair_i: np.ndarray           # bond list (directed both ways when periodic, i < j otherwise)
    pair_j: np.ndarray
    D: np.ndarray                # (n_pairs, 3) r_j − r_i (+ cell shift), Å
    V0: np.ndarray               # (n_pairs, 5) unscaled ss, sp, ps, ppσ, ppπ oriented i → j, eV
    scale: np.ndarray            # (n_pairs,) (d0/d)^η f_c(d)
    dscale: np.ndarray           # (n_pairs,) d scale / dd, 1/Å
    slot_active: np.ndarray      # (n_tb, 4) bool
    onsite: np.ndarray           # (n_tb, 4) eV (0 for inactive slots)
    soc: np.ndarray              # (n_tb,) λ, eV
    strain_kappa: np.ndarray | None = None   # (n_tb, 4) κ of the on-site strain term per slot, eV (None: no term)
    strain_dx: np.ndarray | None = None      # (n_pairs,) d[(d0/d)² − 1]/dd of nearest-neighbour bonds (0 else), 1/Å

    @property
    def n_orb(self) -> int:
        return int(self.slot_active.sum())

    @property
    def dim(self) -> int:
        return 2 * self.n_orb

    @property
    def n_electrons(self) -> int:
        """Occupied spin-orbitals: Σ electrons of the TB atoms (Pb²⁺ s², X⁻ full shell, Ca²⁺ none)."""
        return int(sum(self.params.electrons[s] for s in self.symbols))

    def slot_to_compact(self) -> np.ndarray:
        """(n_tb, 4) compact orbital index of each slot, −1 where inactive."""
        idx = np.full(self.slot_active.shape, -1)
        idx[self.slot_active] = np.arange(self.n_orb)
        return idx

    def orbital_atom(self) -> np.ndarray:
        """(dim,) TB-atom index of every spin-orbital."""
        atom = np.repeat(np.arange(len(self.symbols))[:, None], 4, axis=1)[self.slot_active]
        return np.repeat(atom, 2)


def select_atoms(atoms: Atoms, params: TBParams) -> np.ndarray:
    """Indices of the atoms that enter the Hamiltonian; one-line error on unsupported elements."""
    symbols = np.array(atoms.get_chemical_symbols())
    role = atoms.arrays.get("role")
    ligand = (role == "ligand") if role is not None else np.zeros(len(atoms), bool)
    known = np.isin(symbols, list(params.orbitals))
    bad = sorted(set(symbols[~known & ~ligand & ~np.isin(symbols, list(IGNORED))]))
    if bad:
        raise QdlabError(f"unsupported element(s) {', '.join(bad)} for tight-binding set {params.name} "
                         f"(it knows {', '.join(params.orbitals)}; ignored: A-site cations and ligands)")
    return np.flatnonzero(known & ~ligand)


def _pairs(pos: np.ndarray, cell: np.ndarray, pbc: bool, rmax: float):
    if pbc:
        from ase.neighborlist import primitive_neighbor_list

        i, j, D = primitive_neighbor_list("ijD", (True,) * 3, cell, pos, rmax, self_interaction=False)
        return i, j, D
    from scipy.spatial import cKDTree

    ij = cKDTree(pos).query_pairs(rmax, output_type="ndarray")
    if len(ij) == 0:
        return np.zeros(0, int), np.zeros(0, int), np.zeros((0, 3))
    i, j = ij[:, 0], ij[:, 1]
    return i, j, pos[j] - pos[i]


def _bond_table(params: TBParams, symbols: np.ndarray, i, j, D):
    """Per pair: V0 oriented i → j, d0, r_on, r_max; pairs without a bond or beyond r_max dropped."""
    els = list(params.orbitals)
    code = np.array([els.index(s) for s in symbols])
    ne = len(els)
    table = np.zeros((ne, ne, 8))
    has = np.zeros((ne, ne), bool)
    for a, ea in enumerate(els):
        for b, eb in enumerate(els):
            found = params.bond(ea, eb)
            if found is None:
                continue
            bd, rev = found
            V = [bd.V_eV[k] for k in ("ss_sigma", "sp_sigma", "ps_sigma", "pp_sigma", "pp_pi")]
            if rev:
                V[1], V[2] = V[2], V[1]
            table[a, b] = V + [bd.d0_A, bd.r_on_A, bd.r_max_A]
            has[a, b] = True
    ci, cj = code[i], code[j]
    d = np.linalg.norm(D, axis=1)
    row = table[ci, cj]
    keep = has[ci, cj] & (d < row[:, 7])
    return keep, row[keep]


def _nearest(params: TBParams, symbols, i, j, d) -> np.ndarray:
    """Mask of the pairs that are bonds of the shortest-d0 kind within its r_on (the B–X bonds)."""
    nn = min(params.bonds, key=lambda b: b.d0_A)
    return ((symbols[i] != symbols[j]) | (nn.pair[0] == nn.pair[1])) & np.isin(symbols[i], nn.pair) & \
        np.isin(symbols[j], nn.pair) & (d < nn.r_on_A)


def _per_atom(values: np.ndarray, i, j, n_tb: int, pbc: bool) -> np.ndarray:
    """Σ over each atom's pairs (periodic pair lists hold both directions, cluster lists i < j once)."""
    out = np.bincount(i, values, minlength=n_tb)
    return out if pbc else out + np.bincount(j, values, minlength=n_tb)


def _strain(params: TBParams, symbols, nn: np.ndarray, d: np.ndarray, d0: np.ndarray):
    """Per-slot κ (n_tb, 4), the bond term x = (d0/d)² − 1 and dx/dd (0 off the nearest-neighbour bonds)."""
    kappa = np.zeros((len(symbols), 4))
    for el, k in params.onsite_strain_eV.items():
        m = symbols == el
        kappa[m, 0] = k.get("s", 0.0)
        kappa[m, 1:] = k.get("p", 0.0)
    x = np.where(nn, (d0 / d) ** 2 - 1.0, 0.0)
    return kappa, x, np.where(nn, -2.0 * d0**2 / d**3, 0.0)


def _onsite(params: TBParams, symbols: np.ndarray, coord: np.ndarray, pbc: bool) -> np.ndarray:
    onsite = np.zeros((len(symbols), 4))
    bulk_nn = {params.bulk["X"]: 2}
    for el in params.orbitals:
        m = symbols == el
        e = params.onsite_eV[el]
        missing = 0.0 if pbc else np.clip(1.0 - coord[m] / bulk_nn.get(el, 6), 0.0, 1.0)
        shift = params.undercoordinated_shift_eV.get(el, {})
        if "s" in e:
            onsite[m, 0] = e["s"] + shift.get("s", 0.0) * missing
        if "p" in e:
            onsite[m, 1:] = np.reshape(e["p"] + shift.get("p", 0.0) * missing, (-1, 1))
    return onsite


def prepare(atoms: Atoms, params: TBParams, require_network: bool = True) -> TBSystem:
    """Select TB atoms, find bonds, scale integrals; periodic if ``atoms.pbc`` is all True."""
    pbc = bool(np.all(atoms.pbc))
    if np.any(atoms.pbc) and not pbc:
        raise QdlabError("tight binding needs a finite cluster (pbc False) or a 3D-periodic cell")
    idx = select_atoms(atoms, params)
    symbols = np.array(atoms.get_chemical_symbols())[idx]
    pos = atoms.positions[idx]
    cell = np.array(atoms.cell)
    i, j, D = _pairs(pos, cell, pbc, params.r_max_A)
    keep, row = _bond_table(params, symbols, i, j, D)
    i, j, D = i[keep], j[keep], D[keep]
    B, X = params.bulk["B"], params.bulk["X"]
    if require_network and not np.any(((symbols[i] == B) & (symbols[j] == X)) | ((symbols[i] == X) & (symbols[j] == B))):
        raise QdlabError(f"no {B}–{X} network in the structure (no {B}–{X} pair within "
                         f"{params.bond(B, X)[0].r_max_A if params.bond(B, X) else '?'} Å)")
    d = np.linalg.norm(D, axis=1)
    s, ds = radial(d, row[:, 5], params.eta, row[:, 6], row[:, 7])
    nn = _nearest(params, symbols, i, j, d)
    coord = _per_atom(nn.astype(float), i, j, len(symbols), pbc).astype(int)
    active = np.array([[("s" in params.orbitals[e]), *(("p" in params.orbitals[e]),) * 3] for e in symbols],
                      dtype=bool).reshape(len(symbols), 4)
    soc = np.array([params.soc_lambda_eV.get(e, 0.0) for e in symbols])
    onsite = _onsite(params, symbols, coord, pbc)
    kappa = dx = None
    if params.onsite_strain_eV:
        kappa, x, dx = _strain(params, symbols, nn, d, row[:, 5])
        onsite = onsite + np.where(active, kappa * _per_atom(x, i, j, len(symbols), pbc)[:, None], 0.0)
    return TBSystem(params, idx, symbols, pos, pbc, cell, i, j, D, row[:, :5], s, ds, active, onsite, soc, kappa, dx)


def _soc_coo(sys: TBSystem):
    """COO triplets of the on-site spin–orbit blocks, in spin-orbital indices."""
    comp = sys.slot_to_compact()
    atoms = np.flatnonzero((sys.soc != 0) & sys.slot_active[:, 1])
    M = soc_matrix()
    r, c = np.nonzero(np.abs(M) > 0)
    p_orb = comp[atoms][:, 1:]                          # (n, 3)
    so = (2 * p_orb[:, :, None] + np.arange(2)).reshape(len(atoms), 6)  # index 2·orb + spin
    rows = so[:, r].ravel()
    cols = so[:, c].ravel()
    vals = (sys.soc[atoms, None] * M[r, c][None]).ravel()
    return rows, cols, vals


def _hop_coo(sys: TBSystem, phase: np.ndarray | None, both: bool):
    """Orbital-space COO triplets of the hopping blocks (directed; transposes added if ``both``)."""
    comp = sys.slot_to_compact()
    B = sk_blocks(sys.D, sys.V0 * sys.scale[:, None]).astype(complex)
    if phase is not None:
        B = B * phase[:, None, None]
    oi, oj = comp[sys.pair_i], comp[sys.pair_j]         # (n, 4)
    mask = (oi[:, :, None] >= 0) & (oj[:, None, :] >= 0) & (B != 0)
    rows = np.broadcast_to(oi[:, :, None], B.shape)[mask]
    cols = np.broadcast_to(oj[:, None, :], B.shape)[mask]
    vals = B[mask]
    if both:
        rows, cols, vals = np.concatenate([rows, cols]), np.concatenate([cols, rows]), np.concatenate([vals, vals.conj()])
    return rows, cols, vals


def hamiltonian(sys: TBSystem, k: np.ndarray | None = None, soc: bool = True) -> sp.csr_matrix:
    """Sparse complex Hermitian H (eV) in spin-orbitals; ``k`` (1/Å, Cartesian) for a periodic cell."""
    phase = None
    if sys.pbc:
        kk = np.zeros(3) if k is None else np.asarray(k, float)
        phase = np.exp(1j * sys.D @ kk)
    r, c, v = _hop_coo(sys, phase, both=not sys.pbc)
    diag = sys.onsite[sys.slot_active]
    orb = np.arange(sys.n_orb)
    r, c, v = np.concatenate([r, orb]), np.concatenate([c, orb]), np.concatenate([v, diag])
    rows = np.concatenate([2 * r, 2 * r + 1])
    cols = np.concatenate([2 * c, 2 * c + 1])
    vals = np.concatenate([v, v])
    if soc:
        sr, sc, sv = _soc_coo(sys)
        rows, cols, vals = np.concatenate([rows, sr]), np.concatenate([cols, sc]), np.concatenate([vals, sv])
    return sp.csr_matrix((vals, (rows, cols)), shape=(sys.dim, sys.dim))
