"""Spinor pseudopotential Hamiltonian H = −½∇² + Σ_a [v_loc + v_NL + v_SO], applied matrix-free.

Two representations of the same operator (atomic units: Bohr, Hartree):

- ``planewave``: Bloch states e^{i(k+G)·r} with |k+G| ≤ K_c = sqrt(2·E_cut) in a periodic cell; the
  local potential is applied by FFT on a grid that holds every G−G′, the p-channel and spin–orbit
  terms through dense projector columns χ̃(K) e^{−iK·R_a}/√Ω.
- ``grid``: values on a real-space grid of the cell (periodic box, Γ point; a nanocrystal sits in
  vacuum inside it); kinetic energy by FFT, local potential on the grid (from v(q) through the box
  FFT), projectors χ(r − R_a) sparse and atom-centred within ``r_cut``.

Vectors are blocks of shape (2·n, n_vec): spin-up coefficients first, then spin-down.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft
import scipy.sparse as sp

from qdlab.electronic.pseudopotential.params import ACTIVE, PHASES, params_for
from qdlab.electronic.pseudopotential.projectors import Y1, RadialBasis, ls_matrix, radial_basis

_LS = ls_matrix()


@dataclass
class SpinorHamiltonian:
    """Matrix-free spinor Hamiltonian; ``apply`` maps a (2n, nvec) block to H·block."""

    mode: str
    cell_B: np.ndarray
    fft_shape: tuple[int, int, int]
    kinetic: np.ndarray  # planewave: (n,), grid: fft_shape
    vloc_r: np.ndarray  # fft_shape, real, Hartree
    proj: object  # planewave: (n, nproj) complex ndarray; grid: csr (n, nproj) real
    a_nl: np.ndarray  # (n_atoms, nr, nr)
    a_so: np.ndarray
    index: np.ndarray | None = None  # planewave: flat FFT index of each coefficient
    dV: float = 1.0
    chunk: int = 8

    @property
    def n(self) -> int:
        return int(self.kinetic.size if self.mode == "grid" else self.kinetic.shape[0])

    @property
    def dim(self) -> int:
        return 2 * self.n

    def apply(self, X: np.ndarray) -> np.ndarray:
        """H·X for a block X of shape (2n,) or (2n, nvec)."""
        vec = X.ndim == 1
        X = X.reshape(self.dim, -1)
        out = np.empty_like(X, dtype=complex)
        for s in range(0, X.shape[1], self.chunk):
            out[:, s:s + self.chunk] = self._apply_block(X[:, s:s + self.chunk])
        return out[:, 0] if vec else out

    def _apply_block(self, X: np.ndarray) -> np.ndarray:
        nv = X.shape[1]
        Xs = X.reshape(2, self.n, nv)
        if self.mode == "planewave":
            out = self.kinetic[None, :, None] * Xs
            full = np.zeros((2 * nv,) + self.fft_shape, complex)
            flat = full.reshape(2 * nv, -1)
            flat[:, self.index] = Xs.transpose(0, 2, 1).reshape(2 * nv, self.n)
            psi = sfft.ifftn(full, axes=(1, 2, 3), overwrite_x=True)
            vpsi = sfft.fftn(psi * self.vloc_r[None], axes=(1, 2, 3), overwrite_x=True)
            out += vpsi.reshape(2 * nv, -1)[:, self.index].reshape(2, nv, self.n).transpose(0, 2, 1)
        else:
            grid = Xs.transpose(0, 2, 1).reshape((2 * nv,) + self.fft_shape)
            tpsi = sfft.ifftn(sfft.fftn(grid, axes=(1, 2, 3)) * self.kinetic[None], axes=(1, 2, 3))
            tpsi += grid * self.vloc_r[None]
            out = tpsi.reshape(2, nv, self.n).transpose(0, 2, 1)
        return (out + self._nonlocal(Xs)).reshape(self.dim, nv)

    def _nonlocal(self, Xs: np.ndarray) -> np.ndarray:
        na, nr = self.a_nl.shape[:2]
        if na == 0:
            return np.zeros_like(Xs)
        nv = Xs.shape[2]
        P = self.proj
        if self.mode == "planewave":
            C = np.stack([P.conj().T @ Xs[s] for s in range(2)], axis=1)
        else:
            C = np.stack([P.T @ Xs[s] for s in range(2)], axis=1) * self.dV
        C = C.reshape(na, nr, 3, 2, nv)
        D = np.einsum("anp,apmsv->anmsv", self.a_nl, C)
        D += np.einsum("anp,msbt,apbtv->anmsv", self.a_so, _LS, C)
        D = D.reshape(na * nr * 3, 2, nv)
        return np.stack([P @ D[:, s] for s in range(2)])

    def dense(self) -> np.ndarray:
        """The full matrix (tests and small cells only; plane waves assembled directly)."""
        if self.mode != "planewave":
            H = self.apply(np.eye(self.dim, dtype=complex))
            return 0.5 * (H + H.conj().T)
        shape = np.array(self.fft_shape)
        m = np.stack(np.unravel_index(self.index, self.fft_shape), axis=1)
        diff = np.mod(m[:, None, :] - m[None, :, :], shape)
        vg = sfft.fftn(self.vloc_r) / np.prod(shape)
        vloc = vg[diff[..., 0], diff[..., 1], diff[..., 2]]
        eye = np.eye(self.dim, dtype=complex).reshape(2, self.n, self.dim)
        H = self._nonlocal(eye).reshape(self.dim, self.dim)
        for s in range(2):
            blk = slice(s * self.n, (s + 1) * self.n)
            H[blk, blk] += vloc + np.diag(self.kinetic)
        return 0.5 * (H + H.conj().T)

    def spectral_bounds(self) -> tuple[float, float]:
        """Safe (lower, upper) bounds of the spectrum, Hartree (Gershgorin-like, loose)."""
        vmin, vmax = float(self.vloc_r.min()), float(self.vloc_r.max())
        nl = float(np.abs(self.a_nl).sum(axis=(1, 2)).max(initial=0.0) +
                   np.abs(self.a_so).sum(axis=(1, 2)).max(initial=0.0))
        scale = self._proj_norm2() * nl * 3.0
        return vmin - scale - 0.1, float(self.kinetic.max()) + vmax + scale + 0.1

    def _proj_norm2(self) -> float:
        P = self.proj
        if self.mode == "planewave":
            return float((np.abs(P) ** 2).sum(0).max(initial=0.0)) if P.size else 0.0
        col = np.asarray(P.multiply(P).sum(0)).ravel() * self.dV
        return float(col.max(initial=0.0))


def g_vectors(cell_B: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Cartesian G (1/Bohr) of every FFT grid point, shape (*shape, 3)."""
    recip = 2.0 * np.pi * np.linalg.inv(cell_B).T  # rows b_i
    m = np.meshgrid(*[np.fft.fftfreq(n, 1.0 / n) for n in shape], indexing="ij")
    return np.stack(m, axis=-1) @ recip


def _phase(frac: np.ndarray, shape) -> np.ndarray:
    """e^{−2πi m·f} on the FFT grid for one atom at fractional f (separable product)."""
    e = [np.exp(-2j * np.pi * np.fft.fftfreq(n, 1.0 / n) * f) for n, f in zip(shape, frac)]
    return e[0][:, None, None] * e[1][None, :, None] * e[2][None, None, :]


def local_potential(cell_B, frac, symbols, w_ortho, shape) -> np.ndarray:
    """V(r) on the FFT grid (Hartree): Σ_a [(1−w)v_cubic + w v_ortho](G) e^{−iG·R_a}/Ω → real space."""
    omega = abs(np.linalg.det(cell_B))
    qabs = np.linalg.norm(g_vectors(cell_B, shape), axis=-1)
    vg = np.zeros(shape, complex)
    for el in ACTIVE:
        sel = np.flatnonzero(np.asarray(symbols) == el)
        if not len(sel):
            continue
        for ph, wfac in zip(PHASES, (1.0 - w_ortho[sel], w_ortho[sel])):
            if not np.any(wfac):
                continue
            S = np.zeros(shape, complex)
            for a, c in zip(sel, wfac):
                if c:
                    S += c * _phase(frac[a], shape)
            vg += params_for(el, ph).v_local(qabs) * S
    return np.real(sfft.ifftn(vg)) * (np.prod(shape) / omega)


def atom_matrices(basis: RadialBasis, symbols, w_ortho) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of the atoms with projectors and their (nl, so) matrices, in input order."""
    symbols = np.asarray(symbols)
    idx = np.flatnonzero(np.isin(symbols, ACTIVE))
    nr = basis.n_radial
    a_nl, a_so = np.zeros((len(idx), nr, nr)), np.zeros((len(idx), nr, nr))
    for el in ACTIVE:
        rows = np.flatnonzero(symbols[idx] == el)
        if len(rows):
            a_nl[rows], a_so[rows] = basis.matrices(el, w_ortho[idx[rows]])
    return idx, a_nl, a_so


def planewave_hamiltonian(cell_B: np.ndarray, frac: np.ndarray, symbols, w_ortho: np.ndarray,
                          kpt_B: np.ndarray, ecut_Ha: float, basis: RadialBasis | None = None,
                          chunk: int = 8, centre_B: np.ndarray | None = None) -> SpinorHamiltonian:
    """Plane-wave spinor Hamiltonian at Bloch vector ``kpt_B`` (Cartesian, 1/Bohr).

    The basis is {G : |c+G|² ≤ 2 E_cut} with sphere centre c = ``centre_B`` (default k): a fixed
    centre keeps one basis for finite differences around c (effective masses).
    """
    basis = basis or radial_basis()
    kc = np.sqrt(2.0 * ecut_Ha)
    lengths = np.linalg.norm(cell_B, axis=1)
    centre = np.asarray(kpt_B if centre_B is None else centre_B, float)
    kk = max(np.linalg.norm(kpt_B), np.linalg.norm(centre))
    shape = tuple(int(sfft.next_fast_len(2 * int(np.ceil(2 * (kc + kk) * L / (2 * np.pi))) + 2))
                  for L in lengths)
    G = g_vectors(cell_B, shape).reshape(-1, 3)
    index = np.flatnonzero(np.linalg.norm(G + centre[None, :], axis=1) <= kc)
    K = G[index] + np.asarray(kpt_B, float)[None, :]
    kabs = np.linalg.norm(K, axis=1)
    omega = abs(np.linalg.det(cell_B))
    vloc = local_potential(cell_B, frac, symbols, w_ortho, shape)
    idx, a_nl, a_so = atom_matrices(basis, symbols, w_ortho)
    khat = K / np.where(kabs > 0, kabs, 1.0)[:, None]
    F = 4.0 * np.pi * Y1 * basis.u_at(kabs)[:, :, None] * khat[:, None, :]  # (n, nr, 3)
    R = frac[idx] @ cell_B
    E = np.exp(-1j * K @ R.T) / np.sqrt(omega)  # (n, na)
    P = (E[:, :, None, None] * F[:, None, :, :]).reshape(len(index), -1)
    return SpinorHamiltonian("planewave", cell_B, shape, 0.5 * kabs**2, vloc, P, a_nl, a_so,
                             index=index, chunk=chunk)


def grid_shape(cell_B: np.ndarray, spacing_B: float) -> tuple[int, int, int]:
    """FFT-friendly grid with spacing ≤ ``spacing_B`` along every cell vector."""
    return tuple(int(sfft.next_fast_len(int(np.ceil(L / spacing_B))))
                 for L in np.linalg.norm(cell_B, axis=1))


def grid_projectors(basis: RadialBasis, cell_B, frac, idx, shape, r_cut: float) -> sp.csr_matrix:
    """Sparse (n_points, n_atoms·nr·3) real projectors p_n(|d|)·Y1·d_m/|d|, periodic images summed."""
    nr = basis.n_radial
    rt = np.linspace(0.0, r_cut, int(r_cut / 0.005) + 1)
    table = basis.p_table(rt)
    recip = np.linalg.inv(cell_B).T  # rows b_i / 2π
    ext = [int(np.ceil(r_cut * np.linalg.norm(recip[i]) * shape[i])) + 1 for i in range(3)]
    rows, cols, vals = [], [], []
    for col, a in enumerate(idx):
        centre = np.asarray(frac[a]) * shape
        lo = np.floor(centre).astype(int) - ext
        ranges = [np.arange(lo[i], lo[i] + 2 * ext[i] + 2) for i in range(3)]
        m = np.stack(np.meshgrid(*ranges, indexing="ij"), -1).reshape(-1, 3)
        d = ((m - centre) / shape) @ cell_B
        r = np.linalg.norm(d, axis=1)
        ok = r < r_cut
        m, d, r = m[ok], d[ok], r[ok]
        flat = np.ravel_multi_index(tuple((m % shape).T), shape)
        pn = np.stack([np.interp(r, rt, table[:, n]) for n in range(nr)], 1)
        yhat = Y1 * d / np.where(r > 0, r, 1.0)[:, None]
        v = (pn[:, :, None] * yhat[:, None, :]).reshape(len(r), nr * 3)
        rows.append(np.repeat(flat, nr * 3))
        cols.append(np.tile(np.arange(nr * 3) + col * nr * 3, len(r)))
        vals.append(v.ravel())
    n = int(np.prod(shape))
    if not rows:
        return sp.csr_matrix((n, 0))
    return sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(n, len(idx) * nr * 3)).tocsr()


def grid_hamiltonian(cell_B: np.ndarray, frac: np.ndarray, symbols, w_ortho: np.ndarray,
                     spacing_B: float = 0.5, r_cut: float = 6.0, basis: RadialBasis | None = None,
                     shape: tuple[int, int, int] | None = None, chunk: int = 16) -> SpinorHamiltonian:
    """Real-space grid spinor Hamiltonian of a periodic box (Γ point), grid spacing ≤ ``spacing_B``.

    The p/SO projectors are band-limited to the grid's Nyquist wavenumber π/h (h the coarsest
    spacing): the semilocal operators restricted to the plane waves the grid resolves, smooth on it.
    """
    shape = shape or grid_shape(cell_B, spacing_B)
    h = float(np.max(np.linalg.norm(cell_B, axis=1) / np.asarray(shape)))
    basis = basis or radial_basis(k_max=round(min(12.0, np.pi / h), 2))
    kin = 0.5 * np.sum(g_vectors(cell_B, shape) ** 2, axis=-1)
    vloc = local_potential(cell_B, frac, symbols, w_ortho, shape)
    idx, a_nl, a_so = atom_matrices(basis, symbols, w_ortho)
    P = grid_projectors(basis, cell_B, frac, idx, shape, r_cut)
    dV = abs(np.linalg.det(cell_B)) / np.prod(shape)
    return SpinorHamiltonian("grid", cell_B, shape, kin, vloc, P, a_nl, a_so, dV=dV, chunk=chunk)
