"""SIGKILL-and-rerun of the newer checkpoint formats (issue 13): Born-charge checkpoint
(analysis/ir_harmonic.py), committee unit cache (workflows/committee.py), exciton kernel npz
(workflows/excitons.py), binding units (workflows/binding.py), plus the two defects these kills
showed: temporary files of interrupted atomic writes left behind, and a relaxation resumed after a
frame cut short making its whole ``.traj`` unreadable. The workflows run as separate processes
(tests/hostile/kill_targets.py, engines slowed by a sleep per call) killed at seeded random moments."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from test_kill_resume import kill_after, leftovers, moments, qdlab, run_timed

HERE = Path(__file__).parent


def target(name: str, folder: Path) -> list[str]:
    return [sys.executable, str(HERE / "kill_targets.py"), name, str(folder)]


def _kill_then_finish(name: str, tmp_path: Path, seeds=(0, 1, 2)) -> tuple[Path, Path]:
    """Reference run in ``ref``; kills at random moments then a full run in ``run``."""
    ref, run = tmp_path / "ref", tmp_path / "run"
    ref.mkdir()
    run.mkdir()
    total = run_timed(target(name, ref), tmp_path)
    for t in moments(total, seeds):
        kill_after(target(name, run), tmp_path, t)
    run_timed(target(name, run), tmp_path)
    return ref, run


def test_born_charge_checkpoint_survives_sigkill(tmp_path):
    ref, run = _kill_then_finish("born", tmp_path)
    with np.load(ref / "result.npz") as a, np.load(run / "result.npz") as b:
        np.testing.assert_array_equal(b["z"], a["z"])
        # independent reference: point charges have Z_i = q_i · 1 (FD of a linear dipole)
        from kill_targets import _model

        q = _model().get_initial_charges()
        np.testing.assert_allclose(a["z"], q[:, None, None] * np.eye(3), atol=1e-8)
    assert not leftovers(run), leftovers(run)


def test_committee_unit_cache_survives_sigkill(tmp_path):
    ref, run = _kill_then_finish("committee", tmp_path)
    with np.load(ref / "result.npz") as a, np.load(run / "result.npz") as b:
        assert sorted(a.files) == sorted(b.files) == ["f0", "f1"]
        for k in a.files:
            np.testing.assert_allclose(b[k], a[k], atol=1e-8)
    assert not leftovers(run), leftovers(run)


def test_exciton_kernel_writer_is_never_torn(tmp_path):
    """Kill ``save_kernel`` while it rewrites a 3.7 MB kernel: what is on disk is one whole version
    (or nothing), and the next write removes the dead writer's temporary file."""
    from kill_targets import _kernel_field

    from qdlab.electronic.bse import BSEKernel
    from qdlab.workflows.excitons import load_kernel, save_kernel

    path = tmp_path / "kernel.npz"
    for t in moments(3.0, seeds=(0, 1, 2, 3, 4)):  # after ≈ 1.5 s of start-up: inside the write loop
        kill_after(target("kernel", tmp_path), tmp_path, 1.5 + t)
        got = [load_kernel(path, f"v{v}") for v in (0, 1)] if path.exists() else [None, None]
        assert sum(g is not None for g in got) <= 1
        for v, g in enumerate(got):
            if g is not None:
                np.testing.assert_array_equal(g.direct, _kernel_field("direct", v))
    k = BSEKernel(**{f: _kernel_field(f, 0) for f in BSEKernel.__dataclass_fields__})
    save_kernel(k, path, key="v0")
    assert not leftovers(tmp_path), leftovers(tmp_path)
    np.testing.assert_array_equal(load_kernel(path, "v0").exchange, k.exchange)


def test_atomic_write_removes_a_killed_writers_temp(tmp_path):
    code = ("import os, signal\nfrom qdlab.store.files import atomic_path\n"
            f"with atomic_path({str(tmp_path / 'r.csv')!r}) as tmp:\n"
            "    tmp.write_text('half')\n    os.kill(os.getpid(), signal.SIGKILL)\n")
    src = str(HERE.parents[1] / "src")
    r = subprocess.run([sys.executable, "-c", code], env=os.environ | {"PYTHONPATH": src})
    assert r.returncode == -signal.SIGKILL
    assert len(leftovers(tmp_path)) == 1 and not (tmp_path / "r.csv").exists()
    from qdlab.store.files import write_text

    write_text(tmp_path / "r.csv", "a,b\n1,2\n")
    assert not leftovers(tmp_path) and (tmp_path / "r.csv").read_text() == "a,b\n1,2\n"


def test_relax_resumed_after_a_torn_frame_keeps_its_trajectory_readable(tmp_path):
    from ase.io import read

    from qdlab.build import PerovskiteRecipe, build
    from qdlab.engines.classical import LJCoulomb
    from qdlab.store.files import read_complete_frames
    from qdlab.workflows.relax import relax

    a = build(PerovskiteRecipe(composition="CsPbI3", size="2", neutrality="surface-charge"))
    traj = tmp_path / "r.traj"

    def stop(step, energy, fmax):  # killed after frame 5, before the optimizer state of step 5
        if step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        relax(a, LJCoulomb(), fmax=0.05, steps=5, trajectory=traj, callback=stop)
    assert len(read_complete_frames(traj)) == 6
    with open(traj, "r+b") as fh:  # ... and in the middle of that frame's write
        fh.truncate(traj.stat().st_size - 700)
    res = relax(a, LJCoulomb(), fmax=0.05, steps=5, trajectory=traj)
    assert res.restarted_from_step == 4 and res.steps == 5
    frames = read(traj, ":")  # before: UnicodeDecodeError, the appended frames lost behind the torn bytes
    assert len(frames) == len(read_complete_frames(traj)) == 6
    ref = relax(a, LJCoulomb(), fmax=0.05, steps=5)
    np.testing.assert_array_equal(frames[-1].positions, ref.atoms.positions)


@pytest.mark.slow  # 5 CLI runs of ≈ 10 s (CHGNet-free: ASE's LJ as an outside engine)
def test_binding_units_survive_sigkill(tmp_path):
    import json

    cmd = lambda out: qdlab("binding", "-l", "PhS", "-l", "BzO", "--slab", "2x2x3", "-e",  # noqa: E731
                            "kill_targets:slow_lj", "--no-relax", "-o", out, "--json")
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = str(HERE) + os.pathsep + env_path  # the engine factory lives in kill_targets
    try:
        total = run_timed(cmd("ref"), tmp_path)
        for t in moments(total, seeds=(0, 1, 2)):
            kill_after(cmd("out"), tmp_path, t)
        run_timed(cmd("out"), tmp_path)
    finally:
        os.environ["PYTHONPATH"] = env_path
    a = json.loads((tmp_path / "ref" / "binding.json").read_text())
    b = json.loads((tmp_path / "out" / "binding.json").read_text())
    assert a["energies_eV"] == b["energies_eV"] and a["binding_eV"] == b["binding_eV"]
    assert not leftovers(tmp_path / "out"), leftovers(tmp_path / "out")


def test_damaged_born_checkpoint_is_one_line_and_damaged_committee_cache_is_recomputed(tmp_path):
    from kill_targets import SlowPointCharges, _model

    from qdlab.analysis.ir_harmonic import born_charges
    from qdlab.errors import QdlabError
    from qdlab.workflows.committee import EngineChoice, evaluate_phonon_unit

    ck = tmp_path / "born.npz"
    ck.write_bytes(b"PK\x03\x04" + os.urandom(40))
    with pytest.raises(QdlabError, match="damaged; remove it"):
        born_charges(_model(), SlowPointCharges(), checkpoint=ck)
    a, member = _model(), EngineChoice(name="classical")
    f0, _, _ = evaluate_phonon_unit(a, member, "classical", "nc", tmp_path)
    cache = tmp_path / "nc__classical.npz"
    cache.write_bytes(cache.read_bytes()[:100])  # damaged by something other than a kill
    f1, _, _ = evaluate_phonon_unit(a, member, "classical", "nc", tmp_path)
    np.testing.assert_allclose(f1, f0, atol=1e-10)
