"""Harmonic thermal properties and ⟨u²⟩ against phonopy, the analytic oscillator and classical MD."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms, units
from ase.cluster import Icosahedron
from ase.optimize import BFGS

from qdlab.analysis.thermal import mean_square_displacement, thermal_properties
from qdlab.engines.classical import LJCoulomb
from qdlab.errors import QdlabError
from qdlab.workflows.phonons import rigid_body_basis, vibrational_analysis

TEMPS = np.array([0.0, 10.0, 100.0, 300.0, 1000.0])


@pytest.fixture(scope="module")
def lj13():
    """Relaxed LJ13 icosahedron (Pb masses, ε = 0.5 eV: stiff, nearly harmonic at 10 K)."""
    a = Icosahedron("Pb", 2, latticeconstant=3.0 * 2 ** (1 / 6) * 2 ** 0.5)
    a.center(vacuum=10.0)
    a.pbc = False
    calc = LJCoulomb(lj={"Pb": (3.0, 0.5)}, charges={"Pb": 0.0})
    a.calc = calc
    BFGS(a, logfile=None).run(fmax=1e-9, steps=500)
    phi = calc.get_hessian(a)
    # project the rigid-body space out of Φ so phonopy sees exactly six zero modes
    m = a.get_masses()
    s = np.sqrt(np.repeat(m, 3))
    b = rigid_body_basis(a.positions, m)
    p = np.eye(len(s)) - b.T @ b
    phi_p = s[:, None] * (p @ (phi / s[:, None] / s[None, :]) @ p) * s[None, :]
    return a, 0.5 * (phi_p + phi_p.T), calc


@pytest.fixture()
def ase_constants():
    """phonopy with ASE's CODATA constants (its defaults are older: ~3e-6 apart), restored afterwards."""
    from phonopy.physical_units import set_physical_units

    set_physical_units(KB_J=units._k, PlanckConstant=units._hplanck / units._e, Avogadro=units._Nav,
                       SpeedOfLight=units._c, AMU=units._amu, EV=units._e, Me=units._me)
    yield
    set_physical_units()


def _phonopy(atoms: Atoms, phi: np.ndarray):
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    cell = PhonopyAtoms(symbols=atoms.get_chemical_symbols(), cell=atoms.cell[:], positions=atoms.positions,
                        masses=atoms.get_masses())
    ph = Phonopy(cell, supercell_matrix=np.eye(3, dtype=int), primitive_matrix=np.eye(3))
    n = len(atoms)
    ph.force_constants = phi.reshape(n, 3, n, 3).transpose(0, 2, 1, 3)
    ph.run_mesh([1, 1, 1], is_gamma_center=True, with_eigenvectors=True, is_mesh_symmetry=False)
    return ph


def test_thermal_matches_phonopy(lj13, ase_constants):
    atoms, phi, _ = lj13
    freqs, modes, n_rigid = vibrational_analysis(phi, atoms.get_masses(), atoms.positions)
    assert n_rigid == 6
    ph = _phonopy(atoms, phi)
    cutoff_thz = 1.0 * units._c * 100 / 1e12  # 1 cm⁻¹
    ph.run_thermal_properties(temperatures=TEMPS[1:], cutoff_frequency=cutoff_thz)
    tp = ph.thermal_properties
    ref = {"free_energy": tp.free_energy, "entropy": tp.entropy, "heat_capacity": tp.heat_capacity}
    ours = thermal_properties(freqs, TEMPS[1:], cutoff_cm1=1.0).to_dict()
    assert ours["n_modes"] == 3 * len(atoms) - 6 and ours["n_excluded"] == 0
    for key, pkey in (("free_energy_kJ_mol", "free_energy"), ("entropy_J_K_mol", "entropy"),
                      ("heat_capacity_J_K_mol", "heat_capacity")):
        np.testing.assert_allclose(ours[key], ref[pkey], rtol=1e-6, err_msg=key)


def test_msd_matches_phonopy_thermal_displacements(lj13, ase_constants):
    atoms, phi, _ = lj13
    freqs, modes, _ = vibrational_analysis(phi, atoms.get_masses(), atoms.positions)
    ph = _phonopy(atoms, phi)
    ph.run_thermal_displacements(temperatures=TEMPS, freq_min=0.03)
    ref = np.asarray(ph.thermal_displacements.thermal_displacements).reshape(len(TEMPS), len(atoms), 3)  # Å²
    ours = mean_square_displacement(freqs, modes, atoms.get_masses(), TEMPS)
    np.testing.assert_allclose(ours.msd_A2, ref.sum(2), rtol=1e-6)


def test_diatomic_analytic():
    """One mode at ν̃: F, S, C_v, ZPE from the textbook oscillator, ⟨u²⟩ from ⟨Q²⟩ = E/ω² (reduced mass)."""
    nu = 2000.0
    hw = units._hplanck * units._c * 100 * nu / units._e
    kb = units._k / units._e
    t = np.array([50.0, 300.0, 3000.0])
    x = hw / (kb * t)
    tp = thermal_properties(np.array([0.0, 0.0, nu]), t, cutoff_cm1=1.0)
    assert tp.n_modes == 1 and tp.n_excluded == 2
    np.testing.assert_allclose(tp.zpe_eV, hw / 2, rtol=1e-12)
    np.testing.assert_allclose(tp.free_energy_eV, hw / 2 + kb * t * np.log1p(-np.exp(-x)), rtol=1e-9)
    np.testing.assert_allclose(tp.entropy_eV_K, kb * (x / np.expm1(x) - np.log1p(-np.exp(-x))), rtol=1e-9)
    np.testing.assert_allclose(tp.heat_capacity_eV_K, kb * x ** 2 * np.exp(x) / np.expm1(x) ** 2, rtol=1e-9)
    np.testing.assert_allclose(tp.free_energy_eV, tp.internal_energy_eV - t * tp.entropy_eV_K, rtol=1e-9)
    # diatomic m1, m2 along z: relative coordinate has ⟨r²⟩ = E/(μ ω²); atom i moves by μ/m_i of it
    m = np.array([12.0, 16.0])
    mu = m.prod() / m.sum()
    e = np.zeros((1, 2, 3))
    e[0, :, 2] = np.sqrt(m[::-1] / m.sum()) * np.array([1, -1])
    msd = mean_square_displacement(np.array([nu]), e, m, t)
    w2 = (2 * np.pi * units._c * 100 * nu) ** 2
    e_mode = hw / 2 / np.tanh(x / 2) * units._e
    rel = e_mode / (mu * units._amu * w2) * 1e20  # Å²
    np.testing.assert_allclose(msd.msd_A2, rel[:, None] * (mu / m[None, :]) ** 2, rtol=1e-9)
    cl = mean_square_displacement(np.array([nu]), e, m, t, classical=True)
    np.testing.assert_allclose(cl.msd_A2[:, 0], kb * t * units._e / (mu * units._amu * w2) * 1e20 * (mu / m[0]) ** 2,
                               rtol=1e-9)


def test_zero_temperature_and_bad_input():
    tp = thermal_properties(np.array([100.0, 200.0]), [0.0])
    assert tp.entropy_eV_K[0] == 0 and tp.heat_capacity_eV_K[0] == 0
    assert tp.free_energy_eV[0] == pytest.approx(tp.zpe_eV)
    assert thermal_properties(np.array([-50.0, 100.0]), [300]).n_imaginary == 1
    with pytest.raises(QdlabError):
        thermal_properties(np.array([100.0]), [-1.0])
    with pytest.raises(QdlabError):
        mean_square_displacement(np.array([100.0]), np.zeros((2, 3, 3)), np.ones(3), [10])


@pytest.mark.slow
def test_classical_msd_matches_langevin_rmsf(lj13):
    """Harmonic classical ⟨u²⟩ at 10 K vs the RMSF² of 10 K Langevin runs, within 3σ.

    Ten independent replicas of the cluster, 200 Å apart (interaction < 1e-9 eV), run as one system
    for speed; each replica is aligned on its own and σ is the standard error over the replicas.
    """
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    from qdlab.analysis.align import align_frames

    atoms, phi, calc = lj13
    freqs, modes, _ = vibrational_analysis(phi, atoms.get_masses(), atoms.positions)
    harm = mean_square_displacement(freqs, modes, atoms.get_masses(), [10.0], classical=True).msd_A2[0].sum()
    n_rep, n = 10, len(atoms)
    big = Atoms()
    for r in range(n_rep):
        c = atoms.copy()
        c.translate([200.0 * r, 0, 0])
        big += c
    big.calc = LJCoulomb(lj={"Pb": (3.0, 0.5)}, charges={"Pb": 0.0})
    rng = np.random.default_rng(3)
    MaxwellBoltzmannDistribution(big, temperature_K=10.0, rng=rng)
    dyn = Langevin(big, 3.0 * units.fs, temperature_K=10.0, friction=10.0 / (1000 * units.fs), fixcm=False, rng=rng)
    dyn.run(1000)  # 3 ps equilibration
    pos = []
    dyn.attach(lambda: pos.append(big.positions.copy()), interval=5)
    dyn.run(12_000)  # 36 ps per replica
    x = np.array(pos).reshape(len(pos), n_rep, n, 3)
    per_rep = []
    for r in range(n_rep):
        y = align_frames(x[:, r], None, "mean").positions_A
        per_rep.append(((y - y.mean(0)) ** 2).sum((1, 2)).mean())  # Σ_i RMSF_i²
    per_rep = np.array(per_rep)
    md, err = per_rep.mean(), per_rep.std(ddof=1) / np.sqrt(n_rep)
    assert err < 0.05 * md  # the check is meaningful
    print(f"classical <u2> 10 K: harmonic {harm:.6f} A2, Langevin RMSF2 {md:.6f} +- {err:.6f} A2")
    assert abs(md - harm) < 3 * err, (md, harm, err)
