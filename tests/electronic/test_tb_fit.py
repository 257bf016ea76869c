"""Fitting η and on-site shifts: recovery of known parameters from gaps made with them (synthetic reference)."""

import numpy as np
import pytest

from qdlab.build import PerovskiteRecipe, build
from qdlab.electronic.tb.fit import fit_params, tb_gaps
from qdlab.electronic.tb.params import load_params
from qdlab.errors import QdlabError


def _frames(k=8):
    atoms = build(PerovskiteRecipe(size="1", composition="CsPbBr3", seed=0))
    rng = np.random.default_rng(5)
    out = []
    for i in range(k):
        a = atoms.copy()
        a.positions *= 1.0 + 0.02 * (i - k / 2) / k          # breathing (volume changes)
        a.positions += rng.normal(0, 0.04, a.positions.shape)
        out.append(a)
    return out


def test_fit_recovers_eta_and_shift():
    base = load_params("CsPbBr3-kashikar")
    truth = base.with_changes(eta=3.0, shifts={"Br": {"p": 0.25}})
    frames = _frames()
    ref = tb_gaps(frames, truth)
    held = np.zeros(len(frames), bool)
    held[::4] = True
    res = fit_params(frames, ref, base, ["eta", "shift:Br:p"], relative=False, held_out=held)
    assert res.values[0] == pytest.approx(3.0, abs=1e-3) and res.values[1] == pytest.approx(0.25, abs=1e-3)
    s = res.summary()
    assert s["held_out"]["fitted"]["rmse_meV"] < 0.1 < s["held_out"]["initial"]["rmse_meV"]
    rel = fit_params(frames, ref + 0.7, base.with_changes(shifts={"Br": {"p": 0.25}}), ["eta"], relative=True)
    assert rel.values[0] == pytest.approx(3.0, abs=1e-2)                     # an offset does not matter


def test_fit_bad_names():
    with pytest.raises(QdlabError, match="shift:ELEMENT:ORBITAL"):
        fit_params(_frames(3), np.ones(3), load_params("CsPbBr3-kashikar"), ["shift:Br:s"])
