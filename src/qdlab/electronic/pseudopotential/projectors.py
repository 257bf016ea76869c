"""Separable (Kleinman–Bylander-type) representation of the semilocal p-channel and spin–orbit terms.

The seed's non-local operators are semilocal: Σ_m |Y_1m⟩ v(r) ⟨Y_1m| with v(r) = λ1 e^{−r²} +
λ2 e^{−(r−1.5)²} (and λ_SO e^{−(r/0.7)²} · L·S). In plane waves K = k+G their matrix element is
(4π)²/Ω · Σ_a Y_a(K̂) Y_a(K̂′) · R(|K|, |K′|) with R(k, k′) = ∫ r² j1(kr) v(r) j1(k′r) dr
(= λ·12π cosγ ∫…, SCIENCE.md §9). We factorise every radial kernel R on a shared radial basis
u_n(k) (SVD of all kernels of all elements and phases, orthonormal for the measure k² dk):
R(k, k′) ≈ Σ_nn′ u_n(k) M_nn′ u_n′(k′), exact to the SVD tolerance for k, k′ ≤ k_max. Each atom then
carries projectors χ_nm with χ̃(K) = 4π u_n(|K|) Y_m(K̂) (plane waves) or, in real space,
χ_nm(r) = p_n(r) Y_m(r̂) with p_n(r) = (2/π) ∫ k² u_n(k) j1(kr) dk (a "modified KB" form with several
radial projectors). A per-atom cubic↔orthorhombic mixture only mixes the small matrices M.
Atomic units (Bohr, 1/Bohr, Hartree).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.special import spherical_jn

from qdlab.electronic.pseudopotential.params import PHASES, TABLE_S4

#: Real p harmonics Y_m(r̂) = sqrt(3/4π) r̂_m, m = x, y, z.
Y1 = float(np.sqrt(3.0 / (4.0 * np.pi)))


def ls_matrix() -> np.ndarray:
    """L·S on the real p basis ⊗ spin: shape (3, 2, 3, 2), (L_c)_ab = −i ε_cab, S = σ/2.

    Eigenvalues +½ (four, j = 3/2) and −1 (two, j = 1/2).
    """
    sig = np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=complex)
    eps = np.zeros((3, 3, 3))
    for c, a, b in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):
        eps[c, a, b], eps[c, b, a] = 1.0, -1.0
    lmat = -1j * eps  # (c, a, b)
    return 0.5 * np.einsum("cab,cst->asbt", lmat, sig)


def radial_kernel(f_r: np.ndarray, r: np.ndarray, wr: np.ndarray, k: np.ndarray) -> np.ndarray:
    """R(k_i, k_j) = ∫ r² j1(k_i r) f(r) j1(k_j r) dr on quadrature (r, wr)."""
    jk = spherical_jn(1, np.outer(k, r))
    return (jk * (wr * r**2 * f_r)) @ jk.T


@dataclass(frozen=True)
class RadialBasis:
    """Shared radial projector basis and the per-(element, phase, kind) coupling matrices.

    k: (nk,) grid, 1/Bohr; u: (nk, nr) basis on that grid; coef[(element, phase, kind)]: (nr, nr)
    with kind "nl" (p channel, Hartree) or "so" (spin–orbit, multiplies L·S).
    """

    k: np.ndarray
    u: np.ndarray
    coef: dict
    k_max: float

    @property
    def n_radial(self) -> int:
        return self.u.shape[1]

    def u_at(self, kabs: np.ndarray) -> np.ndarray:
        """u_n(|K|) at arbitrary |K| (zero beyond k_max), shape (len, nr)."""
        kabs = np.asarray(kabs, float)
        out = _spline(self)(np.minimum(kabs, self.k_max))
        out[kabs > self.k_max] = 0.0
        return out

    def p_table(self, r: np.ndarray) -> np.ndarray:
        """Real-space radial projectors p_n(r) = (2/π) ∫ k² u_n(k) j1(kr) dk, shape (len(r), nr)."""
        wk = _trap_weights(self.k) * self.k**2
        jk = spherical_jn(1, np.outer(np.asarray(r, float), self.k))
        return (2.0 / np.pi) * (jk * wk) @ self.u

    def matrices(self, element: str, w_ortho: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-atom (nl, so) matrices, shape (n_atoms, nr, nr): (1−w)·cubic + w·orthorhombic."""
        w = np.asarray(w_ortho, float)[:, None, None]
        out = []
        for kind in ("nl", "so"):
            c, o = self.coef[(element, "cubic", kind)], self.coef[(element, "orthorhombic", kind)]
            out.append((1.0 - w) * c + w * o)
        return out[0], out[1]


_SPLINES: dict[int, CubicSpline] = {}


def _spline(basis: RadialBasis) -> CubicSpline:
    key = id(basis)
    if key not in _SPLINES:
        _SPLINES[key] = CubicSpline(basis.k, basis.u, axis=0)
    return _SPLINES[key]


def _trap_weights(x: np.ndarray) -> np.ndarray:
    w = np.zeros_like(x)
    d = np.diff(x)
    w[:-1] += d / 2
    w[1:] += d / 2
    return w


@lru_cache(maxsize=4)
def radial_basis(k_max: float = 12.0, nk: int = 241, r_max: float = 9.0, nr_quad: int = 901,
                 rtol: float = 1e-8) -> RadialBasis:
    """Build the shared basis from the Table S4 kernels (both elements, phases, nl and so)."""
    r = np.linspace(0.0, r_max, nr_quad)
    wr = _trap_weights(r)
    k = np.linspace(0.0, k_max, nk)
    sw = np.sqrt(_trap_weights(k) * k**2)
    kernels = {}
    for el, phases in TABLE_S4.items():
        for ph in PHASES:
            p = phases[ph]
            kernels[(el, ph, "nl")] = radial_kernel(p.f_nonlocal(r), r, wr, k)
            kernels[(el, ph, "so")] = radial_kernel(p.f_spin_orbit(r), r, wr, k)
    stacked = np.hstack([sw[:, None] * K * sw[None, :] for K in kernels.values()])
    U, s, _ = np.linalg.svd(stacked, full_matrices=False)
    keep = s > rtol * s[0]
    Uk = U[:, keep]
    safe = np.where(sw > 0, sw, 1.0)
    u = np.where(sw[:, None] > 0, Uk / safe[:, None], 0.0)
    coef = {key: Uk.T @ (sw[:, None] * K * sw[None, :]) @ Uk for key, K in kernels.items()}
    return RadialBasis(k=k, u=u, coef=coef, k_max=float(k_max))
