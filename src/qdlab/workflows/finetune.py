"""Fine-tuning of pretrained universal potentials on reference energies and forces (seed 000).

Protocol (SCIENCE.md §3): all layers trained; loss = 1·MSE(E per atom) + 10·MSE(F); AdamW, learning
rate 1e-4 with cosine decay to 1e-6 over the whole run; the checkpoint kept is the one with the
lowest validation force MAE. Per-element reference energies are refitted for the new reference
code first: linear least squares of the residual energy per atom (reference − pretrained) on the
composition fractions of the training frames (:func:`qdlab.analysis.parity.fit_element_shift`),
added to CHGNet's AtomRef weights / SevenNet's per-species shift, which stay frozen afterwards.

Each package's own training machinery does the work:

* CHGNet: :class:`chgnet.trainer.Trainer` on :class:`chgnet.data.dataset.StructureData` sets
  (structures from :class:`pymatgen.io.ase.AseAtomsAdaptor`; clusters get a vacuum box), collated by
  ``chgnet.data.dataset.collate_graphs``. The split is ours (seeded, see :mod:`qdlab.store.db`), so
  the loaders are built per split instead of by ``get_train_val_test_loader``. CHGNet steps its
  scheduler ten times per epoch at most; qdlab sets the cosine period to the steps it really takes,
  so the rate ends at exactly 1e-6. The best checkpoint is the Trainer's ``bestF`` file.
* SevenNet: :class:`sevenn.train.trainer.Trainer` with its loss definitions and ``ErrorRecorder``
  on graphs from ``sevenn.train.dataload.graph_build``; checkpoints in SevenNet's own format.

The saved model loads as an engine: ``get_calculator("chgnet", checkpoint=PATH)`` (or
``"sevenn"``); :func:`model_calculator` picks the engine from the file. After every epoch a resume
point (weights, optimizer, scheduler, history) replaces the previous one atomically; rerunning with
the same data and settings continues from it, and the data order of epoch *k* depends only on
(seed, k), so a resumed run repeats the uninterrupted one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.data import chemical_symbols

from qdlab.analysis.parity import ensure_cell, fit_element_shift, predict
from qdlab.errors import QdlabError
from qdlab.store.db import frame_key, labels
from qdlab.store.files import atomic_path, write_text

MODELS = ("chgnet", "sevenn")
DEFAULT_BASE = {"chgnet": "0.3.0", "sevenn": "7net-0"}
BEST_NAME = {"chgnet": "best.pth.tar", "sevenn": "best.pth"}
RESUME_NAME = {"chgnet": "resume.pth.tar", "sevenn": "resume.pth"}


@dataclass(frozen=True)
class FinetuneSettings:
    """Fine-tuning settings (seed 000 protocol by default).

    model: chgnet | sevenn; base: pretrained model name (chgnet 0.3.0, sevenn 7net-0) or a
    checkpoint path (default: the package default); epochs; batch_size (frames per step);
    learning_rate → final_learning_rate by cosine decay; energy_weight / force_weight: loss weights
    of MSE(E per atom, eV²/atom²) and MSE(F, eV²/Å²); weight_decay: AdamW; seed: weight updates and
    data order; refit_references: per-element energy refit before training; max_seconds: stop after
    the epoch that passes this wall time (rerun to continue); vacuum_A: box for clusters (CHGNet).
    """

    model: str = "chgnet"
    base: str | None = None
    epochs: int = 50
    batch_size: int = 8
    learning_rate: float = 1e-4
    final_learning_rate: float = 1e-6
    energy_weight: float = 1.0
    force_weight: float = 10.0
    weight_decay: float = 0.01
    seed: int = 0
    refit_references: bool = True
    max_seconds: float | None = None
    vacuum_A: float = 15.0
    device: str = "cpu"

    def validate(self) -> None:
        if self.model not in MODELS:
            raise QdlabError(f"fine-tuning supports {', '.join(MODELS)}, not {self.model!r}")
        if self.epochs < 0 or self.batch_size < 1:
            raise QdlabError("epochs must be ≥ 0 and batch size ≥ 1")
        if not (0 < self.final_learning_rate <= self.learning_rate):
            raise QdlabError("learning rates must satisfy 0 < final ≤ initial")
        if self.energy_weight < 0 or self.force_weight < 0 or self.energy_weight + self.force_weight == 0:
            raise QdlabError("loss weights must be ≥ 0 and not both 0")

    def base_model(self) -> str:
        return self.base or DEFAULT_BASE[self.model]

    def signature(self) -> dict:
        """What must match for a resume (wall-time budget and device may change)."""
        d = asdict(self)
        d.pop("max_seconds")
        d.pop("device")
        d["base"] = self.base_model()
        return d


@dataclass(frozen=True)
class FinetuneResult:
    """Outcome of :func:`finetune`. ``checkpoint``: the model with the lowest validation force MAE
    (after the reference refit; with 0 epochs the refitted pretrained model). ``history``: one dict
    per epoch (train_loss, train/val energy MAE eV/atom, force MAE eV/Å, learning_rate, seconds);
    ``energy_shift_eV``: per-element reference refit (eV per atom of the element)."""

    checkpoint: Path
    model: str
    base: str
    epochs: int
    epochs_done: int
    best_epoch: int | None
    best_val_force_mae_eV_A: float | None
    n_train: int
    n_val: int
    seconds: float
    resumed_from_epoch: int
    stopped_early: bool
    energy_shift_eV: dict[str, float] = field(default_factory=dict)
    history: list[dict] = field(default_factory=list, repr=False)

    @property
    def finished(self) -> bool:
        return self.epochs_done >= self.epochs

    def to_dict(self) -> dict:
        return asdict(self) | {"checkpoint": str(self.checkpoint), "finished": self.finished}


class _EpochSampler:
    """Random order of the training frames that depends only on (seed, epoch): a resumed run
    visits the frames in the order of the uninterrupted one."""

    def __init__(self, n: int, seed: int, epoch: int = 0):
        self.n, self.seed, self.epoch = n, seed, epoch

    def __iter__(self) -> Iterator[int]:
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        self.epoch += 1
        return iter(order.tolist())

    def __len__(self) -> int:
        return self.n


def _data_hash(train: Sequence[Atoms], val: Sequence[Atoms]) -> str:
    h = hashlib.sha256()
    for tag, frames in (("train", train), ("val", val)):
        h.update(tag.encode())
        for a in frames:
            e, f = labels(a)
            h.update(frame_key(a).encode() + np.float64(e).tobytes() + np.ascontiguousarray(f, np.float64).tobytes())
    return h.hexdigest()[:32]


def _torch_save_atomic(obj, path: Path) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _state_path(out: Path) -> Path:
    return out / "finetune.json"


def _load_state(out: Path, signature: dict) -> dict | None:
    p = _state_path(out)
    if not p.exists():
        return None
    state = json.loads(p.read_text())
    if state.get("signature") != json.loads(json.dumps(signature)):
        old, new = state.get("signature", {}), json.loads(json.dumps(signature))
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        raise QdlabError(f"{out} holds a fine-tuning run with other data or settings ({', '.join(diff)}); "
                         "rerun with the same ones, choose another folder or pass --overwrite")
    return state


def _end_of_epoch(folder: Path, state: dict, s, epoch: int, record: dict,
                  progress: Callable | None, t0: float) -> bool:
    """Persist the state after an epoch, report progress; True when the wall-time budget says stop."""
    _write_state(folder, state)
    if progress:
        progress(epoch + 1, s.epochs, record)
    return s.max_seconds is not None and time.perf_counter() - t0 >= s.max_seconds and epoch + 1 < s.epochs


def _write_state(out: Path, state: dict) -> None:
    write_text(_state_path(out), json.dumps(state, indent=2, default=str) + "\n")


def _symbols_shift(shift: dict[int, float]) -> dict[str, float]:
    return {chemical_symbols[z]: float(v) for z, v in sorted(shift.items())}


def _residual_shift(calc_or_pred, frames: Sequence[Atoms]) -> dict[int, float]:
    """Least-squares per-element shift from predicted total energies (eV) of ``frames``."""
    pred = np.asarray(calc_or_pred, float)
    n = np.array([len(a) for a in frames])
    resid = np.array([labels(a)[0] for a in frames]) / n - pred / n
    return fit_element_shift([a.numbers for a in frames], resid)


def finetune(train: Sequence[Atoms], val: Sequence[Atoms], out: str | os.PathLike,
             settings: FinetuneSettings | None = None, *, restart: bool = True,
             progress: Callable[[int, int, dict], None] | None = None, **kwargs) -> FinetuneResult:
    """Fine-tune on labelled ``train`` frames, select by ``val`` (both lists of labelled Atoms),
    writing into the folder ``out``; settings as :class:`FinetuneSettings` or keywords.

    ``progress(epoch, epochs, record)`` is called after every epoch. ``restart=False`` discards an
    earlier run in ``out``. A finished run is returned as it is when called again.
    """
    s = settings or FinetuneSettings(**kwargs)
    if settings is not None and kwargs:
        s = FinetuneSettings(**(asdict(settings) | kwargs))
    s.validate()
    if not train:
        raise QdlabError("no labelled training frames")
    if not val:
        raise QdlabError("no labelled validation frames: the best checkpoint is chosen by validation force MAE")
    for a in list(train) + list(val):
        labels(a)  # raises for unlabelled frames
    folder = Path(out)
    if not restart and folder.exists():
        for name in ("finetune.json", "trainer", "train.log", BEST_NAME[s.model], RESUME_NAME[s.model]):
            p = folder / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    signature = s.signature() | {"data": _data_hash(train, val), "n_train": len(train), "n_val": len(val)}
    state = _load_state(folder, signature)
    if state and state.get("finished") and (folder / BEST_NAME[s.model]).exists():
        return _result(folder, s, state, 0.0, state["epochs_done"], False)
    state = state or {"signature": signature, "history": [], "epochs_done": 0, "finished": False}
    t0 = time.perf_counter()
    with open(folder / "train.log", "a") as log:
        def quiet() -> contextlib.ExitStack:
            """The packages' own progress output goes to train.log."""
            stack = contextlib.ExitStack()
            stack.enter_context(contextlib.redirect_stdout(log))
            stack.enter_context(contextlib.redirect_stderr(log))
            return stack

        runner = _finetune_chgnet if s.model == "chgnet" else _finetune_sevenn
        resumed, stopped = runner(list(train), list(val), folder, s, state, progress, t0, quiet)
    return _result(folder, s, state, time.perf_counter() - t0, resumed, stopped)


def _result(folder: Path, s: FinetuneSettings, state: dict, seconds: float, resumed: int,
            stopped: bool) -> FinetuneResult:
    hist = state["history"]
    best = min(range(len(hist)), key=lambda k: hist[k]["val_force_mae_eV_A"]) if hist else None
    return FinetuneResult(checkpoint=folder / BEST_NAME[s.model], model=s.model, base=s.base_model(), epochs=s.epochs,
                          epochs_done=int(state["epochs_done"]), best_epoch=None if best is None else best + 1,
                          best_val_force_mae_eV_A=None if best is None else hist[best]["val_force_mae_eV_A"],
                          n_train=state["signature"]["n_train"], n_val=state["signature"]["n_val"], seconds=seconds,
                          resumed_from_epoch=resumed, stopped_early=stopped,
                          energy_shift_eV=state.get("energy_shift_eV", {}), history=hist)


def _chgnet_steps_per_epoch(n_batches: int) -> int:
    """Scheduler steps CHGNet's Trainer takes per epoch (at batches k·n/10, k = 1…10)."""
    marks = {int(v) for v in np.arange(1, 11) * n_batches // 10}
    return len(marks & set(range(1, n_batches + 1)))


def _finetune_chgnet(train: list[Atoms], val: list[Atoms], folder: Path, s: FinetuneSettings, state: dict,
                     progress, t0: float, quiet) -> tuple[int, bool]:
    import torch
    from chgnet.data.dataset import StructureData, collate_graphs
    from chgnet.model import CHGNet
    from chgnet.trainer import Trainer
    from pymatgen.io.ase import AseAtomsAdaptor
    from torch.optim.lr_scheduler import CosineAnnealingLR
    from torch.utils.data import DataLoader

    base = s.base_model()
    with quiet():
        if Path(base).is_file():
            net = CHGNet.from_file(base)
        else:
            try:
                net = CHGNet.load(model_name=base, use_device=s.device, verbose=False)
            except ValueError as exc:
                raise QdlabError(f"CHGNet base model {base!r}: {exc}") from None
    resume_file = folder / RESUME_NAME["chgnet"]
    ckpt = torch.load(resume_file, map_location="cpu", weights_only=False) if (
        resume_file.exists() and state["epochs_done"] > 0) else None
    if ckpt is not None:
        net.load_state_dict(ckpt["model"]["state_dict"])
        state["history"] = ckpt["qdlab"]["history"]
        state["epochs_done"] = ckpt["qdlab"]["epochs_done"]
        state["energy_shift_eV"] = ckpt["qdlab"]["energy_shift_eV"]
    elif s.refit_references:
        graphs = [net.graph_converter(AseAtomsAdaptor.get_structure(ensure_cell(a, s.vacuum_A))) for a in train]
        with quiet():
            preds = net.predict_graph(graphs, task="e", batch_size=s.batch_size)
        preds = preds if isinstance(preds, list) else [preds]
        e_pa = np.array([float(p["e"]) for p in preds])  # CHGNet is intensive: eV/atom
        shift = _residual_shift(e_pa * np.array([len(a) for a in train]), train)
        with torch.no_grad():
            w = net.composition_model.fc.weight
            for z, d in shift.items():
                w[0, z - 1] += d
        state["energy_shift_eV"] = _symbols_shift(shift)
        state["history"], state["epochs_done"] = [], 0
    resumed = int(state["epochs_done"])
    save_dir = folder / "trainer"
    if resumed == 0:  # a fresh run: no stale best-model files of an earlier one
        shutil.rmtree(save_dir, ignore_errors=True)

    def dataset(frames: list[Atoms]) -> StructureData:
        structures = [AseAtomsAdaptor.get_structure(ensure_cell(a, s.vacuum_A)) for a in frames]
        lab = [labels(a) for a in frames]
        return StructureData(structures, [e / len(a) for (e, _), a in zip(lab, frames)], [f for _, f in lab],
                             structure_ids=[frame_key(a) for a in frames], graph_converter=net.graph_converter,
                             shuffle=False)

    best_file = folder / BEST_NAME["chgnet"]
    if s.epochs == 0:
        _torch_save_atomic({"model": net.as_dict(), "qdlab": {"energy_shift_eV": state.get("energy_shift_eV", {}),
                                                               "epochs": 0}}, best_file)
        state.update(finished=True)
        _write_state(folder, state)
        return resumed, False

    random.seed(s.seed)
    torch.manual_seed(s.seed)
    with quiet():
        train_ds, val_ds = dataset(train), dataset(val)
    sampler = _EpochSampler(len(train_ds), s.seed, resumed)
    train_loader = DataLoader(train_ds, batch_size=s.batch_size, sampler=sampler, collate_fn=collate_graphs)
    val_loader = DataLoader(val_ds, batch_size=s.batch_size, shuffle=False, collate_fn=collate_graphs)
    with quiet():
        trainer = Trainer(model=net, targets="ef", energy_loss_ratio=s.energy_weight, force_loss_ratio=s.force_weight,
                          optimizer="AdamW", scheduler="CosLR", criterion="MSE", epochs=s.epochs,
                          learning_rate=s.learning_rate, weight_decay=s.weight_decay, print_freq=10 ** 9,
                          use_device=s.device, torch_seed=s.seed)
    total_steps = max(1, s.epochs * _chgnet_steps_per_epoch(len(train_loader)))
    trainer.scheduler = CosineAnnealingLR(trainer.optimizer, T_max=total_steps, eta_min=s.final_learning_rate)
    if ckpt is not None:
        trainer.optimizer.load_state_dict(ckpt["optimizer"])
        trainer.scheduler.load_state_dict(ckpt["scheduler"])
        trainer.training_history = ckpt["training_history"]
    losses: list[float] = []
    inner = trainer.criterion

    def criterion(targets, prediction):
        res = inner(targets, prediction)
        if trainer.model.training:
            losses.extend([float(res["loss"].detach())] * len(targets["e"]))
        return res

    trainer.criterion = criterion
    stopped = False
    for epoch in range(resumed, s.epochs):
        t1 = time.perf_counter()
        lr = float(trainer.optimizer.param_groups[0]["lr"])
        losses.clear()
        trainer.starting_epoch, trainer.epochs = epoch, epoch + 1
        n_before = len(trainer.training_history["e"]["train"])
        with quiet():
            trainer.train(train_loader, val_loader, save_dir=str(save_dir))
        h = trainer.training_history
        if len(h["e"]["train"]) == n_before:
            raise QdlabError(f"CHGNet training diverged (NaN) in epoch {epoch + 1}; lower the learning rate")
        record = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)) if losses else float("nan"),
                  "train_energy_mae_eV_atom": h["e"]["train"][-1], "train_force_mae_eV_A": h["f"]["train"][-1],
                  "val_energy_mae_eV_atom": h["e"]["val"][-1], "val_force_mae_eV_A": h["f"]["val"][-1],
                  "learning_rate": lr, "seconds": time.perf_counter() - t1}
        state["history"].append(record)
        state["epochs_done"] = epoch + 1
        best = sorted(save_dir.glob("bestF_*.pth.tar"))
        if best:  # slim copy of the best-by-validation-force-MAE checkpoint
            best_state = torch.load(best[0], map_location="cpu", weights_only=False)
            _torch_save_atomic({"model": best_state["model"], "training_history": best_state["training_history"],
                                "qdlab": {"energy_shift_eV": state.get("energy_shift_eV", {})}}, best_file)
        _torch_save_atomic({"model": net.as_dict(), "optimizer": trainer.optimizer.state_dict(),
                            "scheduler": trainer.scheduler.state_dict(), "training_history": h,
                            "qdlab": {"history": state["history"], "epochs_done": epoch + 1,
                                      "energy_shift_eV": state.get("energy_shift_eV", {})}}, resume_file)
        if _end_of_epoch(folder, state, s, epoch, record, progress, t0):
            stopped = True
            break
    if not stopped:
        state["finished"] = True
        _write_state(folder, state)
        shutil.rmtree(save_dir, ignore_errors=True)
        resume_file.unlink(missing_ok=True)
    return resumed, stopped


def _finetune_sevenn(train: list[Atoms], val: list[Atoms], folder: Path, s: FinetuneSettings, state: dict,
                     progress, t0: float, quiet) -> tuple[int, bool]:
    import sevenn
    import sevenn._keys as KEY
    import torch
    from sevenn.error_recorder import ErrorRecorder
    from sevenn.train.dataload import graph_build
    from sevenn.train.loss import ForceLoss, PerAtomEnergyLoss, get_loss_functions_from_config
    from sevenn.train.trainer import Trainer
    from sevenn.util import load_checkpoint
    from torch.optim.lr_scheduler import CosineAnnealingLR
    from torch_geometric.loader import DataLoader

    from qdlab.engines import get_calculator

    base = s.base_model()
    try:
        with quiet():
            cp = load_checkpoint(base)
    except ValueError as exc:
        raise QdlabError(f"SevenNet base model {base!r}: {' '.join(str(exc).split())}") from None
    with quiet():
        model = cp.build_model()
    cfg = cp.config
    # recorded with the checkpoint; the model keys stay as they are (is_train_stress, for one, changes
    # how the model is built, and the calculator rebuilds it from this config)
    cfg.update({KEY.LOSS: "mse", KEY.LOSS_PARAM: {}, KEY.FORCE_WEIGHT: s.force_weight, KEY.OPTIMIZER: "adamw",
                KEY.OPTIM_PARAM: {"lr": s.learning_rate, "weight_decay": s.weight_decay},
                KEY.SCHEDULER: "cosineannealinglr",
                KEY.SCHEDULER_PARAM: {"T_max": max(s.epochs, 1), "eta_min": s.final_learning_rate},
                KEY.ERROR_RECORD: [["Energy", "MAE"], ["Force", "MAE"], ["TotalLoss", "None"]],
                KEY.EPOCH: s.epochs, KEY.BATCH_SIZE: s.batch_size, KEY.RANDOM_SEED: s.seed})
    # build_model() converted an old checkpoint's weights to this version's layout: record it, or a
    # reload would convert them a second time
    cfg["version"] = sevenn.__version__
    train_cfg = cfg | {KEY.IS_TRAIN_STRESS: False}  # clusters: energies and forces only
    resume_file = folder / RESUME_NAME["sevenn"]
    ckpt = torch.load(resume_file, map_location="cpu", weights_only=False) if (
        resume_file.exists() and state["epochs_done"] > 0) else None
    if ckpt is not None:
        model.load_state_dict(ckpt["model_state_dict"])
        state["history"] = ckpt["qdlab"]["history"]
        state["epochs_done"] = ckpt["qdlab"]["epochs_done"]
        state["energy_shift_eV"] = ckpt["qdlab"]["energy_shift_eV"]
    elif s.refit_references:
        with quiet():
            pred, _ = predict(get_calculator("sevenn", model=base, device=s.device), train, forces=False)
        shift = _residual_shift(pred, train)
        type_map = cfg[KEY.TYPE_MAP]
        missing = sorted(chemical_symbols[z] for z in shift if z not in type_map)
        if missing:
            raise QdlabError(f"SevenNet {base} does not know element(s) {', '.join(missing)}")
        with torch.no_grad():
            vec = model.rescale_atomic_energy.shift
            if vec.numel() == 1:  # one shift for all species: the composition-weighted mean
                vec += float(np.mean([sum(shift[z] * np.mean(a.numbers == z) for z in shift) for a in train]))
            else:
                for z, d in shift.items():
                    vec[type_map[z]] += d
        state["energy_shift_eV"] = _symbols_shift(shift)
        state["history"], state["epochs_done"] = [], 0
    resumed = int(state["epochs_done"])
    best_file = folder / BEST_NAME["sevenn"]

    def save(path: Path, extra: dict, trainer: Trainer | None = None) -> None:
        if trainer is not None:
            cp_dict = trainer.get_checkpoint_dict()
        else:
            cp_dict = {"model_state_dict": model.state_dict(), "optimizer_state_dict": None,
                       "scheduler_state_dict": None}
        _torch_save_atomic(cp_dict | {"config": cfg, "epoch": state["epochs_done"]} | extra, path)

    if s.epochs == 0:
        save(best_file, {"qdlab": {"energy_shift_eV": state.get("energy_shift_eV", {})}})
        state.update(finished=True)
        _write_state(folder, state)
        return resumed, False

    torch.manual_seed(s.seed)
    with quiet():
        graphs_train = graph_build(train, cfg[KEY.CUTOFF], transfer_info=False, y_from_calc=True)
        graphs_val = graph_build(val, cfg[KEY.CUTOFF], transfer_info=False, y_from_calc=True)
    loss_functions = []
    for lf, w in get_loss_functions_from_config(train_cfg):
        if isinstance(lf, PerAtomEnergyLoss):
            w = s.energy_weight
        elif isinstance(lf, ForceLoss):
            w = s.force_weight
        loss_functions.append((lf, w))
    trainer = Trainer(model, loss_functions, torch.optim.AdamW,
                      {"lr": s.learning_rate, "weight_decay": s.weight_decay}, CosineAnnealingLR,
                      {"T_max": max(s.epochs, 1), "eta_min": s.final_learning_rate}, device=s.device)
    if ckpt is not None:
        trainer.optimizer.load_state_dict(ckpt["optimizer_state_dict"])
        trainer.scheduler.load_state_dict(ckpt["scheduler_state_dict"])
    sampler = _EpochSampler(len(graphs_train), s.seed, resumed)
    train_loader = DataLoader(graphs_train, batch_size=s.batch_size, sampler=sampler)
    val_loader = DataLoader(graphs_val, batch_size=s.batch_size, shuffle=False)
    rec_train = ErrorRecorder.from_config(train_cfg, trainer.loss_functions)
    rec_val = ErrorRecorder.from_config(train_cfg, trainer.loss_functions)
    best_val = min((r["val_force_mae_eV_A"] for r in state["history"]), default=float("inf"))
    stopped = False

    def values(rec: ErrorRecorder) -> dict[str, float]:
        got = {m.name: float(m.get()) for m in rec.metrics}
        rec.epoch_forward()
        return got

    for epoch in range(resumed, s.epochs):
        t1 = time.perf_counter()
        lr = trainer.get_lr()
        with quiet():
            trainer.run_one_epoch(train_loader, True, rec_train)
            tr = values(rec_train)
            trainer.run_one_epoch(val_loader, False, rec_val)
        va = values(rec_val)
        trainer.scheduler_step()
        record = {"epoch": epoch + 1, "train_loss": tr["TotalLoss"], "train_energy_mae_eV_atom": tr["Energy_MAE"],
                  "train_force_mae_eV_A": tr["Force_MAE"], "val_energy_mae_eV_atom": va["Energy_MAE"],
                  "val_force_mae_eV_A": va["Force_MAE"], "learning_rate": lr, "seconds": time.perf_counter() - t1}
        if not np.isfinite(record["train_loss"]):
            raise QdlabError(f"SevenNet training diverged (NaN) in epoch {epoch + 1}; lower the learning rate")
        state["history"].append(record)
        state["epochs_done"] = epoch + 1
        if record["val_force_mae_eV_A"] < best_val:
            best_val = record["val_force_mae_eV_A"]
            save(best_file, {"qdlab": {"energy_shift_eV": state.get("energy_shift_eV", {})}}, trainer)
        save(resume_file, {"qdlab": {"history": state["history"], "epochs_done": epoch + 1,
                                     "energy_shift_eV": state.get("energy_shift_eV", {})}}, trainer)
        if _end_of_epoch(folder, state, s, epoch, record, progress, t0):
            stopped = True
            break
    if not stopped:
        state["finished"] = True
        _write_state(folder, state)
        resume_file.unlink(missing_ok=True)
    return resumed, stopped


def checkpoint_engine(path: str | os.PathLike) -> str:
    """Which engine a model file belongs to: ``chgnet`` or ``sevenn``."""
    import torch

    p = Path(path)
    if not p.is_file():
        raise QdlabError(f"model file {p} does not exist")
    try:
        state = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise QdlabError(f"{p} is not a model checkpoint ({type(exc).__name__})") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict) and "model_args" in state["model"]:
        return "chgnet"
    if isinstance(state, dict) and "config" in state and "model_state_dict" in state:
        return "sevenn"
    raise QdlabError(f"{p} is neither a CHGNet nor a SevenNet checkpoint")


def model_calculator(spec: str, *, device: str = "cpu", **options) -> Calculator:
    """An engine from a model file (CHGNet or SevenNet checkpoint, engine detected) or an engine
    name, optionally with a model: ``chgnet``, ``chgnet:0.2.0``, ``sevenn:7net-0``, ``classical``."""
    from qdlab.engines import get_calculator

    if Path(spec).is_file():
        return get_calculator(checkpoint_engine(spec), checkpoint=spec, device=device, **options)
    name, _, model = spec.partition(":")
    with contextlib.redirect_stdout(sys.stderr):
        return get_calculator(name, model=model or None, device=device, **options)
