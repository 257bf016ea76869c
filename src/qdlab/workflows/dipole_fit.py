"""Training the latent-charge dipole model on labelled dipoles (``info["dipole_eA"]`` from the
labelling workflow, e.g. GFN-xTB), with a seeded train/validation/test split, the best model by
validation RMSE saved after every improvement (atomic write) and a resumable training state.

Parity metrics on the held-out test frames: RMSE of the dipole components (D) overall and per
component, against the RMS of the reference components (seed 001: 0.40 D vs ~4.9 D), and the same
RMSE for fixed-charge baselines on the same frames. Units: D (1 D = ``ase.units.Debye`` e·Å).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms, units

from qdlab.engines.dipole_model import LatentChargeNet, LearnedDipole, _require_torch
from qdlab.errors import QdlabError
from qdlab.store.files import atomic_path

#: ``kind`` of the training resume point (:func:`resume_path`)
RESUME_KIND = "qdlab-dipole-fit-resume"


@dataclass(frozen=True)
class DipoleFitSettings:
    """Model size (cutoff Å, radial functions, hidden width), optimiser (full-batch Adam, lr cosine-annealed
    to lr/100 over ``epochs``, early stop after ``patience`` epochs without a better validation RMSE) and the seeded split (validation and test fractions)."""

    cutoff_A: float = 6.0
    n_radial: int = 16
    hidden: int = 64
    epochs: int = 600
    lr: float = 3e-3
    patience: int = 300
    val_fraction: float = 0.15
    test_fraction: float = 0.2
    seed: int = 0
    weight_decay: float = 0.0


@dataclass(frozen=True)
class DipoleFitResult:
    """Held-out metrics (D) and the parity data (``reference_D``/``predicted_D`` (F_test, 3));
    ``seconds`` the training wall time summed over all sessions, ``resumed_from_epoch`` the epochs
    found in the resume point when this call started (0: a fresh run)."""

    model: str
    n_train: int
    n_val: int
    n_test: int
    rmse_D: float
    rmse_component_D: list[float]
    rms_dipole_D: float
    baseline_rmse_D: dict[str, float]
    best_epoch: int
    epochs_run: int
    seconds: float
    resumed_from_epoch: int = 0
    test_indices: list[int] = field(default_factory=list)
    reference_D: np.ndarray = field(default=None, repr=False)
    predicted_D: np.ndarray = field(default=None, repr=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("reference_D")
        d.pop("predicted_D")
        return d


def frame_dipoles(frames: Sequence[Atoms]) -> np.ndarray:
    """Reference dipoles (F, 3) e·Å from ``info["dipole_eA"]`` (labelling) or a calculator result."""
    out = []
    for k, a in enumerate(frames):
        if "dipole_eA" in a.info:
            out.append(np.asarray(a.info["dipole_eA"], float))
        elif a.calc is not None and "dipole" in getattr(a.calc, "results", {}):
            out.append(np.asarray(a.calc.results["dipole"], float))
        else:
            raise QdlabError(f"frame {k} has no dipole label (label with an engine that gives dipoles, e.g. xtb)")
    return np.array(out)


def split_indices(n: int, val_fraction: float, test_fraction: float, seed: int) -> tuple[np.ndarray, ...]:
    """Seeded (train, val, test) index arrays; each of val and test gets at least one frame."""
    if n < 5:
        raise QdlabError(f"a dipole model needs ≥ 5 labelled frames, got {n}")
    perm = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(round(test_fraction * n)))
    n_val = max(1, int(round(val_fraction * n)))
    return np.sort(perm[n_test + n_val:]), np.sort(perm[n_test:n_test + n_val]), np.sort(perm[:n_test])


def _tensors(frames: Sequence[Atoms], net: LatentChargeNet):
    import torch

    first = frames[0]
    if any(not np.array_equal(a.numbers, first.numbers) for a in frames):
        raise QdlabError("the dipole data set must hold frames of one system (same atoms in the same order)")
    pos = torch.as_tensor(np.stack([a.positions for a in frames]))
    return pos, net.species(first.numbers), torch.as_tensor(first.get_masses()), float(first.info.get("charge", 0))


def resume_path(out: str | os.PathLike) -> Path:
    """The resume point beside the model file: ``mu.pt`` → ``mu.resume.pt``."""
    p = Path(out)
    return p.with_name(f"{p.stem}.resume{p.suffix}")


def _data_key(frames: Sequence[Atoms], ref: np.ndarray) -> str:
    """Hash of what the training sees: numbers, positions, total charge and dipole labels."""
    h = hashlib.sha256(np.ascontiguousarray(frames[0].numbers, np.int64).tobytes())
    h.update(np.float64(frames[0].info.get("charge", 0)).tobytes())
    h.update(np.ascontiguousarray(np.stack([a.positions for a in frames]), np.float64).tobytes())
    h.update(np.ascontiguousarray(ref, np.float64).tobytes())
    return h.hexdigest()[:32]


def _load_resume(path: Path, signature: dict) -> dict | None:
    """The resume point of an earlier run with the same data and settings (None when there is none)."""
    import torch

    if not path.exists():
        return None
    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - a foreign or damaged file: one line
        raise QdlabError(f"cannot read the training resume point {path} ({type(exc).__name__}); "
                         "remove it or pass --overwrite") from None
    if not isinstance(ck, dict) or ck.get("kind") != RESUME_KIND:
        raise QdlabError(f"{path} is not a dipole-training resume point; remove it or choose another -o")
    old = ck.get("signature", {})
    if old != signature:
        diff = sorted(k for k in set(old) | set(signature) if old.get(k) != signature.get(k))
        raise QdlabError(f"{path} resumes a training with other data or settings ({', '.join(diff)}); "
                         "rerun with the same ones, choose another -o or pass --overwrite")
    return ck


def _save_resume(path: Path, net, opt, sched, state: dict) -> None:
    """Replace the resume point atomically: weights, optimiser, scheduler, RNG, best so far, history."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(state | {"kind": RESUME_KIND, "net": net.state_dict(), "opt": opt.state_dict(),
                            "sched": sched.state_dict(), "rng": torch.get_rng_state()}, tmp)


def _setup(frames: list[Atoms], ref: np.ndarray, tr: np.ndarray, s: DipoleFitSettings):
    """Seeded network with descriptors standardised on the training frames, AdamW and its cosine schedule."""
    import torch

    torch.manual_seed(s.seed)
    elements = sorted(set(frames[0].get_chemical_symbols()))
    net = LatentChargeNet(elements, s.cutoff_A, s.n_radial, s.hidden)
    pos, species, masses, q = _tensors(frames, net)
    with torch.no_grad():  # standardise the descriptors on the training frames
        x = net.descriptors(pos[tr], species).reshape(-1, net.mean.numel())
        net.mean.copy_(x.mean(0))
        sd = x.std(0)
        # a feature (nearly) constant in training is centred but not scaled: dividing by a tiny std
        # would make the charges jump for displacements the data never showed (huge Born charges)
        net.std.copy_(torch.where(sd > 1e-3, sd, torch.ones_like(sd)))
    opt = torch.optim.AdamW(net.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=s.epochs, eta_min=s.lr / 100)
    return net, opt, sched, (pos, species, masses, q, torch.as_tensor(ref))


def _train(net, opt, sched, data, tr, va, s: DipoleFitSettings, out: Path, state: dict,
           progress: Callable[[int, int, float], None] | None) -> None:
    """Full-batch epochs from ``state["epoch"]`` until ``s.epochs`` or early stop; after each epoch the
    resume point is replaced (then the best model, when it improved), then ``progress`` is called."""
    import torch

    pos, species, masses, q, y = data
    model = LearnedDipole(net, name=out.stem)
    while not state["finished"]:
        t0 = time.perf_counter()
        epoch = state["epoch"] + 1
        net.train()
        opt.zero_grad()
        loss = ((net(pos[tr], species, masses, q) - y[tr]) ** 2).mean()
        loss.backward()
        opt.step()
        net.eval()
        with torch.no_grad():
            val = float(torch.sqrt(((net(pos[va], species, masses, q) - y[va]) ** 2).mean())) / units.Debye
        lr = float(opt.param_groups[0]["lr"])
        sched.step()
        improved = val < state["best"]
        if improved:
            state.update(best=val, best_epoch=epoch, best_net={k: v.clone() for k, v in net.state_dict().items()})
        state["history"].append({"epoch": epoch, "train_rmse_D": float(loss.detach()) ** 0.5 / units.Debye,
                                 "val_rmse_D": val, "lr": lr})
        state.update(epoch=epoch, finished=epoch >= s.epochs or epoch - state["best_epoch"] >= s.patience,
                     seconds=state["seconds"] + time.perf_counter() - t0)  # training time over all sessions
        _save_resume(resume_path(out), net, opt, sched, state)
        if improved:  # a usable model at every improvement, also when the run is cut short
            model.metrics = {"val_rmse_D": val, "epoch": epoch, "settings": asdict(s)}
            model.save(out)
        if progress:
            progress(epoch, s.epochs, val)


def fit_dipole_model(frames: Sequence[Atoms], out: str | os.PathLike, settings: DipoleFitSettings | None = None, *,
                     baselines: dict[str, Callable[[Atoms, np.ndarray], np.ndarray]] | None = None,
                     progress: Callable[[int, int, float], None] | None = None,
                     restart: bool = False) -> DipoleFitResult:
    """Train a latent-charge model on ``frames`` (with dipole labels) and save the best one to ``out``.

    After every epoch a resume point (``out`` → ``*.resume.pt``: weights, AdamW and scheduler state,
    RNG, best so far, history) replaces the previous one atomically; a rerun with the same data and
    settings continues from it and ends with the model of an uninterrupted run (full-batch training,
    no randomness after the seeded initialisation); a finished run is scored again without training.
    ``restart`` discards an earlier resume point. ``baselines``: name → dipoles(atoms, positions) of
    other sources (e.g. fixed charges), scored on the same test frames. ``progress(epoch, epochs,
    val_rmse_D)`` after each epoch.
    """
    _require_torch()
    import torch

    from qdlab.engines.dipole_model import load_dipole_model
    from qdlab.store.locks import output_lock

    s = settings or DipoleFitSettings()
    frames, out = list(frames), Path(out)
    ref = frame_dipoles(frames)
    tr, va, te = split_indices(len(frames), s.val_fraction, s.test_fraction, s.seed)
    net, opt, sched, data = _setup(frames, ref, tr, s)
    signature = asdict(s) | {"data": _data_key(frames, ref), "n_frames": len(frames)}
    with output_lock(out, what="dipole-model training"):
        if restart:
            resume_path(out).unlink(missing_ok=True)
        ck = _load_resume(resume_path(out), signature)
        state = {"signature": signature, "epoch": 0, "best": float("inf"), "best_epoch": 0, "best_net": None,
                 "finished": False, "history": [], "seconds": 0.0}
        if ck is not None:
            net.load_state_dict(ck["net"])
            opt.load_state_dict(ck["opt"])
            sched.load_state_dict(ck["sched"])
            torch.set_rng_state(ck["rng"])
            state = {k: ck[k] for k in state}
        resumed = state["epoch"]
        _train(net, opt, sched, data, tr, va, s, out, state, progress)
        net.load_state_dict(state["best_net"])  # the model file always ends as the best epoch's weights
        LearnedDipole(net, name=out.stem, metrics={"val_rmse_D": state["best"], "epoch": state["best_epoch"],
                                                   "settings": asdict(s)}).save(out)
        return _score(frames, ref, tr, va, te, load_dipole_model(out), out, s, baselines or {}, state, resumed)


def _score(frames, ref, tr, va, te, model, out, s, baselines, state: dict, resumed: int) -> DipoleFitResult:
    atoms = frames[0]
    test_pos = np.stack([frames[i].positions for i in te])
    pred = model.dipoles(atoms, test_pos) / units.Debye
    refd = ref[te] / units.Debye
    err = pred - refd
    base = {name: float(np.sqrt(((fn(atoms, test_pos) / units.Debye - refd) ** 2).mean()))
            for name, fn in baselines.items()}
    res = DipoleFitResult(model=str(out), n_train=len(tr), n_val=len(va), n_test=len(te),
                          rmse_D=float(np.sqrt((err ** 2).mean())),
                          rmse_component_D=np.sqrt((err ** 2).mean(0)).tolist(),
                          rms_dipole_D=float(np.sqrt((refd ** 2).mean())), baseline_rmse_D=base,
                          best_epoch=state["best_epoch"], epochs_run=state["epoch"], seconds=state["seconds"],
                          resumed_from_epoch=resumed,
                          test_indices=[int(i) for i in te], reference_D=refd, predicted_D=pred)
    model.metrics = model.metrics | {"test": res.to_dict()}
    model.save(out)
    return res


def run_dipole_training(dataset: str | os.PathLike, out: str | os.PathLike, settings: DipoleFitSettings | None = None,
                        baselines: Sequence[str] = ("seed001", "charges"),
                        progress: Callable[[int, int, float], None] | None = None, restart: bool = False) -> dict:
    """Train on a labelled dataset (frames with ``dipole_eA``), save ``out`` (.pt), a parity plot
    (``out`` with suffix ``.parity.png``) and metrics (``.json``); fixed-charge ``baselines`` that do
    not apply to the data (no charges, no Pb) are skipped with the reason. Resumes an interrupted
    training from ``*.resume.pt`` unless ``restart`` (see :func:`fit_dipole_model`)."""
    import json

    from qdlab.engines.dipoles import get_dipole_source
    from qdlab.report.ir_plots import plot_dipole_parity
    from qdlab.store.db import read_frames
    from qdlab.store.files import write_text

    p = Path(out)
    if p.suffix not in (".pt", ".pth"):
        raise QdlabError(f"the dipole model is a torch file: give -o MODEL.pt, not {p.name}")
    frames = [a for a in read_frames(dataset) if a.info.get("status", "ok") != "failed"]
    frame_dipoles(frames)  # a clear error before any work when labels are missing
    fns, skipped = {}, {}
    for name in baselines:
        try:
            fns[name] = get_dipole_source(name, frames[0]).dipoles
        except QdlabError as exc:
            skipped[name] = str(exc)
    res = fit_dipole_model(frames, p, settings, baselines=fns, progress=progress, restart=restart)
    test = [frames[i] for i in res.test_indices]
    preds = {"latent-charge model": res.predicted_D}
    for name, fn in fns.items():
        preds[f"fixed charges ({name})"] = fn(test[0], np.stack([a.positions for a in test])) / units.Debye
    plot_dipole_parity(res.reference_D, preds, p.with_suffix(".parity.png"),
                       title=f"held-out dipoles ({res.n_test} frames), RMS {res.rms_dipole_D:.2f} D")
    summary = res.to_dict() | {"baselines_skipped": skipped, "dataset": str(dataset),
                               "parity_plot": str(p.with_suffix(".parity.png"))}
    write_text(p.with_suffix(".json"), json.dumps(summary, indent=2) + "\n")
    return summary
