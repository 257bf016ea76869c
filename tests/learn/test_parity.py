"""Parity analysis: metrics against scikit-learn, per-element reference refit, plots/JSON, and the
pretrained-CHGNet offset on the CP2K set (removed by the refit)."""

import json

import numpy as np
import pytest
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from learn.conftest import classical_frames
from qdlab.analysis.parity import (ensure_cell, evaluate, fit_element_shift, metrics, parity, predict,
                                   shift_per_atom, write_parity)
from qdlab.engines import get_calculator
from qdlab.store.db import labels, read_frames


def test_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y = rng.normal(size=500)
    p = y + rng.normal(scale=0.3, size=500)
    m = metrics(y, p)
    assert m.n == 500
    assert m.r2 == pytest.approx(r2_score(y, p), rel=1e-12)
    assert m.rmse == pytest.approx(np.sqrt(mean_squared_error(y, p)), rel=1e-12)
    assert m.mae == pytest.approx(mean_absolute_error(y, p), rel=1e-12)
    assert m.max_abs == pytest.approx(np.abs(p - y).max())


def test_element_shift_recovers_references():
    rng = np.random.default_rng(1)
    true = {55: -2.5, 82: -4.0, 53: -1.25}
    numbers = [rng.choice([55, 82, 53], size=rng.integers(20, 60)) for _ in range(30)]
    resid = shift_per_atom(numbers, true) + rng.normal(scale=1e-9, size=30)
    got = fit_element_shift(numbers, resid)
    assert got == pytest.approx(true, abs=1e-6)
    # one composition only: the minimum-norm shift reproduces the residual exactly
    same = [np.array([55] * 3 + [82] + [53] * 3)] * 4
    got = fit_element_shift(same, np.full(4, -370.0))
    assert shift_per_atom(same, got) == pytest.approx(np.full(4, -370.0))
    x = np.array([3, 1, 3]) / 7
    assert np.array([got[55], got[82], got[53]]) == pytest.approx(-370.0 * x / (x @ x))


def test_parity_perfect_and_shifted(tmp_path):
    frames = classical_frames(3)
    e = np.array([labels(a)[0] for a in frames])
    f = [labels(a)[1] for a in frames]
    r = parity(frames, e, f, label="exact")
    assert r.forces.rmse == 0 and r.forces.r2 == 1 and r.energy.rmse == 0
    assert set(r.forces_by_element) == {"Cs", "Pb", "I"}
    n = sum((a.symbols == "Pb").sum() for a in frames)
    assert r.forces_by_element["Pb"].n == 3 * n
    off = parity(frames, e + 10 * len(frames[0]), [x + 0.1 for x in f], label="off")
    assert off.energy.mae == pytest.approx(10) and off.forces.mae == pytest.approx(0.1)
    paths = write_parity([off, r], tmp_path / "p", title="test")
    doc = json.loads(paths["json"].read_text())
    assert [m["label"] for m in doc["models"]] == ["off", "exact"]
    assert paths["png"].stat().st_size > 10_000


def test_evaluate_refit_removes_offset():
    frames = classical_frames(4)
    calc = get_calculator("classical")

    class Offset(type(calc)):
        def calculate(self, atoms=None, properties=("energy",), system_changes=None):
            super().calculate(atoms, properties, system_changes or ["positions"])
            self.results["energy"] += 2.0 * (atoms.symbols == "I").sum() - 1.0 * (atoms.symbols == "Cs").sum()

    plain = evaluate(Offset(), frames[2:], refit_frames=None)
    refit = evaluate(Offset(), frames[2:], refit_frames=frames[:2])
    assert plain.energy.mae > 0.5 and refit.energy.mae < 1e-9
    assert refit.forces.rmse < 1e-12 and refit.energy_shift_eV


def test_ensure_cell():
    a = classical_frames(1)[0]
    assert np.array_equal(ensure_cell(a).cell.array, a.cell.array)  # builder box is large enough
    bare = a.copy()
    bare.cell = np.zeros((3, 3))
    boxed = ensure_cell(bare, vacuum_A=10)
    assert np.allclose(np.diag(boxed.cell.array), np.ptp(a.positions, 0) + 20)
    assert np.array_equal(boxed.positions, a.positions) and not boxed.pbc.any()


def test_pretrained_chgnet_offset_on_cp2k(cp2k_path):
    """CP2K energies sit ~370 eV/atom below CHGNet's: compare energies only after the refit."""
    frames = read_frames(cp2k_path, index="0:4")
    e, f = predict(get_calculator("chgnet"), frames)
    n = np.array([len(a) for a in frames])
    raw = parity(frames[2:], e[2:], f[2:])
    resid = np.array([labels(a)[0] for a in frames[:2]]) / n[:2] - e[:2] / n[:2]
    shift = fit_element_shift([a.numbers for a in frames[:2]], resid)
    refit = parity(frames[2:], e[2:], f[2:], energy_shift=shift)
    assert raw.energy.mae > 300  # eV/atom: the reference-energy offset
    assert refit.energy.mae < 0.01 and sum(refit.energy_shift_eV.values()) < -300
    assert refit.forces.rmse == raw.forces.rmse and 0.03 < raw.forces.rmse < 0.3
