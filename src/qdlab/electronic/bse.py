"""Bethe–Salpeter equation in the Tamm–Dancoff approximation on band-edge spinor states.

H_{cv,c′v′} = (E_c − E_v) δ_cc′ δ_vv′ − D_{cv,c′v′}/ε + X_{cv,c′v′}   (Hartree, atomic units)

- direct  D = ∫∫ ψ_c*(r)·ψ_c′(r) v(r−r′) ψ_v′*(r′)·ψ_v(r′)  (static screening 1/ε, ε a parameter);
- exchange X = ∫∫ ψ_c*(r)·ψ_v(r) v(r−r′) ψ_v′*(r′)·ψ_c′(r′) with the bare Coulomb interaction;
"·" is the spinor inner product at one point. v is the Coulomb interaction of an isolated system:
the box is zero-padded to twice its size and either (``coulomb="truncated"``, default)
4π(1 − cos(G R_c))/G² is used with R_c the padded half-width (spherical truncation, exact for charges
inside the original box), or (``coulomb="split"``, the seed's method code) the kernel is split as
erf(γr)/r — smooth, sampled in real space on the padded box (Hockney) — plus the short-range part
4π[1 − e^{−q²/4γ²}]/q² in reciprocal space, γ = 7/(2·min box length) (SCIENCE.md §9).
Screening: isotropic ε (default ε∞ = 4.9; the direct term is stored bare and divided by ε, so ε can
change without recomputing integrals), or anisotropic ``eps_xyz`` through the split kernel with
q̃² = ε_x q_x² + ε_y q_y² + ε_z q_z² (W(q) = 4π[1 − e^{−q̃²/4γ²}]/q̃² + its erf partner; the direct
integrals then depend on ε and are recomputed for another ε_xyz, the states are not).
Hole spins are those of time-reversed states, s^h_vv′ = −⟨ψ_v′|σ/2|ψ_v⟩ (seed 003 eqs. 24–26), so
an exciton's ⟨S²⟩ is 0 for a singlet and 2 for a triplet. The bare kernels are stored, so the
screening ε can be changed without recomputing states or integrals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.fft as sfft
from scipy.special import erf

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


def split_coulomb_g(cell_B: np.ndarray, shape: tuple[int, int, int],
                    eps_xyz: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """Seed 003's cluster kernel on the zero-padded (2×) grid, screened by a diagonal ε tensor.

    W(r) = 1/(√det ε · r̃), r̃² = Σ x_i²/ε_i, split as erf(γ r̃)/(√det ε r̃) — sampled in real space
    with the minimum image of the padded box, FFT × dV — plus 4π[1 − e^{−q̃²/4γ²}]/q̃² (q̃² = Σ ε_i q_i²,
    q → 0 limit π/γ²), γ = 7/(2·min box length) of the original box. Orthorhombic boxes (Bohr).
    """
    from qdlab.electronic.pseudopotential.hamiltonian import g_vectors

    cell = np.asarray(cell_B, float)
    if np.abs(cell - np.diag(np.diag(cell))).max() > 1e-12:
        raise ValueError("the split Coulomb kernel needs an orthorhombic box")
    eps = np.asarray(eps_xyz, float)
    gamma = 7.0 / (2.0 * np.min(np.diag(cell)))
    big = tuple(2 * n for n in shape)
    cell2 = 2.0 * cell
    axes = [np.fft.fftfreq(n) * L for n, L in zip(big, np.diag(cell2))]  # minimum-image coordinates
    r2 = sum(a[idx] ** 2 / e for a, e, idx in zip(axes, eps, np.ix_(*[np.arange(n) for n in big])))
    rt = np.sqrt(r2)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(rt > 0, erf(gamma * rt) / np.where(rt > 0, rt, 1.0), 2.0 * gamma / np.sqrt(np.pi))
    dV = np.prod(np.diag(cell2)) / np.prod(big)
    long = np.real(sfft.fftn(f / np.sqrt(np.prod(eps)))) * dV
    q2 = np.sum(g_vectors(cell2, big) ** 2 * eps, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        short = 4.0 * np.pi * -np.expm1(-q2 / (4.0 * gamma**2)) / q2
    short[0, 0, 0] = np.pi / gamma**2
    return long + short


def coulomb_kernel_g(cell_B: np.ndarray, shape: tuple[int, int, int], coulomb: str = "truncated",
                     eps_xyz: tuple[float, float, float] | None = None) -> np.ndarray:
    """The padded-grid interaction: ``truncated`` (bare, spherical truncation) or ``split`` (erf split,
    screened by ``eps_xyz`` when given)."""
    if coulomb == "truncated":
        if eps_xyz is not None:
            raise ValueError("anisotropic ε needs coulomb='split'")
        return coulomb_g(cell_B, shape)
    if coulomb == "split":
        return split_coulomb_g(cell_B, shape, (1.0, 1.0, 1.0) if eps_xyz is None else eps_xyz)
    raise ValueError(f"coulomb must be 'truncated' or 'split', got {coulomb!r}")


def convolve(rho: np.ndarray, vg: np.ndarray, chunk: int = 8) -> np.ndarray:
    """φ(r) = ∫ v(r−r′) ρ(r′) dr′ on the original grid for a stack ρ of shape (m, *shape).

    With ρ̃(G) = dV·FFT(ρ) and φ = Ω⁻¹ Σ_G v(G) ρ̃(G) e^{iGr} on the padded box (Ω = N·dV) the
    volume factors cancel: φ = IFFT(v·FFT(ρ)). ``chunk`` densities are padded at a time.
    """
    shape = rho.shape[1:]
    out = np.empty(rho.shape, complex)
    pad = np.zeros((min(chunk, len(rho)),) + vg.shape, complex)
    for s in range(0, len(rho), chunk):
        blk = rho[s:s + chunk]
        pad[:] = 0.0
        pad[: len(blk), : shape[0], : shape[1], : shape[2]] = blk
        got = sfft.ifftn(sfft.fftn(pad[: len(blk)], axes=(1, 2, 3)) * vg[None], axes=(1, 2, 3))
        out[s:s + chunk] = got[:, : shape[0], : shape[1], : shape[2]]
    return out


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
    eps_xyz: np.ndarray = field(default_factory=lambda: np.zeros(0))  # set: direct already screened

    @property
    def pair_energies(self) -> np.ndarray:
        return (self.e_c[:, None] - self.e_v[None, :]).ravel()

    @property
    def anisotropic(self) -> bool:
        return bool(np.asarray(self.eps_xyz).size)

    def subset(self, n_c: int, n_v: int) -> "BSEKernel":
        """The kernel on the first ``n_c`` electron and ``n_v`` hole states (the lowest empty and highest
        occupied, in the stored order): the same integrals, so a basis-size series costs no new ones."""
        if not (1 <= n_c <= len(self.e_c) and 1 <= n_v <= len(self.e_v)):
            raise ValueError(f"subset {n_c} × {n_v} outside the stored {len(self.e_c)} × {len(self.e_v)} states")
        keep = (np.arange(n_c)[:, None] * len(self.e_v) + np.arange(n_v)[None, :]).ravel()
        sub = np.ix_(keep, keep)
        return BSEKernel(self.e_c[:n_c], self.e_v[:n_v], self.direct[sub], self.exchange[sub], self.dipoles[keep],
                         self.spin_e[:, :n_c, :n_c], self.spin_h[:, :n_v, :n_v], self.eps_xyz)

    def hamiltonian(self, eps: float) -> np.ndarray:
        """Dense TDA matrix (Hartree): direct screened by 1/ε, or as stored when built with eps_xyz."""
        direct = self.direct if self.anisotropic else self.direct / eps
        return np.diag(self.pair_energies) - direct + self.exchange

    def s2_matrix(self) -> np.ndarray:
        """Total exciton spin S² = s_e² + s_h² + 2 s_e·s_h = 3/2 + 2 Σ_α s^e_α ⊗ s^h_α in the pair basis.

        Each particle's s² is 3/4 exactly (σ_α² = 1). Squaring the spin matrices truncated to the
        band-edge states instead, Σ_α (s^e_α ⊗ 1 + 1 ⊗ s^h_α)², loses what s_α moves out of the basis:
        with spin–orbit coupling most of it (the j = 1/2 conduction doublet of p orbitals has
        P s P = −j/3, so ⟨s_e²⟩ came out 1/12 instead of 3/4, and the dark J = 0 exciton 4/3 instead of
        2). The cross term is exact in the product basis."""
        nc, nv = len(self.e_c), len(self.e_v)
        return 1.5 * np.eye(nc * nv) + 2 * sum(np.kron(self.spin_e[a], self.spin_h[a]) for a in range(3))


def spinor_grid(vectors: np.ndarray, shape) -> np.ndarray:
    """(2n, k) spinor block → (k, 2, *shape) grid arrays."""
    k = vectors.shape[1]
    return vectors.T.reshape((k, 2) + tuple(shape))


def build_kernel(psi_c: np.ndarray, psi_v: np.ndarray, e_c: np.ndarray, e_v: np.ndarray,
                 cell_B: np.ndarray, dV: float, origin_B: np.ndarray | None = None,
                 coulomb: str = "truncated", eps_xyz: tuple[float, float, float] | None = None) -> BSEKernel:
    """Direct and exchange integrals of grid spinors ψ (k, 2, *shape), normalised Σ|ψ|² dV = 1.

    Exchange with the bare kernel ``coulomb``; the direct term bare (isotropic screening later) or,
    with ``eps_xyz``, screened by the anisotropic split kernel.
    """
    shape = psi_c.shape[2:]
    nc, nv = len(psi_c), len(psi_v)
    vg = coulomb_kernel_g(cell_B, shape, coulomb)
    wg = vg if eps_xyz is None else coulomb_kernel_g(cell_B, shape, coulomb, eps_xyz)
    n = int(np.prod(shape))
    rho_cc = np.einsum("asxyz,bsxyz->abxyz", psi_c.conj(), psi_c).reshape(nc * nc, n)
    d4 = _dot_pair_potentials(rho_cc, psi_v, psi_v, wg, dV).reshape(nc, nc, nv, nv)  # [c, c', v', v]
    del rho_cc
    direct = d4.transpose(0, 3, 1, 2).reshape(nc * nv, nc * nv)  # [c, v, c', v']
    rho_cv = np.einsum("asxyz,bsxyz->abxyz", psi_c.conj(), psi_v).reshape(nc * nv, n)
    x4 = _dot_pair_potentials(rho_cv, psi_v, psi_c, vg, dV).reshape(nc, nv, nv, nc)  # [c, v, v', c']
    exchange = x4.transpose(0, 1, 3, 2).reshape(nc * nv, nc * nv)
    r = _positions(cell_B, shape, origin_B)
    dip = np.einsum("asn,nk,bsn->bak", psi_v.conj().reshape(nv, 2, n), r,
                    psi_c.reshape(nc, 2, n)) * dV  # [c, v, k] = ⟨v|r|c⟩
    sig = 0.5 * np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]])
    spin_e = np.einsum("asn,kst,btn->kab", psi_c.conj().reshape(nc, 2, n), sig, psi_c.reshape(nc, 2, n)) * dV
    sv = np.einsum("asn,kst,btn->kab", psi_v.conj().reshape(nv, 2, n), sig, psi_v.reshape(nv, 2, n)) * dV
    return BSEKernel(np.asarray(e_c, float), np.asarray(e_v, float), 0.5 * (direct + direct.conj().T),
                     0.5 * (exchange + exchange.conj().T), dip.reshape(nc * nv, 3), spin_e,
                     -sv.transpose(0, 2, 1), np.zeros(0) if eps_xyz is None else np.asarray(eps_xyz, float))


def _dot_pair_potentials(left: np.ndarray, psi_a: np.ndarray, psi_b: np.ndarray, vg: np.ndarray, dV: float,
                         chunk: int = 8) -> np.ndarray:
    """dV·Σ_r left_p(r) φ_ij(r) for φ_ij = v ∗ (ψ_a[i]†ψ_b[j]), columns i·len(ψ_b) + j; the pair
    densities and their potentials are made ``chunk`` at a time (never all held)."""
    na, nb = len(psi_a), len(psi_b)
    out = np.empty((left.shape[0], na * nb), complex)
    for s in range(0, na * nb, chunk):
        js = np.arange(s, min(s + chunk, na * nb))
        rho = np.einsum("ksxyz,ksxyz->kxyz", psi_a[js // nb].conj(), psi_b[js % nb])
        out[:, js] = left @ convolve(rho, vg, chunk).reshape(len(js), -1).T * dV
    return out


def _positions(cell_B, shape, origin_B) -> np.ndarray:
    m = np.stack(np.meshgrid(*[np.arange(s) / s for s in shape], indexing="ij"), -1).reshape(-1, 3)
    r = m @ np.asarray(cell_B)
    centre = r.mean(0) if origin_B is None else np.asarray(origin_B)
    return r - centre


#: Sustained rates of the BSE time estimate on one CPU core, flop/s: the pair-potential FFTs (numpy's
#: pocketfft) and the contractions (complex GEMM). Measured on the relaxed n = 2 CsPbI3 cube (74,088
#: points): kernels of 8 × 8, 16 × 16 and 32 × 32 pairs took 7.0, 30.8 and 149 s of CPU; a fit of the two
#: flop counts below gives 2.1e9 (FFT) and 3.1e10 (GEMM). The estimate uses 2e9 and 2.5e10, so it
#: predicts 7.5, 32 and 166 s there. A single rate of 1e9 had predicted 19, 136 and 1,476 s.
FFT_FLOPS_PER_CORE = 2e9
GEMM_FLOPS_PER_CORE = 2.5e10


def kernel_cost(n_points: int, n_c: int, n_v: int, chunk: int = 8) -> dict:
    """Memory (bytes) and time (s, at :data:`FFT_FLOPS_PER_CORE` and :data:`GEMM_FLOPS_PER_CORE`) of
    :func:`build_kernel` on one core.

    Memory: the states (n_c + n_v spinors), the pair densities ρ_cc′ and ρ_cv, and the chunked hole-pair
    potentials (padded FFT buffers), complex128. Time: (n_v² + n_c n_v)
    convolutions of two 8N-point FFTs (5·8N·log₂8N flop each) and the contractions
    (n_c² n_v² + (n_c n_v)²)·N complex multiply–adds (8 flop).
    """
    c16 = 16
    pairs = n_c * n_c + n_c * n_v
    ch = min(chunk, max(n_v * n_v, n_c * n_v))
    mem = (pairs + 2 * (n_c + n_v)) * n_points * c16 + (3 * 8 + 2) * ch * n_points * c16
    big = 8 * n_points
    fft = (n_v * n_v + n_c * n_v) * 2 * 5 * big * np.log2(big)
    gemm = 8 * n_points * (n_c * n_v) ** 2 * 2
    return {"bytes": int(mem), "seconds": float(fft / FFT_FLOPS_PER_CORE + gemm / GEMM_FLOPS_PER_CORE)}


def check_kernel_size(n_points: int, n_c: int, n_v: int, limit_GB: float) -> dict:
    """Refuse (one line, with the estimate) a BSE kernel whose memory exceeds ``limit_GB``."""
    from qdlab.errors import QdlabError

    cost = kernel_cost(n_points, n_c, n_v)
    if cost["bytes"] > limit_GB * 1e9:
        raise QdlabError(f"BSE kernel estimate {cost['bytes'] / 1e9:.1f} GB and ≈{cost['seconds'] / 3600:.1f} h "
                         f"on one core ({n_c} electron × {n_v} hole states on {n_points} grid points) "
                         f"exceeds the limit {limit_GB:g} GB; use fewer states (--electrons/--holes)")
    return cost


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
    if kernel.anisotropic:  # ε of the stored kernel; the geometric mean reported as the scalar ε
        exy = np.asarray(kernel.eps_xyz, float)
        return Excitons(w * HARTREE_EV, eb * HARTREE_EV, s2, osc, A, float(np.prod(exy) ** (1 / 3)),
                        {"eps_xyz": exy.tolist()})
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
