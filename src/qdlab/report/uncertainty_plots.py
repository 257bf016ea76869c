"""Plots with committee error bars: binding energies (bars) and phonon peak centres (points)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from qdlab.report.plots import save_figure  # noqa: E402


def plot_binding(result, path: str | os.PathLike, published: dict[str, float] | None = None) -> Path:
    """Bar chart of E_bind per ligand (eV) with the committee spread as error bars, the native ion's
    E_bind as a dashed line per site kind, member values as dots, and ``published`` values as marks."""
    ligs = list(result.ligands)
    x = np.arange(len(ligs))
    mean = np.array([result.binding[L].mean for L in ligs])
    err = np.array([result.binding[L].spread for L in ligs])
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(ligs), 4.0))
    ax.bar(x, mean, yerr=err if len(result.members) > 1 else None, capsize=6, color="#7aa6d6", edgecolor="k",
           label=f"mean over {len(result.members)} model(s)" if len(result.members) > 1 else result.members[0])
    for k, m in enumerate(result.members):
        ax.scatter(x + 0.18 * (k - (len(result.members) - 1) / 2) / max(1, len(result.members)),
                   [result.binding_eV[m][L] for L in ligs], s=14, zorder=3, label=m)
    for kind, cv in result.ion_binding.items():
        ax.axhline(cv.mean, ls="--", color="k", lw=1, label=f"native {result.ion[kind]} ({cv.text('.2f')} eV)")
    if published:
        px = [ligs.index(k) for k in published if k in ligs]
        ax.scatter(px, [published[ligs[i]] for i in px], marker="_", s=400, color="r", zorder=4, label="published")
    ax.set_xticks(x, ligs)
    ax.set_ylabel("binding energy (eV)")
    ax.axhline(0, color="0.5", lw=0.6)
    ax.legend(fontsize=7, frameon=False)
    return save_figure(fig, path)


def plot_committee_peaks(cp, path: str | os.PathLike) -> Path:
    """Peak centres (cm⁻¹) of every system, committee mean ± spread, one panel per peak; the
    reference system's band as a grey span (mean ± spread)."""
    peaks = list(dict.fromkeys(p for s in cp.systems for p in cp.peaks[s]))
    fig, axes = plt.subplots(1, max(1, len(peaks)), figsize=(3.2 * max(1, len(peaks)), 3.6), squeeze=False)
    for ax, p in zip(axes[0], peaks):
        sys_ = [s for s in cp.systems if p in cp.peaks[s]]
        y = [cp.peaks[s][p].mean for s in sys_]
        e = [cp.peaks[s][p].spread for s in sys_]
        ax.errorbar(range(len(sys_)), y, yerr=e, fmt="o", capsize=5, color="k")
        ref = cp.peaks[cp.reference].get(p)
        if ref is not None:
            ax.axhspan(ref.mean - ref.spread, ref.mean + ref.spread, color="0.85", zorder=0)
        for k, s in enumerate(sys_):
            sh = cp.shifts.get(s, {}).get(p)
            if sh is not None and sh.within_uncertainty:
                ax.annotate("≈", (k, y[k]), textcoords="offset points", xytext=(6, 6), fontsize=9, color="r")
        ax.set_xticks(range(len(sys_)), sys_, rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{p} (cm⁻¹), {len(cp.members)} model(s)", fontsize=9)
    fig.suptitle("≈: shift vs reference within model uncertainty", fontsize=8)
    return save_figure(fig, path)
