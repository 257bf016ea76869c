"""Plots of campaign results (PNG): mode centres vs size per passivation (seed 000 Fig. 5), RMSF
distributions per system (seed 000 Fig. 7), DOS overlays per size (Fig. 4) and parity plots
(Fig. 2). Same house style as :mod:`qdlab.report.plots`: matplotlib Agg, atomic writes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from qdlab.report.plots import save_figure  # noqa: E402

#: seed 000 Fig. 5 colours: black bare, red MA, blue BzO, green BzO/MA
PASSIVATION_COLOURS = {"bare": "k", "MA": "tab:red", "BzO": "tab:blue", "BzO/MA": "tab:green",
                       "MA/PhS": "goldenrod", "MA/PhP": "tab:purple", "PhS": "goldenrod", "PhP": "tab:purple"}
_EXTRA = ["tab:orange", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray"]
MODE_MARKERS = {"M1": "o", "M2": "s", "M3": "^"}


def passivation_colour(name: str, index: int = 0) -> str:
    """Colour of a passivation label (the paper's where it has one)."""
    return PASSIVATION_COLOURS.get(name, _EXTRA[index % len(_EXTRA)])


def plot_peaks_vs_size(points: Sequence[dict], path: str | os.PathLike, title: str = "", dpi: int = 130) -> Path:
    """Intensity-weighted M1 (circles), M2 (squares), M3 (triangles) centres (cm⁻¹) against the NC
    edge length (nm), one colour per passivation; ``points``: dicts with ``size_nm``,
    ``passivation`` and ``M1_cm1``/``M2_cm1``/``M3_cm1`` (missing peaks skipped)."""
    modes = [m for m in MODE_MARKERS if any(np.isfinite(p.get(f"{m}_cm1", np.nan)) for p in points)]
    fig, axes = plt.subplots(1, max(len(modes), 1), figsize=(3.6 * max(len(modes), 1), 3.8), squeeze=False)
    passes = list(dict.fromkeys(p["passivation"] for p in points))
    for ax, mode in zip(axes[0], modes):
        for k, name in enumerate(passes):
            sel = [p for p in points if p["passivation"] == name and np.isfinite(p.get(f"{mode}_cm1", np.nan))]
            xs = np.unique([p["size_nm"] for p in sel])
            if not len(xs):
                continue
            # several seeds per size: mean ± standard deviation
            ys = [np.array([p[f"{mode}_cm1"] for p in sel if p["size_nm"] == x]) for x in xs]
            ax.errorbar(xs, [y.mean() for y in ys], yerr=[y.std() for y in ys], marker=MODE_MARKERS[mode],
                        color=passivation_colour(name, k), lw=1, ms=6, capsize=3, label=name)
        ax.set_title(mode)
        ax.set_xlabel("NC edge (nm)")
        ax.set_ylabel(f"{mode} centre (cm$^{{-1}}$)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(frameon=False, fontsize=8)
    fig.suptitle(title or "mode centres vs size")
    return save_figure(fig, path, dpi)


def plot_rmsf_distributions(systems: dict[str, np.ndarray], path: str | os.PathLike, element: str = "Pb",
                            title: str = "", dpi: int = 130) -> Path:
    """Distributions of the per-atom RMSF (Å) of one element per system (box + points, seed 000
    Fig. 7): ``systems`` maps a label to the RMSF values."""
    labels = list(systems)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * len(labels) + 2), 3.8))
    data = [np.asarray(systems[k], float) for k in labels]
    ax.boxplot(data, showfliers=False, widths=0.5)
    rng = np.random.default_rng(0)
    for i, (k, v) in enumerate(zip(labels, data), 1):
        name = k.split(" ")[0]
        ax.scatter(i + rng.uniform(-0.12, 0.12, len(v)), v, s=10, alpha=0.6, color=passivation_colour(name, i))
        ax.errorbar(i + 0.3, v.mean(), yerr=v.std(), fmt="D", color="k", ms=4, capsize=3)
    ax.set_xticks(range(1, len(labels) + 1), labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(f"{element} RMSF (Å)")
    ax.set_title(title or f"{element} RMSF per system (mean ± std beside each box)")
    ax.grid(alpha=0.3, axis="y")
    return save_figure(fig, path, dpi)


def plot_dos_by_size(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: str | os.PathLike, title: str = "",
                     xmax: float = 200.0, dpi: int = 130) -> Path:
    """Total phonon DOS per mode (normalised) of several passivations at one size (seed 000 Fig. 4)."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for k, (name, (x, g)) in enumerate(curves.items()):
        norm = np.trapezoid(g, x) or 1.0
        ax.plot(x, g / norm, color=passivation_colour(name, k), lw=1.3, label=name)
    ax.set_xlim(0, xmax)
    ax.set_xlabel("wavenumber (cm$^{-1}$)")
    ax.set_ylabel("DOS per mode")
    ax.set_title(title)
    ax.legend(frameon=False, fontsize=8)
    return save_figure(fig, path, dpi)
