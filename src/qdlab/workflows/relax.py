"""Geometry relaxation (L-BFGS default as in seed 000; FIRE, BFGS) with checkpoint/restart.

The trajectory is appended after every step and the optimizer's state (its ASE restart data:
L-BFGS history, BFGS Hessian, FIRE velocity and step control) is saved atomically beside it
(``<trajectory>.state.npz``), so an interrupted run resumes where it stopped and ends exactly
where an uninterrupted run ends (same atoms required). Atoms can be frozen by a label selection
(``"depth>=2"`` freezes everything half a unit cell or more below the surface). The relaxed
structure keeps every per-atom label and ``info`` entry of the input.
"""

from __future__ import annotations

import json
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
from qdlab.store.files import write_npz
from qdlab.store.frames import keep_frames

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


def _state_path(trajectory: Path) -> Path:
    return trajectory.with_name(trajectory.name + ".state.npz")


#: optimizer settings ASE's restart data (``dump``) leaves out but a step depends on
_EXTRA_STATE = {"fire": ("a", "Nsteps")}


def _pack(data) -> tuple[list, dict]:
    """ASE's restart tuple as (slot descriptions, arrays): arrays and lists of arrays stored binary
    (float64 exact), numbers, strings and None in the description (JSON text took 76 ms a step for
    177 atoms: 2.5 MB of L-BFGS history)."""
    slots, arrays = [], {}
    for i, v in enumerate(data or ()):
        if isinstance(v, np.ndarray) or (isinstance(v, list) and v and all(np.ndim(x) for x in v)):
            arrays[f"slot{i}"] = np.asarray(v)
            slots.append("array" if isinstance(v, np.ndarray) else "arrays")
        elif isinstance(v, list):
            arrays[f"slot{i}"] = np.asarray(v, float)
            slots.append("numbers")
        else:
            slots.append({"value": v.item() if isinstance(v, np.generic) else v})
    return slots, arrays


def _unpack(slots: list, arrays: dict) -> list | None:
    if not slots:
        return None
    out = []
    for i, kind in enumerate(slots):
        if kind == "array":
            out.append(arrays[f"slot{i}"])
        elif kind in ("arrays", "numbers"):
            out.append(list(arrays[f"slot{i}"]))
        else:
            out.append(kind["value"])
    return out


def _save_state(path: Path, opt, key: str, work: Atoms, dumped: dict) -> None:
    """Replace the optimizer state atomically: step, positions after it and the restart data."""
    slots, arrays = _pack(dumped.get("data"))
    meta = {"optimizer": key, "step": int(opt.nsteps), "slots": slots,
            "extra": {k: np.asarray(getattr(opt, k)).item() for k in _EXTRA_STATE.get(key, ())}}
    write_npz(path, meta=np.asarray(json.dumps(meta)), numbers=work.numbers, positions=work.get_positions(), **arrays)


def _load_state(path: Path, key: str, work: Atoms) -> dict:
    """The saved state of a run of ``work`` with optimizer ``key`` (one-line QdlabError otherwise)."""
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}  # reading every member checks each CRC
        meta = json.loads(str(arrays.pop("meta")))
        positions, numbers = arrays.pop("positions"), arrays.pop("numbers")
        state = {**meta, "step": int(meta["step"]), "restart": _unpack(meta["slots"], arrays)}
    except (OSError, EOFError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        raise QdlabError(f"optimizer state {path} is damaged ({type(exc).__name__}); delete it and its "
                         "trajectory or pass restart=False") from None
    if positions.shape != (len(work), 3) or not np.array_equal(numbers, work.numbers):
        raise QdlabError(f"trajectory {path.name[:-len('.state.npz')]} belongs to a different structure; "
                         "delete it or pass restart=False")
    if state.get("optimizer") != key:
        raise QdlabError(f"{path} was written by optimizer {state.get('optimizer')!r}, not {key!r}; "
                         "delete it or pass restart=False")
    return {**state, "positions": positions}


def _resume_point(traj_path: Path | None, key: str, work: Atoms, restart: bool) -> dict | None:
    """The state to continue from, with the trajectory cut to exactly its frames; None: start over.

    A frame written after the last saved state (a kill between the two writes) is dropped and
    written again by the resumed run; a trajectory without a state (killed before the first
    one, or from an older qdlab) is started over."""
    if traj_path is None:
        return None
    state_path = _state_path(traj_path)
    if restart and state_path.exists():
        state = _load_state(state_path, key, work)
        if state["step"] > 0:  # at step 0 nothing is learnt yet: start over (ASE rewrites frame 0)
            try:
                keep_frames(traj_path, state["step"] + 1)
            except QdlabError:
                raise QdlabError(f"{traj_path} ends before its optimizer state's step {state['step']}; "
                                 "delete both or pass restart=False (--no-restart)") from None
            return state
    for p in (traj_path, state_path):
        if p.exists():
            p.unlink()
    return None


def _optimizer(key: str, work: Atoms, state: dict | None, maxstep: float | None):
    """A fresh optimizer on ``work``, or one restored from ``state`` through ASE's own restart
    reader (``read``), at the state's step count (so ``steps`` bounds the whole run)."""
    opt = OPTIMIZERS[key](work, logfile=None, **({} if maxstep is None else {"maxstep": maxstep}))
    if state is not None and state["restart"] is not None:
        opt.load = lambda: state["restart"]
        opt.read()
        for k, v in state["extra"].items():
            setattr(opt, k, v)
    if state is not None:
        opt.nsteps = state["step"]
    return opt


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
    traj_path = Path(trajectory) if trajectory else None
    state = _resume_point(traj_path, key, work, restart)
    if state is not None:
        work.positions = state["positions"]
    n_fixed = 0
    if fix:
        mask = select(work, fix)
        n_fixed = int(mask.sum())
        work.set_constraint(FixAtoms(mask=mask))
    work.calc = calc
    opt = _optimizer(key, work, state, maxstep)
    dumped: dict = {}
    opt.dump = lambda data: dumped.__setitem__("data", data)  # ASE's restart data, kept in memory
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
    if traj_path is not None:  # after the frame: a saved state always has its frame on disk
        opt.attach(lambda: _save_state(_state_path(traj_path), opt, key, work, dumped), interval=1)
    try:
        converged = bool(opt.run(fmax=fmax, steps=max(steps - opt.nsteps, 0)))
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
                       n_fixed=n_fixed, restarted_from_step=state["step"] if state else 0,
                       trajectory=traj_path)
