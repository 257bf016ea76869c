"""Trajectory analyses RMSF and RDF as workflows: one settings model each, shared by
``qdlab analyze rmsf|rdf``, the Python API and the campaign steps ``rmsf``/``rdf`` (defaults and
bounds here only), and the one call every entry point makes.

Frames are chosen the same way everywhere (:class:`FrameWindow`): discard the first ``skip_ps``
picoseconds (needs ``info['time_fs']``) or ``skip_frames`` frames, then keep every ``stride``-th.
Site names A, B, X in RDF pairs stand for the perovskite's sites and resolve to the elements the
trajectory holds (``Pb-X`` → ``Pb-Br`` for CsPbBr3).
"""

from __future__ import annotations

import os
from typing import Literal

import numpy as np
from ase import Atoms
from pydantic import BaseModel, ConfigDict, Field

from qdlab.analysis.rdf import RDF, rdf
from qdlab.analysis.rmsf import RMSF, rmsf
from qdlab.analysis.trajectory import Frames, Trajectory, load_trajectory
from qdlab.errors import QdlabError

#: candidate elements of each perovskite site, in order of preference
SITE_ELEMENTS = {"A": ("Cs", "Rb", "K"), "B": ("Pb", "Sn", "Ge"), "X": ("Br", "I", "Cl")}


class FrameWindow(BaseModel):
    """Which frames of a trajectory an analysis uses: skip ``skip_ps`` ps (0: none) or ``skip_frames``
    frames, then every ``stride``-th frame."""

    model_config = ConfigDict(extra="forbid")

    skip_ps: float = Field(0.0, ge=0, description="discard the first picoseconds, ps (needs info['time_fs'])")
    skip_frames: int = Field(0, ge=0, description="discard the first N frames")
    stride: int = Field(1, ge=1, description="keep every K-th frame after the skip")

    def load(self, frames: Frames, labels: Atoms | str | os.PathLike | None = None) -> Trajectory:
        """The kept frames as a :class:`~qdlab.analysis.trajectory.Trajectory` (labels perceived
        when the frames carry none)."""
        return load_trajectory(frames, skip=self.skip_frames, skip_ps=self.skip_ps or None, stride=self.stride,
                               labels=labels)


class RMSFSettings(FrameWindow):
    """RMSF per atom, element and depth layer (Å): ``align`` removes rigid motion (Kabsch) against
    ``reference`` (mean, iterated | first), ``mass_weighted`` fit, ``fit`` on a selection only (e.g.
    ``core``); ``bin_width_A`` of the per-element histograms."""

    align: bool = True
    reference: Literal["mean", "first"] = "mean"
    mass_weighted: bool = False
    fit: str | None = Field(None, description="fit on this selection only, e.g. core, element=Pb")
    bin_width_A: float = Field(0.01, gt=0, description="histogram bin width, Å")


class RDFSettings(FrameWindow):
    """Radial distribution functions g_AB(r) and coordination numbers of a finite cluster for element
    pairs (``Pb-Br``; A/B/X resolve to the trajectory's site elements), r up to ``r_max_A`` in bins
    of ``dr_A`` (Å), ideal-gas ``volume``: hull | sphere | a number in Å³."""

    pairs: list[str] = Field(default_factory=lambda: ["Pb-X"], min_length=1)
    r_max_A: float = Field(10.0, gt=0, description="largest distance, Å")
    dr_A: float = Field(0.02, gt=0, description="bin width, Å")
    volume: Literal["hull", "sphere"] | float = "hull"


def run_rmsf(frames: Frames, settings: RMSFSettings | None = None,
             labels: Atoms | str | os.PathLike | None = None) -> RMSF:
    """The RMSF workflow: select frames, align, RMSF per atom/element/layer (Å)."""
    s = settings or RMSFSettings()
    traj = frames if isinstance(frames, Trajectory) else s.load(frames, labels)
    return rmsf(traj, align=s.align, mass_weighted=s.mass_weighted, reference=s.reference, fit_selection=s.fit,
                bin_width=s.bin_width_A)


def resolve_sites(pair: str, symbols: np.ndarray | list[str]) -> str:
    """``"Pb-X"`` → ``"Pb-Br"``: site letters A, B, X become the element of that site present in
    ``symbols``; element names pass through."""
    present = set(np.asarray(symbols).tolist())
    out = []
    for p in pair.split("-"):
        if p in SITE_ELEMENTS:
            hit = next((e for e in SITE_ELEMENTS[p] if e in present), None)
            if hit is None:
                raise QdlabError(f"pair {pair!r}: no {p}-site element ({', '.join(SITE_ELEMENTS[p])}) in the "
                                 f"trajectory; name the elements, e.g. Pb-S")
            p = hit
        out.append(p)
    return "-".join(out)


def run_rdf(frames: Frames, settings: RDFSettings | None = None,
            labels: Atoms | str | os.PathLike | None = None) -> list[RDF]:
    """The RDF workflow: select frames, one :class:`~qdlab.analysis.rdf.RDF` per pair (Å)."""
    s = settings or RDFSettings()
    if isinstance(s.volume, float) and s.volume <= 0:
        raise QdlabError(f"volume {s.volume} Å³ must be > 0 (or hull | sphere)")
    traj = frames if isinstance(frames, Trajectory) else s.load(frames, labels)
    return [rdf(traj, resolve_sites(p, traj.symbols), r_max=s.r_max_A, dr=s.dr_A, volume=s.volume)
            for p in s.pairs]
