"""Plots (matplotlib, PNG). Structure pictures of nanocrystal models."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from ase import Atoms  # noqa: E402
from ase.data import chemical_symbols, covalent_radii  # noqa: E402
from ase.data.colors import jmol_colors  # noqa: E402
from ase.visualize.plot import plot_atoms  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from qdlab.store.files import atomic_path  # noqa: E402

VIEWS = {"front": "0x,0y,0z", "tilted": "-25x,35y,0z"}



def save_figure(fig, path: str | os.PathLike, dpi: int = 150) -> Path:
    """Tight layout, write the PNG atomically (no partial file on failure) and close the figure."""
    from qdlab.store.files import save_figure as _save

    return _save(fig, Path(path), dpi)

def render_structure(atoms: Atoms, path: str | os.PathLike[str], title: str | None = None,
                     views: dict[str, str] | None = None, dpi: int = 150) -> Path:
    """Render ``atoms`` (ball model, Jmol colours, radii ∝ covalent radius) to a PNG.

    One panel per view (ASE rotation strings); ligand atoms are drawn slightly smaller so the
    inorganic core stays readable.
    """
    views = views or VIEWS
    radii = 0.85 * covalent_radii[atoms.numbers]
    if "role" in atoms.arrays:
        radii = np.where(atoms.arrays["role"] == "ligand", 0.7 * covalent_radii[atoms.numbers], radii)
    fig, axes = plt.subplots(1, len(views), figsize=(5.2 * len(views), 5.6))
    axes = np.atleast_1d(axes)
    shown = atoms.copy()
    shown.cell = np.zeros((3, 3)) if not atoms.pbc.any() else atoms.cell
    shown.center()
    for ax, (name, rot) in zip(axes, views.items()):
        plot_atoms(shown, ax, rotation=rot, radii=radii, show_unit_cell=0)
        ax.set_axis_off()
        ax.set_title(name, fontsize=10)
    elems = sorted(set(atoms.numbers), key=lambda z: -z)
    handles = [Patch(facecolor=jmol_colors[z], edgecolor="k", label=chemical_symbols[z]) for z in elems]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 8), frameon=False)
    fig.suptitle(title or f"{atoms.get_chemical_formula(mode='hill')}  ({len(atoms)} atoms)")
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    final = Path(path)
    with atomic_path(final) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    return final


_PDOS_STYLE = {"ligand": dict(color="tab:green", alpha=0.25)}


def plot_dos(dos, peaks: dict | None = None, path: str | os.PathLike = "dos.png", title: str = "",
             xmax: float | None = 200.0, dpi: int = 150) -> Path:
    """Total DOS (line) and partial DOS (dotted lines / shaded) with named peaks marked."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    x = dos.grid_cm1
    ax.plot(x, dos.total, "k-", lw=1.5, label="total")
    colours = iter(["tab:blue", "tab:red", "tab:orange", "tab:purple", "tab:brown"])
    for name, g in dos.partial.items():
        if name == "ligand":
            ax.fill_between(x, g, **_PDOS_STYLE["ligand"], label=name)
        else:
            ax.plot(x, g, ":", lw=1.5, color=next(colours), label=name)
    for p in (peaks or {}).values():
        ax.axvline(p.centre_cm1, color="0.4", ls="--", lw=0.8)
        ax.text(p.centre_cm1, ax.get_ylim()[1] * 0.95, p.name, ha="center", va="top", fontsize=9,
                bbox=dict(fc="white", ec="none", pad=1))
    ax.set_xlim(max(0.0, float(x.min())), xmax or float(x.max()))
    ax.set_xlabel("wavenumber (cm$^{-1}$)")
    ax.set_ylabel(f"DOS (modes/cm$^{{-1}}$), σ = {dos.sigma_cm1:g} cm$^{{-1}}$")
    ax.set_title(title)
    ax.legend(frameon=False, fontsize=8)
    return save_figure(fig, path, dpi)


def plot_dos_comparison(systems: dict, path: str | os.PathLike, title: str = "", xmax: float = 200.0,
                        per_mode: bool = True, dpi: int = 150) -> Path:
    """Overlay several systems' total DOS ({label: (dos, peaks)}), normalised per mode if asked."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    colours = ["k", "tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange"]
    for (label, (dos, peaks)), c in zip(systems.items(), colours * 3):
        norm = np.trapezoid(dos.total, dos.grid_cm1) if per_mode else 1.0
        ax.plot(dos.grid_cm1, dos.total / norm, color=c, lw=1.4, label=label)
        for p in (peaks or {}).values():
            ax.axvline(p.centre_cm1, color=c, ls=":", lw=0.9)
    ax.set_xlim(0, xmax)
    ax.set_xlabel("wavenumber (cm$^{-1}$)")
    ax.set_ylabel("DOS per mode" if per_mode else "DOS")
    ax.set_title(title)
    ax.legend(frameon=False, fontsize=8)
    return save_figure(fig, path, dpi)
