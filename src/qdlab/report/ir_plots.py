"""Plots for IR spectra, thermal properties and the dipole-model parity (PNG, matplotlib Agg)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from qdlab.store.files import atomic_path


def _save(fig, path: str | os.PathLike) -> Path:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=130, bbox_inches="tight", format="png")
    plt.close(fig)
    return Path(path)


def plot_ir(spectra: dict, path: str | os.PathLike, *, fmin: float = 0.0, fmax: float = 4000.0,
            bands: dict | None = None, title: str = "") -> Path:
    """Normalised IR spectra {label: IRSpectrum} with seed 001's carboxylate ranges shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from qdlab.analysis.ir_bands import SEED001_BANDS_CM1

    fig, ax = plt.subplots(figsize=(7, 3.6))
    for label, s in spectra.items():
        m = (s.frequencies_cm1 >= fmin) & (s.frequencies_cm1 <= fmax)
        y = np.clip(s.intensity[m], 0, None)
        ax.plot(s.frequencies_cm1[m], y / (y.max() or 1.0), lw=1.0, label=label)
    if bands is not False:
        for name, (lo, hi) in SEED001_BANDS_CM1.items():
            if fmin <= lo <= fmax and fmax - fmin <= 1500:  # the labels crowd on a full-range plot
                ax.axvspan(lo - (3 if lo == hi else 0), hi + (3 if lo == hi else 0), alpha=0.12, color="grey")
                ax.text((lo + hi) / 2, 1.02, name, ha="center", fontsize=7)
    ax.set_xlabel("wavenumber (cm⁻¹)")
    ax.set_ylabel("IR intensity (normalised)")
    ax.set_xlim(fmin, fmax)
    ax.set_ylim(0, 1.1)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def plot_thermal(tp, msd, path: str | os.PathLike, title: str = "") -> Path:
    """F, S, C_v vs T and ⟨u²⟩ per element vs T."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
    t = tp.temperatures_K
    ax[0].plot(t, tp.free_energy_eV, label="F (eV)")
    ax[0].plot(t, t * tp.entropy_eV_K, label="TS (eV)")
    ax[0].plot(t, tp.heat_capacity_eV_K / 8.617333262e-5, label="C_v (k_B)")
    ax[0].set_xlabel("T (K)")
    ax[0].legend(fontsize=8)
    for el, v in msd.by_element.items():
        ax[1].plot(msd.temperatures_K, v, label=el)
    ax[1].set_xlabel("T (K)")
    ax[1].set_ylabel("⟨u²⟩ (Å²)")
    ax[1].legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def plot_dipole_parity(reference_D: np.ndarray, predicted: dict[str, np.ndarray], path: str | os.PathLike,
                       title: str = "") -> Path:
    """Parity of dipole components (D): the model and any baselines against the reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    lo, hi = float(reference_D.min()), float(reference_D.max())
    for label, p in predicted.items():
        rmse = float(np.sqrt(((p - reference_D) ** 2).mean()))
        ax.scatter(reference_D.ravel(), p.ravel(), s=8, alpha=0.7, label=f"{label} (RMSE {rmse:.2f} D)")
        lo, hi = min(lo, float(p.min())), max(hi, float(p.max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set_xlabel("reference μ component (D)")
    ax.set_ylabel("predicted μ component (D)")
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)
