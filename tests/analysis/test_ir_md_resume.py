"""`qdlab ir md` with a per-frame dipole source (xTB's code path, here a fixed-charge calculator
slowed on purpose and loaded as ``module:factory``) keeps its dipoles frame by frame: a run killed
with SIGKILL in a subprocess and rerun computes only the missing frames and writes the spectrum of
an uninterrupted run, bitwise; the dipoles equal the fixed-charge source's (independent path)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from ase import units
from ase.build import molecule
from ase.io import write
from typer.testing import CliRunner

from qdlab.cli.main import app

runner = CliRunner()
N_FRAMES, KILL_AT = 64, 25
MODULE = "qdlab_slow_charges_calc"

CALC = '''
import os, signal, time
import numpy as np
from ase.calculators.calculator import Calculator, all_changes

CALLS = [0]


class SlowCharges(Calculator):
    """mu = sum q_i r_i from the initial charges, after a sleep; SIGKILLs itself on call SLOWQ_KILL_AT."""

    implemented_properties = ["energy", "forces", "dipole"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        CALLS[0] += 1
        if CALLS[0] == int(os.environ.get("SLOWQ_KILL_AT", "0")):
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.02)
        q = self.atoms.get_initial_charges()
        self.results = {"energy": 0.0, "forces": np.zeros((len(self.atoms), 3)), "dipole": q @ self.atoms.positions}


def make():
    return SlowCharges()


def other():
    return SlowCharges()
'''


@pytest.fixture()
def slow_source(tmp_path, monkeypatch):
    (tmp_path / f"{MODULE}.py").write_text(textwrap.dedent(CALC))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.delenv("SLOWQ_KILL_AT", raising=False)
    import importlib

    return importlib.import_module(MODULE)


def _trajectory(path):
    """Water with charges, three incommensurate distortions (positions, velocities, time_fs)."""
    a = molecule("H2O")
    a.set_initial_charges([-0.8, 0.4, 0.4])
    rng = np.random.default_rng(2)
    shapes, w = rng.normal(scale=0.03, size=(3, 3, 3)), np.array([0.30, 0.55, 0.71])  # rad/fs
    frames = []
    for k in range(N_FRAMES):
        t = 0.5 * k
        b = a.copy()
        b.positions = a.positions + np.einsum("m,mia->ia", np.cos(w * t), shapes)
        b.set_velocities(np.einsum("m,mia->ia", -w * np.sin(w * t), shapes) / units.fs)
        b.info["time_fs"] = t
        frames.append(b)
    write(path, frames)


def _args(traj, source, out):
    return ["ir", "md", str(traj), "-d", source, "--derivative", "positions", "--temperature", "300",
            "-o", str(out), "--json"]


def test_killed_ir_md_resumes_per_frame(tmp_path, slow_source):
    traj = tmp_path / "t.extxyz"
    _trajectory(traj)
    r = runner.invoke(app, _args(traj, f"{MODULE}:make", tmp_path / "ref"))
    assert r.exit_code == 0, r.output
    ref = json.loads(r.stdout)
    assert ref["dipole_frames"]["computed"] == N_FRAMES and slow_source.CALLS[0] == N_FRAMES

    out = tmp_path / "cut"
    code = "import sys; from qdlab.cli.main import app; sys.argv[0] = 'qdlab'; app()"
    proc = subprocess.run([sys.executable, "-c", code, *_args(traj, f"{MODULE}:make", out)], timeout=120,
                          env=os.environ | {"SLOWQ_KILL_AT": str(KILL_AT)}, capture_output=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-500:]
    from ase.io import read

    from qdlab.engines.dipoles import CheckpointedDipole, get_dipole_source

    ck = CheckpointedDipole(get_dipole_source(f"{MODULE}:make", read(traj)), out / "dipoles.ckpt")
    assert len(ck.stored(read(traj))[0]) == KILL_AT - 1  # every frame finished before the kill was kept
    assert not (out / "ir_md.json").exists()

    slow_source.CALLS[0] = 0
    r = runner.invoke(app, _args(traj, f"{MODULE}:make", out))
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)
    assert slow_source.CALLS[0] == N_FRAMES - (KILL_AT - 1)  # only the missing frames were computed
    assert got["dipole_frames"] == {"computed": N_FRAMES - KILL_AT + 1, "reused": KILL_AT - 1,
                                    "checkpoint": str(out / "dipoles.ckpt")}
    assert (out / "ir_md.csv").read_bytes() == (tmp_path / "ref" / "ir_md.csv").read_bytes()
    assert got["peaks"] == ref["peaks"] and got["bands"] == ref["bands"]

    # a torn last record (a kill mid-write) is dropped; every complete frame is reused
    with open(out / "dipoles.ckpt", "ab") as fh:
        fh.write(b"\x07" * 17)
    slow_source.CALLS[0] = 0
    r = runner.invoke(app, _args(traj, f"{MODULE}:make", out))
    assert r.exit_code == 0 and slow_source.CALLS[0] == 0 and json.loads(r.stdout)["dipole_frames"]["reused"] == N_FRAMES
    assert (out / "ir_md.csv").read_bytes() == (tmp_path / "ref" / "ir_md.csv").read_bytes()

    # the same dipoles through the fixed-charge source (Σ q (r − r_com), vectorised, no calculator)
    r = runner.invoke(app, _args(traj, "charges", tmp_path / "q"))
    assert r.exit_code == 0, r.output
    a = np.loadtxt(out / "ir_md.csv", delimiter=",", skiprows=1)
    b = np.loadtxt(tmp_path / "q" / "ir_md.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-12 * np.abs(b).max())

    # a checkpoint of another source is refused in one line, and nothing is overwritten
    before = (out / "dipoles.ckpt").read_bytes()
    r = runner.invoke(app, _args(traj, f"{MODULE}:other", out))
    assert r.exit_code == 2 and "another structure or dipole source" in r.stderr
    assert (out / "dipoles.ckpt").read_bytes() == before
