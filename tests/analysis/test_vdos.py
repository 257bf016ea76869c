"""Vibrational DOS: analytic single oscillator, quantum correction, and a 5 K NVE run of a CsPbI3 cluster
against its harmonic (analytic Hessian) frequencies."""

import numpy as np
import pytest
from ase import Atoms, units
from scipy import constants

from qdlab.analysis.vdos import quantum_correction, vdos
from qdlab.errors import QdlabError


def oscillator_frames(nu_cm1, n=400, dt=5.0, amp=0.01, momenta=True):
    """One Pb atom with v_x(t) = A cos(2π ν t) (positions integrated analytically)."""
    nu_fs = nu_cm1 * constants.c * 100 / 1e15
    t = np.arange(n) * dt
    out = []
    for k, tk in enumerate(t):
        a = Atoms("Pb", positions=[[amp / (2 * np.pi * nu_fs) * np.sin(2 * np.pi * nu_fs * tk), 0, 0]])
        if momenta:
            v = amp * np.cos(2 * np.pi * nu_fs * tk) / units.fs  # Å/fs → ASE velocity
            a.set_velocities([[v, 0, 0]])
        a.info["time_fs"] = tk
        out.append(a)
    return out


def test_single_oscillator_peak_and_normalisation():
    dt, n = 5.0, 400
    res_cm1 = 1e15 / (n * dt) / (constants.c * 100)
    nu = 37 * res_cm1  # exactly on a frequency bin
    frames = oscillator_frames(nu, n, dt)
    g = vdos(frames, window="none")
    assert g.resolution_cm1 == pytest.approx(res_cm1, rel=1e-12)
    assert g.frequencies_cm1[np.argmax(g.classical_total)] == pytest.approx(nu, rel=1e-12)
    # ∫ g_cl dν = m⟨v²⟩/k_BT = 3 (one atom) with T the kinetic temperature (Parseval, exact)
    m = frames[0].get_masses()[0]
    t_kin = m * (0.01 ** 2 / 2) * units._amu * 1e10 / units._e / (3 * units.kB)  # ⟨v²⟩ = A²/2
    assert g.temperature_K == pytest.approx(t_kin, rel=1e-9)
    assert g.classical_total.sum() * (g.frequencies_cm1[1] - g.frequencies_cm1[0]) == pytest.approx(3.0, rel=1e-9)
    # Hann window, off-bin frequency, zero padding: the peak stays within the resolution
    nu2 = 41.37 * res_cm1
    g2 = vdos(oscillator_frames(nu2, n, dt), window="hann", pad=8)
    assert abs(g2.frequencies_cm1[np.argmax(g2.classical_total)] - nu2) < 0.1 * res_cm1
    # from positions (no momenta): the ω² factor gives the same spectrum up to discretisation
    g3 = vdos(oscillator_frames(nu2, n, dt, momenta=False), temperature_K=g2.temperature_K, pad=8, align=False)
    assert g3.source == "positions"
    assert abs(g3.frequencies_cm1[np.argmax(g3.classical_total)] - nu2) < 0.1 * res_cm1


def test_quantum_correction():
    nu, temp = np.array([0.0, 1.0, 50.0, 120.0, 1500.0]), 10.0
    x = constants.h * constants.c * 100 * nu / (constants.k * temp)
    ref = np.ones_like(x)
    ref[1:] = x[1:] * (1 + 1 / np.expm1(x[1:]))  # (ħω/k_BT)(1 + n_BE)
    # ase.units (used by qdlab) follows CODATA 2014, scipy.constants CODATA 2018: h c / k differs by 3e-7
    np.testing.assert_allclose(quantum_correction(nu, temp), ref, rtol=1e-6)
    assert quantum_correction(np.array([1e-3]), 300.0)[0] == pytest.approx(1.0, abs=1e-5)


@pytest.fixture(scope="module")
def md_run():
    """CsPbI3 2×2×2 (63 atoms, LJ+Coulomb of seed 003) relaxed, harmonic frequencies from the analytic
    Hessian, then 50 ps of NVE velocity Verlet (dt 10 fs) from Maxwell–Boltzmann velocities at 10 K with
    zero momentum and angular momentum (≈5 K after equipartition with the potential energy)."""
    from ase.md.velocitydistribution import Stationary, ZeroRotation, thermalize_momenta
    from ase.md.verlet import VelocityVerlet

    from qdlab.build import PerovskiteRecipe, build
    from qdlab.engines import get_calculator
    from qdlab.workflows.phonons import phonons
    from qdlab.workflows.relax import relax

    calc = get_calculator("classical")
    a = build(PerovskiteRecipe(composition="CsPbI3", size="2", neutrality="surface-charge"))
    r = relax(a, calc, fmax=1e-5, steps=5000)
    assert r.converged
    atoms = r.atoms
    atoms.constraints = []
    harmonic = phonons(atoms, calc, method="analytic").frequencies_cm1
    thermalize_momenta(atoms, 10.0, rng=np.random.default_rng(0))
    Stationary(atoms)
    ZeroRotation(atoms)
    atoms.calc = calc
    dt = 10.0
    frames = []

    def record():
        b = Atoms(atoms.numbers, positions=atoms.positions, momenta=atoms.get_momenta())
        b.info["time_fs"] = len(frames) * dt
        frames.append(b)

    dyn = VelocityVerlet(atoms, timestep=dt * units.fs)
    dyn.attach(record, interval=1)
    dyn.run(4999)
    return frames, harmonic


def test_md_vdos_matches_harmonic_frequencies(md_run):
    frames, harmonic = md_run
    g = vdos(frames, pad=4, selections="element")
    res = g.resolution_cm1
    assert len(frames) == 5000 and res == pytest.approx(0.667, abs=0.001)  # 1/(50 ps)
    assert 3.0 < g.temperature_K < 7.0
    # every clear VDOS peak sits on a harmonic frequency (measured: 24 peaks, max deviation 0.29 cm⁻¹)
    peaks = g.peaks(prominence=0.05)
    assert len(peaks) >= 15
    dev = np.abs(peaks[:, None] - harmonic[None, :]).min(1)
    assert dev.max() < res
    # every isolated harmonic frequency (no other mode within 3 resolutions) has a VDOS maximum within
    # the resolution, weak modes included (measured: 8 distinct frequencies, max deviation 0.29 cm⁻¹)
    distinct = np.unique(np.round(harmonic, 2))
    gap = np.minimum(np.diff(np.r_[-np.inf, distinct]), np.diff(np.r_[distinct, np.inf]))
    isolated = distinct[gap > 3 * res]
    all_peaks = g.peaks(prominence=0.0)
    dev_iso = np.abs(isolated[:, None] - all_peaks[None, :]).min(1)
    assert len(isolated) >= 6 and dev_iso.max() < res
    # partial VDOS per element add up to the total; quantum correction applied on top
    np.testing.assert_allclose(sum(g.classical_partial.values()), g.classical_total, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(g.total, g.classical_total * quantum_correction(g.frequencies_cm1, g.temperature_K),
                               rtol=1e-12)
    assert g.frequencies_cm1[np.argmax(g.classical_total)] < harmonic.max() + res


def test_md_vdos_normalisation_and_positions(md_run):
    frames, harmonic = md_run
    box = vdos(frames, window="none")
    dnu = box.frequencies_cm1[1] - box.frequencies_cm1[0]
    assert box.classical_total.sum() * dnu == pytest.approx(3 * len(frames[0]), rel=1e-9)  # 3N modes
    # frozen atoms (velocity ≡ 0, as the MD workflow's frozen core writes them) are not degrees of freedom
    frozen = [Atoms(f.numbers, positions=f.positions, momenta=f.get_momenta() * (np.arange(len(f)) >= 10)[:, None],
                    info=dict(f.info)) for f in frames[:500]]
    gf = vdos(frozen, window="none")
    dnu_f = gf.frequencies_cm1[1] - gf.frequencies_cm1[0]
    assert gf.classical_total.sum() * dnu_f == pytest.approx(3 * (len(frames[0]) - 10), rel=1e-9)
    # the same run from positions only (e.g. an extended XYZ without momenta): same peaks
    no_v = [Atoms(f.numbers, positions=f.positions, info=dict(f.info)) for f in frames[::2]]
    gp = vdos(no_v, temperature_K=box.temperature_K, pad=4)
    gv = vdos(frames[::2], pad=4)
    assert gp.source == "positions" and gv.source == "velocities"
    pp = gp.peaks(0.05)
    dev = np.abs(pp[:, None] - gv.peaks(0.0)[None, :]).min(1)
    assert dev.max() < gp.resolution_cm1
    assert np.abs(pp[:, None] - harmonic[None, :]).min(1).max() < gp.resolution_cm1


def test_errors():
    frames = oscillator_frames(50.0, 20)
    for f in frames:
        del f.info["time_fs"]
    with pytest.raises(QdlabError, match="time_fs"):
        vdos(frames)
    assert vdos(frames, dt_fs=5.0).dt_fs == 5.0
    with pytest.raises(QdlabError, match="too few"):
        vdos(frames[:5], dt_fs=5.0)
    no_v = oscillator_frames(50.0, 20, momenta=False)
    with pytest.raises(QdlabError, match="no velocities"):
        vdos(no_v, source="velocities")
    with pytest.raises(QdlabError, match="temperature"):
        vdos(no_v)
    with pytest.raises(QdlabError, match="unknown window"):
        vdos(frames, dt_fs=5.0, window="nope")
