"""Iterative eigensolvers for states near the gap: Chebyshev-filtered subspace iteration.

Two filters on the same subspace iteration (filter → orthonormalise → Rayleigh–Ritz → residuals):

- ``lowest``: the scaled Chebyshev filter of Zhou & Saad (J. Comput. Phys. 2007) damps [cut, e_max]
  and amplifies everything below ``cut`` (bulk bands, small cells);
- ``window``: a Jackson-damped Chebyshev expansion of the Gaussian f(E) = exp(−(E−ε)²/2σ²) —
  the filter of filter diagonalisation (Wall–Neuhauser; Toledo–Rabani) — picks the states nearest
  to a reference energy ε inside the spectrum (states around the gap of a nanocrystal).

Only ``apply(X)`` (a block of shape (dim, nvec)) is needed: numpy arrays or torch tensors behave
the same through the array-API operations used here. Units are those of the operator (Hartree).

The folded-spectrum solvers find interior states nearest ε on (H − ε)²: scipy's LOBPCG
(:func:`folded_lobpcg`, numpy) and block Davidson (:func:`folded_davidson`), whose tall blocks are
numpy arrays or torch tensors on a device (a GPU) through the backend of :mod:`.block_algebra`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from qdlab.electronic.block_algebra import _orthonormalise, block_backend

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
                  maxiter: int = 400, seed: int = 0, x0: np.ndarray | None = None,
                  deflate: np.ndarray | None = None) -> EigenResult:
    """Eigenpairs of H nearest ``center`` by LOBPCG on the folded operator (H − ε)² (Wang–Zunger).

    ``precond`` approximates ((H − ε)²)⁻¹ (e.g. a kinetic-energy filter in G space); scipy's LOBPCG
    does the block iteration, a final Rayleigh–Ritz with H itself gives the eigenvalues.
    ``deflate`` (dim, k): known eigenvectors, LOBPCG's constraints (the search stays orthogonal to them).
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
    _, V = lobpcg(A, X, M=M, Y=deflate, tol=0.1 * tol, maxiter=maxiter, largest=False)
    theta, Q, HQ = _rayleigh_ritz(apply, V)
    order = np.sort(np.argsort(np.abs(theta - center))[:n_want])
    res = np.linalg.norm(HQ[:, order] - Q[:, order] * theta[order], axis=0)
    return EigenResult(values=theta[order], vectors=Q[:, order], residuals=res, iterations=maxiter,
                       n_apply=count[0], converged=bool(res.max() < tol),
                       info={"center": center, "nvec": nvec, "method": "folded-lobpcg"})


def _folded_ritz(S: np.ndarray, K: np.ndarray, center: float, nvec: int):
    """Ritz step in span V from VᴴHV = S and (HV)ᴴHV = K: the ``nvec`` smallest of Vᴴ(H − ε)²V,
    re-diagonalised with H itself; returns (θ, Y) with Y orthonormal (columns of V's coefficients)."""
    G = K - center * (S + S.conj().T) + center**2 * np.eye(len(S))
    _, Y = np.linalg.eigh(0.5 * (G + G.conj().T))
    Y = Y[:, :nvec]
    Sy = Y.conj().T @ S @ Y
    theta, Z = np.linalg.eigh(0.5 * (Sy + Sy.conj().T))
    return theta, Y @ Z


def _ritz_residuals(V, HV, S: np.ndarray, K: np.ndarray, center: float, nvec: int, ops):
    """The iteration's Ritz step: θ and Y (:func:`_folded_ritz`), the Ritz vectors X = V·Y and their images
    H·X (tall blocks of ``ops``), the residuals R = H·X − X·θ and their column norms (numpy)."""
    theta, Y = _folded_ritz(S, K, center, nvec)
    Yd = ops.lift(Y)
    X, HX = V @ Yd, HV @ Yd
    R = X * ops.lift(-theta)
    R += HX
    return theta, Y, X, HX, R, ops.column_norms(R)


def _grow(S: np.ndarray, K: np.ndarray, V, HV, T, HT, ops) -> tuple[np.ndarray, np.ndarray]:
    """VᴴHV = S and (HV)ᴴHV = K (numpy) extended by new columns T (orthonormal to V) with images HT."""
    ST, KT = ops.host(ops.hdot(V, HT)), ops.host(ops.hdot(HV, HT))
    return (np.block([[S, ST], [ST.conj().T, ops.host(ops.hdot(T, HT))]]),
            np.block([[K, KT], [KT.conj().T, ops.host(ops.hdot(HT, HT))]]))


def _davidson_start(apply: Apply, dim: int, nvec: int, max_dim: int, seed: int, x0, deflate, resume: dict | None,
                    ops):
    """The V, H·V buffers (tall blocks of backend ``ops``) and the projected matrices of a fresh start
    (seeded random block, ``x0`` first, orthogonal to ``deflate``) or of a snapshot ``resume`` (numpy,
    from any backend); returns (Vb, HVb, m, S, K, n_apply, stalled, it)."""
    if resume is not None:  # its V and H·V are consumed (popped), so the loaded copies are freed
        m = resume["V"].shape[1]
        Vb, HVb = ops.empty(dim, max_dim), ops.empty(dim, max_dim)
        Vb[:, :m], HVb[:, :m] = ops.block(resume.pop("V")), ops.block(resume.pop("HV"))
        return (Vb, HVb, m, np.asarray(resume["S"]), np.asarray(resume["K"]), int(resume["n_apply"]),
                bool(resume["stalled"]), int(resume["it"]))
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((dim, nvec)) + 1j * rng.standard_normal((dim, nvec))
    if x0 is not None:
        k = min(nvec, x0.shape[1])
        X[:, :k] = ops.host(x0[:, :k])
    T = _orthonormalise(ops.block(X), deflate, ops=ops)
    del X
    Vb, HVb = ops.empty(dim, max_dim), ops.empty(dim, max_dim)
    m = T.shape[1]
    Vb[:, :m], HVb[:, :m] = T, apply(T)
    del T
    V, HV = Vb[:, :m], HVb[:, :m]
    return Vb, HVb, m, ops.host(ops.hdot(V, HV)), ops.host(ops.hdot(HV, HV)), m, False, 1


def folded_davidson(apply: Apply, dim: int, n_want: int, center: float, *,
                    precond: Apply | None = None, nvec: int | None = None, max_dim: int | None = None,
                    tol: float = 1e-6, maxiter: int = 2000, seed: int = 0, x0: np.ndarray | None = None,
                    deflate: np.ndarray | None = None,
                    progress: Callable[[int, float], None] | None = None,
                    resume: dict | None = None, snapshot: Callable[[dict], None] | None = None,
                    n_enough: int | None = None, device=None) -> EigenResult:
    """Eigenpairs of H nearest ``center`` by block Davidson on the folded operator (H − ε)².

    Unlike LOBPCG's three blocks, the search space keeps every correction up to ``max_dim`` vectors
    (thick restart on the current Ritz vectors), and the folded projection needs one H·X per new
    vector: with V orthonormal, Vᴴ(H − ε)²V = (HV)ᴴHV − 2ε·VᴴHV + ε², both Gram matrices updated
    by the new columns only. The ``nvec`` Ritz vectors of the folded problem are re-diagonalised with
    H itself; their residuals, the restart and the result all use the one product V·Y, H·V·Y per
    iteration; converged when every wanted residual ‖Hx − θx‖ < ``tol``. ``precond`` approximates
    ((H − ε)²)⁻¹ (the kinetic filter in G space). ``deflate`` (dim, k): known eigenvectors, kept out of
    the search space (the states returned are the nearest *other* ones). V and H·V live in two
    preallocated (dim, max_dim) buffers; the memory peak is those 2·max_dim/nvec blocks plus ≈ 5 (Ritz
    vectors, images, corrections, preconditioner work). Counts H·X in ``n_apply``.

    ``device`` (:mod:`.block_algebra`): None/"numpy", or a torch device whose tensors then hold every tall
    block (``apply``/``precond`` take and return them); the small projected matrices stay numpy, as do
    the inputs, the result and the snapshots.

    Checkpointing: at the top of every iteration whose space is small (≤ 2·nvec columns: the start and
    after each thick restart) ``snapshot`` receives the state ({V, HV, S, K, it, n_apply, stalled}; V, HV
    views, to be written before returning); ``resume`` = such a dict (V, HV consumed) continues on either
    path with the uninterrupted run's arithmetic (bitwise on a deterministic H·X, same path).

    ``n_enough``: stop as soon as the ``n_enough`` Ritz pairs nearest the centre have converged (the
    caller needs only those; the rest of the block keeps the search space large).
    """
    ops = block_backend(device)
    nvec = min(dim, nvec or n_want + 8)
    max_dim = min(dim, max(max_dim or 5 * nvec, 2 * nvec))
    deflate = None if deflate is None else ops.block(deflate)
    Vb, HVb, m, S, K, n_apply, stalled, it0 = _davidson_start(apply, dim, nvec, max_dim, seed, x0, deflate, resume,
                                                              ops)
    for it in range(it0, maxiter + 1):
        V, HV = Vb[:, :m], HVb[:, :m]
        if snapshot is not None and m <= 2 * nvec:
            snapshot(ops.snapshot({"V": V, "HV": HV, "S": S, "K": K, "it": it, "n_apply": n_apply,
                                   "stalled": stalled}))
        # Ritz vectors and their images serve the residuals, the restart and the result
        theta, Y, X, HX, R, res = _ritz_residuals(V, HV, S, K, center, nvec, ops)
        order = np.argsort(np.abs(theta - center))
        want = order[:n_want]
        if progress is not None:
            progress(it, float(res[want].max()))
        if res[want].max() < tol or it == maxiter or stalled or (n_enough and res[order[:n_enough]].max() < tol):
            break
        active = [i for i in order if res[i] >= tol][:nvec]
        if len(active) < R.shape[1]:
            R = ops.cols(R, active)
        T = precond(R) if precond is not None else R
        del R
        if m + len(active) > max_dim:  # thick restart on the Ritz vectors (orthonormal: Y is)
            m = X.shape[1]
            Vb[:, :m], HVb[:, :m] = X, HX
            S, K = np.diag(theta).astype(complex), Y.conj().T @ K @ Y
            V, HV = Vb[:, :m], HVb[:, :m]
        X = HX = None  # freed before H·T (the memory peak); formed again at the next iteration
        T = _orthonormalise(T, deflate, V, ops=ops)
        k = T.shape[1]
        if k == 0:
            stalled = True  # nothing new to add: the next pass forms the Ritz pairs and stops
            continue
        HT = apply(T)
        n_apply += k
        S, K = _grow(S, K, V, HV, T, HT, ops)
        Vb[:, m:m + k], HVb[:, m:m + k] = T, HT
        m += k
        del T, HT
    want = np.sort(want)
    return EigenResult(values=theta[want], vectors=ops.host(ops.cols(X, want)), residuals=res[want], iterations=it,
                       n_apply=n_apply, converged=bool(res[want].max() < tol),
                       info={"center": center, "nvec": nvec, "max_dim": max_dim, "method": "folded-davidson",
                             "blocks": ops.name})
