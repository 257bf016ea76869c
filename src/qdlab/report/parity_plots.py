"""Parity plots in the style of seed 000, Fig. 2: per model a column with the energy-per-atom
parity (top) and the force parity coloured by point density (bottom) with a low-force zoom inset."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402

from qdlab.report.plots import save_figure  # noqa: E402


def point_density(x: np.ndarray, y: np.ndarray, bins: int = 150, lim: tuple[float, float] | None = None) -> np.ndarray:
    """Points per 2-D histogram bin at every point (vectorised stand-in for a KDE colouring)."""
    lo, hi = lim if lim is not None else (float(min(x.min(), y.min())), float(max(x.max(), y.max())))
    if hi <= lo:
        return np.ones_like(x)
    counts, edges, _ = np.histogram2d(x, y, bins=bins, range=[[lo, hi], [lo, hi]])
    ix = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, bins - 1)
    iy = np.clip(np.searchsorted(edges, y, side="right") - 1, 0, bins - 1)
    return counts[ix, iy]


def _density_scatter(ax, x: np.ndarray, y: np.ndarray, lim: tuple[float, float], size: float):
    inside = (x >= lim[0]) & (x <= lim[1]) & (y >= lim[0]) & (y <= lim[1])
    x, y = x[inside], y[inside]
    if x.size == 0:
        return None
    d = point_density(x, y, lim=lim)
    order = np.argsort(d)
    sc = ax.scatter(x[order], y[order], c=d[order], s=size, cmap="viridis", norm=LogNorm(vmin=1, vmax=max(d.max(), 2)),
                    linewidths=0, rasterized=True)
    ax.plot(lim, lim, color="0.4", lw=0.8, ls="--")
    ax.set_xlim(lim)
    ax.set_ylim(lim)
    return sc


def plot_parity(results: Sequence, path: str | os.PathLike = "parity.png", title: str = "", dpi: int = 150) -> Path:
    """One column per :class:`~qdlab.analysis.parity.ParityResult`: energy per atom (meV/atom,
    relative to the mean reference) and force components (eV/Å) with R², RMSE and a zoom inset
    of the low-force region |F| ≤ ``zoom_eV_A``."""
    n = len(results)
    fig, axes = plt.subplots(2, n, figsize=(4.6 * n, 8.6), squeeze=False)
    e_mean = float(np.mean(results[0].energy_ref_eV_atom))
    f_all = np.concatenate([np.concatenate([r.force_ref_eV_A.ravel(), r.force_pred_eV_A.ravel()]) for r in results])
    f_lim = float(np.percentile(np.abs(f_all), 99.9)) * 1.05 or 1.0
    e_all = np.concatenate([np.concatenate([r.energy_ref_eV_atom, r.energy_pred_eV_atom]) for r in results])
    e_span = 1000 * (e_all - e_mean)
    pad = 0.05 * max(float(np.ptp(e_span)), 1e-3)
    e_lim = (float(e_span.min()) - pad, float(e_span.max()) + pad)
    for col, r in enumerate(results):
        ax = axes[0, col]
        ax.scatter(1000 * (r.energy_ref_eV_atom - e_mean), 1000 * (r.energy_pred_eV_atom - e_mean), s=14,
                   color="tab:blue", alpha=0.8, linewidths=0)
        ax.plot(e_lim, e_lim, color="0.4", lw=0.8, ls="--")
        ax.set_xlim(e_lim)
        ax.set_ylim(e_lim)
        ax.set_xlabel("reference E − ⟨E_ref⟩ (meV/atom)")
        ax.set_ylabel("predicted (meV/atom)")
        shift = " (refit refs)" if r.energy_shift_eV else ""
        ax.set_title(f"{r.label}\nenergy{shift}: R² {r.energy.r2:.3f}, RMSE {1000 * r.energy.rmse:.2f} meV/atom",
                     fontsize=9)
        ax = axes[1, col]
        sc = _density_scatter(ax, r.force_ref_eV_A.ravel(), r.force_pred_eV_A.ravel(), (-f_lim, f_lim), 3)
        ax.set_xlabel("reference F (eV/Å)")
        ax.set_ylabel("predicted F (eV/Å)")
        ax.set_title(f"forces: R² {r.forces.r2:.3f}, RMSE {r.forces.rmse:.3f} eV/Å", fontsize=9)
        if sc is not None:
            fig.colorbar(sc, ax=ax, label="points per bin", fraction=0.046, pad=0.04)
        z = r.zoom_eV_A
        inset = ax.inset_axes([0.58, 0.06, 0.38, 0.38])
        _density_scatter(inset, r.force_ref_eV_A.ravel(), r.force_pred_eV_A.ravel(), (-z, z), 2)
        inset.tick_params(labelsize=6)
        inset.set_title(f"|F| ≤ {z:g}: R² {r.forces_low.r2:.2f}", fontsize=7, pad=2, backgroundcolor="white")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path, dpi)
