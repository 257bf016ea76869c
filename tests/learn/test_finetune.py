"""Fine-tuning: CHGNet (its own Trainer) and SevenNet (its own Trainer) for a few steps on a handful
of frames: the loss decreases, the best checkpoint reloads as an engine by path and reproduces the
trained model, the per-element references are refitted by least squares, and a resumed run repeats
the uninterrupted one."""

import json

import numpy as np
import pytest
import torch

from qdlab.analysis.parity import predict
from qdlab.engines import get_calculator
from qdlab.errors import QdlabError
from qdlab.store.db import labels, read_frames, split_indices
from qdlab.workflows.finetune import (FinetuneSettings, checkpoint_engine, finetune,
                                      model_calculator)


def _split(frames):
    return [a for a in frames if a.info["split"] == "train"], [a for a in frames if a.info["split"] == "val"]


def test_chgnet_loss_decreases_and_checkpoint_reloads(tiny_set, tmp_path):
    train, val = _split(tiny_set)
    res = finetune(train, val, tmp_path / "ft", model="chgnet", epochs=3, batch_size=4, learning_rate=1e-3)
    assert res.finished and res.epochs_done == 3 and len(res.history) == 3
    losses = [h["train_loss"] for h in res.history]
    assert losses[2] < losses[1] < losses[0]
    assert res.best_epoch == 1 + int(np.argmin([h["val_force_mae_eV_A"] for h in res.history]))
    lrs = [h["learning_rate"] for h in res.history]
    assert lrs[0] == pytest.approx(1e-3) and lrs[2] < lrs[1] < lrs[0]
    assert checkpoint_engine(res.checkpoint) == "chgnet"
    calc = get_calculator("chgnet", checkpoint=str(res.checkpoint))  # the engine loads it by path
    e, f = predict(calc, val)
    # the reloaded model is the trained one: its validation force MAE is the recorded best
    mae = np.abs(f[0] - labels(val[0])[1]).mean()
    assert mae == pytest.approx(res.best_val_force_mae_eV_A, abs=2e-4)
    pre, _ = predict(get_calculator("chgnet"), val, forces=False)
    assert abs(e[0] - labels(val[0])[0]) < abs(pre[0] - labels(val[0])[0])  # references refitted
    assert set(res.energy_shift_eV) == {"Cs", "Pb", "I"}
    state = json.loads((tmp_path / "ft" / "finetune.json").read_text())
    assert state["finished"] and not (tmp_path / "ft" / "trainer").exists()
    again = finetune(train, val, tmp_path / "ft", model="chgnet", epochs=3, batch_size=4, learning_rate=1e-3)
    assert again.history == res.history and again.seconds == 0.0  # a finished run is not redone


def test_refit_only_is_least_squares(tiny_set, tmp_path):
    train, val = _split(tiny_set)
    res = finetune(train, val, tmp_path / "r", model="chgnet", epochs=0)
    assert res.best_epoch is None and res.checkpoint.exists()
    e, _ = predict(model_calculator(str(res.checkpoint)), train, forces=False)
    resid = np.array([labels(a)[0] for a in train]) / 63 - e / 63
    assert abs(resid.mean()) < 2e-4  # one composition: the mean residual per atom vanishes (float32 model)
    with pytest.raises(QdlabError, match="other data or settings"):
        finetune(train, val, tmp_path / "r", model="chgnet", epochs=1)


def test_chgnet_resume_repeats_uninterrupted_run(tiny_set, tmp_path):
    train, val = _split(tiny_set)
    s = FinetuneSettings(epochs=2, batch_size=2, learning_rate=5e-4, seed=3)
    full = finetune(train, val, tmp_path / "a", s)
    part = finetune(train, val, tmp_path / "b", s, max_seconds=0.0)  # stops after one epoch
    assert part.stopped_early and part.epochs_done == 1 and (tmp_path / "b" / "resume.pth.tar").exists()
    rest = finetune(train, val, tmp_path / "b", s)
    assert rest.resumed_from_epoch == 1 and rest.epochs_done == 2
    for key in ("train_loss", "val_force_mae_eV_A", "learning_rate"):
        assert [h[key] for h in rest.history] == pytest.approx([h[key] for h in full.history], rel=1e-5)
    wa = torch.load(full.checkpoint, weights_only=False)["model"]["state_dict"]
    wb = torch.load(rest.checkpoint, weights_only=False)["model"]["state_dict"]
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)


def test_chgnet_scheduler_steps():
    from qdlab.workflows.finetune_chgnet import _chgnet_steps_per_epoch

    assert _chgnet_steps_per_epoch(100) == 10
    assert _chgnet_steps_per_epoch(9) == 9
    assert _chgnet_steps_per_epoch(1) == 1


def test_sevenn_finetune_and_reload(tiny_set, tmp_path):
    train, val = _split(tiny_set)
    res = finetune(train[:2], val, tmp_path / "s", model="sevenn", epochs=2, batch_size=2, learning_rate=1e-3)
    assert res.epochs_done == 2 and res.history[1]["train_loss"] < res.history[0]["train_loss"]
    assert checkpoint_engine(res.checkpoint) == "sevenn"
    calc = get_calculator("sevenn", checkpoint=str(res.checkpoint))
    _, f = predict(calc, val)
    assert np.abs(f[0] - labels(val[0])[1]).mean() == pytest.approx(res.best_val_force_mae_eV_A, rel=1e-4)
    # refit only: the reloaded model has the pretrained forces (the weights are not converted twice)
    ref = finetune(train[:2], val, tmp_path / "s0", model="sevenn", epochs=0)
    _, f0 = predict(model_calculator(str(ref.checkpoint)), val)
    _, fp = predict(get_calculator("sevenn"), val)
    np.testing.assert_allclose(f0[0], fp[0], atol=1e-5)


def test_bad_input(tiny_set, tmp_path):
    train, val = _split(tiny_set)
    with pytest.raises(QdlabError, match="validation"):
        finetune(train, [], tmp_path / "x")
    with pytest.raises(QdlabError, match="supports"):
        finetune(train, val, tmp_path / "x", model="mace")
    bare = train[0].copy()
    with pytest.raises(QdlabError, match="no reference"):
        finetune([bare], val, tmp_path / "x")


def test_cp2k_few_steps(cp2k_path, tmp_path):
    """A few steps on a handful of real CP2K frames (416 atoms): loss decreases, model reloads."""
    frames = read_frames(cp2k_path, index="0:20")
    parts = split_indices(len(frames), (0.68, 0.12, 0.20), seed=0)
    train = [frames[i] for i in parts["train"][:2]]
    val = [frames[parts["val"][0]]]
    res = finetune(train, val, tmp_path / "cp2k", epochs=2, batch_size=2, seed=0)
    assert res.history[1]["train_loss"] < res.history[0]["train_loss"]
    assert sum(res.energy_shift_eV.values()) < -300  # CP2K vs MPtrj references: refitted
    e, f = predict(model_calculator(str(res.checkpoint)), val)
    assert abs(e[0] / 416 - labels(val[0])[0] / 416) < 0.05
    assert np.abs(f[0] - labels(val[0])[1]).mean() == pytest.approx(res.best_val_force_mae_eV_A, abs=2e-4)
