"""SevenNet back-end of :func:`qdlab.workflows.finetune.finetune` (the package's own ``Trainer``,
loss definitions and ``ErrorRecorder``; checkpoints in SevenNet's format).

Phases: load the base checkpoint and its training config → restore the resume point or refit the
per-species energy shift → build graphs, loaders and trainer → one epoch at a time, each followed
by an atomic resume point (and the best checkpoint by validation force MAE).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from qdlab.analysis.parity import predict
from qdlab.errors import QdlabError
from qdlab.workflows import finetune as ft
from qdlab.workflows.finetune import FinetuneSettings


def _load_base(s: FinetuneSettings, quiet) -> tuple:
    """(model, config) of the base checkpoint with qdlab's training settings recorded in the config."""
    import sevenn
    import sevenn._keys as KEY
    from sevenn.util import load_checkpoint

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
    return model, cfg


def _restore_or_refit(model, cfg: dict, folder: Path, s: FinetuneSettings, state: dict, train: list[Atoms],
                      quiet) -> dict | None:
    """The resume point (returned), or on a fresh run the refitted per-species energy shift."""
    import sevenn._keys as KEY
    import torch

    from qdlab.engines import get_calculator

    resume_file = folder / ft.RESUME_NAME["sevenn"]
    ckpt = torch.load(resume_file, map_location="cpu", weights_only=False) if (
        resume_file.exists() and state["epochs_done"] > 0) else None
    if ckpt is not None:
        model.load_state_dict(ckpt["model_state_dict"])
        state["history"] = ckpt["qdlab"]["history"]
        state["epochs_done"] = ckpt["qdlab"]["epochs_done"]
        state["energy_shift_eV"] = ckpt["qdlab"]["energy_shift_eV"]
    elif s.refit_references:
        base = s.base_model()
        with quiet():
            pred, _ = predict(get_calculator("sevenn", model=base, device=s.device), train, forces=False)
        shift = ft._residual_shift(pred, train)
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
        state["energy_shift_eV"] = ft._symbols_shift(shift)
        state["history"], state["epochs_done"] = [], 0
    return ckpt


def _trainer(model, cfg: dict, s: FinetuneSettings, train: list[Atoms], val: list[Atoms], resumed: int,
             ckpt: dict | None, quiet) -> tuple:
    """(trainer, train loader, val loader, train recorder, val recorder) for epochs ``resumed`` on."""
    import sevenn._keys as KEY
    import torch
    from sevenn.error_recorder import ErrorRecorder
    from sevenn.train.dataload import graph_build
    from sevenn.train.loss import ForceLoss, PerAtomEnergyLoss, get_loss_functions_from_config
    from sevenn.train.trainer import Trainer
    from torch.optim.lr_scheduler import CosineAnnealingLR
    from torch_geometric.loader import DataLoader

    train_cfg = cfg | {KEY.IS_TRAIN_STRESS: False}  # clusters: energies and forces only
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
    sampler = ft._EpochSampler(len(graphs_train), s.seed, resumed)
    train_loader = DataLoader(graphs_train, batch_size=s.batch_size, sampler=sampler)
    val_loader = DataLoader(graphs_val, batch_size=s.batch_size, shuffle=False)
    rec_train = ErrorRecorder.from_config(train_cfg, trainer.loss_functions)
    rec_val = ErrorRecorder.from_config(train_cfg, trainer.loss_functions)
    return trainer, train_loader, val_loader, rec_train, rec_val


def _values(rec) -> dict[str, float]:
    got = {m.name: float(m.get()) for m in rec.metrics}
    rec.epoch_forward()
    return got


def _epoch(trainer, train_loader, val_loader, rec_train, rec_val, epoch: int, quiet) -> dict:
    """Train and validate one epoch; its record (losses, MAEs, learning rate, seconds)."""
    t1 = time.perf_counter()
    lr = trainer.get_lr()
    with quiet():
        trainer.run_one_epoch(train_loader, True, rec_train)
        tr = _values(rec_train)
        trainer.run_one_epoch(val_loader, False, rec_val)
    va = _values(rec_val)
    trainer.scheduler_step()
    record = {"epoch": epoch + 1, "train_loss": tr["TotalLoss"], "train_energy_mae_eV_atom": tr["Energy_MAE"],
              "train_force_mae_eV_A": tr["Force_MAE"], "val_energy_mae_eV_atom": va["Energy_MAE"],
              "val_force_mae_eV_A": va["Force_MAE"], "learning_rate": lr, "seconds": time.perf_counter() - t1}
    if not np.isfinite(record["train_loss"]):
        raise QdlabError(f"SevenNet training diverged (NaN) in epoch {epoch + 1}; lower the learning rate")
    return record


def finetune_sevenn(train: list[Atoms], val: list[Atoms], folder: Path, s: FinetuneSettings, state: dict,
                    progress, t0: float, quiet) -> tuple[int, bool]:
    """Fine-tune SevenNet into ``folder``; returns (epoch resumed from, stopped early by the time budget)."""
    model, cfg = _load_base(s, quiet)
    ckpt = _restore_or_refit(model, cfg, folder, s, state, train, quiet)
    resumed = int(state["epochs_done"])
    best_file, resume_file = folder / ft.BEST_NAME["sevenn"], folder / ft.RESUME_NAME["sevenn"]

    def save(path: Path, extra: dict, trainer=None) -> None:
        if trainer is not None:
            cp_dict = trainer.get_checkpoint_dict()
        else:
            cp_dict = {"model_state_dict": model.state_dict(), "optimizer_state_dict": None,
                       "scheduler_state_dict": None}
        ft._torch_save_atomic(cp_dict | {"config": cfg, "epoch": state["epochs_done"]} | extra, path)

    if s.epochs == 0:
        save(best_file, {"qdlab": {"energy_shift_eV": state.get("energy_shift_eV", {})}})
        state.update(finished=True)
        ft._write_state(folder, state)
        return resumed, False
    trainer, train_loader, val_loader, rec_train, rec_val = _trainer(model, cfg, s, train, val, resumed, ckpt, quiet)
    best_val = min((r["val_force_mae_eV_A"] for r in state["history"]), default=float("inf"))
    for epoch in range(resumed, s.epochs):
        record = _epoch(trainer, train_loader, val_loader, rec_train, rec_val, epoch, quiet)
        state["history"].append(record)
        state["epochs_done"] = epoch + 1
        if record["val_force_mae_eV_A"] < best_val:
            best_val = record["val_force_mae_eV_A"]
            save(best_file, {"qdlab": {"energy_shift_eV": state.get("energy_shift_eV", {})}}, trainer)
        save(resume_file, {"qdlab": {"history": state["history"], "epochs_done": epoch + 1,
                                     "energy_shift_eV": state.get("energy_shift_eV", {})}}, trainer)
        if ft._end_of_epoch(folder, state, s, epoch, record, progress, t0):
            return resumed, True
    state["finished"] = True
    ft._write_state(folder, state)
    resume_file.unlink(missing_ok=True)
    return resumed, False
