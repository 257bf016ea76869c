"""Plots of exciton results: absorption per polarisation and a level diagram coloured by spin."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qdlab.electronic.bse import Excitons, absorption_spectrum
from qdlab.store.files import atomic_path


def plot_excitons(exc: Excitons, out: str | Path, broadening_eV: float = 0.01, n_levels: int = 16,
                  title: str = "") -> Path:
    """Two panels: spectrum (x, y, z and their mean) and the lowest levels coloured by ⟨S²⟩ (meV)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    e = exc.energies_eV
    grid = np.linspace(e[0] - 10 * broadening_eV, e[min(len(e) - 1, 3 * n_levels)] + 10 * broadening_eV, 800)
    spec = absorption_spectrum(exc, grid, broadening_eV)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [2, 1]})
    for k, (lab, col) in enumerate(zip("xyz", ("tab:red", "tab:green", "tab:blue"))):
        ax1.plot(grid, spec[:, k], color=col, label=lab)
    ax1.plot(grid, spec.mean(1), color="k", label="mean")
    ax1.set_xlabel("energy (eV)")
    ax1.set_ylabel("oscillator strength (1/eV)")
    ax1.legend()
    n = min(n_levels, len(e))
    lev = (e[:n] - e[0]) * 1e3
    sc = None
    for i in range(n):
        sc = ax2.scatter([0], [lev[i]], c=[exc.s2[i]], cmap="coolwarm", vmin=0, vmax=2, marker="_", s=2000)
        ax2.text(0.3, lev[i], f"f={exc.bright[i]:.2g}", fontsize=7, va="center")
    ax2.set_xlim(-1, 1.5)
    ax2.set_xticks([])
    ax2.set_ylabel("E − E₁ (meV)")
    if sc is not None:
        fig.colorbar(sc, ax=ax2, label="⟨S²⟩ (0 singlet, 2 triplet)")
    fig.suptitle(title or f"excitons (ε = {exc.eps:g})")
    fig.tight_layout()
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=120, format=out.suffix.lstrip(".") or "png")
    plt.close(fig)
    return out
