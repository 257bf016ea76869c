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
    # C(carboxyl) at the origin, O at (±1.1, 0.7), methyl C along −y
    pos = [[0, 0, 0], [1.1, 0.7, 0], [-1.1, 0.7, 0], [0, -1.5, 0]]
    return Atoms("CO2C", positions=pos)


def test_coo_character_shares_are_complete():
    """Over all vibrational modes of a molecule the shares of each COO coordinate sum to 1; a mode
    along the mass-weighted B-vector of s+ has share (1, 0)."""
    from qdlab.workflows.phonons import rigid_body_basis

    a = _acetate_frame()
    rng = np.random.default_rng(0)
    b = rigid_body_basis(a.positions, a.get_masses())
    p = np.eye(12) - b.T @ b
    _, v = np.linalg.eigh(p @ (lambda x: x + x.T)(rng.normal(size=(12, 12))) @ p + 10 * b.T @ b)
    modes = v[:, :12 - len(b)].T.reshape(-1, 4, 3)          # an orthonormal vibrational basis
    ch = coo_stretch_character(a, modes)
    np.testing.assert_allclose(ch.sum(0), [1.0, 1.0], atol=1e-10)
    assert np.all((ch >= 0) & (ch <= 1 + 1e-12))
    e1 = np.array([1.1, 0.7, 0]) / np.linalg.norm([1.1, 0.7])
    e2 = np.array([-1.1, 0.7, 0]) / np.linalg.norm([1.1, 0.7])
    bsym = np.zeros((4, 3))
    bsym[1], bsym[2], bsym[0] = e1, e2, -(e1 + e2)
    bsym /= np.sqrt(a.get_masses())[:, None]
    bsym /= np.linalg.norm(bsym)
    np.testing.assert_allclose(coo_stretch_character(a, bsym[None])[0], [1.0, 0.0], atol=1e-12)


def test_harmonic_bands_are_share_weighted_centres():
    a = _acetate_frame()
    rng = np.random.default_rng(1)
    modes = rng.normal(size=(6, 4, 3))
    freqs = np.array([300.0, 900.0, 1300.0, 1420.0, 1580.0, 1650.0])
    ch = coo_stretch_character(a, modes)
    b = harmonic_carboxylate_bands(a, freqs, modes)
    w = ch[2:, 0]
    assert b["nu_s"]["centre_cm1"] == pytest.approx((freqs[2:] * w).sum() / w.sum())
    assert b["delta_nu_cm1"] == pytest.approx(b["nu_as"]["centre_cm1"] - b["nu_s"]["centre_cm1"])
