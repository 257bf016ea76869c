"""Concurrent learning (seed 001, DP-GEN style): committee → MD exploration → selection → labelling.

Each iteration *k* (folder ``iter_KKK``):

1. **train** a committee of ``committee`` fine-tuned models (:func:`qdlab.workflows.finetune.finetune`,
   seeds ``seed + m``) on every labelled frame so far (train/val splits fixed per frame when it
   enters the data set); from iteration 1 each member starts from its predecessor (``warm_start``).
   Member 0 is scored on the validation frames: energy MAE (eV/atom) and force RMSE (eV/Å).
2. **explore**: MD (:func:`qdlab.workflows.md.run_md`) from every start structure with member 0;
   a run stopped by a guard (exploding temperature, an atom flying off) marks the model unstable.
   Every written frame gets the committee's maximum force deviation
   σ_max = max_i √(⟨|F_i − ⟨F_i⟩|²⟩_models) (eV/Å).
3. **converged?** validation errors below the targets and every MD run stable → stop.
4. **select** frames with ``trust_lo`` ≤ σ_max < ``trust_hi`` (below: already accurate; above:
   too far off to be trusted), at most ``max_select`` at random (seeded), skipping geometries
   already in the data set.
5. **label** them with the reference engine (:func:`qdlab.workflows.label.label`, resumable) and
   add them to the data set (``data.db``).

The loop ends when converged, after ``iterations`` iterations, when ``max_labels`` frames were
labelled, or when no frame lies between the trust levels. After every phase the iteration's
``state.json`` is replaced atomically; a rerun skips finished phases and resumes unfinished ones
(fine-tuning epochs, MD blocks and labelled frames all have their own checkpoints).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from qdlab.analysis.parity import ensure_cell, evaluate
from qdlab.engines.protocols import compute_forces
from qdlab.errors import QdlabError
from qdlab.store.db import frame_key, has_labels, provenance, read_frames, split_indices, write_frames
from qdlab.store.files import write_text
from qdlab.workflows.finetune import FinetuneSettings, finetune, model_calculator
from qdlab.workflows.label import label
from qdlab.workflows.md import MDError, MDSettings, run_md

#: seed 001: BAOAB Langevin, 1 fs, friction 0.5 ps⁻¹
DEFAULT_MD = MDSettings(ensemble="baoab", temperature_K=300.0, timestep_fs=1.0, steps=500, interval=10,
                        friction_ps=0.5)


@dataclass(frozen=True)
class LearnSettings:
    """Settings of a concurrent-learning run.

    committee: models per iteration (≥ 2); iterations: budget of iterations; max_labels: budget of
    reference calculations (None: no limit); trust_lo_eV_A / trust_hi_eV_A: selection window of the
    committee's max force deviation (eV/Å); max_select: frames labelled per iteration;
    energy_mae_target_eV_atom (seed 001: 1 meV/atom) and force_rmse_target_eV_A (None: not used):
    validation targets of member 0; val_fraction: share of new frames kept for validation;
    warm_start: members start from the previous iteration's; seed; md: exploration MD settings
    (its seed is varied per iteration and start); finetune: fine-tuning settings of every member
    (its seed is replaced by seed + member index).
    """

    committee: int = 4
    iterations: int = 5
    max_labels: int | None = None
    trust_lo_eV_A: float = 0.05
    trust_hi_eV_A: float = 0.30
    max_select: int = 20
    energy_mae_target_eV_atom: float = 1e-3
    force_rmse_target_eV_A: float | None = None
    val_fraction: float = 0.15
    warm_start: bool = True
    seed: int = 0
    md: MDSettings = DEFAULT_MD
    finetune: FinetuneSettings = field(default_factory=lambda: FinetuneSettings(epochs=10))

    def validate(self) -> None:
        if self.committee < 2:
            raise QdlabError("a committee needs at least 2 models")
        if self.iterations < 1 or self.max_select < 1:
            raise QdlabError("iterations and max_select must be ≥ 1")
        if not (0 <= self.trust_lo_eV_A < self.trust_hi_eV_A):
            raise QdlabError("trust levels must satisfy 0 ≤ lo < hi (eV/Å)")
        if not (0 < self.val_fraction < 1):
            raise QdlabError("val_fraction must be in (0, 1)")
        if self.max_labels is not None and self.max_labels < 0:
            raise QdlabError("max_labels must be ≥ 0")
        self.md.validate()
        self.finetune.validate()

    def signature(self) -> dict:
        """What must match for a resume (the budgets may grow between runs)."""
        d = json.loads(json.dumps(asdict(self), default=str))
        for k in ("iterations", "max_labels"):
            d.pop(k)
        d["finetune"].pop("max_seconds", None)
        d["finetune"].pop("device", None)
        return d


@dataclass(frozen=True)
class LearnResult:
    """Outcome of :func:`learn`: per-iteration states, why it stopped, the last committee."""

    out: Path
    converged: bool
    reason: str
    iterations: list[dict]
    models: list[Path]
    dataset: Path
    n_frames: int
    n_labelled_total: int

    def to_dict(self) -> dict:
        return {"out": str(self.out), "converged": self.converged, "reason": self.reason,
                "models": [str(p) for p in self.models], "dataset": str(self.dataset), "n_frames": self.n_frames,
                "n_labelled_total": self.n_labelled_total, "iterations": self.iterations}


def max_force_deviation(forces: np.ndarray) -> np.ndarray:
    """Committee max force deviation per frame (eV/Å) from forces (models, frames, atoms, 3):
    max over atoms of √(mean over models |F − mean F|²)."""
    f = np.asarray(forces, float)
    dev = np.sqrt(((f - f.mean(0, keepdims=True)) ** 2).sum(-1).mean(0))
    return dev.max(-1)


def committee_forces(calcs: Sequence[Calculator], frames: Sequence[Atoms]) -> np.ndarray:
    """Forces (models, frames, atoms, 3) in eV/Å; engines with batched forces get all frames in one batch."""
    return np.stack([np.stack(compute_forces(calc, frames, batch_size=max(1, len(frames)))) for calc in calcs])


def _write_json(path: Path, obj: dict) -> None:
    write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def _split_new(frames: list[Atoms], val_fraction: float, seed: int, at_least_one_val: bool) -> None:
    """Assign train/val to frames without one (seeded); with ``at_least_one_val`` never an empty val."""
    todo = [a for a in frames if a.info.get("split") not in ("train", "val", "test")]
    if not todo:
        return
    parts = split_indices(len(todo), (1 - val_fraction, val_fraction, 0.0), seed)
    val = set(parts["val"].tolist())
    if at_least_one_val and not val and len(todo) > 1:
        val = {int(parts["train"][-1])}
    for i, a in enumerate(todo):
        a.info["split"] = "val" if i in val else "train"


@dataclass
class _Run:
    """Mutable bookkeeping of a learning run: the iterations so far, the current committee, labels
    spent, and why it stops; written to ``learn.json`` after every iteration."""

    folder: Path
    signature: dict
    iterations: list[dict] = field(default_factory=list)
    models: list[Path] = field(default_factory=list)
    n_labelled_total: int = 0
    reason: str = "iteration budget spent"
    converged: bool = False

    def save_summary(self) -> None:
        _write_json(self.folder / "learn.json", {
            "signature": self.signature, "converged": self.converged, "reason": self.reason,
            "n_labelled_total": self.n_labelled_total, "models": [str(p) for p in self.models],
            "iterations": self.iterations})

    def end_iteration(self, state: dict, state_path: Path, stop_reason: str | None = None) -> None:
        """Write the iteration's state (marked done, with ``stop_reason`` if the loop stops) and the summary."""
        if stop_reason is not None:
            state.update(converged=self.converged, stop_reason=stop_reason, done=True)
        _write_json(state_path, state)
        self.iterations.append(state)
        self.save_summary()


def _prepare(folder: Path, initial: Sequence[Atoms], s: LearnSettings, signature: dict) -> Path:
    """Check that ``folder`` holds no run with other settings; seed ``data.db`` with the labelled
    initial frames (split into train/val) on the first call. Returns the data set's path."""
    folder.mkdir(parents=True, exist_ok=True)
    summary_path = folder / "learn.json"
    if summary_path.exists():
        old = json.loads(summary_path.read_text()).get("signature")
        if old != json.loads(json.dumps(signature, default=str)):
            raise QdlabError(f"{folder} holds a learning run with other settings, starts or reference; rerun with the "
                             "same ones or choose another folder")
    data_path = folder / "data.db"
    if not data_path.exists():
        frames = [a.copy() for a in initial if has_labels(a)]
        for a, src in zip(frames, [b for b in initial if has_labels(b)]):
            a.calc = src.calc
            provenance(a)
            a.info["iteration"] = -1
        if not frames:
            raise QdlabError("concurrent learning needs labelled initial frames (label some first)")
        _split_new(frames, s.val_fraction, s.seed, at_least_one_val=True)
        write_frames(data_path, frames)
    return data_path


def _train(s: LearnSettings, k: int, it_dir: Path, train: list[Atoms], val: list[Atoms], models: list[Path],
           note: Callable[[str, dict], None]) -> dict:
    """Phase 1: fine-tune the committee (warm-started from ``models``) and score member 0 on ``val``."""
    paths = []
    for m in range(s.committee):
        base = s.finetune.base
        if s.warm_start and k > 0 and models:
            base = str(models[m])
        ft = replace(s.finetune, seed=s.seed + m, base=base)
        note("train", {"iteration": k, "member": m, "n_train": len(train), "n_val": len(val)})
        res = finetune(train, val, it_dir / f"model_{m}", ft)
        if res.stopped_early:
            raise QdlabError(f"fine-tuning of member {m} stopped at its time budget; rerun to continue")
        paths.append(str(res.checkpoint))
    scores = evaluate(model_calculator(paths[0], device=s.finetune.device), val, label="member 0")
    return {"models": paths, "n_train": len(train), "n_val": len(val), "val_energy_mae_eV_atom": scores.energy.mae,
            "val_force_rmse_eV_A": scores.forces.rmse, "val_force_r2": scores.forces.r2}


def _explore(s: LearnSettings, k: int, it_dir: Path, starts: Sequence[Atoms], models: list[Path],
             note: Callable[[str, dict], None]) -> dict:
    """Phase 2: MD from every start with member 0; the committee's max force deviation per frame."""
    calcs = [model_calculator(str(p), device=s.finetune.device) for p in models]
    stable, errors, frames_meta, devs = True, [], [], []
    for j, start in enumerate(starts):
        traj = it_dir / f"md_{j}.extxyz"
        md = replace(s.md, seed=s.md.seed + 1000 * k + j)
        note("explore", {"iteration": k, "start": j, "steps": md.steps})
        try:
            run_md(start, calcs[0], md, trajectory=traj)
        except MDError as exc:
            stable = False
            errors.append(f"start {j}: {exc}")
        frames = read_frames(traj)[1:]  # frame 0 is the start structure
        if frames:
            devs.extend(max_force_deviation(committee_forces(calcs, frames)).tolist())
            frames_meta.extend((j, i + 1) for i in range(len(frames)))
    dev = np.asarray(devs)
    return {"stable": stable, "errors": errors, "frames": frames_meta, "max_deviation_eV_A": dev.tolist(),
            "accurate": int((dev < s.trust_lo_eV_A).sum()),
            "candidate": int(((dev >= s.trust_lo_eV_A) & (dev < s.trust_hi_eV_A)).sum()),
            "failed": int((dev >= s.trust_hi_eV_A).sum())}


def _select(s: LearnSettings, k: int, it_dir: Path, n_starts: int, ex: dict, data: list[Atoms],
            n_labelled_total: int) -> dict:
    """Phase 4: frames between the trust levels not yet in the data set, at most the budget (seeded)."""
    budget = s.max_select if s.max_labels is None else min(s.max_select, s.max_labels - n_labelled_total)
    dev = np.asarray(ex["max_deviation_eV_A"])
    cand = np.flatnonzero((dev >= s.trust_lo_eV_A) & (dev < s.trust_hi_eV_A))
    known = {a.info.get("frame_key") for a in data}
    trajs = {j: read_frames(it_dir / f"md_{j}.extxyz") for j in range(n_starts)}
    fresh = [int(c) for c in cand if frame_key(trajs[ex["frames"][c][0]][ex["frames"][c][1]]) not in known]
    rng = np.random.default_rng([s.seed, k])
    size = min(max(budget, 0), len(fresh))
    chosen = sorted(rng.choice(fresh, size=size, replace=False).tolist()) if fresh else []
    return {"indices": chosen, "n_candidates": len(cand), "n_fresh": len(fresh)}


def _label_new(s: LearnSettings, k: int, it_dir: Path, n_starts: int, state: dict, data_path: Path,
               reference: Calculator, reference_name: str, reference_settings: dict | None,
               note: Callable[[str, dict], None]) -> dict:
    """Phase 5: label the chosen frames with the reference engine and add the new ones to the data set."""
    trajs = {j: read_frames(it_dir / f"md_{j}.extxyz") for j in range(n_starts)}
    todo = []
    for c in state["select"]["indices"]:
        j, i = state["explore"]["frames"][c]
        a = trajs[j][i].copy()
        a.calc = None
        a.info = {"source": f"iter_{k:03d}/md_{j}.extxyz#{i}", "iteration": k,
                  "max_deviation_eV_A": state["explore"]["max_deviation_eV_A"][c]}
        todo.append(a)
    note("label", {"iteration": k, "n": len(todo)})
    res = label(todo, reference, it_dir / "labels.db", engine=reference_name, settings=reference_settings)
    new = read_frames(it_dir / "labels.db", labelled=True)
    known = {a.info.get("frame_key") for a in read_frames(data_path)}
    new = [a for a in new if a.info["frame_key"] not in known]
    _split_new(new, s.val_fraction, s.seed + 7919 * (k + 1), at_least_one_val=False)
    if new:
        write_frames(data_path, new, append=True)
    return {"n_labelled": res.n_labelled, "n_failed": res.n_failed, "failed": res.failed, "n_added": len(new)}


def _resume_done(run: _Run, state: dict) -> bool:
    """Take over a finished iteration's state; True if the loop stopped there."""
    run.iterations.append(state)
    run.models = [Path(p) for p in state["train"]["models"]]
    run.n_labelled_total += int(state.get("label", {}).get("n_labelled", 0))
    if state.get("converged") or state.get("stop_reason"):
        run.converged = bool(state.get("converged"))
        run.reason = state.get("stop_reason", "converged")
        return True
    return False


def learn(initial: Sequence[Atoms], starts: Sequence[Atoms], reference: Calculator, out: str | os.PathLike,
          settings: LearnSettings | None = None, *, reference_name: str = "reference",
          reference_settings: dict | None = None,
          progress: Callable[[str, dict], None] | None = None) -> LearnResult:
    """Run concurrent learning into the folder ``out`` (resumable; see module docstring).

    ``initial``: labelled frames to start from (their ``split`` is kept; test frames are never
    trained on); ``starts``: MD starting structures; ``reference``: the reference engine (its
    name and settings recorded as provenance). ``progress(event, info)`` reports each phase.
    """
    s = settings or LearnSettings()
    s.validate()
    if not starts:
        raise QdlabError("give at least one MD starting structure")
    start_keys = [frame_key(a) for a in starts]
    if s.finetune.model == "chgnet":  # a graph potential needs a box around cell-less clusters
        starts = [ensure_cell(a, s.finetune.vacuum_A) for a in starts]
    folder = Path(out)
    note = progress or (lambda event, info: None)
    run = _Run(folder, s.signature() | {"reference": reference_name, "starts": start_keys})
    data_path = _prepare(folder, initial, s, run.signature)
    for k in range(s.iterations):
        it_dir = folder / f"iter_{k:03d}"
        it_dir.mkdir(exist_ok=True)
        state_path = it_dir / "state.json"
        state = json.loads(state_path.read_text()) if state_path.exists() else {"iteration": k}
        if state.get("done"):
            if _resume_done(run, state):
                break
            continue
        data = read_frames(data_path, labelled=True)
        if "train" not in state:
            state["train"] = _train(s, k, it_dir, [a for a in data if a.info.get("split") == "train"],
                                    [a for a in data if a.info.get("split") == "val"], run.models, note)
            _write_json(state_path, state)
        run.models = [Path(p) for p in state["train"]["models"]]
        note("trained", {"iteration": k} | state["train"])
        if "explore" not in state:
            state["explore"] = _explore(s, k, it_dir, starts, run.models, note)
            _write_json(state_path, state)
        ex, tr = state["explore"], state["train"]
        note("explored", {"iteration": k} | {key: ex[key] for key in ("stable", "accurate", "candidate", "failed")})
        met = tr["val_energy_mae_eV_atom"] <= s.energy_mae_target_eV_atom and (
            s.force_rmse_target_eV_A is None or tr["val_force_rmse_eV_A"] <= s.force_rmse_target_eV_A)
        if met and ex["stable"]:  # 3. converged
            run.converged, run.reason = True, "error target met and MD stable"
            run.end_iteration(state, state_path, run.reason)
            break
        if "select" not in state:
            state["select"] = _select(s, k, it_dir, len(starts), ex, data, run.n_labelled_total)
            _write_json(state_path, state)
        if not state["select"]["indices"]:
            run.reason = ("label budget spent" if s.max_labels is not None and run.n_labelled_total >= s.max_labels
                          else "no new frame between the trust levels (lower trust_lo or explore longer)")
            run.end_iteration(state, state_path, run.reason)
            break
        if "label" not in state:
            state["label"] = _label_new(s, k, it_dir, len(starts), state, data_path, reference, reference_name,
                                        reference_settings, note)
        run.n_labelled_total += int(state["label"]["n_labelled"])
        state["done"] = True
        run.end_iteration(state, state_path)
        note("labelled", {"iteration": k} | state["label"])
        if s.max_labels is not None and run.n_labelled_total >= s.max_labels:
            run.reason = "label budget spent"
            break
    run.save_summary()
    return LearnResult(out=folder, converged=run.converged, reason=run.reason, iterations=run.iterations,
                       models=run.models, dataset=data_path, n_frames=len(read_frames(data_path)),
                       n_labelled_total=run.n_labelled_total)
