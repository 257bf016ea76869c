"""Plots of the trajectory analyses (RDF, ADF, RMSF, VDOS, binding geometry), one PNG each.

Same house style as :mod:`qdlab.report.plots`: matplotlib Agg, one figure per call, atomic write.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from ase.data import atomic_numbers  # noqa: E402
from ase.data.colors import jmol_colors  # noqa: E402

from qdlab.report.plots import save_figure  # noqa: E402

_COLOURS = ["k", "tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange", "tab:brown"]


def _save(fig, path: str | os.PathLike, dpi: int) -> Path:
    return save_figure(fig, path, dpi)


def _element_colour(symbol: str, fallback: str) -> tuple | str:
    z = atomic_numbers.get(str(symbol))
    if z is None:
        return fallback
    c = jmol_colors[z]
    return tuple(0.8 * c) if c.mean() > 0.8 else tuple(c)  # darken near-white (H) for visibility


def plot_rdf(results: Sequence, path: str | os.PathLike = "rdf.png", title: str = "", dpi: int = 150) -> Path:
    """g(r) (solid, left axis) and coordination number n(r) (dashed, right axis) of one or more RDFs."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax2 = ax.twinx()
    for res, c in zip(results, _COLOURS * 3):
        ax.plot(res.r_A, res.g, color=c, lw=1.4, label=f"g {res.pair}")
        ax2.plot(res.edges_A[1:], res.coordination, color=c, ls="--", lw=1.0, label=f"n {res.pair}")
    ax.set_xlim(0, float(results[0].edges_A[-1]))
    ax.set_xlabel("r (Å)")
    ax.set_ylabel("g(r)  (ideal gas in V = {:.0f} Å³)".format(results[0].volume_A3))
    ax2.set_ylabel("coordination number n(r)")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, frameon=False, fontsize=8, loc="upper left")
    ax.set_title(title or f"RDF, {results[0].n_frames} frames")
    return _save(fig, path, dpi)


def plot_adf(results: Sequence, path: str | os.PathLike = "adf.png", title: str = "", dpi: int = 150) -> Path:
    """Angle distributions p(θ) (deg⁻¹) of one or more triplets."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for res, c in zip(results, _COLOURS * 3):
        lab = f"{res.triplet} (cutoffs {res.cutoffs_A[0]:g}/{res.cutoffs_A[1]:g} Å)"
        ax.plot(res.theta_deg, res.density, color=c, lw=1.4, label=lab)
    ax.set_xlim(0, 180)
    ax.set_xlabel("angle (deg)")
    ax.set_ylabel("p(θ) (deg$^{-1}$)")
    ax.legend(frameon=False, fontsize=8, loc="upper left")
    ax.set_title(title or f"ADF, {results[0].n_frames} frames")
    return _save(fig, path, dpi)


def plot_rmsf(result, path: str | os.PathLike = "rmsf.png", title: str = "", elements: Sequence[str] | None = None,
              dpi: int = 150) -> Path:
    """Per-element RMSF distributions (violins with the mean marked, seed 000 Fig. 7 style) and,
    when depth labels exist, mean RMSF per depth layer."""
    elements = list(elements or result.by_element)
    panels = 2 if result.by_depth else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4.2))
    axes = np.atleast_1d(axes)
    ax = axes[0]
    data = [result.rmsf_A[result.symbols == e] for e in elements]
    parts = ax.violinplot(data, showmeans=True, showextrema=True, widths=0.8)
    for body, e, c in zip(parts["bodies"], elements, _COLOURS * 3):
        body.set_facecolor(_element_colour(e, c))
        body.set_edgecolor("k")
        body.set_alpha(0.7)
    ax.set_xticks(range(1, len(elements) + 1), [f"{e}\n({len(d)})" for e, d in zip(elements, data)])
    ax.set_ylabel("RMSF (Å)")
    ax.set_title("per element")
    if result.by_depth:
        ax = axes[1]
        for e, c in zip(elements, _COLOURS * 3):
            layers = {d: s for d, s in result.by_depth.get(e, {}).items() if d >= 0}
            if not layers:
                continue
            d = np.array(sorted(layers))
            ax.errorbar(d / 2.0, [layers[k].mean_A for k in d], yerr=[layers[k].std_A for k in d], marker="o",
                        capsize=3, color=_element_colour(e, c), label=e)
        ax.set_xlabel("depth below the surface (unit cells)")
        ax.set_ylabel("mean RMSF (Å)")
        ax.set_title("per layer (core atoms)")
        ax.legend(frameon=False, fontsize=8)
    fig.suptitle(title or f"RMSF, {result.n_frames} frames (alignment: {result.reference})")
    return _save(fig, path, dpi)


def plot_vdos(result, path: str | os.PathLike = "vdos.png", title: str = "", xmax: float | None = None,
              harmonic_cm1: np.ndarray | None = None, classical: bool = False, dpi: int = 150) -> Path:
    """Total and partial VDOS (quantum-corrected, or classical if asked); harmonic frequencies as ticks."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    x = result.frequencies_cm1
    tot = result.classical_total if classical else result.total
    part = result.classical_partial if classical else result.partial
    ax.plot(x, tot, "k-", lw=1.4, label="total")
    for (name, g), c in zip(part.items(), _COLOURS[1:] * 3):
        ax.plot(x, g, ":", lw=1.4, color=c, label=name)
    if harmonic_cm1 is not None:
        top = float(tot.max())
        ax.vlines(harmonic_cm1, 0, 0.06 * top, color="tab:gray", lw=0.8, label="harmonic")
    ax.set_xlim(0, xmax or float(x.max()))
    ax.set_xlabel("wavenumber (cm$^{-1}$)")
    kind = "classical" if classical else "quantum-corrected"
    ax.set_ylabel(f"VDOS ({kind}, per cm$^{{-1}}$)")
    ax.legend(frameon=False, fontsize=8)
    ax.set_title(title or f"VDOS from {result.source}, T = {result.temperature_K:.1f} K, "
                          f"resolution {result.resolution_cm1:.2f} cm$^{{-1}}$")
    return _save(fig, path, dpi)


def plot_binding_geometry(result, path: str | os.PathLike = "binding.png", title: str = "", dpi: int = 150) -> Path:
    """2D histograms r1–r3 and r2–r3 (seed 001 Fig. 2b, c) with the short/long threshold and k-means centres."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4))
    t = result.threshold_A
    for ax, key in zip(axes, ("r1-r3", "r2-r3")):
        h, xe, ye = result.histograms[key]
        mesh = ax.pcolormesh(xe, ye, h.T, cmap="viridis", shading="flat")
        fig.colorbar(mesh, ax=ax, label="count")
        ax.axvline(t, color="w", ls="--", lw=0.8)
        ax.axhline(t, color="w", ls="--", lw=0.8)
        ax.set_xlabel(f"{key.split('-')[0]} (Å)")
        ax.set_ylabel("r3 (Å)")
        ax.set_xlim(xe[0], xe[-1])
        ax.set_ylim(ye[0], ye[-1])
        ax.set_aspect("equal")
    centres = result.kmeans.get("centres_A")
    if centres:
        for (r2, r3), m, lab in zip(centres, ("^", "*"), ("bridge", "tilted bridge")):
            axes[1].plot(r2, r3, marker=m, color="tab:red", mec="w", ms=11, ls="none", clip_on=True,
                         label=f"k-means {lab} ({r2:.2f}, {r3:.2f} Å)")
        axes[1].legend(fontsize=8, loc="upper right", framealpha=0.8)
    f = result.fractions
    km = result.kmeans
    fig.suptitle(title or (f"{result.r1_A.shape[1]} carboxylates × {result.n_frames} frames; "
                           f"k-means bridge {100 * km['bridge']:.0f} % / tilted {100 * km['tilted_bridge']:.0f} %; "
                           f"chelate {100 * f['chelate']:.0f} %, unidentate {100 * f['unidentate']:.0f} %"),
                 fontsize=10)
    return _save(fig, path, dpi)
