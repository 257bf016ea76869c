"""Iterative eigensolvers for states near the gap: Chebyshev-filtered subspace iteration.

Two filters on the same subspace iteration (filter → orthonormalise → Rayleigh–Ritz → residuals):

- ``lowest``: the scaled Chebyshev filter of Zhou & Saad (J. Comput. Phys. 2007) damps [cut, e_max]
  and amplifies everything below ``cut`` (bulk bands, small cells);
- ``window``: a Jackson-damped Chebyshev expansion of the Gaussian f(E) = exp(−(E−ε)²/2σ²) —
  the filter of filter diagonalisation (Wall–Neuhauser; Toledo–Rabani) — picks the states nearest
  to a reference energy ε inside the spectrum (states around the gap of a nanocrystal).

Only ``apply(X)`` (a block of shape (dim, nvec)) is needed: numpy arrays or torch tensors behave
the same through the array-API operations used here. Units are those of the operator (Hartree).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

Apply = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class EigenResult:
    """Converged Ritz pairs (ascending), residual norms, iterations and H applications."""

    values: np.ndarray
    vectors: np.ndarray
    residuals: np.ndarray
    iterations: int
    n_apply: int
    converged: bool
    info: dict = field(default_factory=dict)


def lanczos_bounds(apply: Apply, dim: int, steps: int = 30, seed: int = 0) -> tuple[float, float]:
    """(lower, upper) spectral bounds from a short Lanczos run (upper: θ_max + |β|, Zhou's bound)."""
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(dim) + 1j * rng.standard_normal(dim)
    v /= np.linalg.norm(v)
    alphas, betas, v_old, beta = [], [], np.zeros_like(v), 0.0
    for _ in range(min(steps, dim)):
        w = apply(v[:, None])[:, 0]
        a = float(np.real(np.vdot(v, w)))
        w = w - a * v - beta * v_old
        beta = float(np.linalg.norm(w))
        alphas.append(a)
        betas.append(beta)
        if beta < 1e-12:
            break
        v_old, v = v, w / beta
    T = np.diag(alphas) + np.diag(betas[:-1], 1) + np.diag(betas[:-1], -1)
    theta = np.linalg.eigvalsh(T)
    return float(theta[0] - betas[-1]), float(theta[-1] + betas[-1])


def chebyshev_lowest(apply: Apply, X: np.ndarray, degree: int, cut: float, upper: float,
                     lower: float) -> np.ndarray:
    """Scaled Chebyshev filter p_m(H)·X damping [cut, upper], amplifying below cut."""
    e, c = (upper - cut) / 2.0, (upper + cut) / 2.0
    sigma = e / (lower - c)
    sigma1 = sigma
    Y = (apply(X) - c * X) * (sigma1 / e)
    for _ in range(2, degree + 1):
        sigma2 = 1.0 / (2.0 / sigma1 - sigma)
        Ynew = (apply(Y) - c * Y) * (2.0 * sigma2 / e) - (sigma * sigma2) * X
        X, Y, sigma = Y, Ynew, sigma2
    return Y


def gaussian_coefficients(center: float, width: float, lower: float, upper: float,
                          degree: int) -> np.ndarray:
    """Jackson-damped Chebyshev coefficients of exp(−(E−center)²/2 width²) on [lower, upper]."""
    n = 4 * degree + 64
    theta = np.pi * (np.arange(n) + 0.5) / n
    E = (upper - lower) / 2.0 * np.cos(theta) + (upper + lower) / 2.0
    f = np.exp(-((E - center) ** 2) / (2.0 * width**2))
    j = np.arange(degree + 1)
    c = 2.0 / n * np.cos(np.outer(j, theta)) @ f
    c[0] /= 2.0
    a = np.pi / (degree + 2)
    jackson = ((degree + 2 - j) * np.cos(j * a) + np.sin(j * a) / np.tan(a)) / (degree + 2)
    return c * jackson


def chebyshev_series(apply: Apply, X: np.ndarray, coef: np.ndarray, lower: float,
                     upper: float) -> np.ndarray:
    """Σ_j c_j T_j(H̃)·X with H̃ = (H − c)/e mapped onto [−1, 1]."""
    e, c = (upper - lower) / 2.0, (upper + lower) / 2.0
    T0, T1 = X, (apply(X) - c * X) / e
    out = coef[0] * T0 + coef[1] * T1
    for cj in coef[2:]:
        T0, T1 = T1, 2.0 * (apply(T1) - c * T1) / e - T0
        out = out + cj * T1
    return out


def _rayleigh_ritz(apply: Apply, Y: np.ndarray):
    Q, _ = np.linalg.qr(Y)
    HQ = apply(Q)
    Hs = Q.conj().T @ HQ
    theta, V = np.linalg.eigh(0.5 * (Hs + Hs.conj().T))
    return theta, Q @ V, HQ @ V


def filtered_subspace(apply: Apply, dim: int, n_want: int, *, center: float | None = None,
                      width: float | None = None, nvec: int | None = None, degree: int | None = None,
                      tol: float = 1e-8, maxiter: int = 200, seed: int = 0,
                      x0: np.ndarray | None = None, bounds: tuple[float, float] | None = None,
                      progress: Callable[[int, float], None] | None = None) -> EigenResult:
    """The ``n_want`` lowest eigenpairs (center None) or those nearest ``center`` (window filter).

    Converged when every wanted residual ‖Hx − θx‖ < tol. ``x0`` (dim, k) seeds the subspace
    (a checkpoint or a neighbouring k-point); random columns fill it up to ``nvec``.
    """
    nvec = min(dim, nvec or max(n_want + 8, int(1.3 * n_want)))
    lower, upper = bounds or lanczos_bounds(apply, dim, seed=seed)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((dim, nvec)) + 1j * rng.standard_normal((dim, nvec))
    if x0 is not None:
        k = min(nvec, x0.shape[1])
        X[:, :k] = x0[:, :k]
    n_apply, theta = 0, None
    if center is not None:
        width = width or 0.05 * (upper - lower)
        degree = degree or int(np.ceil(2.5 * (upper - lower) / width))
        coef = gaussian_coefficients(center, width, lower, upper, degree)
    else:
        degree = degree or 12
    for it in range(1, maxiter + 1):
        if center is None:
            cut = upper - 0.9 * (upper - lower) if theta is None else float(theta[-1])
            X = chebyshev_lowest(apply, X, degree, cut, upper, lower)
        else:
            X = chebyshev_series(apply, X, coef, lower, upper)
        n_apply += degree * X.shape[1]
        theta, X, HX = _rayleigh_ritz(apply, X)
        n_apply += X.shape[1]
        order = np.argsort(theta if center is None else np.abs(theta - center))
        want = np.sort(order[:n_want])
        res = np.linalg.norm(HX[:, want] - X[:, want] * theta[want], axis=0)
        if progress is not None:
            progress(it, float(res.max()))
        if res.max() < tol:
            break
    return EigenResult(values=theta[want], vectors=X[:, want], residuals=res, iterations=it,
                       n_apply=n_apply, converged=bool(res.max() < tol),
                       info={"degree": degree, "nvec": nvec, "bounds": (lower, upper),
                             "center": center, "width": width})


def folded_lobpcg(apply: Apply, dim: int, n_want: int, center: float, *,
                  precond: Apply | None = None, nvec: int | None = None, tol: float = 1e-6,
                  maxiter: int = 400, seed: int = 0, x0: np.ndarray | None = None) -> EigenResult:
    """Eigenpairs of H nearest ``center`` by LOBPCG on the folded operator (H − ε)² (Wang–Zunger).

    ``precond`` approximates ((H − ε)²)⁻¹ (e.g. a kinetic-energy filter in G space); scipy's LOBPCG
    does the block iteration, a final Rayleigh–Ritz with H itself gives the eigenvalues.
    """
    from scipy.sparse.linalg import LinearOperator, lobpcg

    nvec = min(dim, nvec or n_want + 4)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((dim, nvec)) + 1j * rng.standard_normal((dim, nvec))
    if x0 is not None:
        k = min(nvec, x0.shape[1])
        X[:, :k] = x0[:, :k]
    count = [0]

    def folded(V):
        V = V.reshape(dim, -1)
        W = apply(V) - center * V
        count[0] += 2 * V.shape[1]
        return apply(W) - center * W

    A = LinearOperator((dim, dim), matvec=folded, matmat=folded, dtype=complex)
    M = None if precond is None else LinearOperator((dim, dim), matvec=lambda v: precond(v.reshape(dim, -1)),
                                                    matmat=precond, dtype=complex)
    _, V = lobpcg(A, X, M=M, tol=0.1 * tol, maxiter=maxiter, largest=False)
    theta, Q, HQ = _rayleigh_ritz(apply, V)
    order = np.sort(np.argsort(np.abs(theta - center))[:n_want])
    res = np.linalg.norm(HQ[:, order] - Q[:, order] * theta[order], axis=0)
    return EigenResult(values=theta[order], vectors=Q[:, order], residuals=res, iterations=maxiter,
                       n_apply=count[0], converged=bool(res.max() < tol),
                       info={"center": center, "nvec": nvec, "method": "folded-lobpcg"})
