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

from qdlab.analysis.parity import fit_element_shift
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

        if s.model == "chgnet":
            from qdlab.workflows.finetune_chgnet import finetune_chgnet as runner
        else:
            from qdlab.workflows.finetune_sevenn import finetune_sevenn as runner
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
