"""Relaxation resume: an interrupted relaxation continues with the optimizer's saved state and
ends bitwise where the uninterrupted run ends (the old resume restarted L-BFGS with an empty
history: `make demo` killed and rerun moved the capped structure by 0.08 Å); real SIGKILLs at
random moments through the CLI; damaged or foreign state refused in one line.

Classical LJ+Coulomb on unrelaxed CsPbI3 cubes (63 atoms: ≈8 ms per step; 191 atoms: ≈35 ms)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from ase.io import read, write

from qdlab.build import PerovskiteRecipe, build
from qdlab.engines import get_calculator
from qdlab.errors import QdlabError
from qdlab.store.locks import lock_path
from qdlab.workflows.relax import relax


class _Interrupt(Exception):
    pass


@pytest.fixture(scope="module")
def cube():
    return build(PerovskiteRecipe(composition="CsPbI3", size="2", neutrality="surface-charge"))


def _stop_at(step: int):
    def cb(n: int, energy: float, fmax: float) -> None:
        if n == step:  # after the frame of ``step`` is written, before its state is saved
            raise _Interrupt
    return cb


def _positions(path: Path) -> list[np.ndarray]:
    return [f.positions for f in read(path, ":")]


@pytest.mark.parametrize("opt", ["lbfgs", "bfgs", "fire"])
def test_interrupted_runs_end_bitwise_where_the_uninterrupted_run_ends(cube, tmp_path, opt):
    calc = get_calculator("classical")
    kw = dict(optimizer=opt, fmax=0.01, steps=300)
    ref = relax(cube, calc, trajectory=tmp_path / "ref.traj", **kw)
    assert ref.converged and ref.steps > 15
    traj = tmp_path / "run.traj"
    for stop in (1, 2, 9, 15):  # 1: only the start frame has a state (step 0); the rest: mid-run
        with pytest.raises(_Interrupt):
            relax(cube, calc, trajectory=traj, callback=_stop_at(stop), **kw)
    res = relax(cube, calc, trajectory=traj, **kw)
    assert res.restarted_from_step == 14 and res.steps == ref.steps
    got, want = _positions(traj), _positions(tmp_path / "ref.traj")
    assert len(got) == len(want) == ref.steps + 1  # no frame duplicated or lost at a resume
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(res.atoms.positions, ref.atoms.positions)
    assert res.energy_eV == ref.energy_eV


def test_step_budget_counts_the_whole_run(cube, tmp_path):
    calc = get_calculator("classical")
    traj = tmp_path / "run.traj"
    with pytest.raises(_Interrupt):
        relax(cube, calc, fmax=1e-4, steps=12, trajectory=traj, callback=_stop_at(8))
    res = relax(cube, calc, fmax=1e-4, steps=12, trajectory=traj)
    assert res.restarted_from_step == 7 and res.steps == 12 and not res.converged
    assert len(read(traj, ":")) == 13


def test_trajectory_without_state_starts_over(cube, tmp_path):
    calc = get_calculator("classical")
    ref = relax(cube, calc, fmax=0.01, trajectory=tmp_path / "ref.traj")
    traj = tmp_path / "run.traj"
    write(traj, [cube.copy() for _ in range(4)])  # an older qdlab's, or killed before the first state
    res = relax(cube, calc, fmax=0.01, trajectory=traj)
    assert res.restarted_from_step == 0
    np.testing.assert_array_equal(res.atoms.positions, ref.atoms.positions)
    assert len(read(traj, ":")) == ref.steps + 1


def test_damaged_or_foreign_state_is_refused_in_one_line(cube, tmp_path):
    calc = get_calculator("classical")
    traj = tmp_path / "run.traj"
    with pytest.raises(_Interrupt):
        relax(cube, calc, fmax=0.01, trajectory=traj, callback=_stop_at(5))
    with pytest.raises(QdlabError, match="optimizer 'lbfgs', not 'fire'"):
        relax(cube, calc, optimizer="fire", trajectory=traj)
    other = build(PerovskiteRecipe(composition="CsPbBr3", size="2", neutrality="surface-charge"))
    with pytest.raises(QdlabError, match="different structure"):
        relax(other, calc, trajectory=traj)
    state = traj.with_name(traj.name + ".state.npz")
    state.write_bytes(state.read_bytes()[:200])
    with pytest.raises(QdlabError, match="damaged") as err:
        relax(cube, calc, trajectory=traj)
    assert "\n" not in str(err.value)
    fresh = relax(cube, calc, fmax=0.01, trajectory=traj, restart=False)
    assert fresh.restarted_from_step == 0 and fresh.converged


def _state_step(path: Path) -> int:
    try:
        with np.load(path) as z:
            return int(json.loads(str(z["meta"]))["step"])
    except Exception:  # noqa: BLE001 - absent or being replaced right now
        return 0


def test_random_sigkills_through_the_cli_resume_to_the_uninterrupted_run(tmp_path):
    cube3 = build(PerovskiteRecipe(composition="CsPbI3", size="3", neutrality="surface-charge"))
    write(tmp_path / "in.extxyz", cube3)
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = os.environ | {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE",
                        "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}

    def cmd(name: str) -> list[str]:
        return [sys.executable, "-m", "qdlab", "relax", str(tmp_path / "in.extxyz"), "-e", "classical",
                "--fmax", "1e-4", "--steps", "400", "--json", "-o", str(tmp_path / f"{name}.extxyz")]

    ref = subprocess.run(cmd("ref"), env=env, capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr
    state = tmp_path / "run.traj.state.npz"
    rnd = random.Random(5)
    for kill in range(3):
        target = _state_step(state) + rnd.randint(3, 10)
        proc = subprocess.Popen(cmd("run"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        t0 = time.time()
        while _state_step(state) < target and proc.poll() is None and time.time() - t0 < 60:
            time.sleep(0.002)
        time.sleep(rnd.uniform(0, 0.04))  # a random moment: mid-force-call, mid-frame or mid-state
        if proc.poll() is not None:
            pytest.fail(f"the run finished before kill {kill + 1}: {proc.stderr.read().decode()[-300:]}")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (tmp_path / "run.extxyz").exists()  # no result before the run ends
    done = subprocess.run(cmd("run"), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    info, ref_info = json.loads(done.stdout), json.loads(ref.stdout)
    assert info["restarted_from_step"] > 0 and info["steps"] == ref_info["steps"]
    for a, b in zip(_positions(tmp_path / "run.traj"), _positions(tmp_path / "ref.traj"), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(read(tmp_path / "run.extxyz").positions, read(tmp_path / "ref.extxyz").positions)
    assert not lock_path(tmp_path / "run.traj").exists()


def test_state_without_its_trajectory_is_refused(cube, tmp_path):
    calc = get_calculator("classical")
    traj = tmp_path / "run.traj"
    with pytest.raises(_Interrupt):
        relax(cube, calc, fmax=0.01, trajectory=traj, callback=_stop_at(5))
    traj.unlink()
    with pytest.raises(QdlabError, match="ends before its optimizer state's step 4"):
        relax(cube, calc, fmax=0.01, trajectory=traj)
