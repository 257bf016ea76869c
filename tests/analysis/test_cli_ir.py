"""CLI: qdlab ir md / harmonic / train / parity and qdlab phonons thermal on tiny inputs, and their one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import units
from ase.build import molecule
from ase.io import write
from typer.testing import CliRunner

from qdlab.cli.main import app
from qdlab.workflows.phonons import vibrational_analysis

runner = CliRunner()
Q = np.array([-0.8, 0.4, 0.4])


def _water_modes():
    """Water with a valence-like analytic Hessian (bond springs), its modes and charges."""
    a = molecule("H2O")
    a.set_initial_charges(Q)
    n = len(a)
    phi = np.zeros((3 * n, 3 * n))
    for i, j, k in ((0, 1, 30.0), (0, 2, 30.0), (1, 2, 5.0)):  # eV/Å² springs along bonds
        e = a.positions[j] - a.positions[i]
        e /= np.linalg.norm(e)
        b = k * np.outer(e, e)
        for p, q, sgn in ((i, i, 1), (j, j, 1), (i, j, -1), (j, i, -1)):
            phi[3 * p:3 * p + 3, 3 * q:3 * q + 3] += sgn * b
    f, m, _ = vibrational_analysis(phi, a.get_masses(), a.positions)
    return a, phi, f, m


@pytest.fixture()
def phonon_dir(tmp_path):
    from qdlab.workflows.phonon_io import save_phonons
    from qdlab.workflows.phonons import PhononResult

    a, phi, f, m = _water_modes()
    res = PhononResult(f, m, phi, a.get_masses(), 6, 0, "analytic", 0.0, 0.0)
    d = tmp_path / "ph"
    save_phonons(res, d / "phonons.npz")
    write(d / "relaxed.extxyz", a)
    return d, f, m


def _trajectory(path, n=2000, dt=0.5, velocities=True):
    """Water vibrating in two normal modes (analytic positions and velocities)."""
    a, _, f, m = _water_modes()
    w = 2 * np.pi * f / (1e15 / (units._c * 100.0))  # rad/fs
    frames = []
    for k in range(n):
        t = k * dt
        b = a.copy()
        amp = [0.05, 0.03]
        u = sum(amp[i] * m[i] * np.cos(w[i] * t) for i in range(2)) / np.sqrt(a.get_masses())[:, None]
        v = sum(-amp[i] * w[i] * m[i] * np.sin(w[i] * t) for i in range(2)) / np.sqrt(a.get_masses())[:, None]
        b.positions = a.positions + u
        if velocities:
            b.set_velocities(v / units.fs)
        b.info["time_fs"] = t
        frames.append(b)
    write(path, frames)
    return f


def test_thermal_and_harmonic(phonon_dir, tmp_path):
    d, f, _ = phonon_dir
    r = runner.invoke(app, ["phonons", "thermal", str(d), "-o", str(tmp_path / "th"), "--tmax", "300", "--tstep", "10",
                            "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    hw = units._hplanck * units._c * 100 * f / units._e
    assert s["zpe_eV"] == pytest.approx(hw.sum() / 2, rel=1e-12)
    assert (tmp_path / "th" / "thermal.png").exists() and (tmp_path / "th" / "thermal.csv").exists()
    r = runner.invoke(app, ["ir", "harmonic", str(d), "-d", "charges", "-o", str(tmp_path / "ih"), "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    pos = sorted(p["position_cm1"] for p in s["peaks"])
    np.testing.assert_allclose(pos, np.sort(f), atol=1.0)


def test_ir_md_peaks(tmp_path):
    f = _trajectory(tmp_path / "t.extxyz", n=4000)
    r = runner.invoke(app, ["ir", "md", str(tmp_path / "t.extxyz"), "-d", "charges", "--resolution", "25",
                            "--temperature", "300", "-o", str(tmp_path / "im"), "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    got = sorted(p["position_cm1"] for p in s["peaks"])
    np.testing.assert_allclose(got, np.sort(f[:2]), atol=s["resolution_cm1"])
    assert (tmp_path / "im" / "ir_md.png").exists()


def test_bad_inputs(tmp_path):
    from qdlab.engines.dipole_model import LatentChargeNet, LearnedDipole

    _trajectory(tmp_path / "nov.extxyz", n=50, velocities=False)
    r = runner.invoke(app, ["ir", "md", str(tmp_path / "nov.extxyz"), "-o", str(tmp_path / "o1")])
    assert r.exit_code == 2 and r.stderr.startswith("error:") and "no velocities" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "o1").exists()
    _trajectory(tmp_path / "short.extxyz", n=50)
    r = runner.invoke(app, ["ir", "md", str(tmp_path / "short.extxyz"), "--resolution", "5", "-o", str(tmp_path / "o2")])
    assert r.exit_code == 2 and "resolution needs a run" in r.stderr and not (tmp_path / "o2").exists()
    a = molecule("H2O")
    a.info["time_fs"] = 0.0
    write(tmp_path / "nq.extxyz", [a] * 20)
    r = runner.invoke(app, ["ir", "md", str(tmp_path / "nq.extxyz"), "-d", "charges", "-o", str(tmp_path / "o3")])
    assert r.exit_code == 2 and "no partial charges" in r.stderr and not (tmp_path / "o3").exists()
    LearnedDipole(LatentChargeNet(["C", "H"], n_radial=4, hidden=4)).save(tmp_path / "ch.pt")
    r = runner.invoke(app, ["ir", "md", str(tmp_path / "short.extxyz"), "-d", str(tmp_path / "ch.pt"),
                            "-o", str(tmp_path / "o4")])
    assert r.exit_code == 2 and "has O as well" in r.stderr and not (tmp_path / "o4").exists()


def test_train_and_parity(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "engines"))
    from test_dipoles import _dataset

    write(tmp_path / "d.extxyz", _dataset(30))
    r = runner.invoke(app, ["ir", "train", str(tmp_path / "d.extxyz"), "-o", str(tmp_path / "m.pt"), "--epochs", "60",
                            "--hidden", "16", "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert set(s["baselines_skipped"]) == {"seed001", "charges"}  # formaldehyde: no Pb, no charges
    assert (tmp_path / "m.parity.png").exists() and (tmp_path / "m.json").exists()
    r = runner.invoke(app, ["ir", "parity", str(tmp_path / "m.pt"), str(tmp_path / "d.extxyz"),
                            "-o", str(tmp_path / "p.png"), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["n_frames"] == 30


def test_learned_model_velocity_and_position_paths_agree(tmp_path):
    """μ̇ by the model's Jacobian–vector product and μ(t) with ω² in frequency space give the same bands."""
    import torch

    from qdlab.analysis.ir import ir_md
    from qdlab.engines.dipole_model import LatentChargeNet, LearnedDipole

    f = _trajectory(tmp_path / "t.extxyz", n=3000)
    torch.manual_seed(0)
    model = LearnedDipole(LatentChargeNet(["H", "O"], n_radial=6, hidden=8))
    kw = dict(resolution_cm1=30.0, temperature_K=300.0)
    sv = ir_md(tmp_path / "t.extxyz", model, derivative="velocities", **kw)
    sp = ir_md(tmp_path / "t.extxyz", model, derivative="positions", **kw)
    pv = sv.peaks(prominence=0.02, fmin_cm1=500)
    pp = sp.peaks(prominence=0.02, fmin_cm1=500)
    assert len(pv) == len(pp) >= 2
    np.testing.assert_allclose([p.position_cm1 for p in pv], [p.position_cm1 for p in pp], atol=sv.resolution_cm1)
    np.testing.assert_allclose([p.relative_area for p in pv], [p.relative_area for p in pp], rtol=0.05)
    for p in pv[:2]:
        assert np.abs(f - p.position_cm1).min() <= sv.resolution_cm1
