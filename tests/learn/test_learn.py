"""Concurrent learning end to end on a tiny system: CsPbI3 2×2×2 clusters, the classical force field
as the reference, CHGNet committees with tiny training budgets. Iterations are checkpointed (one
state.json each) and a rerun resumes without recomputing finished work."""

import json

import numpy as np
import pytest

from learn.conftest import Counting, classical_frames
from qdlab.errors import QdlabError
from qdlab.store.db import read_frames
from qdlab.workflows.finetune import FinetuneSettings
from qdlab.workflows.learn import LearnSettings, learn, max_force_deviation
from qdlab.workflows.md import MDSettings




def settings(iterations: int) -> LearnSettings:
    return LearnSettings(committee=2, iterations=iterations, trust_lo_eV_A=0.0, trust_hi_eV_A=50.0, max_select=2,
                         energy_mae_target_eV_atom=1e-9, seed=1,
                         md=MDSettings(ensemble="baoab", temperature_K=300, timestep_fs=2.0, steps=8, interval=4,
                                       friction_ps=0.5),
                         finetune=FinetuneSettings(epochs=1, batch_size=4))


def test_max_force_deviation():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(3, 2, 5, 3))
    ref = np.array([max(np.sqrt(np.mean([np.sum((f[m, k, i] - f[:, k, i].mean(0)) ** 2) for m in range(3)]))
                        for i in range(5)) for k in range(2)])
    np.testing.assert_allclose(max_force_deviation(f), ref)
    assert np.all(max_force_deviation(np.repeat(f[:1], 3, axis=0)) < 1e-12)


def test_learn_end_to_end_and_resume(cube, tmp_path):
    initial = classical_frames(5, seed0=20)
    out = tmp_path / "learn"
    ref = Counting()
    res = learn(initial, [cube], ref, out, settings(1), reference_name="classical")
    assert not res.converged and res.reason == "iteration budget spent"
    assert ref.calls == 2 and res.n_labelled_total == 2 and res.n_frames == 7
    state = json.loads((out / "iter_000" / "state.json").read_text())
    assert state["done"] and set(state) >= {"train", "explore", "select", "label"}
    assert len(state["train"]["models"]) == 2 and state["explore"]["stable"]
    assert len(state["explore"]["max_deviation_eV_A"]) == 2  # 8 steps, a frame every 4
    assert all(d > 0 for d in state["explore"]["max_deviation_eV_A"])  # the members differ
    added = [a for a in read_frames(out / "data.db") if a.info.get("iteration") == 0]
    assert len(added) == 2 and all(a.info["engine"] == "classical" for a in added)
    assert all(a.info["source"].startswith("iter_000/md_0.extxyz#") for a in added)
    stamp = [p.stat().st_mtime_ns for p in (out / "iter_000").glob("model_*/best.pth.tar")]
    # a larger budget continues with iteration 1; iteration 0 is not redone. The reference is
    # interrupted after one frame and the rerun labels only the remaining one.
    ref2 = Counting(stop_after=1)
    with pytest.raises(KeyboardInterrupt):
        learn(initial, [cube], ref2, out, settings(2), reference_name="classical")
    ref3 = Counting()
    res = learn(initial, [cube], ref3, out, settings(2), reference_name="classical")
    assert ref2.calls + ref3.calls == 2 and ref3.calls == 1
    assert [p.stat().st_mtime_ns for p in (out / "iter_000").glob("model_*/best.pth.tar")] == stamp
    assert len(res.iterations) == 2 and res.n_labelled_total == 4 and res.n_frames == 9
    assert res.models[0].parent.parent.name == "iter_001"
    summary = json.loads((out / "learn.json").read_text())
    assert summary["n_labelled_total"] == 4 and len(summary["iterations"]) == 2
    with pytest.raises(QdlabError, match="other settings"):
        learn(initial, [cube], ref3, out, LearnSettings(committee=3), reference_name="classical")


def test_learn_stops_without_candidates(cube, tmp_path):
    s = settings(3)
    s = LearnSettings(**{**s.__dict__, "trust_lo_eV_A": 40.0, "trust_hi_eV_A": 50.0})
    ref = Counting()
    res = learn(classical_frames(4, seed0=40), [cube], ref, tmp_path / "l", s, reference_name="classical")
    assert res.reason.startswith("no new frame") and len(res.iterations) == 1 and ref.calls == 0


def test_learn_converges_on_target(cube, tmp_path):
    s = settings(3)
    s = LearnSettings(**{**s.__dict__, "energy_mae_target_eV_atom": 10.0})
    res = learn(classical_frames(4, seed0=60), [cube], Counting(), tmp_path / "c", s, reference_name="classical")
    assert res.converged and res.reason == "error target met and MD stable" and len(res.iterations) == 1
