"""IR from dipoles: synthetic traces (analytic), harmonic intensities vs ASE ``Infrared``, MD vs harmonic."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms, units
from ase.build import molecule

from qdlab.analysis.ir import autocorrelation, ir_md, spectrum_from_derivative
from qdlab.analysis.ir_harmonic import born_charges, harmonic_ir
from qdlab.analysis.vdos import _PER_FS_TO_CM1, quantum_correction
from qdlab.engines.dipoles import ChargeDipole
from qdlab.errors import QdlabError

NU = np.array([500.0, 1400.0, 1600.0])      # cm⁻¹
AMP = np.array([4.0, 1.0, 1.0])              # e·Å
DT = 1.0                                     # fs


def _trace(n: int = 16384, derivative: bool = False) -> np.ndarray:
    t = np.arange(n) * DT
    w = 2 * np.pi * NU / _PER_FS_TO_CM1       # rad/fs
    phase = np.array([0.3, 1.1, 2.0])
    out = np.zeros((n, 3))
    for k in range(3):  # one band per axis plus a copy of band 0 on z, to mix components
        v = -AMP[k] * w[k] * np.sin(w[k] * t + phase[k]) if derivative else AMP[k] * np.cos(w[k] * t + phase[k])
        out[:, k] += v
    return out


@pytest.mark.parametrize("derivative", [False, True])
def test_synthetic_cosines(derivative):
    """Peaks at the cosines' wavenumbers (within the resolution); relative areas ∝ A²ω²·Q(ν)."""
    spec = spectrum_from_derivative(_trace(derivative=derivative), DT, 300.0, resolution_cm1=4.0,
                                    from_dipole=not derivative)
    assert spec.resolution_cm1 <= 4.0
    peaks = spec.peaks(prominence=0.01)
    assert len(peaks) == 3
    pos = np.array([p.position_cm1 for p in peaks])
    np.testing.assert_allclose(pos, NU, atol=spec.resolution_cm1)
    expect = AMP ** 2 * NU ** 2 * quantum_correction(NU, 300.0)
    got = np.array([p.relative_area for p in peaks])
    np.testing.assert_allclose(got, expect / expect.sum(), rtol=0.01)
    # classical curve: areas ∝ A²ω² (no correction)
    cl = np.array([p.relative_area for p in spec.peaks(prominence=0.01, curve="classical")])
    np.testing.assert_allclose(cl, (AMP * NU) ** 2 / ((AMP * NU) ** 2).sum(), rtol=0.01)


def test_parseval_box_window():
    """∫ S dν̃ = ⟨|μ̇|²⟩ with a box window and the maximal lag (the normalisation in the docstring)."""
    x = _trace(4096, derivative=True)
    spec = spectrum_from_derivative(x, DT, 300.0, window="none", resolution_cm1=_PER_FS_TO_CM1 / (4095 * DT))
    df = spec.frequencies_cm1[1] - spec.frequencies_cm1[0]
    area = spec.classical.sum() * df - 0.5 * spec.classical[0] * df
    ref = ((x - x.mean(0)) ** 2).sum(1).mean()
    assert area == pytest.approx(ref, rel=0.02)


def test_autocorrelation_direct():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3))
    c = autocorrelation(x, 20)
    ref = [np.mean((x[: 300 - j] * x[j:]).sum(1)) for j in range(20)]
    np.testing.assert_allclose(c, ref, rtol=1e-10)


def test_too_short_and_bad_input():
    with pytest.raises(QdlabError, match="resolution needs a run"):
        spectrum_from_derivative(_trace(1000), DT, 300.0, resolution_cm1=1.0, from_dipole=True)
    with pytest.raises(QdlabError, match="≥ 8 frames"):
        spectrum_from_derivative(_trace(5), DT, 300.0)
    frames = [Atoms("CO", positions=[[0, 0, 0], [0, 0, 1.1 + 0.01 * i]]) for i in range(20)]
    for i, f in enumerate(frames):
        f.info["time_fs"] = float(i)
    with pytest.raises(QdlabError, match="no velocities"):
        ir_md(frames, ChargeDipole(np.array([0.2, -0.2])), derivative="velocities", temperature_K=300)


class _FixedChargeXTB:
    """xTB forces with a fixed-charge dipole (so ASE ``Infrared`` and qdlab see the same source)."""

    def __new__(cls, charges):
        from qdlab.engines.xtb import XTB

        class Calc(XTB):
            implemented_properties = ["energy", "free_energy", "forces", "dipole"]

            def calculate(self, atoms=None, properties=("energy",), system_changes=None):
                from ase.calculators.calculator import all_changes

                super().calculate(atoms, properties, system_changes or all_changes)
                self.results["dipole"] = ChargeDipole(charges).dipoles(self.atoms, self.atoms.positions)[0]

        return Calc("gfn2")


@pytest.fixture(scope="module")
def water():
    pytest.importorskip("tblite")
    from ase.optimize import BFGS

    from qdlab.engines.xtb import XTB

    a = molecule("H2O")
    a.calc = XTB("gfn2")
    BFGS(a, logfile=None).run(fmax=1e-5)
    a.calc = None
    return a


@pytest.mark.parametrize("dipoles", ["charges", "xtb"])
def test_harmonic_matches_ase_infrared(water, tmp_path, dipoles):
    """Same geometry, same δ = 0.01 Å, same dipole source: frequencies and intensities as ASE (rtol 1e-4)."""
    from ase.vibrations import Infrared

    from qdlab.engines.dipoles import xtb_dipole
    from qdlab.engines.xtb import XTB
    from qdlab.workflows.phonons import phonons

    q = np.array([-0.8, 0.4, 0.4])
    calc = _FixedChargeXTB(q) if dipoles == "charges" else XTB("gfn2")
    a = water.copy()
    a.calc = calc
    ir = Infrared(a, name=str(tmp_path / "ir"), delta=0.01)
    ir.run()
    ir.read()
    ref_f = ir.get_frequencies().real[-3:]
    ref_i = ir.intensities[-3:]
    ph = phonons(water, XTB("gfn2"), delta=0.01)
    source = ChargeDipole(q) if dipoles == "charges" else xtb_dipole("gfn2")
    res = harmonic_ir(water, ph.frequencies_cm1, ph.modes, source)
    np.testing.assert_allclose(res.frequencies_cm1, ref_f, rtol=1e-6)  # measured 1.5e-9
    # measured 7.5e-5 (charges), 2.9e-4 (xTB): ASE keeps the rigid modes in its eigenvectors, we project them
    np.testing.assert_allclose(res.intensities_D2_A2_amu, ref_i, rtol=1e-3, atol=1e-6 * ref_i.max())


def test_fd_born_charges_equal_analytic(water):
    q = np.array([-0.8, 0.4, 0.4])
    analytic = ChargeDipole(q).born_charges(water)

    class NoAnalytic:
        name = "fd"

        def dipoles(self, atoms, positions):
            return ChargeDipole(q).dipoles(atoms, positions)

    np.testing.assert_allclose(born_charges(water, NoAnalytic()), analytic, atol=1e-9)


@pytest.fixture(scope="module")
def formaldehyde():
    pytest.importorskip("tblite")
    from ase.optimize import BFGS

    from qdlab.engines.xtb import XTB

    a = molecule("H2CO")
    a.calc = XTB("gfn2")
    BFGS(a, logfile=None).run(fmax=1e-5)
    a.calc = None
    return a


@pytest.mark.slow
def test_md_peaks_match_harmonic(formaldehyde):
    """Formaldehyde (GFN2-xTB; six modes ≥ 40 cm⁻¹ apart), 20 K NVE, 2 ps at 0.25 fs: every MD IR peak
    (fixed charges, μ̇ = Σ q v) matches a harmonic mode, and every harmonic mode with ≥ 2 % of the
    intensity is found, within the spectral resolution; band areas match the harmonic intensities."""
    from ase.md.verlet import VelocityVerlet

    from qdlab.engines.xtb import XTB
    from qdlab.workflows.phonons import phonons

    mol = formaldehyde
    q = np.array([-0.45, 0.25, 0.10, 0.10])  # O, C, H, H
    ph = phonons(mol, XTB("gfn2"), delta=0.01)
    harm = harmonic_ir(mol, ph.frequencies_cm1, ph.modes, ChargeDipole(q))
    assert np.diff(np.sort(harm.frequencies_cm1)).min() > 40
    a = mol.copy()
    a.calc = XTB("gfn2")
    # every normal mode starts with k_BT (all kinetic, random sign): one short NVE run then samples
    # each band with its equipartition weight instead of a random Maxwell-Boltzmann share
    signs = np.random.default_rng(1).choice([-1.0, 1.0], size=len(ph.frequencies_cm1))
    qdot = np.sqrt(2 * units.kB * 20.0) * signs
    a.set_velocities(np.einsum("k,kia->ia", qdot, ph.modes) / np.sqrt(a.get_masses())[:, None])
    frames = []

    def snap():
        f = a.copy()
        f.info["time_fs"] = len(frames) * 0.25
        frames.append(f)

    dyn = VelocityVerlet(a, 0.25 * units.fs)
    dyn.attach(snap, interval=1)
    dyn.run(8000)
    spec = ir_md(frames, ChargeDipole(q), derivative="velocities", resolution_cm1=20.0)
    md = np.array([p.position_cm1 for p in spec.peaks(prominence=0.02, fmin_cm1=500)])
    strong = harm.frequencies_cm1[harm.intensities_D2_A2_amu >= 0.02 * harm.intensities_D2_A2_amu.sum()]
    assert len(md) and len(strong) >= 4
    for f in md:
        assert np.abs(harm.frequencies_cm1 - f).min() <= spec.resolution_cm1, (f, harm.frequencies_cm1)
    for f in strong:
        assert np.abs(md - f).min() <= spec.resolution_cm1, (f, md)
    # classical band areas ∝ k_BT·|dμ/dQ|²: relative areas as the harmonic intensities (within 5 %;
    # measured ≤ 1.5 %)
    cl = spec.peaks(prominence=0.02, fmin_cm1=500, curve="classical")
    match = [int(np.abs(harm.frequencies_cm1 - p.position_cm1).argmin()) for p in cl]
    ref = harm.intensities_D2_A2_amu[match] / harm.intensities_D2_A2_amu[match].sum()
    np.testing.assert_allclose([p.relative_area for p in cl], ref, rtol=0.05)


def test_born_checkpoint_resumes(water, tmp_path):
    """A Born-charge run interrupted after two atoms resumes from its checkpoint with the same result."""
    q = np.array([-0.8, 0.4, 0.4])
    calls = []

    class Counting:
        name = "counting"

        def dipoles(self, atoms, positions):
            calls.append(len(positions))
            if len(calls) == 3:
                raise KeyboardInterrupt
            return ChargeDipole(q).dipoles(atoms, positions)

    ck = tmp_path / "born.npz"
    with pytest.raises(KeyboardInterrupt):
        born_charges(water, Counting(), checkpoint=ck)
    z = born_charges(water, Counting(), checkpoint=ck)
    assert calls == [6, 6, 6, 6]  # two atoms done, one interrupted, then only the third computed
    np.testing.assert_allclose(z, ChargeDipole(q).born_charges(water), atol=1e-9)
