"""Views of a PL plate run (PNG, matplotlib Agg): spectro-temporal heatmaps, fit time traces,
and the intensity/FWHM map against the acid:amine ratio over time (seed 002 Fig. 4C).

Flagged fits (``ok`` False) are drawn as gaps, never as values.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from qdlab.errors import QdlabError


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    from qdlab.store.files import atomic_path

    p = Path(path)
    with atomic_path(p) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    _plt().close(fig)
    return p


def plot_heatmaps(tidy: pd.DataFrame, path: str | Path, *, wells: list[str] | None = None, ncols: int = 4) -> Path:
    """Spectro-temporal heatmaps: one panel per well, wavelength (nm) × time (h), colour = intensity."""
    plt = _plt()
    wells = wells or list(dict.fromkeys(tidy["well"]))[:16]
    if not wells:
        raise QdlabError("no wells to plot")
    nrows = math.ceil(len(wells) / ncols)
    fig, axes = plt.subplots(nrows, min(ncols, len(wells)), figsize=(3.2 * min(ncols, len(wells)), 2.6 * nrows),
                             squeeze=False, sharex=True, sharey=True)
    for ax in axes.ravel()[len(wells):]:
        ax.set_visible(False)
    for ax, well in zip(axes.ravel(), wells):
        d = tidy[tidy["well"] == well]
        if d.empty:
            raise QdlabError(f"well {well} has no spectra")
        wide = d.pivot_table(index="time_min", columns="wavelength_nm", values="intensity")
        t_h = wide.index.to_numpy() / 60.0
        im = ax.pcolormesh(wide.columns.to_numpy(), t_h, wide.to_numpy(), shading="nearest", cmap="viridis")
        ax.set_title(well, fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.05)
    for ax in axes[-1]:
        ax.set_xlabel("wavelength (nm)")
    for ax in axes[:, 0]:
        ax.set_ylabel("time (h)")
    return _save(fig, path)


def plot_traces(fits: pd.DataFrame, path: str | Path, *, color_by: str | None = "amine_per_acid") -> Path:
    """Time traces of fitted centre (nm), FWHM (nm) and height per well; flagged fits are gaps."""
    plt = _plt()
    fig, axes = plt.subplots(3, 1, figsize=(7, 7.5), sharex=True)
    cmap = plt.get_cmap("plasma")
    colour_col = color_by if color_by and color_by in fits.columns else None
    if colour_col:
        v = fits[colour_col].astype(float)
        lo, hi = float(v.min()), float(v.max())
    for well, d in fits.groupby("well", sort=False):
        d = d.sort_values("time_min")
        t = d["time_min"].to_numpy() / 60.0
        ok = d["ok"].to_numpy(bool)
        col = cmap(0.85 * (float(d[colour_col].iloc[0]) - lo) / (hi - lo or 1)) if colour_col else None
        for ax, key in zip(axes, ("center_nm", "fwhm_nm", "height")):
            ax.plot(t, np.where(ok, d[key].to_numpy(float), np.nan), lw=0.8, color=col)
    axes[0].set_ylabel("centre (nm)")
    axes[1].set_ylabel("FWHM (nm)")
    axes[2].set_ylabel("height (counts)")
    axes[2].set_xlabel("time (h)")
    if colour_col:
        sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(lo, lo + ((hi - lo) or 1) / 0.85))
        fig.colorbar(sm, ax=axes, label=colour_col, fraction=0.04)
    return _save(fig, path)


def ratio_time_map(fits: pd.DataFrame, *, ratio: str = "amine_per_acid", value: str = "height") -> pd.DataFrame:
    """Mean of ``value`` over ok fits for each (ratio, time): rows ratio, columns time (min)."""
    if ratio not in fits.columns:
        raise QdlabError(f"the fit table has no column {ratio!r}: join the well map (--wellmap)")
    ok = fits[fits["ok"].astype(bool)]
    return ok.pivot_table(index=ratio, columns="time_min", values=value, aggfunc="mean").sort_index()


def plot_ratio_map(fits: pd.DataFrame, path: str | Path, *, ratio: str = "amine_per_acid",
                   title: str | None = None) -> Path:
    """Intensity and FWHM against acid:amine ratio (1:r) and time (h) — seed 002 Fig. 4C."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, (key, label, cmap) in zip(axes, (("height", "PL intensity (counts)", "inferno"),
                                             ("fwhm_nm", "FWHM (nm)", "viridis"))):
        m = ratio_time_map(fits, ratio=ratio, value=key)
        if m.empty:
            raise QdlabError("no ok fits to map")
        y = np.arange(len(m.index))
        im = ax.pcolormesh(m.columns.to_numpy(float) / 60.0, y, m.to_numpy(), shading="nearest", cmap=cmap)
        ax.set_yticks(y, [f"1:{r:g}" for r in m.index])
        ax.set_xlabel("time (h)")
        fig.colorbar(im, ax=ax, label=label)
    axes[0].set_ylabel("acid:amine")
    if title:
        fig.suptitle(title)
    return _save(fig, path)
