"""Dipole-model training resumes (issue 16): a run killed with SIGKILL after k epochs in a subprocess,
then rerun, ends with the model, history and held-out metrics of an uninterrupted run, bitwise
(full-batch AdamW on CPU in float64, seeded initialisation, no randomness after it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from ase.build import molecule
from ase.io import write

from qdlab.engines.dipoles import ChargeDipole
from qdlab.errors import QdlabError

torch = pytest.importorskip("torch")

EPOCHS, KILL_AT = 40, 17
SETTINGS = dict(epochs=EPOCHS, hidden=12, n_radial=6, lr=5e-3, patience=1000, seed=3)


def _dataset(path, n: int = 20):
    """Rattled formaldehyde with a C=O-length dependent charge transfer (as in test_dipoles)."""
    rng = np.random.default_rng(7)
    frames = []
    for _ in range(n):
        a = molecule("H2CO")
        a.positions += rng.normal(scale=0.08, size=a.positions.shape)
        dq = 2.0 * (a.get_distance(0, 1) - 1.2)
        q = np.array([-0.45 - dq, 0.25 + dq, 0.10, 0.10])
        a.info["dipole_eA"] = ChargeDipole(q).dipoles(a, a.positions)[0]
        frames.append(a)
    write(path, frames)


def _fit(data, out, **kw):
    from ase.io import read

    from qdlab.workflows.dipole_fit import DipoleFitSettings, fit_dipole_model

    return fit_dipole_model(read(data, ":"), out, DipoleFitSettings(**SETTINGS), **kw)


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def test_sigkilled_training_resumes_to_the_uninterrupted_model(tmp_path):
    from qdlab.workflows.dipole_fit import resume_path

    data = tmp_path / "mu.extxyz"
    _dataset(data)
    ref = _fit(data, tmp_path / "ref.pt")
    assert ref.epochs_run == EPOCHS and ref.resumed_from_epoch == 0

    out = tmp_path / "cut.pt"
    code = f"""
import os, signal
from ase.io import read
from qdlab.workflows.dipole_fit import DipoleFitSettings, fit_dipole_model
def stop(epoch, epochs, val):
    if epoch == {KILL_AT}:
        os.kill(os.getpid(), signal.SIGKILL)
fit_dipole_model(read({str(data)!r}, ":"), {str(out)!r}, DipoleFitSettings(**{SETTINGS!r}), progress=stop)
"""
    proc = subprocess.run([sys.executable, "-c", code], timeout=120, env=os.environ.copy())
    assert proc.returncode == -signal.SIGKILL
    ck = torch.load(resume_path(out), map_location="cpu", weights_only=False)
    assert ck["epoch"] == KILL_AT and not ck["finished"] and len(ck["history"]) == KILL_AT
    assert out.exists()  # the best model so far is usable after the kill

    seen = []
    res = _fit(data, out, progress=lambda e, n, v: seen.append(e))
    assert seen == list(range(KILL_AT + 1, EPOCHS + 1))  # only the missing epochs were trained
    assert res.resumed_from_epoch == KILL_AT and res.epochs_run == EPOCHS
    assert res.best_epoch == ref.best_epoch
    a, b = _weights(tmp_path / "ref.pt"), _weights(out)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    np.testing.assert_array_equal(res.predicted_D, ref.predicted_D)
    assert res.rmse_D == ref.rmse_D and res.rmse_component_D == ref.rmse_component_D
    h_ref = torch.load(resume_path(tmp_path / "ref.pt"), map_location="cpu", weights_only=False)["history"]
    h_cut = torch.load(resume_path(out), map_location="cpu", weights_only=False)["history"]
    assert h_cut == h_ref  # train/validation RMSE and learning rate of every epoch


def test_finished_run_is_rescored_and_other_settings_are_refused(tmp_path):
    from qdlab.workflows.dipole_fit import DipoleFitSettings, fit_dipole_model

    data = tmp_path / "mu.extxyz"
    _dataset(data, n=10)
    first = _fit(data, tmp_path / "m.pt")
    seen = []
    again = _fit(data, tmp_path / "m.pt", progress=lambda e, n, v: seen.append(e))
    assert seen == [] and again.rmse_D == first.rmse_D and again.resumed_from_epoch == EPOCHS
    from ase.io import read

    with pytest.raises(QdlabError, match=r"other data or settings \(lr\)"):
        fit_dipole_model(read(data, ":"), tmp_path / "m.pt", DipoleFitSettings(**(SETTINGS | {"lr": 1e-3})))
    fresh = fit_dipole_model(read(data, ":"), tmp_path / "m.pt", DipoleFitSettings(**(SETTINGS | {"lr": 1e-3})),
                             restart=True)
    assert fresh.resumed_from_epoch == 0 and fresh.epochs_run == EPOCHS
