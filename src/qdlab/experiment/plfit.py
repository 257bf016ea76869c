"""One Gaussian per PL spectrum, fitted for every well × read at once (SCIENCE.md §8).

Model (wavelength x in nm)::

    y = h · exp(−(x − c)² / (2σ²)) + b0 + b1 · (x − x_mid)        FWHM = 2.3548 σ, area = h σ √(2π)

with no, a constant or a linear baseline. All spectra are fitted together: a moment-based guess
(half-maximum centroid and width) followed by a batched Levenberg–Marquardt loop in numpy — the
normal equations of every spectrum are built with ``einsum`` and solved with one batched
``np.linalg.solve`` per iteration; spectra drop out of the loop as they converge. There is no
Python loop over spectra. Points that are NaN (e.g. Gen5 ``OVRFLW``) get zero weight.

Fits are never hidden: every spectrum gets a row, and ``flag`` says what is wrong with it
(``not_converged``, ``low_height``, ``too_wide``, ``centre_outside``, ``too_narrow``), ``ok`` is
True only for clean fits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from qdlab.errors import QdlabError

FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))  # 2.35482
Baseline = Literal["none", "constant", "linear"]
_N_BASE = {"none": 0, "constant": 1, "linear": 2}


class FitError(QdlabError):
    """Spectra that cannot be fitted as requested (bad shapes, too few points)."""


@dataclass(frozen=True)
class GaussFits:
    """Per-spectrum fit results; every array has one entry per spectrum (same order as input).

    Units: ``center_nm``, ``sigma_nm``, ``fwhm_nm`` and their errors in nm; ``height`` and
    ``baseline0`` in intensity units (counts); ``baseline1`` in counts/nm; ``area`` in counts·nm.
    ``*_err`` are 1σ standard errors from the covariance s²(JᵀJ)⁻¹ at the optimum.
    """

    center_nm: np.ndarray
    sigma_nm: np.ndarray
    fwhm_nm: np.ndarray
    height: np.ndarray
    area: np.ndarray
    baseline0: np.ndarray
    baseline1: np.ndarray
    r2: np.ndarray
    rmse: np.ndarray
    center_err_nm: np.ndarray
    fwhm_err_nm: np.ndarray
    height_err: np.ndarray
    n_iter: np.ndarray
    converged: np.ndarray
    flag: np.ndarray
    ok: np.ndarray

    def to_frame(self) -> pd.DataFrame:
        """The results as a DataFrame (one row per spectrum)."""
        return pd.DataFrame({k: getattr(self, k) for k in self.__dataclass_fields__})


def _model(x: np.ndarray, p: np.ndarray, xm: float, nb: int) -> tuple[np.ndarray, np.ndarray]:
    """Model values (n, W) and Jacobian (n, W, 3 + nb) for parameters p = [h, c, σ, b0, b1]."""
    h, c, s = p[:, 0:1], p[:, 1:2], p[:, 2:3]
    u = (x[None, :] - c) / s
    g = np.exp(-0.5 * u * u)
    y = h * g
    jac = np.empty((p.shape[0], x.size, 3 + nb))
    jac[..., 0] = g
    jac[..., 1] = y * u / s
    jac[..., 2] = y * u * u / s
    if nb >= 1:
        y = y + p[:, 3:4]
        jac[..., 3] = 1.0
    if nb == 2:
        dx = x[None, :] - xm
        y = y + p[:, 4:5] * dx
        jac[..., 4] = dx
    return y, jac


def initial_guess(x: np.ndarray, y: np.ndarray, w: np.ndarray, baseline: Baseline = "linear") -> np.ndarray:
    """Moment-based starting parameters [h, c, σ(, b0(, b1))] for every spectrum (vectorised).

    Baseline from the mean of the outer 5 % of points at each end (a line for ``linear``, their
    mean for ``constant``); then the centre is the intensity-weighted centroid of the points above
    half maximum and σ = (number of such points · step) / 2.3548.
    """
    nb = _N_BASE[baseline]
    n, nw = y.shape
    xm = 0.5 * (x[0] + x[-1])
    yz = np.where(w > 0, y, 0.0)
    p = np.zeros((n, 3 + nb))
    base = np.zeros_like(y)
    if nb:
        k = max(2, nw // 20)
        wl, wr = w[:, :k], w[:, -k:]
        left = (yz[:, :k] * wl).sum(1) / np.maximum(wl.sum(1), 1)
        right = (yz[:, -k:] * wr).sum(1) / np.maximum(wr.sum(1), 1)
        xl, xr = x[:k].mean(), x[-k:].mean()
        if nb == 1:
            p[:, 3] = 0.5 * (left + right)
        else:
            p[:, 4] = (right - left) / (xr - xl)
            p[:, 3] = left + p[:, 4] * (xm - xl)
        base = p[:, 3:4] + (p[:, 4:5] * (x[None, :] - xm) if nb == 2 else 0.0)
    r = np.where(w > 0, y - base, -np.inf)
    imax = np.argmax(r, axis=1)
    h = np.take_along_axis(r, imax[:, None], 1)[:, 0]
    h = np.where(np.isfinite(h) & (h > 0), h, 1e-12)
    above = (r >= 0.5 * h[:, None]) & (w > 0)
    wt = np.where(above, r, 0.0)
    c = (wt * x[None, :]).sum(1) / np.maximum(wt.sum(1), 1e-300)
    step = np.abs(np.diff(x)).mean() if nw > 1 else 1.0
    s = np.maximum(above.sum(1), 1) * step / FWHM_PER_SIGMA
    p[:, 0], p[:, 1], p[:, 2] = h, np.where(np.isfinite(c), c, x[imax]), np.maximum(s, 0.5 * step)
    return p


def _damped_step(ja: np.ndarray, ra: np.ndarray, la: np.ndarray, eye: np.ndarray) -> np.ndarray:
    """Levenberg–Marquardt steps of a batch: (JᵀJ + λ·(diag JᵀJ + 1e-12)) δ = Jᵀr, (n, k)."""
    jat = ja.transpose(0, 2, 1)
    jtj = jat @ ja                      # batched JᵀJ (n, k, k)
    g = (jat @ ra[..., None])[..., 0]   # batched Jᵀr (n, k)
    diag = np.einsum("nii->ni", jtj)
    a = jtj + la[:, None, None] * (diag[:, :, None] * eye + 1e-12 * eye)
    try:
        return np.linalg.solve(a, g[..., None])[..., 0]
    except np.linalg.LinAlgError:
        return (np.linalg.pinv(a) @ g[..., None])[..., 0]  # a singular system somewhere (rare)


def fit_gaussians(wavelength_nm: np.ndarray, intensity: np.ndarray, *, baseline: Baseline = "linear",
                  max_iter: int = 100, rtol: float = 1e-12, min_height: float = 0.0, min_snr: float = 3.0,
                  p0: np.ndarray | None = None) -> GaussFits:
    """Fit one Gaussian (+ optional baseline) to each row of ``intensity`` (n_spectra × n_wavelengths).

    ``wavelength_nm`` (W,) is the shared, increasing grid in nm. Converged when the relative drop of
    the sum of squares and the relative parameter step are both below ``rtol`` (or the residual is
    exactly zero). Flags: ``not_converged`` (``max_iter`` reached or non-finite), ``low_height``
    (h ≤ ``min_height`` or h < ``min_snr`` × residual RMS), ``too_wide`` (FWHM > window width),
    ``centre_outside`` (centre outside the window), ``too_narrow`` (FWHM < one wavelength step),
    ``too_few_points`` (fewer valid points than parameters + 1: not fitted, NaN results).
    """
    x = np.asarray(wavelength_nm, dtype=float)
    y = np.atleast_2d(np.asarray(intensity, dtype=float))
    if baseline not in _N_BASE:
        raise FitError(f"unknown baseline {baseline!r} (none, constant, linear)")
    nb = _N_BASE[baseline]
    k = 3 + nb
    if x.ndim != 1 or y.shape[1] != x.size:
        raise FitError(f"intensity has {y.shape[1]} columns but there are {x.size} wavelengths")
    if x.size > 1 and np.any(np.diff(x) <= 0):
        raise FitError("wavelengths must be strictly increasing")
    w = np.isfinite(y).astype(float)
    masked = not w.all()
    y = np.where(w > 0, y, 0.0)
    npts = w.sum(1)
    if np.any(npts < k + 1):
        good = npts >= k + 1
        if not good.any():
            raise FitError(f"no spectrum has the {k + 1} valid points a {k}-parameter fit needs")
        sub = fit_gaussians(x, np.where(w > 0, y, np.nan)[good], baseline=baseline, max_iter=max_iter, rtol=rtol,
                            min_height=min_height, min_snr=min_snr, p0=None if p0 is None else np.asarray(p0)[good])
        return _expand(sub, good)
    xm = 0.5 * (x[0] + x[-1])
    width = max(float(x[-1] - x[0]), 1e-12)
    p = initial_guess(x, y, w, baseline) if p0 is None else np.array(p0, dtype=float)
    n = y.shape[0]
    lam = np.full(n, 1e-3)
    n_iter = np.zeros(n, dtype=int)
    converged = np.zeros(n, dtype=bool)
    ymod, jac = _model(x, p, xm, nb)
    res = (y - ymod) * w
    sse = (res * res).sum(1)
    active = np.arange(n)
    eye = np.eye(k)
    tiny = 1e-24 * (y * y * w).sum(1)  # "exact" fit: SSE at round-off level of the signal
    for _ in range(max_iter):
        if active.size == 0:
            break
        pa, ja, ra, la = p[active], jac[active], res[active], lam[active]
        if masked:
            ja = ja * w[active, :, None]
        step = _damped_step(ja, ra, la, eye)
        pn = pa + step
        pn[:, 2] = np.abs(pn[:, 2])  # σ and −σ are the same Gaussian
        yn, jn = _model(x, pn, xm, nb)
        rn = y[active] - yn
        if masked:
            rn *= w[active]
        ssen = (rn * rn).sum(1)
        better = np.isfinite(ssen) & (ssen <= sse[active])
        n_iter[active] += 1
        acc = active[better]
        drop = (sse[acc] - ssen[better]) / np.maximum(sse[acc], 1e-300)
        # parameter steps relative to |p| + a natural scale (height for h and b0, the window for c and σ,
        # height/window for b1), so parameters that sit near zero (a flat baseline) can converge
        hb = np.abs(pa[better, 0:1])
        scale = np.concatenate([hb, np.full_like(hb, width), np.full_like(hb, width), hb, hb / width], axis=1)[:, :k]
        rel_step = np.max(np.abs(step[better]) / (np.abs(pa[better]) + scale + 1e-300), axis=1)
        p[acc], jac[acc], res[acc], sse[acc] = pn[better], jn[better], rn[better], ssen[better]
        lam[acc] = np.maximum(lam[acc] * 0.3, 1e-12)
        lam[active[~better]] *= 10.0
        done_acc = ((drop <= rtol) & (rel_step <= np.sqrt(rtol))) | (ssen[better] <= tiny[acc])
        converged[acc[done_acc]] = True
        # a rejected step with the damping at its ceiling: no further progress possible
        stuck = active[~better][lam[active[~better]] > 1e12]
        converged[stuck] = np.isfinite(sse[stuck])
        active = active[~converged[active]]
    return _finish(x, y, w, p, res, sse, jac, n_iter, converged, nb, min_height, min_snr)


def _finish(x, y, w, p, res, sse, jac, n_iter, converged, nb, min_height, min_snr) -> GaussFits:
    n, k = p.shape
    npts = w.sum(1)
    ybar = (y * w).sum(1) / npts
    sst = (((y - ybar[:, None]) * w) ** 2).sum(1)
    r2 = 1.0 - sse / np.where(sst > 0, sst, np.nan)
    dof = np.maximum(npts - k, 1)
    s2 = sse / dof
    jw = jac * w[..., None]
    jtj = jw.transpose(0, 2, 1) @ jw
    cov = np.linalg.pinv(jtj) * s2[:, None, None]
    err = np.sqrt(np.clip(np.einsum("nii->ni", cov), 0, None))
    h, c, s = p[:, 0], p[:, 1], np.abs(p[:, 2])
    rmse = np.sqrt(sse / npts)
    fwhm = FWHM_PER_SIGMA * s
    width = x[-1] - x[0]
    step = np.abs(np.diff(x)).mean() if x.size > 1 else 1.0
    finite = np.all(np.isfinite(p), axis=1)
    conv = converged & finite
    flags = [np.where(~conv, "not_converged", ""),
             np.where((h <= min_height) | (h < min_snr * rmse), "low_height", ""),
             np.where(fwhm > width, "too_wide", ""),
             np.where((c < x[0]) | (c > x[-1]), "centre_outside", ""),
             np.where(fwhm < step, "too_narrow", "")]
    flag = np.array(["|".join(f for f in row if f) for row in zip(*flags)], dtype=object)
    zeros = np.zeros(n)
    return GaussFits(center_nm=c, sigma_nm=s, fwhm_nm=fwhm, height=h, area=h * s * np.sqrt(2 * np.pi),
                     baseline0=p[:, 3] if nb >= 1 else zeros, baseline1=p[:, 4] if nb == 2 else zeros.copy(),
                     r2=r2, rmse=rmse, center_err_nm=err[:, 1], fwhm_err_nm=FWHM_PER_SIGMA * err[:, 2],
                     height_err=err[:, 0], n_iter=n_iter, converged=conv, flag=flag, ok=flag == "")


def _expand(sub: GaussFits, good: np.ndarray) -> GaussFits:
    """Results for all spectra from those of the ``good`` ones; the others: NaN, flag too_few_points."""
    out = {}
    for name in sub.__dataclass_fields__:
        v = getattr(sub, name)
        if name == "flag":
            full = np.full(good.size, "too_few_points", dtype=object)
        elif v.dtype == bool:
            full = np.zeros(good.size, dtype=bool)
        elif v.dtype.kind in "iu":
            full = np.zeros(good.size, dtype=v.dtype)
        else:
            full = np.full(good.size, np.nan)
        full[good] = v
        out[name] = full
    return GaussFits(**out)


def fit_table(tidy: pd.DataFrame, *, baseline: Baseline = "linear", window_nm: tuple[float, float] | None = None,
              min_height: float = 0.0, min_snr: float = 3.0, max_iter: int = 100) -> pd.DataFrame:
    """Fit every (well, read) spectrum of a tidy table (well, read, time_min, wavelength_nm, intensity).

    All spectra must share one wavelength grid (nm). ``window_nm`` = (lo, hi) restricts the fit
    to lo ≤ λ ≤ hi. Returns one row per spectrum: well, read, time_min, the :class:`GaussFits`
    columns, and any further per-well columns of ``tidy`` (e.g. joined well-map columns).
    """
    need = {"well", "read", "time_min", "wavelength_nm", "intensity"}
    missing = need - set(tidy.columns)
    if missing:
        raise FitError(f"table lacks column(s) {', '.join(sorted(missing))}")
    df = tidy
    if window_nm is not None:
        lo, hi = window_nm
        df = df[(df["wavelength_nm"] >= lo) & (df["wavelength_nm"] <= hi)]
        if df.empty:
            raise FitError(f"no wavelengths inside the window {lo}–{hi} nm")
    wide = df.pivot_table(index=["well", "read"], columns="wavelength_nm", values="intensity",
                          aggfunc="first", dropna=False, sort=True)
    if wide.shape[0] == 0:
        raise FitError("no spectra to fit")
    x = wide.columns.to_numpy(dtype=float)
    fits = fit_gaussians(x, wide.to_numpy(dtype=float), baseline=baseline, min_height=min_height,
                         min_snr=min_snr, max_iter=max_iter)
    out = wide.index.to_frame(index=False)
    extra = [c for c in df.columns if c not in {"wavelength_nm", "intensity", "well", "read"}]
    meta = df.drop_duplicates(["well", "read"])[["well", "read", *extra]]
    out = out.merge(meta, on=["well", "read"], how="left")
    return pd.concat([out, fits.to_frame()], axis=1)
