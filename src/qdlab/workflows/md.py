"""Molecular dynamics of nanocrystals: NVT Langevin, BAOAB Langevin, Bussi/CSVR and NVE (SCIENCE.md §5).

Any engine (an ASE calculator), optionally with D3. Frozen core/shell by the builder's ``depth``
labels or any label selection. Frames are written every ``interval`` steps to an extended XYZ
(default, keeps every per-atom label) or ASE ``.traj`` file with positions, momenta, energy,
forces and ``info`` = step, time_fs, temperature_K, epot_eV, ekin_eV, etot_eV. After every frame
a checkpoint (``<trajectory>.ckpt.npz``: positions, momenta, random-generator state, thermostat
state, per-step temperature sums) is replaced atomically, so a killed run rerun with the same
command continues where the last frame was written: no frame is lost or duplicated and, because
the random state is restored, the continued run is the uninterrupted one.

Units: temperature K, time step fs, friction ps⁻¹, CSVR coupling time fs, energies eV.

Degrees of freedom used for the temperature: 3 N_free, minus 3 for the centre of mass held fixed
(ASE ``FixCom``, all ensembles), minus 3 more for a free (non-periodic) cluster whose angular
momentum is conserved at zero (NVE, CSVR). Frozen atoms anchor the cluster instead of FixCom.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.calculators.singlepoint import SinglePointCalculator
from ase.constraints import FixAtoms, FixCom
from ase.md.velocitydistribution import Stationary, ZeroRotation, thermalize_momenta

from qdlab.build.gate import check_structure
from qdlab.build.select import select
from qdlab.errors import QdlabError
from qdlab.store.files import read_complete_frames, write_npz
from qdlab.store.frames import append_frame, keep_frames, trajectory_format
from qdlab.store.locks import output_lock

ENSEMBLES = ("langevin", "baoab", "csvr", "nve")


class MDError(QdlabError):
    """A run stopped by a guard (non-finite forces, temperature runaway, an atom flying off)."""


@dataclass(frozen=True)
class MDSettings:
    """Settings of one MD run (all that defines the trajectory; checked on resume).

    ensemble: langevin | baoab | csvr | nve; temperature_K: target (NVT) or initial (NVE) temperature;
    timestep_fs; steps: total steps; interval: steps between written frames; friction_ps: Langevin
    friction (ps⁻¹; seed 000: 20, seed 001 BAOAB: 0.5); taut_fs: CSVR coupling time (fs);
    freeze: ``core:X`` (inorganic atoms X unit cells or deeper below the surface), ``shell:X``
    (inorganic atoms in the outer X unit cells; X a multiple of 0.5) or a label selection such as
    ``depth>=2`` or ``element=Pb``; seed: random seed for velocities and thermostat.
    """

    ensemble: str = "langevin"
    temperature_K: float = 300.0
    timestep_fs: float = 1.0
    steps: int = 1000
    interval: int = 50
    friction_ps: float = 20.0
    taut_fs: float = 100.0
    freeze: str | None = None
    seed: int = 0

    def validate(self) -> None:
        if self.ensemble not in ENSEMBLES:
            raise QdlabError(f"ensemble must be one of {', '.join(ENSEMBLES)}, not {self.ensemble!r}")
        if not (self.temperature_K >= 0 and math.isfinite(self.temperature_K)):
            raise QdlabError(f"temperature must be ≥ 0 K, not {self.temperature_K}")
        if self.ensemble != "nve" and self.temperature_K <= 0:
            raise QdlabError(f"{self.ensemble} needs a temperature > 0 K")
        if not (0 < self.timestep_fs <= 10):
            raise QdlabError(f"time step must be in (0, 10] fs, not {self.timestep_fs}")
        if self.steps < 0 or self.interval < 1:
            raise QdlabError("steps must be ≥ 0 and interval ≥ 1")
        if self.friction_ps <= 0 or self.taut_fs <= 0:
            raise QdlabError("friction and CSVR coupling time must be > 0")

    def signature(self) -> dict:
        """What must match for a resume (steps may grow: a finished run can be extended)."""
        d = asdict(self)
        d.pop("steps")
        return d


@dataclass
class MDResult:
    """Summary of a run: temperatures in K, energies in eV, drift in eV/atom/ps."""

    trajectory: str
    ensemble: str
    steps: int
    n_frames: int
    n_atoms: int
    n_frozen: int
    dof: int
    target_temperature_K: float
    mean_temperature_K: float
    std_temperature_K: float
    energy_drift_eV_atom_ps: float | None
    max_energy_deviation_eV_atom: float | None
    seconds: float
    steps_per_second: float
    restarted_from_step: int
    frames: dict = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("frames")
        return d


def freeze_mask(atoms: Atoms, spec: str | None) -> np.ndarray:
    """Atoms to freeze: ``core:X`` / ``shell:X`` (X in unit cells, multiples of 0.5) or a selection."""
    n = len(atoms)
    if not spec:
        return np.zeros(n, bool)
    kind, _, value = spec.partition(":")
    if kind in ("core", "shell") and value:
        if "depth" not in atoms.arrays:
            from qdlab.build.perceive import perceive

            labelled, seen = perceive(atoms)  # a structure made elsewhere: depth from its lattice
            if seen.lattice_A is None:
                raise QdlabError(f"--freeze {spec} needs depth labels; none in this structure and no "
                                 "nanocrystal lattice recognised in it")
            atoms = labelled
        try:
            cells = float(value)
        except ValueError:
            raise QdlabError(f"freeze depth must be a number of unit cells, not {value!r}") from None
        halves = cells * 2
        if cells <= 0 or abs(halves - round(halves)) > 1e-9:
            raise QdlabError(f"freeze depth must be a positive multiple of 0.5 unit cells, not {value}")
        depth = atoms.arrays["depth"]
        inorganic = depth >= 0
        mask = inorganic & ((depth >= round(halves)) if kind == "core" else (depth < round(halves)))
    else:
        mask = select(atoms, spec)
    if mask.all():
        raise QdlabError(f"--freeze {spec} freezes every atom")
    return mask


def degrees_of_freedom(atoms: Atoms, ensemble: str, n_frozen: int) -> int:
    """Kinetic degrees of freedom for the temperature (see module docstring)."""
    dof = 3 * (len(atoms) - n_frozen)
    if n_frozen == 0:
        dof -= 3  # FixCom
        if ensemble in ("nve", "csvr") and not atoms.pbc.any():
            dof -= 3
    return max(dof, 1)


def _make_dynamics(work: Atoms, s: MDSettings, rng: np.random.Generator, dof: int):
    dt = s.timestep_fs * units.fs
    if s.ensemble == "langevin":
        from ase.md.langevin import Langevin

        return Langevin(work, dt, temperature_K=s.temperature_K, friction=s.friction_ps / (1000 * units.fs),
                        fixcm=False, rng=rng)
    if s.ensemble == "baoab":
        from ase.md.langevinbaoab import LangevinBAOAB

        return LangevinBAOAB(work, dt, temperature_K=s.temperature_K, T_tau=1000 * units.fs / s.friction_ps, rng=rng)
    if s.ensemble == "csvr":
        from ase.md.bussi import Bussi

        dyn = Bussi(work, dt, temperature_K=s.temperature_K, taut=s.taut_fs * units.fs, rng=rng)
        # ASE targets 3N/2 kT; the conserved momenta leave `dof` thermal degrees of freedom
        dyn.ndof = dof
        dyn.target_kinetic_energy = 0.5 * dyn.temp * dof
        return dyn
    from ase.md.verlet import VelocityVerlet

    return VelocityVerlet(work, dt)


def _ckpt_path(trajectory: Path) -> Path:
    return trajectory.with_name(trajectory.name + ".ckpt.npz")


def _save_ckpt(path: Path, state: dict) -> None:
    """Replace the checkpoint atomically (written, flushed to disk, then renamed)."""
    write_npz(path, **{k: (np.asarray(json.dumps(v)) if isinstance(v, dict) else np.asarray(v))
                       for k, v in state.items()})


_CKPT_KEYS = ("signature", "n_frames", "step", "positions", "momenta", "rng", "sums", "transferred")


def _load_ckpt(path: Path, n_atoms: int) -> dict:
    """The checkpoint's arrays (a truncated or corrupted file is a one-line QdlabError)."""
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}  # reading every member checks each CRC
        missing = [k for k in _CKPT_KEYS if k not in data]
        if missing:
            raise KeyError(", ".join(missing))
        data["signature"] = json.loads(str(data["signature"]))
        data["rng"] = json.loads(str(data["rng"]))
        if data["positions"].shape != (n_atoms, 3) or not np.isfinite(data["positions"]).all():
            raise ValueError("positions do not fit the structure")
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise QdlabError(f"checkpoint {path} is damaged ({type(exc).__name__}: {' '.join(str(exc).split())[:80]}); "
                         "rerun with --overwrite to start afresh") from None
    return data


@dataclass
class _Run:
    """Mutable state of one MD run (the integrator's atoms, bookkeeping, checkpoint paths)."""

    s: MDSettings
    traj: Path
    ckpt: Path
    work: Atoms
    mask: np.ndarray
    dof: int
    t_max: float
    rng: np.random.Generator
    signature: dict
    start_step: int = 0
    sums: np.ndarray = field(default_factory=lambda: np.zeros(3))  # n, ΣT, ΣT² over steps after 0
    transferred: float = 0.0
    records: dict = field(default_factory=lambda: {k: [] for k in RECORD_KEYS})
    dyn: object = None

    @property
    def n_frozen(self) -> int:
        return int(self.mask.sum())


RECORD_KEYS = ("step", "time_fs", "temperature_K", "epot_eV", "ekin_eV", "etot_eV")


def _setup(atoms: Atoms, s: MDSettings, traj: Path, max_temperature_K: float | None) -> _Run:
    """Validated settings and structure → the working copy with its constraint and DOF."""
    check_structure(atoms, what="MD input")
    work = atoms.copy()
    work.constraints = []
    mask = freeze_mask(work, s.freeze)
    dof = degrees_of_freedom(work, s.ensemble, int(mask.sum()))
    # frozen atoms anchor the cluster; otherwise the centre of mass is held fixed (FixCom)
    work.set_constraint(FixAtoms(mask=mask) if mask.any() else FixCom())
    return _Run(s=s, traj=traj, ckpt=_ckpt_path(traj), work=work, mask=mask, dof=dof,
                t_max=max_temperature_K or 5 * max(s.temperature_K, 100.0), rng=np.random.default_rng(s.seed),
                signature=s.signature() | {"numbers": work.numbers.tolist()})


def _check_signature(run: _Run, z: dict) -> None:
    now = json.loads(json.dumps(run.signature))  # as stored: tuples become lists
    if z["signature"] != now:
        diff = [k for k in now if z["signature"].get(k) != now[k]]
        raise QdlabError(f"checkpoint {run.ckpt.name} was written with other settings ({', '.join(diff)}); "
                         "rerun with the same settings or delete it (--overwrite)")


def _resume(run: _Run) -> None:
    """Continue from the checkpoint: same settings, exactly its frames kept, state restored."""
    z = _load_ckpt(run.ckpt, len(run.work))
    _check_signature(run, z)
    n_frames = int(z["n_frames"])
    # frames written after the checkpoint (or one cut off mid-write) are dropped: the run
    # continues from the checkpoint and writes them again, identically
    frames = keep_frames(run.traj, n_frames)
    steps = z.get("rec_step")
    if steps is not None and len(steps) == n_frames and n_frames and frames[-1].info.get("step") != int(steps[-1]):
        raise QdlabError(f"{run.traj} does not end at the checkpoint's step {int(steps[-1])}; "
                         "rerun with --overwrite to start afresh")
    run.work.positions = z["positions"]
    run.work.set_momenta(z["momenta"], apply_constraint=False)
    run.rng.bit_generator.state = z["rng"]
    run.start_step = int(z["step"])
    run.sums = z["sums"].astype(float).copy()
    run.transferred = float(z["transferred"])
    for k in RECORD_KEYS:
        run.records[k] = z[f"rec_{k}"].tolist()


def _fresh_start(run: _Run, restart: bool) -> None:
    """Remove (``--overwrite``) or refuse stale output, then draw the initial velocities."""
    for p in (run.traj, run.ckpt):
        if p.exists():
            if restart:
                raise QdlabError(f"{p} exists without a checkpoint of this run; delete it or pass --overwrite")
            p.unlink()
    s, work = run.s, run.work
    if s.temperature_K <= 0:
        return
    thermalize_momenta(work, temperature_K=s.temperature_K, rng=run.rng)
    p = work.get_momenta()
    p[run.mask] = 0.0
    work.set_momenta(p, apply_constraint=False)
    if run.n_frozen == 0:
        Stationary(work)
        if not work.pbc.any():
            ZeroRotation(work)
    ekin = work.get_kinetic_energy()
    if ekin > 0:  # start exactly at the target temperature
        work.set_momenta(work.get_momenta() * math.sqrt(0.5 * run.dof * units.kB * s.temperature_K / ekin),
                         apply_constraint=False)


def _write_state(run: _Run, step: int) -> None:
    """The checkpoint of the run after ``step`` with the frames recorded so far."""
    work = run.work
    _save_ckpt(run.ckpt, {"signature": run.signature, "n_frames": len(run.records["step"]), "step": step,
                          "positions": work.positions, "momenta": work.get_momenta(),
                          "rng": run.rng.bit_generator.state, "sums": run.sums,
                          "transferred": getattr(run.dyn, "transferred_energy", 0.0),
                          **{f"rec_{k}": np.asarray(v) for k, v in run.records.items()}})


def _snapshot(run: _Run, step: int, escape_A: float) -> dict:
    """Write the frame of ``step``, then the checkpoint that counts it; guard against a break-up."""
    work, s = run.work, run.s
    epot = float(work.get_potential_energy())
    forces = work.get_forces(apply_constraint=False)
    if not (math.isfinite(epot) and np.isfinite(forces).all()):
        raise MDError(f"non-finite energy or forces at step {step}; check the structure and engine")
    ekin = float(work.get_kinetic_energy())
    info = {"step": step, "time_fs": step * s.timestep_fs, "temperature_K": 2 * ekin / (run.dof * units.kB),
            "epot_eV": epot, "ekin_eV": ekin, "etot_eV": epot + ekin}
    frame = work.copy()
    frame.constraints = []
    frame.calc = SinglePointCalculator(frame, energy=epot, forces=forces)
    frame.info.update(info)
    append_frame(run.traj, frame)
    for k in RECORD_KEYS:
        run.records[k].append(info[k])
    _write_state(run, step)
    if not work.pbc.any() and len(work) > 1:
        from scipy.spatial import cKDTree

        d, _ = cKDTree(work.positions).query(work.positions, k=2)
        far = np.flatnonzero(d[:, 1] > escape_A)
        if far.size:
            raise MDError(f"atom {far[0]} ({work.symbols[far[0]]}) is {d[far[0], 1]:.1f} Å from every other "
                          f"atom at step {step}: the cluster is falling apart (time step too large?)")
    return info


def _integrate(run: _Run, escape_A: float, progress: Callable[[int, int, dict], None] | None) -> None:
    """Steps ``start_step+1 … steps`` with the guards; a frame and checkpoint every ``interval``."""
    s, work, dyn = run.s, run.work, run.dyn

    def frame(step: int) -> None:
        info = _snapshot(run, step, escape_A)
        if progress:
            progress(step, s.steps, info)

    if not run.records["step"]:   # frame 0 not written yet (a fresh run, or one killed before it)
        frame(0)
    for step in range(run.start_step + 1, s.steps + 1):
        dyn.step()
        dyn.nsteps += 1
        # forces of this step are cached by the calculator: checking them costs no engine call
        if not np.isfinite(work.get_forces(apply_constraint=False)).all():
            raise MDError(f"non-finite forces at step {step}; check the structure and engine")
        temp = 2 * work.get_kinetic_energy() / (run.dof * units.kB)
        if not math.isfinite(temp) or temp > run.t_max:
            raise MDError(f"temperature {temp:.0f} K at step {step} exceeds {run.t_max:.0f} K: the run is exploding "
                          "(time step too large or bad structure)")
        run.sums += (1.0, temp, temp * temp)
        if step % s.interval == 0 or step == s.steps:
            frame(step)


def _summary(run: _Run, seconds: float, frozen_ref: np.ndarray) -> MDResult:
    """Temperatures, NVE drift and timing of the finished run."""
    s, work, records = run.s, run.work, run.records
    if run.n_frozen and np.abs(work.positions[run.mask] - frozen_ref).max() > 0:
        raise MDError("frozen atoms moved: the constraint was not honoured by the integrator")
    n, st, st2 = run.sums
    mean_t = st / n if n else float(records["temperature_K"][0])
    std_t = math.sqrt(max(st2 / n - mean_t ** 2, 0.0)) if n else 0.0
    drift = dev = None
    if s.ensemble == "nve" and len(records["step"]) > 2:
        t_ps = np.asarray(records["time_fs"]) / 1000
        e = np.asarray(records["etot_eV"]) / len(work)
        drift = float(np.polyfit(t_ps, e, 1)[0])
        dev = float(np.abs(e - e[0]).max())
    done = s.steps - run.start_step
    return MDResult(trajectory=str(run.traj), ensemble=s.ensemble, steps=s.steps, n_frames=len(records["step"]),
                    n_atoms=len(work), n_frozen=run.n_frozen, dof=run.dof, target_temperature_K=s.temperature_K,
                    mean_temperature_K=float(mean_t), std_temperature_K=float(std_t),
                    energy_drift_eV_atom_ps=drift, max_energy_deviation_eV_atom=dev, seconds=seconds,
                    steps_per_second=done / seconds if seconds > 0 and done else 0.0,
                    restarted_from_step=run.start_step, frames={k: np.asarray(v) for k, v in records.items()})


def preflight(atoms: Atoms, settings: MDSettings, trajectory: str | os.PathLike, restart: bool = True) -> None:
    """Every refusal :func:`run_md` would make before its first step, without running anything:
    settings, structure, trajectory format, a live writer holding the lock, a damaged or foreign
    checkpoint, stale output without a checkpoint (a CLI calls this before it draws progress)."""
    from qdlab.store.locks import lock_path

    settings.validate()
    traj = Path(trajectory)
    trajectory_format(traj)
    run = _setup(atoms, settings, traj, None)
    if lock_path(traj).exists():
        with output_lock(traj, what="trajectory"):  # refused here if a live process holds it
            pass
    if run.ckpt.exists() and restart:
        _check_signature(run, _load_ckpt(run.ckpt, len(run.work)))
    elif restart and traj.exists():
        raise QdlabError(f"{traj} exists without a checkpoint of this run; delete it or pass --overwrite")


def run_md(atoms: Atoms, calc: Calculator, settings: MDSettings | None = None, *,
           trajectory: str | os.PathLike = "md.extxyz", restart: bool = True,
           progress: Callable[[int, int, dict], None] | None = None,
           max_temperature_K: float | None = None, escape_A: float = 6.0, **kwargs) -> MDResult:
    """Run MD of ``atoms`` (a copy) with ``calc``; settings as :class:`MDSettings` or keywords.

    Guards stop the run with :class:`MDError` on non-finite energy/forces, an instantaneous
    temperature above ``max_temperature_K`` (default 5 × max(target, 100 K)) and an atom more than
    ``escape_A`` Å from every other atom (checked at each frame, non-periodic clusters only).
    ``progress(step, total, info)`` is called at every frame with the frame's info. The trajectory
    is locked for the run (:func:`qdlab.store.locks.output_lock`): a second writer is refused.
    """
    s = settings or MDSettings(**kwargs)
    if settings is not None and kwargs:
        s = MDSettings(**(asdict(settings) | kwargs))
    s.validate()
    traj = Path(trajectory)
    trajectory_format(traj)
    traj.parent.mkdir(parents=True, exist_ok=True)
    run = _setup(atoms, s, traj, max_temperature_K)
    with output_lock(traj, what="trajectory"):
        fresh = not (run.ckpt.exists() and restart)
        if fresh:
            _fresh_start(run, restart)
        else:
            _resume(run)
        frozen_ref = atoms.positions[run.mask].copy()
        run.work.calc = calc
        run.dyn = _make_dynamics(run.work, s, run.rng, run.dof)
        if fresh:   # the start state (velocities drawn, no frame yet): a kill from here on resumes
            _write_state(run, 0)
        if hasattr(run.dyn, "transferred_energy"):
            run.dyn.transferred_energy = run.transferred
        t0 = time.perf_counter()
        _integrate(run, escape_A, progress)
        return _summary(run, time.perf_counter() - t0, frozen_ref)


def temperature_series(atoms: Atoms, calc: Calculator, temperatures: Sequence[float], out: str | os.PathLike,
                       settings: MDSettings | None = None, *, fmt: str = "extxyz", chain: bool = False,
                       progress: Callable[[float, int, int, dict], None] | None = None, **kwargs) -> list[MDResult]:
    """One run per temperature into ``out/T0010K/md.<fmt>`` (each resumable).

    ``chain=True`` starts each run from the last frame of the previous temperature (heating or
    cooling protocol); otherwise every run starts from ``atoms`` (independent, reproducible).
    """
    if not temperatures:
        raise QdlabError("give at least one temperature")
    base = settings or MDSettings(**kwargs)
    out = Path(out)
    results = []
    start = atoms
    for t in temperatures:
        s = MDSettings(**(asdict(base) | {"temperature_K": float(t)}))
        path = out / f"T{t:06.1f}K".replace(".", "p") / f"md.{fmt}"
        cb = (lambda step, total, info, _t=t: progress(_t, step, total, info)) if progress else None
        res = run_md(start, calc, s, trajectory=path, progress=cb)
        results.append(res)
        if chain:
            last = read_complete_frames(path)[-1]
            start = atoms.copy()
            start.positions = last.positions
    return results
