"""BSE (TDA): closed-form Coulomb integrals, the two-band singlet/triplet structure, solvers agree."""

import numpy as np
import pytest

from qdlab.electronic.bse import build_kernel, fine_structure, solve_bse, absorption_spectrum

L, N = 16.0, 32  # box (Bohr) and grid


def _grid():
    x = (np.arange(N) / N - 0.5) * L
    return np.meshgrid(x, x, x, indexing="ij")


def _spinors(orbitals):
    """Each spatial orbital as spin-up and spin-down spinors, (2k, 2, N, N, N), Σ|ψ|²dV = 1."""
    dV = (L / N) ** 3
    out = []
    for phi in orbitals:
        phi = phi / np.sqrt((np.abs(phi) ** 2).sum() * dV)
        for s in range(2):
            psi = np.zeros((2, N, N, N), complex)
            psi[s] = phi
            out.append(psi)
    return np.array(out), dV


def test_direct_integral_of_gaussians_matches_closed_form():
    """|φ|² a normalised Gaussian of variance s²: ∫∫ρρ′/|r−r′| = 1/(s√π) (relative 1e-3)."""
    X, Y, Z = _grid()
    a = 1.6
    psi, dV = _spinors([np.exp(-(X**2 + Y**2 + Z**2) / (2 * a**2))])
    k = build_kernel(psi, psi, np.zeros(2), np.zeros(2), np.eye(3) * L, dV)
    J = 1.0 / ((a / np.sqrt(2)) * np.sqrt(np.pi))
    assert k.direct[0, 0].real == pytest.approx(J, rel=1e-3)


def test_two_band_model_one_singlet_three_triplets():
    """s hole, p_z electron: 1 singlet (⟨S²⟩=0, bright along z) above 3 dark triplets (⟨S²⟩=2) by 2K."""
    X, Y, Z = _grid()
    g = np.exp(-(X**2 + Y**2 + Z**2) / (2 * 1.5**2))
    psi_v, dV = _spinors([g])
    psi_c, _ = _spinors([Z * g])
    k = build_kernel(psi_c, psi_v, np.full(2, 0.1), np.zeros(2), np.eye(3) * L, dV)
    exc = solve_bse(k, eps=4.9)
    assert exc.s2[:3] == pytest.approx([2, 2, 2], abs=1e-8)
    assert exc.s2[3] == pytest.approx(0, abs=1e-8)
    K = k.exchange[0, 0].real  # (c↑v↑, c↑v↑) exchange integral
    assert exc.energies_eV[3] - exc.energies_eV[0] == pytest.approx(2 * K * 27.211386, rel=1e-8)
    assert np.allclose(exc.energies_eV[:3], exc.energies_eV[0], atol=1e-10)
    assert np.allclose(exc.oscillator[:3], 0, atol=1e-12)
    assert exc.oscillator[3, 2] > 0 and np.allclose(exc.oscillator[3, :2], 0, atol=1e-12)
    fs = fine_structure(exc)
    assert fs["lowest_dark"] and fs["bright_dark_meV"] == pytest.approx(2 * K * 27211.386, rel=1e-8)
    spec = absorption_spectrum(exc, np.linspace(2.0, 4.0, 201), 0.05)
    assert spec.shape == (201, 3) and spec[:, 2].max() > 0


def test_spin_orbit_doublet_gives_a_pure_triplet_dark_exciton():
    """s-like hole, j = 1/2 electron doublet of p orbitals (|½,±½⟩ from Clebsch–Gordan: the perovskite
    band edges): the dark J = 0 exciton is lowest with ⟨S²⟩ = 2 (a pure triplet, seed 003) and the three
    bright J = 1 excitons have ⟨S²⟩ = 4/3 (analytic: s_e projects to −j/3, so s_e·s_h = 1/4 and −1/12).
    Squaring the truncated spin matrices gave 4/3 and 2/3 (⟨s_e²⟩ = 1/12 instead of 3/4)."""
    X, Y, Z = _grid()
    g = np.exp(-(X**2 + Y**2 + Z**2) / (2 * 1.5**2))
    dV = (L / N) ** 3
    px, py, pz = (f * g / np.sqrt((np.abs(f * g) ** 2).sum() * dV) for f in (X, Y, Z))
    p_plus, p_minus = -(px + 1j * py) / np.sqrt(2), (px - 1j * py) / np.sqrt(2)
    up = np.stack([-np.sqrt(1 / 3) * pz, np.sqrt(2 / 3) * p_plus])  # |½, +½⟩ = √⅔|1,1⟩↓ − √⅓|1,0⟩↑
    down = np.stack([-np.sqrt(2 / 3) * p_minus, np.sqrt(1 / 3) * pz])  # |½, −½⟩ = √⅓|1,0⟩↓ − √⅔|1,−1⟩↑
    psi_v, _ = _spinors([g])
    k = build_kernel(np.array([up, down]), psi_v, np.full(2, 0.1), np.zeros(2), np.eye(3) * L, dV)
    exc = solve_bse(k, eps=4.9)
    assert exc.s2 == pytest.approx([2, 4 / 3, 4 / 3, 4 / 3], abs=1e-8)
    assert np.allclose(exc.oscillator[0], 0, atol=1e-12) and (exc.oscillator[1:].sum(1) > 1e-6).all()
    assert np.linalg.eigvalsh(k.s2_matrix()) == pytest.approx([4 / 3, 4 / 3, 4 / 3, 2], abs=1e-8)


def test_iterative_bse_equals_dense_diagonalisation():
    """Random orbitals, 3 electron × 3 hole spinors: filtered subspace iteration = eigh (1e-8 eV)."""
    rng = np.random.default_rng(0)
    X, Y, Z = _grid()
    g = np.exp(-(X**2 + Y**2 + Z**2) / (2 * 2.0**2))
    orbs = [g * (1 + 0.3 * rng.standard_normal() * X + 0.3 * rng.standard_normal() * Y) for _ in range(3)]
    psi, dV = _spinors(orbs)
    psi = psi.reshape(6, -1)
    q, _ = np.linalg.qr(psi.T)
    psi = (q.T / np.sqrt(dV)).reshape(6, 2, N, N, N)
    k = build_kernel(psi[:3], psi[3:], np.array([0.1, 0.12, 0.15]), np.array([-0.02, 0.0, 0.01]),
                     np.eye(3) * L, dV)
    dense = solve_bse(k, eps=3.0)
    it = solve_bse(k, eps=3.0, n_excitons=4, method="iterative")
    assert np.abs(it.energies_eV - dense.energies_eV[:4]).max() < 1e-8
    # rerun with another ε uses the same stored bare kernels: screening enters as −D/ε only
    assert np.allclose(k.hamiltonian(6.0) - k.hamiltonian(3.0), k.direct * (1 / 3 - 1 / 6))
    # a smaller basis from the same integrals equals the kernel built on those states alone
    sub, alone = k.subset(2, 1), build_kernel(psi[:2], psi[3:4], np.array([0.1, 0.12]), np.array([-0.02]),
                                              np.eye(3) * L, dV)
    for f in ("e_c", "e_v", "direct", "exchange", "dipoles", "spin_e", "spin_h"):
        assert np.allclose(getattr(sub, f), getattr(alone, f), atol=1e-12), f
    assert np.allclose(sub.s2_matrix(), alone.s2_matrix(), atol=1e-12)
    with pytest.raises(ValueError, match="outside"):
        k.subset(4, 1)


def test_basis_series_rows_equal_kernels_built_on_the_smaller_bases():
    """``basis_series``: the row for k states is the fine structure of the kernel built on those k electron
    and k hole states alone (1e-10 eV), the full k that of the whole kernel; a k that splits a degenerate
    pair is flagged; a k beyond the kernel is one line."""
    from qdlab.electronic.bse import fine_structure
    from qdlab.errors import QdlabError
    from qdlab.workflows.excitons import basis_series

    rng = np.random.default_rng(3)
    X, Y, Z = _grid()
    g = np.exp(-(X**2 + Y**2 + Z**2) / (2 * 2.0**2))
    orbs = [g * (1 + 0.3 * rng.standard_normal() * X + 0.3 * rng.standard_normal() * Z) for _ in range(4)]
    psi, dV = _spinors(orbs)
    q, _ = np.linalg.qr(psi.reshape(8, -1).T)
    psi = (q.T / np.sqrt(dV)).reshape(8, 2, N, N, N)
    e_c, e_v = np.array([0.10, 0.13, 0.13, 0.16]), np.array([-0.02, -0.05, -0.07, -0.07])
    k = build_kernel(psi[:4], psi[4:], e_c, e_v, np.eye(3) * L, dV)
    rows = basis_series(k, [4, 2, 1], eps=3.0)
    assert [r["k"] for r in rows] == [1, 2, 4]
    for r in rows:
        n = r["k"]
        alone = fine_structure(solve_bse(build_kernel(psi[:n], psi[4:4 + n], e_c[:n], e_v[:n], np.eye(3) * L, dV), 3.0))
        assert r["lowest_eV"] == pytest.approx(alone["lowest_eV"], abs=1e-10)
        assert r["bright_dark_meV"] == pytest.approx(alone["bright_dark_meV"], abs=1e-7)
        assert r["optical_gap_eV"] == r["lowest_eV"] and r["bright_eV"][0] == pytest.approx(alone["bright_eV"][0], abs=1e-10)
    assert rows[-1]["lowest_eV"] == pytest.approx(fine_structure(solve_bse(k, 3.0))["lowest_eV"], abs=1e-12)
    assert [r["cuts_multiplet"] for r in rows] == [False, True, False]   # k = 2 keeps one of 0.13/0.13
    with pytest.raises(QdlabError, match="outside 1…4"):
        basis_series(k, [5], eps=3.0)


def _pair_energy(vg, rho1, rho2, dV):
    from qdlab.electronic.bse import convolve

    return float(np.real((rho1 * convolve(rho2[None], vg)[0]).sum() * dV))


@pytest.mark.parametrize("coulomb", ["split", "truncated"])
def test_kernels_reproduce_bare_coulomb_of_separated_gaussians(coulomb):
    """Two normalised Gaussian charges (σ = 1.2 Bohr) 7 Bohr apart along a box diagonal-ish line:
    E = erf(d/2σ)/d (analytic), and each self-energy 1/(σ√π); relative tolerance 1e-4 (0.5 Bohr grid;
    measured 1.6e-5 and 6.8e-6 for both kernels)."""
    from scipy.special import erf

    from qdlab.electronic.bse import coulomb_kernel_g

    X, Y, Z = _grid()
    dV, sig = (L / N) ** 3, 1.2
    a, b = np.array([-3.0, -2.0, -1.0]), np.array([3.0, 1.0, 1.0])
    g = [np.exp(-((X - c[0]) ** 2 + (Y - c[1]) ** 2 + (Z - c[2]) ** 2) / (2 * sig**2)) for c in (a, b)]
    rho = [x / (x.sum() * dV) for x in g]
    vg = coulomb_kernel_g(np.eye(3) * L, (N, N, N), coulomb)
    d = np.linalg.norm(a - b)
    assert _pair_energy(vg, rho[0], rho[1], dV) == pytest.approx(erf(d / (2 * sig)) / d, rel=1e-4)
    assert _pair_energy(vg, rho[0], rho[0], dV) == pytest.approx(1 / (sig * np.sqrt(np.pi)), rel=1e-4)


def test_anisotropic_split_kernel_with_equal_eps_is_isotropic():
    """W(q) with ε_x = ε_y = ε_z = ε is 1/(ε r) split at γ/√ε instead of γ: the BSE built with it equals
    the isotropic one (bare split direct / ε) to the grid's discretisation, 1e-4 of the direct term
    (measured 5.8e-6); the truncated default gives the same kernels (1e-8 relative; measured 2e-16)."""
    cell = np.eye(3) * L
    X, Y, Z = _grid()
    g = np.exp(-(X**2 + Y**2 + Z**2) / (2 * 1.5**2))
    psi_v, dV = _spinors([g])
    psi_c, _ = _spinors([Z * g, X * g])
    args = (psi_c, psi_v, np.array([0.1, 0.1, 0.11, 0.11]), np.zeros(2), cell, dV)
    aniso = build_kernel(*args, coulomb="split", eps_xyz=(4.9, 4.9, 4.9))
    iso = build_kernel(*args, coulomb="split")
    trunc = build_kernel(*args)
    h, scale = iso.hamiltonian(4.9), np.abs(iso.direct).max()
    assert np.abs(aniso.hamiltonian(1.0) - h).max() < 1e-4 * scale / 4.9
    assert np.abs(trunc.hamiltonian(4.9) - h).max() < 1e-8 * scale
    assert solve_bse(aniso).info["eps_xyz"] == [4.9, 4.9, 4.9]


def test_two_band_spin_structure_with_anisotropic_screening():
    """Anisotropic ε (4, 5, 7) in the split kernel screens the direct term only: still 3 dark triplets
    (⟨S²⟩ = 2) and 1 z-bright singlet 2K above (K the bare exchange), as in the isotropic model."""
    X, Y, Z = _grid()
    g = np.exp(-(X**2 + Y**2 + Z**2) / (2 * 1.5**2))
    psi_v, dV = _spinors([g])
    psi_c, _ = _spinors([Z * g])
    k = build_kernel(psi_c, psi_v, np.full(2, 0.1), np.zeros(2), np.eye(3) * L, dV, coulomb="split",
                     eps_xyz=(4.0, 5.0, 7.0))
    exc = solve_bse(k)
    assert exc.s2 == pytest.approx([2, 2, 2, 0], abs=1e-8)
    K = k.exchange[0, 0].real
    assert exc.energies_eV[3] - exc.energies_eV[0] == pytest.approx(2 * K * 27.211386, rel=1e-8)
    assert np.allclose(exc.oscillator[:3], 0, atol=1e-12) and exc.oscillator[3, 2] > 0
    iso = build_kernel(psi_c, psi_v, np.full(2, 0.1), np.zeros(2), np.eye(3) * L, dV, coulomb="split")
    # the screened direct attraction lies between the bare one / 7 and / 4
    assert iso.direct[0, 0].real / 7 < k.direct[0, 0].real < iso.direct[0, 0].real / 4


def test_kernel_size_estimate_refuses_in_one_line():
    """60 × 60 states on the n = 2 cube's 80³ grid: refused with the GB and hour estimate named."""
    from qdlab.electronic.bse import check_kernel_size, kernel_cost
    from qdlab.errors import QdlabError

    small = kernel_cost(32**3, 2, 2)
    assert small["bytes"] < 1e8 and small["seconds"] < 10
    with pytest.raises(QdlabError) as err:
        check_kernel_size(80**3, 60, 60, 16.0)
    msg = str(err.value)
    assert "\n" not in msg and "GB" in msg and " h " in msg and "limit 16 GB" in msg
