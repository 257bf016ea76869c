"""Trajectory input shared by the MD analyses: frames → arrays, equilibration skip, stride, selections.

Every trajectory analysis (:mod:`~qdlab.analysis.rdf`, :mod:`~qdlab.analysis.rmsf`,
:mod:`~qdlab.analysis.vdos`, :mod:`~qdlab.analysis.coordination`) takes a :class:`Trajectory` (or
anything :func:`load_trajectory` accepts: a list of ASE ``Atoms`` or a path that
``ase.io.read(path, index=":")`` reads). The MD workflow writes ASE ``.traj`` or extended XYZ with
``atoms.info["time_fs"]`` per frame; extended XYZ also keeps the builder's per-atom labels
(``role``, ``ligand``, ``ligand_id``, ``depth``, …, see :mod:`qdlab.build.model`). ASE ``.traj``
files drop custom per-atom arrays, so labels can be taken from a separate model file
(``labels=``), the way a topology accompanies a trajectory.

Units: positions Å, velocities Å/fs, times fs, masses amu.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.data import atomic_numbers

from qdlab.build.select import select
from qdlab.errors import QdlabError

#: ASE velocity unit (Å / ASE time unit) → Å/fs
_VEL_TO_A_FS = units.fs

#: label arrays copied from a model file onto the trajectory (when present there)
LABEL_KEYS = ("role", "ligand", "ligand_id", "depth", "facet", "motif", "shell")


@dataclass(frozen=True)
class Trajectory:
    """Frames of one finite system as arrays.

    ``positions_A`` (F, N, 3); ``velocities_A_fs`` (F, N, 3) or None when the frames carry no
    momenta; ``times_fs`` (F,) or None without ``info["time_fs"]``; ``numbers``/``masses_amu`` (N,);
    ``labels`` the per-atom label arrays (N,) of the first frame (or the ``labels=`` model);
    ``frame_indices`` the indices of the kept frames in the file (after skip and stride).
    """

    positions_A: np.ndarray
    numbers: np.ndarray
    masses_amu: np.ndarray
    velocities_A_fs: np.ndarray | None = None
    times_fs: np.ndarray | None = None
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    frame_indices: np.ndarray | None = None

    @property
    def n_frames(self) -> int:
        return self.positions_A.shape[0]

    @property
    def n_atoms(self) -> int:
        return self.positions_A.shape[1]

    @property
    def symbols(self) -> np.ndarray:
        from ase.data import chemical_symbols

        return np.array(chemical_symbols)[self.numbers]

    def atoms(self, frame: int = 0) -> Atoms:
        """Frame ``frame`` as ``Atoms`` with the labels (for selections and plots)."""
        a = Atoms(numbers=self.numbers, positions=self.positions_A[frame], masses=self.masses_amu)
        for k, v in self.labels.items():
            a.new_array(k, v)
        return a

    def timestep_fs(self) -> float:
        """Spacing of the kept frames (fs); requires uniformly spaced ``times_fs``."""
        if self.times_fs is None or len(self.times_fs) < 2:
            raise QdlabError("the frames carry no info['time_fs']: pass the time between frames (dt_fs)")
        d = np.diff(self.times_fs)
        if np.any(d <= 0) or np.ptp(d) > 1e-6 * max(abs(d.mean()), 1e-12):
            raise QdlabError("frames are not evenly spaced in time (info['time_fs']); cannot Fourier transform")
        return float(d.mean())

    def mask(self, selection: str | np.ndarray | None) -> np.ndarray:
        """Boolean atom mask: None/"all" → all atoms, an element symbol ("Pb"), a label expression
        ("element=Br&depth<=1", see :func:`qdlab.build.select.select`), or a mask/index array."""
        n = self.n_atoms
        if selection is None:
            return np.ones(n, bool)
        if isinstance(selection, str):
            s = selection.strip()
            if s in atomic_numbers and s != "X":
                return self.numbers == atomic_numbers[s]
            if s and s[0].isupper() and s.isalpha() and len(s) <= 2:
                raise QdlabError(f"unknown element '{s}'")
            return select(self.atoms(0), s)
        arr = np.asarray(selection)
        if arr.dtype == bool:
            if arr.shape != (n,):
                raise QdlabError(f"atom mask has shape {arr.shape}, expected ({n},)")
            return arr
        out = np.zeros(n, bool)
        try:
            out[arr.astype(int)] = True
        except IndexError:
            raise QdlabError(f"atom index out of range for {n} atoms") from None
        return out

    def subset(self, frames: np.ndarray | slice) -> Trajectory:
        """The same trajectory restricted to some frames."""
        return Trajectory(self.positions_A[frames], self.numbers, self.masses_amu,
                          None if self.velocities_A_fs is None else self.velocities_A_fs[frames],
                          None if self.times_fs is None else self.times_fs[frames], self.labels,
                          None if self.frame_indices is None else self.frame_indices[frames])


#: what every analysis accepts as its frames
Frames = Trajectory | list[Atoms] | Atoms | str | os.PathLike[str]


def read_frames(path: str | os.PathLike[str]) -> list[Atoms]:
    """All frames of a trajectory file (``ase.io.read(path, ":")``) with one-line errors."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(2, "No such file or directory", str(p))
    try:
        frames = _read_all(p)
    except (FileNotFoundError, PermissionError, IsADirectoryError, QdlabError):
        raise
    except Exception as exc:  # ASE raises many types (some OSError subclasses) for unreadable files
        raise QdlabError(f"cannot read trajectory {p}: {' '.join(str(exc).split()) or type(exc).__name__}") from None
    if not frames:
        raise QdlabError(f"trajectory {p} has no frames")
    return frames


def _read_all(path: Path) -> list[Atoms]:
    from ase.io import read

    out = read(path, index=":")
    return out if isinstance(out, list) else [out]


def _kept(n: int, times_fs: np.ndarray | None, skip: int, skip_ps: float | None, stride: int) -> np.ndarray:
    if stride < 1:
        raise QdlabError(f"stride must be ≥ 1, got {stride}")
    if skip < 0 or (skip_ps is not None and skip_ps < 0):
        raise QdlabError("skip must be ≥ 0")
    start = int(skip)
    if skip_ps is not None:
        if times_fs is None:
            raise QdlabError("--skip in ps needs info['time_fs'] in the frames; skip a number of frames instead")
        start = max(start, int(np.searchsorted(times_fs, times_fs[0] + 1000.0 * skip_ps - 1e-9)))
    idx = np.arange(start, n, stride)
    if len(idx) == 0:
        raise QdlabError(f"no frames left after skipping {start} of {n} (stride {stride})")
    return idx


def load_trajectory(frames: Frames, skip: int = 0,
                    skip_ps: float | None = None, stride: int = 1,
                    labels: Atoms | str | os.PathLike[str] | None = None) -> Trajectory:
    """Arrays of the frames kept after discarding equilibration and striding.

    ``skip`` frames and/or ``skip_ps`` picoseconds (from ``info["time_fs"]``) are discarded first
    (the later of the two wins), then every ``stride``-th frame is kept. Velocities come from the
    frames' momenta when every frame has them. ``labels``: a model (``Atoms`` or file) whose
    per-atom label arrays replace those of the frames (needed for ``.traj`` input).
    """
    if isinstance(frames, Trajectory):
        idx = _kept(frames.n_frames, frames.times_fs, skip, skip_ps, stride)
        traj = frames.subset(idx)
        return traj if labels is None else _with_labels(traj, labels)
    if isinstance(frames, Atoms):
        frames = [frames]
    elif isinstance(frames, (str, os.PathLike)):
        frames = read_frames(frames)
    frames = list(frames)
    if not frames:
        raise QdlabError("no frames given")
    first = frames[0]
    n = len(first)
    if any(len(f) != n or not np.array_equal(f.numbers, first.numbers) for f in frames):
        raise QdlabError("frames differ in their atoms; a trajectory must keep the same atoms in the same order")
    times = None
    if all("time_fs" in f.info for f in frames):
        times = np.array([float(f.info["time_fs"]) for f in frames])
    idx = _kept(len(frames), times, skip, skip_ps, stride)
    kept = [frames[i] for i in idx]
    pos = np.stack([f.positions for f in kept])
    vel = None
    if all("momenta" in f.arrays for f in kept):
        vel = np.stack([f.get_velocities() for f in kept]) * _VEL_TO_A_FS
    lab = {k: np.asarray(first.arrays[k]).copy() for k in LABEL_KEYS if k in first.arrays}
    if "role" not in lab and labels is None:
        lab = _perceived_labels(first)
    traj = Trajectory(pos, first.numbers.copy(), first.get_masses().copy(), vel,
                      None if times is None else times[idx], lab, idx)
    return traj if labels is None else _with_labels(traj, labels)


def _perceived_labels(atoms: Atoms) -> dict[str, np.ndarray]:
    """Labels of a structure made elsewhere (no builder labels): roles, ligands, depth perceived."""
    from qdlab.build.perceive import perceive

    labelled, seen = perceive(atoms)
    keys = LABEL_KEYS
    if seen.lattice_A is None:  # no nanocrystal core: molecules only, no guessed roles or depth
        keys = ("ligand", "ligand_id", "motif") if (labelled.arrays["ligand_id"] >= 0).any() else ()
    return {k: np.asarray(labelled.arrays[k]).copy() for k in keys if k in labelled.arrays}


def _with_labels(traj: Trajectory, labels: Atoms | str | os.PathLike[str]) -> Trajectory:
    model = labels if isinstance(labels, Atoms) else read_frames(labels)[0]
    if len(model) != traj.n_atoms or not np.array_equal(model.numbers, traj.numbers):
        raise QdlabError(f"label model has {len(model)} atoms ({model.get_chemical_formula()}), "
                         f"the trajectory {traj.n_atoms}: not the same system")
    lab = {k: np.asarray(model.arrays[k]).copy() for k in LABEL_KEYS if k in model.arrays}
    return Trajectory(traj.positions_A, traj.numbers, traj.masses_amu, traj.velocities_A_fs, traj.times_fs,
                      lab, traj.frame_indices)
