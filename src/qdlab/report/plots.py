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
