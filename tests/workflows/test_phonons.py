"""Γ phonons: agreement with ASE Vibrations, phonopy and analytic cases; checkpoint/resume; DOS."""

import json
import os
import warnings

import numpy as np
import pytest
from ase import Atoms

from qdlab.analysis.dos import find_peak, gaussian_dos, label_selections, mode_peaks, phonon_dos
from qdlab.build import PerovskiteRecipe, build
from qdlab.engines import get_calculator
from qdlab.engines.classical import COULOMB, LJCoulomb
from qdlab.errors import QdlabError
from qdlab.workflows.phonons import eigenvalue_to_cm1, harmonicity, phonons
from qdlab.workflows.relax import relax

THZ_TO_CM1 = 33.35641  # phonopy reports THz


@pytest.fixture(scope="module")
def relaxed():
    a = build(PerovskiteRecipe(composition="CsPbI3", size="2", neutrality="surface-charge"))
    r = relax(a, LJCoulomb(), fmax=1e-4, steps=5000)
    assert r.converged
    out = r.atoms
    out.constraints = []
    return out


def _compare_above(ours, theirs, threshold=5.0):
    a = np.sort(ours[np.abs(ours) > threshold])
    b = np.sort(theirs[np.abs(theirs) > threshold])
    assert len(a) == len(b), (len(a), len(b))
    return np.abs(a - b).max()


def test_matches_ase_vibrations(relaxed, tmp_path):
    from ase.vibrations import Vibrations

    res = phonons(relaxed, LJCoulomb())
    a = relaxed.copy()
    a.calc = LJCoulomb()
    vib = Vibrations(a, name=str(tmp_path / "vib"), delta=0.01, nfree=2)
    vib.run()
    f = vib.get_frequencies()
    ase_cm1 = np.where(np.abs(f.imag) > 0, -np.abs(f.imag), f.real)
    assert res.n_modes == 3 * len(relaxed) - 6 and res.n_rigid == 6
    assert _compare_above(res.frequencies_cm1, ase_cm1) < 0.5  # measured ~2e-9 cm⁻¹


def test_matches_phonopy(relaxed):
    """phonopy's own workflow (symmetry-reduced displacements, its force constants) on the same engine."""
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    unit = PhonopyAtoms(symbols=relaxed.get_chemical_symbols(), cell=relaxed.cell.array, positions=relaxed.positions)
    ph = Phonopy(unit, supercell_matrix=np.eye(3, dtype=int))
    ph.generate_displacements(distance=0.01, is_plusminus=True)
    calc = LJCoulomb(charges=None)
    forces = []
    for sc in ph.supercells_with_displacements:
        x = Atoms(sc.symbols, positions=sc.positions, pbc=False)
        x.set_initial_charges(relaxed.get_initial_charges())
        x.calc = calc
        forces.append(x.get_forces())
    ph.forces = np.array(forces)
    ph.produce_force_constants()
    ph.run_qpoints([[0, 0, 0]])
    ref = ph.qpoints.frequencies[0] * THZ_TO_CM1
    ours = phonons(relaxed, LJCoulomb()).frequencies_cm1
    assert len(ph.supercells_with_displacements) < 6 * len(relaxed)  # phonopy used the Oh symmetry
    assert _compare_above(ours, ref) < 0.5


def test_periodic_cell_projects_translations_only_and_matches_phonopy():
    """A 3D-periodic cell: only the 3 translations are rigid (a rotated crystal is another structure),
    so 3N − 3 modes remain; they equal phonopy's Γ frequencies of the same cell (EMT copper, 2×2×2 fcc,
    one atom moved so no mode is symmetry-trivial: both take the Hessian at that geometry), within 0.5 cm⁻¹."""
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    a = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2)
    a.positions[0] += [0.03, -0.02, 0.01]
    cell = a
    ours = phonons(cell, EMT(), imaginary_tol_cm1=1e9)
    assert ours.n_rigid == 3 and len(ours.frequencies_cm1) == 3 * len(cell) - 3
    unit = PhonopyAtoms(symbols=cell.get_chemical_symbols(), cell=cell.cell.array, positions=cell.positions)
    ph = Phonopy(unit, supercell_matrix=np.eye(3, dtype=int), primitive_matrix=np.eye(3))
    ph.generate_displacements(distance=0.01, is_plusminus=True)
    forces = []
    for sc in ph.supercells_with_displacements:
        x = Atoms(sc.symbols, positions=sc.positions, cell=sc.cell, pbc=True)
        x.calc = EMT()
        forces.append(x.get_forces())
    ph.forces = np.array(forces)
    ph.produce_force_constants()
    ph.run_qpoints([[0, 0, 0]])
    ref = ph.qpoints.frequencies[0] * THZ_TO_CM1
    assert _compare_above(ours.frequencies_cm1, ref) < 0.5


def test_analytic_hessian_agrees_with_fd(relaxed):
    fd = phonons(relaxed, LJCoulomb())
    an = phonons(relaxed, LJCoulomb(), method="analytic")
    assert np.abs(fd.frequencies_cm1 - an.frequencies_cm1).max() < 0.1  # measured 0.018 cm⁻¹
    with pytest.raises(QdlabError, match="no analytic Hessian"):
        phonons(relaxed, get_calculator("xtb"), method="analytic")


def _pair(r, s, eps, qq):
    """V, V', V'' of LJ + Coulomb at r."""
    sr6 = (s / r) ** 6
    v = 4 * eps * (sr6 * sr6 - sr6) + qq / r
    d1 = 4 * eps * (-12 * sr6 * sr6 + 6 * sr6) / r - qq / r ** 2
    d2 = 4 * eps * (156 * sr6 * sr6 - 42 * sr6) / r ** 2 + 2 * qq / r ** 3
    return v, d1, d2


def test_diatomic_analytic():
    from scipy.optimize import brentq

    s, eps = 3.0, 0.05
    q = (0.4, -0.4)
    qq = COULOMB * q[0] * q[1]
    r0 = brentq(lambda r: _pair(r, s, eps, qq)[1], 1.5, 6.0)
    d = Atoms("PbI", positions=[[0, 0, 0], [0, 0, r0]])
    d.set_initial_charges(q)
    lj = {"Pb": (s, eps), "I": (s, eps)}
    res = phonons(d, LJCoulomb(lj=lj), delta=1e-3)
    mu = np.prod(d.get_masses()) / d.get_masses().sum()
    k = _pair(r0, s, eps, qq)[2]
    assert res.n_modes == 1 and res.n_rigid == 5
    assert res.frequencies_cm1[0] == pytest.approx(eigenvalue_to_cm1(k / mu), rel=1e-4)


def test_linear_triatomic_analytic():
    """Symmetric I–Pb–I: ν_s² = (k + 2k')/m_I, ν_as² = k(1/m_I + 2/m_Pb), bend² = t(1/m_I + 2/m_Pb)."""
    from scipy.optimize import brentq

    lj = {"Pb": (3.21, 0.001086), "I": (4.014, 0.06389)}
    qb, qa = 1.14, -0.57
    s_ab, e_ab = 0.5 * (3.21 + 4.014), np.sqrt(0.001086 * 0.06389)
    s_aa, e_aa = 4.014, 0.06389
    qq_ab, qq_aa = COULOMB * qa * qb, COULOMB * qa * qa

    def dE(r):  # derivative of E(r) = 2 V_AB(r) + V_AA(2r)
        return 2 * _pair(r, s_ab, e_ab, qq_ab)[1] + 2 * _pair(2 * r, s_aa, e_aa, qq_aa)[1]

    r0 = brentq(dE, 2.0, 5.0)
    m = Atoms("IPbI", positions=[[0, 0, -r0], [0, 0, 0], [0, 0, r0]])
    m.set_initial_charges([qa, qb, qa])
    res = phonons(m, LJCoulomb(lj=lj), delta=1e-3)
    mI, mPb = m.get_masses()[:2]
    _, d1, k = _pair(r0, s_ab, e_ab, qq_ab)
    kp = _pair(2 * r0, s_aa, e_aa, qq_aa)[2]
    t = d1 / r0
    expected = np.sort(eigenvalue_to_cm1(np.array([t * (1 / mI + 2 / mPb)] * 2 + [(k + 2 * kp) / mI,
                                                                              k * (1 / mI + 2 / mPb)])))
    assert res.n_rigid == 5 and res.n_modes == 4
    np.testing.assert_allclose(res.frequencies_cm1, expected, rtol=1e-3)


def test_checkpoint_resume(relaxed, tmp_path):
    class Flaky(LJCoulomb):
        calls = 0
        fail_after = None

        def calculate(self, *a, **k):
            Flaky.calls += 1
            if self.fail_after is not None and Flaky.calls > self.fail_after:
                raise KeyboardInterrupt("killed")
            super().calculate(*a, **k)

    ck = tmp_path / "h.ckpt"
    calc = Flaky()
    calc.fail_after = 100
    with pytest.raises(KeyboardInterrupt):
        phonons(relaxed, calc, checkpoint=ck, engine_name="lj")
    Flaky.calls = 0
    calc2 = Flaky()
    res = phonons(relaxed, calc2, checkpoint=ck, engine_name="lj")
    assert Flaky.calls == 6 * len(relaxed) - 100  # finished displacements were not recomputed
    ref = phonons(relaxed, LJCoulomb())
    np.testing.assert_allclose(res.frequencies_cm1, ref.frequencies_cm1, atol=1e-10)
    # a half-written record is dropped, a foreign checkpoint refused
    with open(ck, "ab") as fh:
        fh.write(b"\x00" * 17)
    phonons(relaxed, LJCoulomb(), checkpoint=ck, engine_name="lj")
    with pytest.raises(QdlabError, match="belongs to another"):
        phonons(relaxed, LJCoulomb(), delta=0.02, checkpoint=ck, engine_name="lj")


def test_killed_run_leaves_no_worker_processes(tmp_path):
    """SIGKILL of a `phonons(..., workers=2)` run ends its worker processes too (Linux
    parent-death signal) instead of leaving them computing; the checkpoint then resumes."""
    import signal
    import subprocess
    import sys
    import time

    import psutil

    ck = tmp_path / "h.ckpt"
    code = f"""
from qdlab.build import PerovskiteRecipe, build
from qdlab.workflows.phonons import phonons
a = build(PerovskiteRecipe(composition="CsPbI3", size="3", neutrality="surface-charge"))
phonons(a, None, checkpoint={str(ck)!r}, engine_name="lj", workers=2, engine_spec={{"name": "classical"}})
"""
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.time() + 120
        children = []
        while time.time() < deadline and not (ck.exists() and ck.stat().st_size > 0 and len(children) >= 2):
            time.sleep(0.2)
            children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 2 and ck.stat().st_size > 0
        workers = [c for c in children if "spawn_main" in " ".join(c.cmdline())]
        assert len(workers) == 2
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        gone, alive = psutil.wait_procs(workers, timeout=10)
        assert not alive, [p.pid for p in alive]
    finally:
        if proc.poll() is None:
            proc.kill()


def test_imaginary_warning():
    a = build(PerovskiteRecipe(composition="CsPbI3", size="2", neutrality="surface-charge"))  # unrelaxed
    with pytest.warns(UserWarning, match="imaginary mode"):
        res = phonons(a, LJCoulomb())
    assert res.n_imaginary > 0 and res.frequencies_cm1.min() < -5


def test_dos_partition_and_normalisation(relaxed):
    res = phonons(relaxed, LJCoulomb())
    sel = label_selections(relaxed, "role")
    assert set(sel) == {"Pb/I", "Cs"}
    dos = phonon_dos(res.frequencies_cm1, res.modes, sel, sigma_cm1=3.0)
    assert np.trapezoid(dos.total, dos.grid_cm1) == pytest.approx(res.n_modes, rel=1e-6)
    np.testing.assert_allclose(sum(dos.partial.values()), dos.total, atol=1e-10)
    by_el = phonon_dos(res.frequencies_cm1, res.modes, label_selections(relaxed, "element"))
    np.testing.assert_allclose(sum(by_el.partial.values()), dos.total, atol=1e-10)
    np.testing.assert_allclose(np.linalg.norm(res.modes.reshape(res.n_modes, -1), axis=1), 1.0)


def test_peak_centres_on_synthetic_dos():
    grid = np.arange(0, 200, 0.25)
    g = gaussian_dos(np.array([40.0, 100.0, 129.0]), grid, 3.0, np.array([1.0, 2.0, 1.0]))
    p = find_peak(grid, g, 85, 114)
    assert p.centre_cm1 == pytest.approx(100.0, abs=0.05)  # symmetric peak: centre = position
    # window bounded by g'' = 0, i.e. ±σ around an isolated Gaussian
    assert p.window_cm1[0] == pytest.approx(97.0, abs=0.3) and p.window_cm1[1] == pytest.approx(103.0, abs=0.3)
    m1 = find_peak(grid, g, 15, 60, half_window=10.0)
    assert m1.window_cm1 == (30.0, 50.0) and m1.centre_cm1 == pytest.approx(40.0, abs=0.05)
    # an asymmetric band: intensity-weighted centre lies toward the shoulder
    g2 = gaussian_dos(np.array([100.0, 104.0]), grid, 3.0, np.array([1.0, 0.6]))
    assert find_peak(grid, g2, 85, 114).centre_cm1 > 100.5
    with pytest.raises(QdlabError, match="no M9 peak"):
        find_peak(grid, g, 300, 400, name="M9")
    # a region holding only the falling flank of a band below it has no peak (not its edge value)
    with pytest.raises(QdlabError, match="no M2 peak in 45–60 cm⁻¹: its largest DOS value, at 45 cm⁻¹, lies on the flank"):
        find_peak(grid, g, 45, 60, name="M2")
    # a region whose edge value (flank of the 40 cm⁻¹ band) exceeds its own peak: the interior peak counts
    g3 = gaussian_dos(np.array([40.0, 52.0]), grid, 3.0, np.array([5.0, 1.0]))
    assert find_peak(grid, g3, 44, 60).maximum_cm1 == pytest.approx(52.0, abs=0.3)
    from qdlab.analysis.dos import DOS

    missing = {}
    got = mode_peaks(DOS(grid, g, {}), {"A": (15, 60, 10.0), "B": (45, 60, None)}, missing=missing)
    assert set(got) == {"A"} and "flank" in missing["B"]


def test_harmonicity(relaxed):
    r2 = harmonicity(relaxed, LJCoulomb(), indices=[0, 20, 40])
    # seed 000 Fig. S2: R² ≈ 1 for |u| ≤ 0.03 Å (measured min 0.9989 for the surface I of this cluster)
    assert r2.shape == (3, 3) and (r2 > 0.995).all() and r2.mean() > 0.999


def test_phonopy_export_reloads(relaxed, tmp_path):
    import phonopy

    from qdlab.workflows.phonon_io import write_phonon_outputs

    res = phonons(relaxed, LJCoulomb())
    summary = write_phonon_outputs(relaxed, res, tmp_path)
    ph = phonopy.load(str(tmp_path / "phonopy" / "phonopy_params.yaml"))
    ph.run_qpoints([[0, 0, 0]])
    ref = ph.qpoints.frequencies[0] * THZ_TO_CM1
    assert _compare_above(res.frequencies_cm1, ref) < 0.5
    for f in ("frequencies.csv", "dos.csv", "pdos.csv", "dos.png", "peaks.json", "peaks.csv", "phonons.npz",
              "summary.json", "phonopy/FORCE_CONSTANTS", "phonopy/qpoints.yaml"):
        assert (tmp_path / f).exists(), f
    # frequencies.csv: one column, all 3N modes ascending (rigid ones as 0)
    lines = (tmp_path / "frequencies.csv").read_text().split()
    freqs = np.array(lines[1:], float)
    assert lines[0] == "frequency_cm1" and len(freqs) == 3 * len(relaxed) and (np.diff(freqs) >= 0).all()
    assert np.allclose(np.sort(freqs[np.abs(freqs) > 1e-9]), np.sort(res.frequencies_cm1), atol=1e-5)
    # dos.csv + pdos.csv read back; the partial DOS sum to the total
    from qdlab.workflows.phonon_io import load_dos_csv, load_peaks

    dos = load_dos_csv(tmp_path)
    assert np.allclose(sum(dos.partial.values()), dos.total, atol=1e-6 * dos.total.max())
    # CsPbBr3's M2 window (85–114 cm⁻¹) holds only a band's flank in this CsPbI3 model: recorded as missing
    found, missing = set(load_peaks(tmp_path)), set(summary.get("missing_peaks", {}))
    assert found == set(json.loads((tmp_path / "peaks.json").read_text())) == set(summary["peaks_cm1"])
    assert found | missing == {"M1", "M2", "M3"} and not found & missing and {"M1", "M3"} <= found
    assert summary["n_modes"] == res.n_modes


def test_cli_phonons(tmp_path):
    from typer.testing import CliRunner

    from qdlab.cli.main import app

    runner = CliRunner()
    nc = tmp_path / "c.extxyz"
    assert runner.invoke(app, ["build", "perovskite", "-c", "CsPbI3", "-n", "2", "--neutrality", "surface-charge",
                               "-o", str(nc)]).exit_code == 0
    res = runner.invoke(app, ["phonons", str(nc), "-e", "classical", "--out", str(tmp_path / "ph"), "--json"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s["n_modes"] == 3 * 63 - 6 and s["n_imaginary"] == 0
    res = runner.invoke(app, ["phonons", str(nc), "-e", "classical", "--delta", "-1", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "--delta δ must be > 0" in res.stderr  # named in one line before any work
    # compare two finished runs: one plot and the peak table
    res = runner.invoke(app, ["phonons", str(nc), "-e", "classical", "--fmax", "0.05", "--out", str(tmp_path / "ph2"),
                              "--json"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["phonons", "compare", str(tmp_path / "ph"), str(tmp_path / "ph2"), "-o",
                              str(tmp_path / "cmp.png"), "--json"])
    assert res.exit_code == 0, res.output
    cmp = json.loads(res.stdout)
    assert set(cmp["peaks_cm1"]) == {"ph", "ph2"} and (tmp_path / "cmp.png").stat().st_size > 1000
    assert cmp["peaks_cm1"]["ph"]["M1"] == pytest.approx(s["peaks_cm1"]["M1"], abs=1e-3)
    # two worker processes give the same frequencies as one process
    res = runner.invoke(app, ["phonons", str(tmp_path / "ph" / "relaxed.extxyz"), "-e", "classical", "--no-relax",
                              "--workers", "2", "--out", str(tmp_path / "ph_w2"), "--json"])
    assert res.exit_code == 0, res.output
    f1 = np.loadtxt(tmp_path / "ph" / "frequencies.csv", skiprows=1)
    f2 = np.loadtxt(tmp_path / "ph_w2" / "frequencies.csv", skiprows=1)
    assert np.abs(f1 - f2).max() < 1e-4  # frequencies.csv carries 6 decimals; the input file 8
    res = runner.invoke(app, ["phonons", "compare", str(tmp_path), "-o", str(tmp_path / "x.png")])
    assert res.exit_code == 2 and "no dos.csv" in res.stderr


def test_chgnet_phonons_match_ase_and_batched_and_workers(tmp_path):
    """CHGNet on a tiny cluster: serial FD = ASE Vibrations; batched and 2-process paths agree."""
    from ase.vibrations import Vibrations

    a = build(PerovskiteRecipe(size="1"))  # Cs4PbBr6 cluster, 11 atoms
    calc = get_calculator("chgnet")
    r = relax(a, calc, fmax=1e-3, steps=500)
    x = r.atoms
    x.constraints = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = phonons(x, calc)
        batched = phonons(x, calc, batch_size=8)
        spread = phonons(x, calc, workers=2, engine_spec={"name": "chgnet"})
    y = x.copy()
    y.calc = calc
    vib = Vibrations(y, name=str(tmp_path / "vib"), delta=0.01, nfree=2)
    vib.run()
    f = vib.get_frequencies()
    ase_cm1 = np.where(np.abs(f.imag) > 0, -np.abs(f.imag), f.real)
    assert _compare_above(ours.frequencies_cm1, ase_cm1) < 0.5
    # batched graphs run the same float32 model: agreement to float32 noise of the forces
    assert np.abs(batched.frequencies_cm1 - ours.frequencies_cm1).max() < 0.5
    np.testing.assert_allclose(spread.frequencies_cm1, ours.frequencies_cm1, atol=1e-6)


def test_chgnet_autograd_hessian_is_the_fd_limit():
    """CHGNet's double-backprop Hessian is what central differences converge to: the frequency
    error of FD falls as δ² (0.02 → 0.005 Å: ≥ 8× smaller) to < 0.5 cm⁻¹ at δ = 0.005 Å
    (11-atom Cs4PbBr6 cluster relaxed to 2e-3 eV/Å; measured 3.2 → 0.24 cm⁻¹)."""
    a = build(PerovskiteRecipe(size="1"))
    a.positions += np.random.default_rng(0).normal(0.0, 0.02, a.positions.shape)
    calc = get_calculator("chgnet")
    x = relax(a, calc, fmax=2e-3, steps=3000).atoms
    x.constraints = []
    hess = calc.get_hessian(x)
    assert hess.shape == (33, 33) and np.abs(hess - hess.T).max() < 1e-3  # float32 model, eV/Å²
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exact = phonons(x, calc, method="analytic")
        err = {d: np.abs(phonons(x, calc, d).frequencies_cm1 - exact.frequencies_cm1).max() for d in (0.02, 0.005)}
    assert exact.n_modes == 27 and err[0.005] < 0.5 and err[0.02] > 8 * err[0.005], err
