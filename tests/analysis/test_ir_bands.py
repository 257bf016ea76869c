"""Carboxylate band analysis: windows on a synthetic spectrum, COO stretch character of built modes."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from qdlab.analysis.ir import IRSpectrum
from qdlab.analysis.ir_bands import carboxylate_bands, coo_stretch_character, harmonic_carboxylate_bands


def _lorentz(f, f0, w=8.0):
    return (w / 2 / np.pi) / ((f - f0) ** 2 + (w / 2) ** 2)


def test_bands_from_windows():
    f = np.arange(1000.0, 2000.0, 0.5)
    y = 2 * _lorentz(f, 1400) + _lorentz(f, 1452) + 0.5 * _lorentz(f, 1482) + 3 * _lorentz(f, 1575)
    b = carboxylate_bands(IRSpectrum(f, y, y, 300.0, 1.0, "test"))
    assert [b[k]["position_cm1"] for k in ("nu_s", "umbrella", "ch_bend", "nu_as")] == [1400, 1452, 1482, 1575]
    assert b["delta_nu_cm1"] == 175
    assert b["nu_as"]["paper_cm1"] == [1550.0, 1600.0]
    assert b["nu_as"]["area"] == pytest.approx(3.0, rel=0.05)  # most of a unit-area line inside its window


def _acetate_frame() -> Atoms:
    # C(carboxyl) at the origin, O at ±(1.1, 0.7), methyl C along −y
    pos = [[0, 0, 0], [1.1, 0.7, 0], [-1.1, 0.7, 0], [0, -1.5, 0]]
    return Atoms("CO2C", positions=pos)


def test_coo_character_of_built_modes():
    a = _acetate_frame()
    m = np.sqrt(a.get_masses())[:, None]
    e1 = np.array([1.1, 0.7, 0]) / np.linalg.norm([1.1, 0.7])
    e2 = np.array([-1.1, 0.7, 0]) / np.linalg.norm([1.1, 0.7])
    sym = np.zeros((4, 3))
    sym[1], sym[2] = e1, e2                  # both C–O bonds lengthen
    asym = np.zeros((4, 3))
    asym[1], asym[2] = e1, -e2               # one lengthens, the other shortens
    rot = np.zeros((4, 3))
    rot[3] = [0, 0, 1]                       # only the methyl C moves: no COO stretch
    modes = np.stack([sym * m, asym * m, rot * m])
    modes /= np.linalg.norm(modes.reshape(3, -1), axis=1)[:, None, None]
    ch = coo_stretch_character(a, modes)
    np.testing.assert_allclose(ch[0], [1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(ch[1], [0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(ch[2], [0.0, 0.0], atol=1e-12)
    b = harmonic_carboxylate_bands(a, np.array([1400.0, 1580.0, 1450.0]), modes, np.ones(3))
    assert b["nu_s"]["centre_cm1"] == 1400 and b["nu_as"]["centre_cm1"] == 1580 and b["delta_nu_cm1"] == 180
