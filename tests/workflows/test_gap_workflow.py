"""Gap trajectories: plan → evaluate → assemble, checkpoint resume, workers, linear model, bad input.

References: the engine's gap of each frame computed directly (the workflow must reproduce it exactly);
the linear model against the full gap for small displacements.
"""

import numpy as np
import pytest
from ase.io import write

from qdlab.build import PerovskiteRecipe, build
from qdlab.electronic.tb.cluster import TightBinding
from qdlab.errors import QdlabError
from qdlab.workflows.gap import GapCheckpoint, GapSettings, assemble, evaluate_chunk, gap_trajectory, plan_frames


@pytest.fixture(scope="module")
def traj(tmp_path_factory):
    atoms = build(PerovskiteRecipe(size="1", composition="CsPbBr3", seed=0))
    rng = np.random.default_rng(0)
    frames = []
    for k in range(10):
        a = atoms.copy()
        a.positions += rng.normal(0, 0.02, a.positions.shape)
        a.info["time_fs"] = 5.0 * k
        frames.append(a)
    path = tmp_path_factory.mktemp("gap") / "md.extxyz"
    write(path, frames, format="extxyz")
    return path, frames


def test_plan_evaluate_assemble_equals_direct_engine(traj):
    path, frames = traj
    s = GapSettings(skip=1, stride=2, chunk=2)
    plan = plan_frames(path, s)
    assert plan.indices == (1, 3, 5, 7, 9) and plan.times_fs == (5.0, 15.0, 25.0, 35.0, 45.0)
    recs = {r["index"]: r for c in plan.chunks for r in evaluate_chunk(plan.path, c, s)}
    trace = assemble(plan, recs)
    eng = TightBinding()
    direct = [eng.states(frames[k]).gap_eV for k in plan.indices]
    assert np.allclose(trace.gap_eV, direct, atol=1e-10)


def test_checkpoint_resume_and_workers(traj, tmp_path):
    path, _ = traj
    s = GapSettings(chunk=3)
    ck = tmp_path / "gap.ckpt.jsonl"

    class Stop(Exception):
        pass

    def stop_after_first(done, total):
        if done >= 3:
            raise Stop

    with pytest.raises(Stop):
        gap_trajectory(path, s, checkpoint=ck, progress=stop_after_first)
    assert len(GapCheckpoint(ck, plan_frames(path, s).key).load()) == 3
    calls = []
    resumed = gap_trajectory(path, s, checkpoint=ck, workers=2, progress=lambda d, t: calls.append(d))
    assert calls[0] == 3                                  # resumed from the checkpoint
    fresh = gap_trajectory(path, s)
    assert np.allclose(resumed.gap_eV, fresh.gap_eV, atol=1e-10)
    with pytest.raises(QdlabError, match="another trajectory"):
        gap_trajectory(path, GapSettings(stride=2), checkpoint=ck)


def test_linear_model_trace_close_to_full(traj):
    path, _ = traj
    full = gap_trajectory(path, GapSettings())
    lin = gap_trajectory(path, GapSettings(linear=True))
    assert lin.gap_eV[0] == pytest.approx(full.gap_eV[0], abs=1e-10)
    assert np.max(np.abs(lin.gap_eV - full.gap_eV)) < 0.05 * np.ptp(full.gap_eV) + 0.02


def test_trajectory_without_needed_frames(traj, tmp_path):
    path, frames = traj
    with pytest.raises(QdlabError, match="none left"):
        plan_frames(path, GapSettings(skip=20))
    bare = [f.copy() for f in frames[:3]]
    for f in bare:
        f.info.pop("time_fs")
    p = tmp_path / "notime.extxyz"
    write(p, bare, format="extxyz")
    with pytest.raises(QdlabError, match="time_fs"):
        plan_frames(p, GapSettings())
    assert plan_frames(p, GapSettings(dt_fs=2.0)).times_fs == (0.0, 2.0, 4.0)


def test_import_gap_from_vasprun():
    # ASE's own test file: a VASP run with 10 k-points; the Fermi level it reports must lie in our gap
    from pathlib import Path

    import ase
    from ase.io import read

    from qdlab.workflows.gap import import_gap_trace

    path = Path(ase.__file__).parent / "test" / "testdata" / "vasp" / "vasprun_pstress.xml"
    if not path.exists():
        pytest.skip("ASE test data not installed")
    trace = import_gap_trace(path)
    ef = read(path).calc.get_fermi_level()
    assert trace.homo_eV[0] < ef < trace.lumo_eV[0] and trace.gap_eV[0] > 0


def test_bad_input_leaves_no_checkpoint(traj, tmp_path):
    _, frames = traj
    bad = [f.copy() for f in frames[:3]]
    for f in bad:
        f[[a.index for a in f if a.symbol == "Pb"][0]].symbol = "Sn"
    p = tmp_path / "sn.extxyz"
    write(p, bad, format="extxyz")
    ck = tmp_path / "sn.ckpt.jsonl"
    with pytest.raises(QdlabError, match="unsupported element"):
        gap_trajectory(p, GapSettings(), checkpoint=ck)
    assert not ck.exists()
