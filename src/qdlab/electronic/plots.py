"""Band-edge density on the structure: HOMO and LUMO weight per atom, projected along z (PNG)."""

from __future__ import annotations

import numpy as np
from ase import Atoms

from qdlab.electronic.states import BandEdgeStates
from qdlab.store.files import save_figure


def plot_band_edge_density(atoms: Atoms, states: BandEdgeStates, path, title: str | None = None) -> None:
    """Two panels (HOMO, LUMO): every atom as a grey dot, disc area ∝ the state's weight on it."""
    import matplotlib.pyplot as plt

    occ = states.occupied
    h = int(np.flatnonzero(occ)[np.argmax(states.energies_eV[occ])])
    lu = int(np.flatnonzero(~occ)[np.argmin(states.energies_eV[~occ])])
    xy = atoms.positions[:, :2]
    fig, axes = plt.subplots(1, 2, figsize=(8, 4))
    for ax, k, name, color in ((axes[0], h, "HOMO", "tab:blue"), (axes[1], lu, "LUMO", "tab:red")):
        w = states.atom_weights[k]
        ax.scatter(xy[:, 0], xy[:, 1], s=4, color="0.75")
        ax.scatter(xy[:, 0], xy[:, 1], s=3000 * w / max(w.max(), 1e-12) * w.max() ** 0.5, color=color, alpha=0.5)
        ax.set_title(f"{name} {states.energies_eV[k]:.3f} eV, IPR {states.ipr()[k]:.3f}", fontsize=9)
        ax.set_aspect("equal")
        ax.set_xlabel("x (Å)")
    axes[0].set_ylabel("y (Å)")
    fig.suptitle(title or f"band-edge density (projected on xy), gap {states.gap_eV:.3f} eV", fontsize=10)
    save_figure(fig, path, dpi=130)
