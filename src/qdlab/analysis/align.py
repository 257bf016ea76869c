"""Rigid-body alignment of trajectory frames (Kabsch), vectorised over frames (SVD of (F, 3, 3)).

For every frame the translation and rotation that minimise Σ_i w_i |R(x_i − x̄) + ȳ − y_i|² onto a
reference y are removed (w_i = 1, or the masses for mass-weighted alignment; x̄, ȳ the weighted
centroids). The optimal R follows from the SVD of the weighted covariance H = Σ_i w_i (x_i − x̄)(y_i − ȳ)ᵀ
= U S Vᵀ: R = V diag(1, 1, d) Uᵀ with d = sign det(V Uᵀ) (no reflections). All frames are done at
once: one matrix product for the F covariances and one batched SVD.

Reference ``"first"``: the first frame. ``"mean"``: start from the first frame, then repeatedly
align every frame to the mean of the aligned frames until that mean changes by less than ``tol``
(RMS over atoms, Å) — the usual fixed point for RMSF. A given (N, 3) array is used as is.
Units: Å.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qdlab.errors import QdlabError


@dataclass(frozen=True)
class Alignment:
    """Aligned frames and the transforms that produced them.

    ``positions_A`` (F, N, 3) aligned frames (reference centroid kept); ``rotations`` (F, 3, 3) with
    aligned = (x − x̄) @ rotations[f].T + ȳ; ``centroids_A`` (F, 3) the frames' weighted centroids
    x̄; ``reference_A`` (N, 3) the final reference; ``rmsd_A`` (F,) weighted RMSD of each aligned frame
    to it (over the fitted atoms); ``iterations`` used for ``"mean"`` (1 otherwise).
    """

    positions_A: np.ndarray
    rotations: np.ndarray
    centroids_A: np.ndarray
    reference_A: np.ndarray
    rmsd_A: np.ndarray
    iterations: int


def kabsch(mobile: np.ndarray, reference: np.ndarray, weights: np.ndarray | None = None
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Optimal rotations of ``mobile`` (F, N, 3) onto ``reference`` (N, 3).

    Returns (R (F, 3, 3), x̄ (F, 3), ȳ (3,)) such that ``(mobile[f] − x̄[f]) @ R[f].T + ȳ`` is the
    best weighted fit of frame f to ``reference``.
    """
    x = np.asarray(mobile, float)
    y = np.asarray(reference, float)
    if x.ndim == 2:
        x = x[None]
    f, n, _ = x.shape
    if y.shape != (n, 3):
        raise QdlabError(f"reference has shape {y.shape}, frames have {n} atoms")
    w = np.ones(n) if weights is None else np.asarray(weights, float)
    if w.shape != (n,) or np.any(w < 0) or w.sum() <= 0:
        raise QdlabError("alignment weights must be non-negative, one per atom, not all zero")
    w = w / w.sum()
    xbar = np.einsum("n,fni->fi", w, x)
    ybar = w @ y
    yc = (y - ybar) * w[:, None]
    # H_f = Σ_n (x_fn − x̄_f)ᵀ w_n (y_n − ȳ); Σ_n w_n (y_n − ȳ) = 0, so x̄ drops out: H_f = x_fᵀ W yc
    h = (x.transpose(0, 2, 1).reshape(f * 3, n) @ yc).reshape(f, 3, 3)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(u @ vt))
    d[d == 0] = 1.0
    u[:, :, 2] *= d[:, None]
    # R = V diag(1,1,d) Uᵀ  ⇒  Rᵀ = U diag(1,1,d) Vᵀ
    rt = u @ vt
    return rt.transpose(0, 2, 1), xbar, ybar


def apply_transform(positions: np.ndarray, rotations: np.ndarray, centroids: np.ndarray,
                    target_centroid: np.ndarray) -> np.ndarray:
    """(x − x̄_f) @ R_fᵀ + ȳ for every frame (all atoms, also those not used in the fit)."""
    x = np.asarray(positions, float) - centroids[:, None, :]
    return np.matmul(x, rotations.transpose(0, 2, 1)) + target_centroid


def align_frames(positions: np.ndarray, masses: np.ndarray | None = None, reference: str | np.ndarray = "mean",
                 fit_mask: np.ndarray | None = None, tol: float = 1e-10, max_iter: int = 200) -> Alignment:
    """Remove rigid translation and rotation from every frame (see module docstring).

    ``positions`` (F, N, 3) in Å; ``masses`` (N,) for mass-weighted fitting (None: equal weights);
    ``fit_mask`` (N,) bool: fit on these atoms only (e.g. the inorganic core) and move all atoms.
    """
    x = np.asarray(positions, float)
    if x.ndim != 3 or x.shape[2] != 3 or x.shape[0] < 1:
        raise QdlabError(f"positions must have shape (frames, atoms, 3), got {x.shape}")
    n = x.shape[1]
    fit = np.ones(n, bool) if fit_mask is None else np.asarray(fit_mask, bool)
    if fit.sum() < 3:
        raise QdlabError("alignment needs at least 3 fitted atoms")
    w = (np.ones(n) if masses is None else np.asarray(masses, float))[fit]
    xf = x[:, fit]
    if isinstance(reference, str):
        if reference not in ("first", "mean"):
            raise QdlabError(f"alignment reference must be 'first', 'mean' or an array, not {reference!r}")
        ref = xf[0].copy()
        iterate = reference == "mean"
    else:
        ref_all = np.asarray(reference, float)
        if ref_all.shape != (n, 3):
            raise QdlabError(f"reference has shape {ref_all.shape}, expected ({n}, 3)")
        ref = ref_all[fit]
        iterate = False
    it = 0
    while True:
        it += 1
        rot, xbar, ybar = kabsch(xf, ref, w)
        fitted = apply_transform(xf, rot, xbar, ybar)
        if not iterate:
            break
        new_ref = fitted.mean(0)
        change = np.sqrt(((new_ref - ref) ** 2).sum(1).mean())
        ref = new_ref
        if change < tol or it >= max_iter:
            break
    aligned = apply_transform(x, rot, xbar, ybar)
    wn = w / w.sum()
    rmsd = np.sqrt(np.einsum("n,fn->f", wn, ((fitted - ref) ** 2).sum(2)))
    reference_all = aligned.mean(0) if iterate else (x[0] if isinstance(reference, str) else np.asarray(reference, float))
    return Alignment(aligned, rot, xbar, reference_all, rmsd, it)
