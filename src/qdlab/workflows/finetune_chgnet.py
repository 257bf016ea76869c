"""CHGNet back-end of :func:`qdlab.workflows.finetune.finetune` (the package's own ``Trainer``).

Phases: load the base model → restore the resume point or refit the reference energies → build
datasets, loaders and trainer → one epoch at a time, each followed by an atomic resume point.
"""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path

import numpy as np
from ase import Atoms

from qdlab.analysis.parity import ensure_cell
from qdlab.errors import QdlabError
from qdlab.store.db import frame_key, labels
from qdlab.workflows.finetune import (
    BEST_NAME,
    RESUME_NAME,
    FinetuneSettings,
    _EpochSampler,
    _end_of_epoch,
    _residual_shift,
    _symbols_shift,
    _torch_save_atomic,
    _write_state,
)


def _chgnet_steps_per_epoch(n_batches: int) -> int:
    """Scheduler steps CHGNet's Trainer takes per epoch (at batches k·n/10, k = 1…10)."""
    marks = {int(v) for v in np.arange(1, 11) * n_batches // 10}
    return len(marks & set(range(1, n_batches + 1)))


def _load_base(s: FinetuneSettings, quiet):
    from chgnet.model import CHGNet

    base = s.base_model()
    with quiet():
        if Path(base).is_file():
            return CHGNet.from_file(base)
        try:
            return CHGNet.load(model_name=base, use_device=s.device, verbose=False)
        except ValueError as exc:
            raise QdlabError(f"CHGNet base model {base!r}: {exc}") from None


def _restore_or_refit(net, folder: Path, s: FinetuneSettings, state: dict, train: list[Atoms], quiet) -> dict | None:
    """The resume point's weights and history (returned), or on a fresh run the refitted per-element
    reference energies added to CHGNet's AtomRef weights."""
    import torch
    from pymatgen.io.ase import AseAtomsAdaptor

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
    return ckpt


def _trainer(net, s: FinetuneSettings, train: list[Atoms], val: list[Atoms], resumed: int, ckpt: dict | None,
             quiet) -> tuple:
    """(trainer, train loader, val loader, per-batch training losses) for epochs ``resumed`` on."""
    import torch
    from chgnet.data.dataset import StructureData, collate_graphs
    from chgnet.trainer import Trainer
    from pymatgen.io.ase import AseAtomsAdaptor
    from torch.optim.lr_scheduler import CosineAnnealingLR
    from torch.utils.data import DataLoader

    def dataset(frames: list[Atoms]) -> StructureData:
        structures = [AseAtomsAdaptor.get_structure(ensure_cell(a, s.vacuum_A)) for a in frames]
        lab = [labels(a) for a in frames]
        return StructureData(structures, [e / len(a) for (e, _), a in zip(lab, frames)], [f for _, f in lab],
                             structure_ids=[frame_key(a) for a in frames], graph_converter=net.graph_converter,
                             shuffle=False)

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
    return trainer, train_loader, val_loader, losses


def _epoch(trainer, train_loader, val_loader, losses: list[float], epoch: int, save_dir: Path, quiet) -> dict:
    """Train one epoch; its record (losses, MAEs, learning rate, seconds)."""
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
    return {"epoch": epoch + 1, "train_loss": float(np.mean(losses)) if losses else float("nan"),
            "train_energy_mae_eV_atom": h["e"]["train"][-1], "train_force_mae_eV_A": h["f"]["train"][-1],
            "val_energy_mae_eV_atom": h["e"]["val"][-1], "val_force_mae_eV_A": h["f"]["val"][-1],
            "learning_rate": lr, "seconds": time.perf_counter() - t1}


def _save_points(net, trainer, folder: Path, save_dir: Path, state: dict, epoch: int) -> None:
    """After an epoch: a slim copy of the best-by-validation-force-MAE checkpoint and the resume point."""
    import torch

    shift = state.get("energy_shift_eV", {})
    best = sorted(save_dir.glob("bestF_*.pth.tar"))
    if best:
        best_state = torch.load(best[0], map_location="cpu", weights_only=False)
        _torch_save_atomic({"model": best_state["model"], "training_history": best_state["training_history"],
                            "qdlab": {"energy_shift_eV": shift}}, folder / BEST_NAME["chgnet"])
    _torch_save_atomic({"model": net.as_dict(), "optimizer": trainer.optimizer.state_dict(),
                        "scheduler": trainer.scheduler.state_dict(), "training_history": trainer.training_history,
                        "qdlab": {"history": state["history"], "epochs_done": epoch + 1, "energy_shift_eV": shift}},
                       folder / RESUME_NAME["chgnet"])


def finetune_chgnet(train: list[Atoms], val: list[Atoms], folder: Path, s: FinetuneSettings, state: dict,
                    progress, t0: float, quiet) -> tuple[int, bool]:
    """Fine-tune CHGNet into ``folder``; returns (epoch resumed from, stopped early by the time budget)."""
    net = _load_base(s, quiet)
    ckpt = _restore_or_refit(net, folder, s, state, train, quiet)
    resumed = int(state["epochs_done"])
    save_dir = folder / "trainer"
    if resumed == 0:  # a fresh run: no stale best-model files of an earlier one
        shutil.rmtree(save_dir, ignore_errors=True)
    if s.epochs == 0:
        _torch_save_atomic({"model": net.as_dict(), "qdlab": {"energy_shift_eV": state.get("energy_shift_eV", {}),
                                                               "epochs": 0}}, folder / BEST_NAME["chgnet"])
        state.update(finished=True)
        _write_state(folder, state)
        return resumed, False
    trainer, train_loader, val_loader, losses = _trainer(net, s, train, val, resumed, ckpt, quiet)
    for epoch in range(resumed, s.epochs):
        record = _epoch(trainer, train_loader, val_loader, losses, epoch, save_dir, quiet)
        state["history"].append(record)
        state["epochs_done"] = epoch + 1
        _save_points(net, trainer, folder, save_dir, state, epoch)
        if _end_of_epoch(folder, state, s, epoch, record, progress, t0):
            return resumed, True
    state["finished"] = True
    _write_state(folder, state)
    shutil.rmtree(save_dir, ignore_errors=True)
    (folder / RESUME_NAME["chgnet"]).unlink(missing_ok=True)
    return resumed, False
