"""Root-mean-square fluctuations after rigid-body alignment (seeds 000 Fig. 7, 004 eq. 9; SCIENCE.md §6).

ρ_i = √⟨|r_i − ⟨r_i⟩|²⟩ over the analysed frames, after removing the cluster's rigid translation
and rotation (Kabsch, :mod:`qdlab.analysis.align`; reference = the iterated mean structure by
default). Reported per atom, summarised per element and per depth layer (the builder's ``depth``
label: half unit cells below the surface, 0 = surface, −1 = ligand atoms), with histograms per
element (the distributions of seed 000 Fig. 7). Units: Å.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qdlab.analysis.align import align_frames
from qdlab.analysis.trajectory import Frames, Trajectory, load_trajectory
from qdlab.errors import QdlabError


@dataclass(frozen=True)
class GroupStats:
    """RMSF summary of a group of atoms (Å)."""

    n_atoms: int
    mean_A: float
    std_A: float
    median_A: float
    min_A: float
    max_A: float

    @classmethod
    def of(cls, values: np.ndarray) -> GroupStats:
        v = np.asarray(values, float)
        return cls(len(v), float(v.mean()), float(v.std()), float(np.median(v)), float(v.min()), float(v.max()))


@dataclass(frozen=True)
class RMSF:
    """Per-atom RMSF ``rmsf_A`` (N,) with element symbols and depth labels (−1 ligand; None if absent).

    ``by_element`` and ``by_depth`` ({element: {depth: stats}}) summarise; ``histograms`` holds per
    element (bin edges Å, counts) on a common grid; ``mean_A`` (N, 3) is the mean aligned structure.
    """

    rmsf_A: np.ndarray
    symbols: np.ndarray
    depth: np.ndarray | None
    by_element: dict[str, GroupStats]
    by_depth: dict[str, dict[int, GroupStats]]
    histograms: dict[str, tuple[np.ndarray, np.ndarray]] = field(repr=False)
    mean_A: np.ndarray = field(repr=False)
    n_frames: int = 0
    mass_weighted: bool = False
    reference: str = "mean"

    def to_dict(self) -> dict:
        """JSON-ready summary: frames, reference, per-element and per-layer statistics (Å)."""
        return {"n_frames": self.n_frames, "reference": self.reference, "mass_weighted": self.mass_weighted,
                "by_element": {str(e): vars(s) for e, s in self.by_element.items()},
                "by_depth": {str(e): {str(d): vars(s) for d, s in layers.items()}
                             for e, layers in self.by_depth.items()}}

    def save(self, folder: str | os.PathLike, extra: dict | None = None) -> dict[str, Path]:
        """Write ``rmsf.csv`` (index, element, Z, depth, rmsf_A; depth :data:`NO_DEPTH` where the
        model has no depth labels) and ``rmsf.json`` (:meth:`to_dict` + ``extra``), atomically."""
        from ase.data import atomic_numbers

        from qdlab.store.files import write_text

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        depth = self.depth if self.depth is not None else np.full(len(self.rmsf_A), NO_DEPTH)
        rows = "".join(f"{i},{s},{atomic_numbers[str(s)]},{int(d)},{r:.8g}\n"
                       for i, (s, d, r) in enumerate(zip(self.symbols, depth, self.rmsf_A)))
        files = {"csv": write_text(out / "rmsf.csv", "index,element,Z,depth,rmsf_A\n" + rows)}
        files["json"] = write_text(out / "rmsf.json", json.dumps((extra or {}) | self.to_dict(), indent=2,
                                                                  default=float) + "\n")
        return files


#: depth written for atoms of a model without depth labels (ligand atoms are −1, the surface 0)
NO_DEPTH = -99


def load_rmsf_table(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(rmsf_A, symbols, depth or None) of an ``rmsf.csv`` written by :meth:`RMSF.save` (a folder
    holding one is accepted)."""
    p = Path(path)
    p = p / "rmsf.csv" if p.is_dir() else p
    if not p.is_file():
        raise QdlabError(f"{p} not found (not an RMSF output)")
    lines = p.read_text().splitlines()[1:]
    cols = list(zip(*(line.split(",") for line in lines))) if lines else [()] * 5
    depth = np.asarray(cols[3], int)
    return (np.asarray(cols[4], float), np.asarray(cols[1], str),
            None if len(depth) and (depth == NO_DEPTH).all() else depth)


def rmsf_from_positions(positions: np.ndarray) -> np.ndarray:
    """ρ_i = √⟨|r_i − ⟨r_i⟩|²⟩ over axis 0 of already aligned positions (F, N, 3) → (N,) Å."""
    x = np.asarray(positions, float)
    dev = x - x.mean(0)
    return np.sqrt(np.einsum("fnk,fnk->n", dev, dev) / x.shape[0])


def rmsf(frames: Frames, align: bool = True, mass_weighted: bool = False, reference: str = "mean",
         fit_selection: str | np.ndarray | None = None, bin_width: float = 0.01,
         skip: int = 0, skip_ps: float | None = None, stride: int = 1) -> RMSF:
    """RMSF per atom, element and depth layer.

    ``align``: remove rigid motion first (Kabsch; ``mass_weighted`` fit; ``reference`` "mean" or
    "first"); ``fit_selection``: fit on these atoms only (e.g. ``"core"``), all atoms are moved;
    ``bin_width`` of the per-element histograms (Å); frames and skip/stride as in
    :func:`~qdlab.analysis.trajectory.load_trajectory`.
    """
    traj: Trajectory = load_trajectory(frames, skip=skip, skip_ps=skip_ps, stride=stride)
    if traj.n_frames < 2:
        raise QdlabError("RMSF needs at least 2 frames")
    if bin_width <= 0:
        raise QdlabError("histogram bin width must be > 0 Å")
    pos = traj.positions_A
    if align:
        fit = None if fit_selection is None else traj.mask(fit_selection)
        pos = align_frames(pos, traj.masses_amu if mass_weighted else None, reference, fit_mask=fit).positions_A
    rho = rmsf_from_positions(pos)
    sym = traj.symbols
    depth = traj.labels.get("depth")
    elements = list(dict.fromkeys(sym))
    by_el = {e: GroupStats.of(rho[sym == e]) for e in elements}
    by_depth: dict[str, dict[int, GroupStats]] = {}
    if depth is not None:
        depth = np.asarray(depth, int)
        for e in elements:
            m = sym == e
            by_depth[e] = {int(d): GroupStats.of(rho[m & (depth == d)]) for d in np.unique(depth[m])}
    hi = max(bin_width, float(rho.max()) * 1.05)
    edges = np.arange(0.0, hi + bin_width, bin_width)
    hists = {e: (edges, np.histogram(rho[sym == e], edges)[0]) for e in elements}
    return RMSF(rho, sym, depth, by_el, by_depth, hists, pos.mean(0), traj.n_frames, mass_weighted,
                reference if align else "none")
