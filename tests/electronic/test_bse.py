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
