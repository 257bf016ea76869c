"""Vectorised Slater–Koster blocks (s, px, py, pz) for many bonds at once, their derivatives, SOC.

Block of a directed bond i → j with vector D = r_j − r_i (Å), d = |D|, u = D/d:
  ⟨s_i|H|s_j⟩ = V_ss,  ⟨s_i|H|p_j,a⟩ = u_a V_sp,  ⟨p_i,a|H|s_j⟩ = −u_a V_ps,
  ⟨p_i,a|H|p_j,b⟩ = u_a u_b (V_ppσ − V_ppπ) + δ_ab V_ppπ,
every V scaled as V(d) = V(d0)·(d0/d)^η·f_c(d), f_c = 1 below r_on, ½(1 + cos π(d−r_on)/(r_max−r_on))
up to r_max, 0 beyond. Energies in eV.
"""

from __future__ import annotations

import numpy as np


def radial(d: np.ndarray, d0: np.ndarray, eta: float, r_on: np.ndarray, r_max: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """Scale factor s(d) = (d0/d)^η f_c(d) and its derivative ds/dd (1/Å), per bond."""
    power = (d0 / d) ** eta
    x = np.clip((d - r_on) / (r_max - r_on), 0.0, 1.0)
    fc = 0.5 * (1.0 + np.cos(np.pi * x))
    inside = (d > r_on) & (d < r_max)
    dfc = np.where(inside, -0.5 * np.pi * np.sin(np.pi * x) / (r_max - r_on), 0.0)
    return power * fc, power * (dfc - eta / d * fc)


def sk_blocks(D: np.ndarray, V: np.ndarray) -> np.ndarray:
    """(n, 4, 4) blocks for bond vectors D (n, 3) and scaled integrals V (n, 5) = ss, sp, ps, ppσ, ppπ."""
    d = np.linalg.norm(D, axis=1)
    u = D / d[:, None]
    n = len(D)
    B = np.empty((n, 4, 4))
    B[:, 0, 0] = V[:, 0]
    B[:, 0, 1:] = u * V[:, 1, None]
    B[:, 1:, 0] = -u * V[:, 2, None]
    B[:, 1:, 1:] = (u[:, :, None] * u[:, None, :]) * (V[:, 3] - V[:, 4])[:, None, None]
    B[:, 1:, 1:] += np.eye(3)[None] * V[:, 4, None, None]
    return B


def sk_block_derivatives(D: np.ndarray, V0: np.ndarray, s: np.ndarray, ds: np.ndarray) -> np.ndarray:
    """(n, 3, 4, 4): ∂B/∂D_c of every block, with V = V0·s(d) (V0 (n, 5) unscaled, s, ds per bond)."""
    d = np.linalg.norm(D, axis=1)
    u = D / d[:, None]
    n = len(D)
    # ∂u_a/∂D_c = (δ_ac − u_a u_c)/d
    du = (np.eye(3)[None] - u[:, :, None] * u[:, None, :]) / d[:, None, None]  # (n, a, c)
    V = V0 * s[:, None]
    dV = V0 * ds[:, None]  # ∂V/∂d; ∂d/∂D_c = u_c
    out = np.zeros((n, 3, 4, 4))
    out[:, :, 0, 0] = dV[:, 0, None] * u
    # s-p: u_a V_sp → du_a/dD_c V_sp + u_a dV_sp u_c
    out[:, :, 0, 1:] = np.einsum("nac->nca", du) * V[:, 1, None, None] + \
        (u[:, :, None] * u[:, None, :]) * dV[:, 1, None, None]
    out[:, :, 1:, 0] = -(np.einsum("nac->nca", du) * V[:, 2, None, None] +
                         (u[:, :, None] * u[:, None, :]) * dV[:, 2, None, None])
    dsig = V[:, 3] - V[:, 4]
    ddsig = dV[:, 3] - dV[:, 4]
    # u_a u_b (σ−π): derivative (du_a u_b + u_a du_b)(σ−π) + u_a u_b d(σ−π) u_c
    term = np.einsum("nac,nb->ncab", du, u) + np.einsum("na,nbc->ncab", u, du)
    out[:, :, 1:, 1:] = term * dsig[:, None, None, None]
    out[:, :, 1:, 1:] += (u[:, None, :, None] * u[:, None, None, :]) * (ddsig[:, None] * u)[:, :, None, None]
    out[:, :, 1:, 1:] += np.eye(3)[None, None] * (dV[:, 4, None] * u)[:, :, None, None]
    return out


def soc_matrix() -> np.ndarray:
    """(6, 6) matrix of L·σ = 2 L·S on (px, py, pz) ⊗ (↑, ↓), index 2·orbital + spin (ħ = 1).

    Eigenvalues +1 (j = 3/2, four states) and −2 (j = 1/2, two states): λ·L·σ = 2λ L·S splits the
    p shell by 3λ.
    """
    eps = np.zeros((3, 3, 3))
    eps[0, 1, 2] = eps[1, 2, 0] = eps[2, 0, 1] = 1.0
    eps[0, 2, 1] = eps[2, 1, 0] = eps[1, 0, 2] = -1.0
    L = -1j * eps  # (L_k)_ab = −i ε_kab
    sigma = np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=complex)
    return sum(np.kron(L[k], sigma[k]) for k in range(3))
