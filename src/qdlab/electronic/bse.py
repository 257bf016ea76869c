"""Bethe–Salpeter equation in the Tamm–Dancoff approximation on band-edge spinor states.

H_{cv,c′v′} = (E_c − E_v) δ_cc′ δ_vv′ − D_{cv,c′v′}/ε + X_{cv,c′v′}   (Hartree, atomic units)

- direct  D = ∫∫ ψ_c*(r)·ψ_c′(r) v(r−r′) ψ_v′*(r′)·ψ_v(r′)  (static screening 1/ε, ε a parameter);
- exchange X = ∫∫ ψ_c*(r)·ψ_v(r) v(r−r′) ψ_v′*(r′)·ψ_c′(r′) with the bare Coulomb interaction;
"·" is the spinor inner product at one point. v is the Coulomb interaction of an isolated system:
the box is zero-padded to twice its size and 4π(1 − cos(G R_c))/G² is used with R_c the padded
half-width (spherical truncation, exact for charges inside the original box).
Hole spins are those of time-reversed states, s^h_vv′ = −⟨ψ_v′|σ/2|ψ_v⟩ (seed 003 eqs. 24–26), so
an exciton's ⟨S²⟩ is 0 for a singlet and 2 for a triplet. The bare kernels are stored, so the
screening ε can be changed without recomputing states or integrals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.fft as sfft

from qdlab.electronic.pseudopotential.params import HARTREE_EV

#: High-frequency dielectric constant of CsPbI3 used by default: ε∞ ≈ 4.9 (the range 4.6–5.3 of
#: optical/DFT values, e.g. Yang et al., ACS Energy Lett. 2017, 2, 1621, and
#: Cho & Berkelbach, J. Phys. Chem. Lett. 2019, 10, 6189 — seed 003's ref. [21]).
EPS_CSPBI3 = 4.9


def coulomb_g(cell_B: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Truncated Coulomb kernel on the zero-padded (2×) grid: 4π(1−cos(G R_c))/G², G=0 → 2π R_c²."""
    from qdlab.electronic.pseudopotential.hamiltonian import g_vectors

    big = tuple(2 * n for n in shape)
    cell2 = 2.0 * np.asarray(cell_B)
    rc = 0.5 * np.min(np.linalg.norm(cell2, axis=1)) * 0.999
    g2 = np.sum(g_vectors(cell2, big) ** 2, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = 4.0 * np.pi * (1.0 - np.cos(np.sqrt(g2) * rc)) / g2
    v[0, 0, 0] = 2.0 * np.pi * rc**2
    return v


def convolve(rho: np.ndarray, vg: np.ndarray) -> np.ndarray:
    """φ(r) = ∫ v(r−r′) ρ(r′) dr′ on the original grid for a stack ρ of shape (m, *shape).

    With ρ̃(G) = dV·FFT(ρ) and φ = Ω⁻¹ Σ_G v(G) ρ̃(G) e^{iGr} on the padded box (Ω = N·dV) the
    volume factors cancel: φ = IFFT(v·FFT(ρ)).
    """
    shape = rho.shape[1:]
    big = vg.shape
    pad = np.zeros((rho.shape[0],) + big, complex)
    pad[:, : shape[0], : shape[1], : shape[2]] = rho
    out = sfft.ifftn(sfft.fftn(pad, axes=(1, 2, 3)) * vg[None], axes=(1, 2, 3))
    return out[:, : shape[0], : shape[1], : shape[2]]


@dataclass(frozen=True)
class BSEKernel:
    """Unscreened BSE ingredients on n_c electron × n_v hole spinor states (Hartree, Bohr).

    Pair index p = c·n_v + v. direct/exchange: (n_pairs, n_pairs); dipoles ⟨ψ_v|r|ψ_c⟩: (n_pairs, 3);
    spin_e (3, n_c, n_c) = ⟨ψ_c|σ/2|ψ_c′⟩, spin_h (3, n_v, n_v) = −⟨ψ_v′|σ/2|ψ_v⟩.
    """

    e_c: np.ndarray
    e_v: np.ndarray
    direct: np.ndarray
    exchange: np.ndarray
    dipoles: np.ndarray
    spin_e: np.ndarray
    spin_h: np.ndarray

    @property
    def pair_energies(self) -> np.ndarray:
        return (self.e_c[:, None] - self.e_v[None, :]).ravel()

    def hamiltonian(self, eps: float) -> np.ndarray:
        """Dense TDA matrix for screening ε (Hartree)."""
        return np.diag(self.pair_energies) - self.direct / eps + self.exchange

    def s2_matrix(self) -> np.ndarray:
        """Total exciton spin S² = Σ_α (s^e_α ⊗ 1 + 1 ⊗ s^h_α)² in the pair basis."""
        nc, nv = len(self.e_c), len(self.e_v)
        S = [np.kron(self.spin_e[a], np.eye(nv)) + np.kron(np.eye(nc), self.spin_h[a]) for a in range(3)]
        return sum(s @ s for s in S)


def spinor_grid(vectors: np.ndarray, shape) -> np.ndarray:
    """(2n, k) spinor block → (k, 2, *shape) grid arrays."""
    k = vectors.shape[1]
    return vectors.T.reshape((k, 2) + tuple(shape))


def build_kernel(psi_c: np.ndarray, psi_v: np.ndarray, e_c: np.ndarray, e_v: np.ndarray,
                 cell_B: np.ndarray, dV: float, origin_B: np.ndarray | None = None) -> BSEKernel:
    """Direct and exchange integrals of grid spinors ψ (k, 2, *shape), normalised Σ|ψ|² dV = 1."""
    shape = psi_c.shape[2:]
    nc, nv = len(psi_c), len(psi_v)
    vg = coulomb_g(cell_B, shape)
    n = int(np.prod(shape))
    rho_cc = np.einsum("asxyz,bsxyz->abxyz", psi_c.conj(), psi_c).reshape(nc * nc, *shape)
    rho_vv = np.einsum("asxyz,bsxyz->abxyz", psi_v.conj(), psi_v).reshape(nv * nv, *shape)
    rho_cv = np.einsum("asxyz,bsxyz->abxyz", psi_c.conj(), psi_v).reshape(nc * nv, *shape)
    phi_vv = convolve(rho_vv, vg).reshape(nv, nv, n)  # [v', v] ← ρ_v'v
    d4 = (rho_cc.reshape(nc * nc, n) @ phi_vv.reshape(nv * nv, n).T * dV).reshape(nc, nc, nv, nv)
    direct = d4.transpose(0, 3, 1, 2).reshape(nc * nv, nc * nv)  # [c, v, c', v']
    rho_vc = rho_cv.reshape(nc, nv, n).transpose(1, 0, 2).conj()  # ρ_v'c' = (ρ_c'v')*
    phi_vc = convolve(rho_vc.reshape(nv * nc, *shape), vg).reshape(nv, nc, n)
    x4 = (rho_cv.reshape(nc * nv, n) @ phi_vc.reshape(nv * nc, n).T * dV).reshape(nc, nv, nv, nc)
    exchange = x4.transpose(0, 1, 3, 2).reshape(nc * nv, nc * nv)
    r = _positions(cell_B, shape, origin_B)
    dip = np.einsum("asn,nk,bsn->bak", psi_v.conj().reshape(nv, 2, n), r,
                    psi_c.reshape(nc, 2, n)) * dV  # [c, v, k] = ⟨v|r|c⟩
    sig = 0.5 * np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]])
    spin_e = np.einsum("asn,kst,btn->kab", psi_c.conj().reshape(nc, 2, n), sig, psi_c.reshape(nc, 2, n)) * dV
    sv = np.einsum("asn,kst,btn->kab", psi_v.conj().reshape(nv, 2, n), sig, psi_v.reshape(nv, 2, n)) * dV
    return BSEKernel(np.asarray(e_c, float), np.asarray(e_v, float), 0.5 * (direct + direct.conj().T),
                     0.5 * (exchange + exchange.conj().T), dip.reshape(nc * nv, 3), spin_e,
                     -sv.transpose(0, 2, 1))


def _positions(cell_B, shape, origin_B) -> np.ndarray:
    m = np.stack(np.meshgrid(*[np.arange(s) / s for s in shape], indexing="ij"), -1).reshape(-1, 3)
    r = m @ np.asarray(cell_B)
    centre = r.mean(0) if origin_B is None else np.asarray(origin_B)
    return r - centre


@dataclass(frozen=True)
class Excitons:
    """BSE solution: energies and binding energies (eV), ⟨S²⟩, oscillator strengths f_x,y,z."""

    energies_eV: np.ndarray
    binding_eV: np.ndarray
    s2: np.ndarray
    oscillator: np.ndarray  # (n, 3)
    coefficients: np.ndarray  # (n_pairs, n)
    eps: float
    info: dict = field(default_factory=dict)

    @property
    def bright(self) -> np.ndarray:
        return self.oscillator.sum(1)


def solve_bse(kernel: BSEKernel, eps: float = EPS_CSPBI3, n_excitons: int | None = None,
              method: str = "dense", tol: float = 1e-10) -> Excitons:
    """Lowest excitons of the TDA Hamiltonian, dense or by Chebyshev-filtered subspace iteration."""
    H = kernel.hamiltonian(eps)
    npair = H.shape[0]
    n = min(n_excitons or npair, npair)
    if method == "dense":
        w, A = np.linalg.eigh(H)
        w, A = w[:n], A[:, :n]
    else:
        from qdlab.electronic.eigensolvers import filtered_subspace

        res = filtered_subspace(lambda X: H @ X, npair, n, tol=tol, degree=10)
        w, A = res.values, res.vectors
    s2 = np.real(np.einsum("pi,pq,qi->i", A.conj(), kernel.s2_matrix(), A))
    amp = A.T @ kernel.dipoles  # ⟨0|r|X⟩ = Σ A_cv ⟨v|r|c⟩
    osc = 2.0 * w[:, None] * np.abs(amp) ** 2
    eb = np.real(np.einsum("pi,p,pi->i", A.conj(), kernel.pair_energies, A)) - w
    return Excitons(w * HARTREE_EV, eb * HARTREE_EV, s2, osc, A, float(eps))


def absorption_spectrum(exc: Excitons, energies_eV: np.ndarray, broadening_eV: float = 0.01) -> np.ndarray:
    """Gaussian-broadened oscillator strength per polarisation, shape (len(E), 3), 1/eV."""
    E = np.asarray(energies_eV)[:, None]
    g = np.exp(-((E - exc.energies_eV[None, :]) ** 2) / (2 * broadening_eV**2))
    return g @ exc.oscillator / (broadening_eV * np.sqrt(2 * np.pi))


def fine_structure(exc: Excitons, bright_fraction: float = 1e-3) -> dict:
    """Lowest exciton spin character, bright–dark splitting and bright-state splittings (meV)."""
    e, f = exc.energies_eV, exc.bright
    bright = np.flatnonzero(f > bright_fraction * f.max()) if f.max() > 0 else np.array([], int)
    out = {"lowest_eV": float(e[0]), "lowest_s2": float(exc.s2[0]),
           "lowest_dark": bool(f[0] <= bright_fraction * max(f.max(), 1e-30))}
    if len(bright):
        b = bright[:3]
        out["bright_eV"] = e[b].tolist()
        out["bright_dark_meV"] = float((e[b[0]] - e[0]) * 1e3)
        out["bright_splittings_meV"] = ((e[b] - e[b[0]]) * 1e3).tolist()
    return out
