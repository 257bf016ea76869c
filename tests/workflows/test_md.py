"""MD: energy conservation (NVE), thermostat temperature, frozen atoms, guards, checkpoint/resume
after a real kill, temperature series and the CLI. Classical LJ+Coulomb on a relaxed 63-atom
CsPbI3 2×2×2 cluster (≈1,000 steps/s on one core)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from ase.calculators.calculator import Calculator, all_changes
from ase.io import read, write
from typer.testing import CliRunner

from qdlab.build import PerovskiteRecipe, build
from qdlab.cli.main import app
from qdlab.engines import get_calculator
from qdlab.errors import QdlabError
from qdlab.workflows.md import MDError, MDSettings, freeze_mask, run_md, temperature_series
from qdlab.workflows.relax import relax

runner = CliRunner()


@pytest.fixture(scope="module")
def cluster():
    atoms = build(PerovskiteRecipe(composition="CsPbI3", size="2", neutrality="surface-charge"))
    res = relax(atoms, get_calculator("classical"), fmax=0.01, steps=2000)
    a = res.atoms
    a.constraints = []
    return a


@pytest.fixture(scope="module")
def calc():
    return get_calculator("classical")


def test_nve_conserves_energy(cluster, calc, tmp_path):
    r = run_md(cluster, calc, ensemble="nve", temperature_K=300, timestep_fs=1, steps=5000, interval=10,
               trajectory=tmp_path / "nve.extxyz")
    # measured: drift 7e-9 eV/atom/ps, max |E(t) − E(0)| 1.1e-6 eV/atom over 5 ps
    assert abs(r.energy_drift_eV_atom_ps) < 1e-6
    assert r.max_energy_deviation_eV_atom < 2e-5
    assert r.dof == 3 * len(cluster) - 6
    # zero total and angular momentum at the start and, for a free cluster, throughout
    # (momenta in the file carry 8 decimals: 63 atoms × 5e-9 rounding)
    last = read(tmp_path / "nve.extxyz", -1)
    assert np.abs(last.get_momenta().sum(0)).max() < 1e-6
    assert np.abs(last.get_angular_momentum()).max() < 1e-5
    assert r.n_frames == 501


def test_langevin_mean_temperature_20ps(cluster, calc, tmp_path):
    r = run_md(cluster, calc, ensemble="langevin", temperature_K=300, timestep_fs=1, steps=20000, interval=500,
               friction_ps=20, trajectory=tmp_path / "l.extxyz")
    assert abs(r.mean_temperature_K - 300) / 300 < 0.03, r.mean_temperature_K


@pytest.mark.parametrize("ensemble", ["csvr", "baoab"])
def test_other_thermostats_reach_target(cluster, calc, tmp_path, ensemble):
    r = run_md(cluster, calc, ensemble=ensemble, temperature_K=200, timestep_fs=2, steps=4000, interval=400,
               friction_ps=5, taut_fs=50, trajectory=tmp_path / "t.extxyz")
    # 8 ps: statistical error of the mean ≈ 2–3 %
    assert abs(r.mean_temperature_K - 200) / 200 < 0.08, r.mean_temperature_K


def test_frozen_core_does_not_move(cluster, calc, tmp_path):
    mask = freeze_mask(cluster, "core:0.5")
    assert 0 < mask.sum() < len(cluster)
    assert (cluster.arrays["depth"][mask] >= 1).all()
    r = run_md(cluster, calc, ensemble="langevin", temperature_K=300, steps=300, interval=50, freeze="core:0.5",
               trajectory=tmp_path / "f.extxyz")
    frames = read(tmp_path / "f.extxyz", ":")
    assert r.n_frozen == mask.sum() and r.dof == 3 * (len(cluster) - mask.sum())
    moved = np.abs(frames[-1].positions - frames[0].positions).max(1)
    assert moved[mask].max() == 0.0
    assert moved[~mask].min() > 1e-3
    shell = freeze_mask(cluster, "shell:0.5")
    assert (cluster.arrays["depth"][shell] == 0).all() and shell.sum() == (cluster.arrays["depth"] == 0).sum()


def test_freeze_spec_errors(cluster):
    with pytest.raises(QdlabError, match="multiple of 0.5"):
        freeze_mask(cluster, "core:0.3")
    with pytest.raises(QdlabError, match="every atom"):
        freeze_mask(cluster, "shell:10")
    bare = cluster.copy()
    del bare.arrays["depth"]
    # a structure without labels: depth perceived from its lattice (issue 13) gives the builder's mask
    assert (freeze_mask(bare, "core:1") == freeze_mask(cluster, "core:1")).all()
    from ase import Atoms

    gas = Atoms("I3", positions=[[0, 0, 0], [4, 0, 0], [0, 4, 0]])
    with pytest.raises(QdlabError, match="depth labels"):
        freeze_mask(gas, "core:1")


def test_interrupted_run_equals_uninterrupted(cluster, calc, tmp_path):
    kw = dict(ensemble="langevin", temperature_K=300, timestep_fs=2, steps=400, interval=20, seed=3)
    ref = run_md(cluster, calc, trajectory=tmp_path / "ref.extxyz", **kw)

    class Stop(Exception):
        pass

    def stop_at(step, total, info):
        if step == 180:
            raise Stop

    with pytest.raises(Stop):
        run_md(cluster, calc, trajectory=tmp_path / "run.extxyz", progress=stop_at, **kw)
    # simulate a kill in the middle of writing the next frame: a torn tail after the checkpoint
    with open(tmp_path / "run.extxyz", "a") as fh:
        fh.write(f"{len(cluster)}\nProperties=species:S:1:pos:R:3\nPb 0.0 0.0")
    res = run_md(cluster, calc, trajectory=tmp_path / "run.extxyz", **kw)
    assert res.restarted_from_step == 180
    a, b = read(tmp_path / "ref.extxyz", ":"), read(tmp_path / "run.extxyz", ":")
    assert len(a) == len(b) == ref.n_frames == 21
    assert [f.info["step"] for f in b] == list(range(0, 401, 20))
    # same random stream after the restart: the continued run is the uninterrupted one
    assert max(np.abs(x.positions - y.positions).max() for x, y in zip(a, b)) < 1e-6
    assert res.mean_temperature_K == pytest.approx(ref.mean_temperature_K, rel=1e-9)
    # rerunning a finished run does nothing; a longer run extends it
    again = run_md(cluster, calc, trajectory=tmp_path / "run.extxyz", **kw)
    assert again.n_frames == 21
    longer = run_md(cluster, calc, trajectory=tmp_path / "run.extxyz", **(kw | {"steps": 440}))
    assert longer.n_frames == 23


def test_resume_refuses_other_settings(cluster, calc, tmp_path):
    run_md(cluster, calc, steps=20, interval=10, trajectory=tmp_path / "x.extxyz")
    with pytest.raises(QdlabError, match="other settings .*temperature_K"):
        run_md(cluster, calc, steps=20, interval=10, temperature_K=100, trajectory=tmp_path / "x.extxyz")


class NaNAfter(Calculator):
    implemented_properties = ["energy", "forces"]

    def __init__(self, inner, after):
        super().__init__()
        self.inner, self.after, self.calls = inner, after, 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.calls += 1
        self.results = {"energy": self.inner.get_potential_energy(atoms),
                        "forces": self.inner.get_forces(atoms).copy()}
        if self.calls > self.after:
            self.results["forces"][0, 0] = np.nan


def test_guards(cluster, calc, tmp_path):
    with pytest.raises(MDError, match="non-finite"):
        run_md(cluster, NaNAfter(calc, 5), steps=50, interval=10, trajectory=tmp_path / "nan.extxyz")
    squeezed = cluster.copy()
    squeezed.positions *= 0.75
    with pytest.raises(MDError, match="exploding"):
        run_md(squeezed, calc, steps=500, interval=10, trajectory=tmp_path / "boom.extxyz")
    far = cluster.copy()
    far.positions[0] += (30, 0, 0)
    with pytest.raises(MDError, match="falling apart"):
        run_md(far, calc, steps=10, interval=5, trajectory=tmp_path / "far.extxyz")
    with pytest.raises(QdlabError, match="ensemble"):
        MDSettings(ensemble="npt").validate()


def test_temperature_series(cluster, calc, tmp_path):
    res = temperature_series(cluster, calc, [50, 150], tmp_path / "series", steps=600, interval=100,
                             timestep_fs=2)
    assert [r.target_temperature_K for r in res] == [50, 150]
    assert (tmp_path / "series" / "T0050p0K" / "md.extxyz").exists()
    assert res[0].mean_temperature_K < res[1].mean_temperature_K


def _cli_env():
    return os.environ | {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}


def test_cli_kill_and_rerun_continues(cluster, tmp_path):
    """SIGKILL `qdlab md` mid-run; the same command again finishes with exactly the frames of a clean run."""
    write(tmp_path / "in.extxyz", cluster)
    cmd = [sys.executable, "-m", "qdlab", "md", str(tmp_path / "in.extxyz"), "-e", "classical",
           "--steps", "6000", "--interval", "100", "--timestep", "2", "--json"]
    killed = cmd + ["-o", str(tmp_path / "k.extxyz")]
    proc = subprocess.Popen(killed, env=_cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = tmp_path / "k.extxyz.ckpt.npz"
    t0 = time.time()
    while time.time() - t0 < 120:
        if ckpt.exists():
            try:
                with np.load(ckpt) as z:
                    if int(z["n_frames"]) >= 5:
                        break
            except Exception:  # being replaced right now
                pass
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with np.load(ckpt) as z:
        assert int(z["step"]) < 6000, "the run finished before it could be killed"
    done = subprocess.run(killed, env=_cli_env(), capture_output=True, text=True, check=True)
    summary = json.loads(done.stdout)
    assert summary["restarted_from_step"] > 0
    clean = subprocess.run(cmd + ["-o", str(tmp_path / "c.extxyz")], env=_cli_env(), capture_output=True, text=True,
                           check=True)
    a, b = read(tmp_path / "k.extxyz", ":"), read(tmp_path / "c.extxyz", ":")
    assert len(a) == len(b) == 61 == json.loads(clean.stdout)["n_frames"]
    assert [f.info["step"] for f in a] == [f.info["step"] for f in b]
    assert max(np.abs(x.positions - y.positions).max() for x, y in zip(a, b)) < 1e-6


def test_cli_json_and_errors(cluster, tmp_path):
    write(tmp_path / "in.extxyz", cluster)
    res = runner.invoke(app, ["md", str(tmp_path / "in.extxyz"), "-e", "classical", "--ensemble", "nve", "--steps",
                              "200", "--interval", "50", "-o", str(tmp_path / "o.extxyz"), "--json"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s["n_frames"] == 5 and s["energy_drift_eV_atom_ps"] is not None and "mean_temperature_K" in s
    bad = runner.invoke(app, ["md", str(tmp_path / "in.extxyz"), "-e", "classical", "--ensemble", "npt",
                              "-o", str(tmp_path / "bad.extxyz")])
    assert bad.exit_code == 2 and bad.stderr.strip().startswith("error:") and len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad.extxyz").exists()
    bad = runner.invoke(app, ["md", str(tmp_path / "in.extxyz"), "-e", "classical", "-T", "abc",
                              "-o", str(tmp_path / "bad.extxyz")])
    assert bad.exit_code == 2 and "temperature" in bad.stderr
    series = runner.invoke(app, ["md", str(tmp_path / "in.extxyz"), "-e", "classical", "-T", "20,40", "--steps", "40",
                                 "--interval", "20", "-o", str(tmp_path / "ser"), "--json"])
    assert series.exit_code == 0, series.output
    assert [r["target_temperature_K"] for r in json.loads(series.stdout)] == [20, 40]


def test_md_then_analyses_through_the_cli(cluster, tmp_path):
    """`qdlab md` → `qdlab analyze rdf|rmsf|vdos` on its trajectory (labels travel in the extxyz frames)."""
    write(tmp_path / "in.extxyz", cluster)
    traj = tmp_path / "md.extxyz"
    res = runner.invoke(app, ["md", str(tmp_path / "in.extxyz"), "-e", "classical", "-T", "100", "--timestep", "2",
                              "--steps", "1000", "--interval", "5", "-o", str(traj), "--json"])
    assert res.exit_code == 0, res.output
    rdf = runner.invoke(app, ["analyze", "rdf", str(traj), "--pair", "Pb-I", "--skip", "0.5", "-o",
                              str(tmp_path / "rdf"), "--json"])
    assert rdf.exit_code == 0, rdf.output
    rmsf = runner.invoke(app, ["analyze", "rmsf", str(traj), "--skip", "0.5", "-o", str(tmp_path / "rmsf"), "--json"])
    assert rmsf.exit_code == 0, rmsf.output
    vdos = runner.invoke(app, ["analyze", "vdos", str(traj), "-o", str(tmp_path / "vdos"), "--json"])
    assert vdos.exit_code == 0, vdos.output
    for folder in ("rdf", "rmsf", "vdos"):
        assert any(p.suffix == ".png" for p in (tmp_path / folder).iterdir()), folder
    # the per-layer RMSF uses the builder's depth labels carried by the MD frames
    assert "depth" in rmsf.stdout
