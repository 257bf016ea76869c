"""Geometry relaxation (L-BFGS default as in seed 000; FIRE, BFGS) with checkpoint/restart.

The trajectory is appended after every step, so an interrupted run restarts from its last
frame (same atoms required). Atoms can be frozen by a label selection (``"depth>=2"`` freezes
everything half a unit cell or more below the surface). The relaxed structure keeps every
per-atom label and ``info`` entry of the input.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.constraints import FixAtoms
from ase.io import Trajectory
from ase.optimize import BFGS, FIRE, LBFGS
from pydantic import BaseModel, ConfigDict, Field

from qdlab.build.rattle import gaussian_rattle
from qdlab.build.select import select
from qdlab.errors import QdlabError
from qdlab.store.files import read_complete_frames

OPTIMIZERS = {"lbfgs": LBFGS, "fire": FIRE, "bfgs": BFGS}


class RelaxSettings(BaseModel):
    """Settings of the relax workflow, shared by ``qdlab relax``, the Python API (:func:`run_relax`)
    and the campaign's relax step (field bounds here only).

    optimizer: lbfgs | fire | bfgs; fmax: force convergence (eV/Å); steps: maximum optimizer steps;
    rattle_A: standard deviation (Å) of a seeded Gaussian displacement applied first, so that the
    optimizer can leave the saddle point of a symmetric cut (0: none); seed: of the rattle (None: 0,
    or the recipe's seed in a campaign); fix: label selection to freeze (``depth>=2``).
    """

    model_config = ConfigDict(extra="forbid")

    optimizer: Literal["lbfgs", "fire", "bfgs"] = "lbfgs"
    fmax: float = Field(0.01, gt=0, description="force convergence, eV/Å")
    steps: int = Field(1000, ge=0, description="maximum optimizer steps")
    rattle_A: float = Field(0.02, ge=0, description="seeded Gaussian displacement before relaxing, Å")
    seed: int | None = Field(None, description="seed of the rattle (None: 0, or the recipe's in a campaign)")
    fix: str | None = None


def run_relax(atoms: Atoms, calc: Calculator, settings: RelaxSettings | None = None, *,
              trajectory: str | os.PathLike | None = None, restart: bool = True,
              callback: Callable[[int, float, float], None] | None = None) -> RelaxResult:
    """The relax workflow: rattle (seeded) then :func:`relax` with ``settings``; the same call from
    the CLI, the API and the campaign."""
    s = settings or RelaxSettings()
    return relax(gaussian_rattle(atoms, s.rattle_A, s.seed), calc, optimizer=s.optimizer, fmax=s.fmax, steps=s.steps,
                 fix=s.fix, trajectory=trajectory, restart=restart, callback=callback)


@dataclass(frozen=True)
class RelaxResult:
    """Outcome of :func:`relax`; energies in eV, forces in eV/Å."""

    atoms: Atoms
    converged: bool
    steps: int
    energy_eV: float
    fmax_eV_A: float
    n_fixed: int
    restarted_from_step: int
    trajectory: Path | None


def _last_frame(path: Path) -> tuple[Atoms | None, int]:
    """Last readable frame and number of frames of a (possibly truncated) trajectory; a frame a
    kill cut short is removed from the file, so that the resumed run appends after whole frames
    (appending after the torn bytes made the whole ``.traj`` unreadable: measured)."""
    frames = read_complete_frames(path)
    if path.suffix.lower() in (".traj", ".extxyz", ".xyz"):
        from qdlab.store.frames import keep_frames

        keep_frames(path, len(frames))
    return (frames[-1], len(frames)) if frames else (None, 0)


def relax(atoms: Atoms, calc: Calculator, *, optimizer: str = "lbfgs", fmax: float = 0.05, steps: int = 500,
          fix: str | None = None, trajectory: str | os.PathLike | None = None, restart: bool = True,
          maxstep: float | None = None, callback: Callable[[int, float, float], None] | None = None) -> RelaxResult:
    """Relax ``atoms`` (a copy) with ``calc`` until max |F| < ``fmax`` eV/Å or ``steps`` steps."""
    key = optimizer.lower()
    if key not in OPTIMIZERS:
        raise QdlabError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {optimizer!r}")
    if not fmax > 0 or steps < 0:
        raise QdlabError("fmax must be > 0 and steps ≥ 0")
    from qdlab.build.gate import check_structure

    check_structure(atoms, what="relax input")  # NaN positions once "converged after 0 steps"
    work = atoms.copy()
    work.constraints = []
    restarted = 0
    traj_path = Path(trajectory) if trajectory else None
    if traj_path is not None and traj_path.exists() and restart:
        last, n = _last_frame(traj_path)
        if last is not None:
            if len(last) != len(work) or not np.array_equal(last.numbers, work.numbers):
                raise QdlabError(f"trajectory {traj_path} belongs to a different structure; delete it or pass restart=False")
            work.positions = last.positions
            restarted = n
    elif traj_path is not None and traj_path.exists():
        traj_path.unlink()
    n_fixed = 0
    if fix:
        mask = select(work, fix)
        n_fixed = int(mask.sum())
        work.set_constraint(FixAtoms(mask=mask))
    work.calc = calc
    kwargs = {"logfile": None}
    if maxstep is not None:
        kwargs["maxstep"] = maxstep
    opt = OPTIMIZERS[key](work, **kwargs)
    traj = None
    if traj_path is not None:
        traj_path.parent.mkdir(parents=True, exist_ok=True)
        traj = Trajectory(traj_path, "a", work)
        opt.attach(traj.write, interval=1)

    def report():
        f = work.get_forces()
        fm = float(np.sqrt((f ** 2).sum(1)).max())
        if not np.isfinite(fm):
            raise QdlabError("engine returned non-finite forces during relaxation")
        if callback:
            callback(opt.nsteps, float(work.get_potential_energy()), fm)

    opt.attach(report, interval=1)
    try:
        converged = bool(opt.run(fmax=fmax, steps=steps))
    finally:
        if traj is not None:
            traj.close()
    forces = work.get_forces()
    result_atoms = work.copy()
    result_atoms.calc = None
    result_atoms.constraints = work.constraints
    e = float(work.get_potential_energy())
    fm = float(np.sqrt((forces ** 2).sum(1)).max())
    result_atoms.info.update(energy_eV=e, fmax_eV_A=fm, relax_converged=converged)
    return RelaxResult(atoms=result_atoms, converged=converged, steps=int(opt.nsteps), energy_eV=e, fmax_eV_A=fm,
                       n_fixed=n_fixed, restarted_from_step=restarted, trajectory=traj_path)
