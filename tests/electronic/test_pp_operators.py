"""Pseudopotential operators against independent references (quadrature, closed forms)."""

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import spherical_jn

from qdlab.electronic.pseudopotential.hamiltonian import planewave_hamiltonian
from qdlab.electronic.pseudopotential.interpolation import orthorhombic_weights, weight_from_angle
from qdlab.electronic.pseudopotential.params import TABLE_S4
from qdlab.electronic.pseudopotential.projectors import ls_matrix, radial_basis

PB = TABLE_S4["Pb"]["cubic"]


def _quad_kernel(f, k1, k2):
    return quad(lambda r: r * r * spherical_jn(1, k1 * r) * f(r) * spherical_jn(1, k2 * r), 0, 12, limit=400)[0]


def test_ls_matrix_spectrum():
    """L·S on p ⊗ spin: j = 3/2 at +1/2 (×4) and j = 1/2 at −1 (×2) (closed form)."""
    w = np.linalg.eigvalsh(ls_matrix().reshape(6, 6))
    assert np.allclose(w, [-1, -1, 0.5, 0.5, 0.5, 0.5], atol=1e-12)


@pytest.mark.parametrize("kind", ["nl", "so"])
def test_separable_basis_reproduces_radial_kernel(kind):
    """u(k) M u(k′) equals ∫ r² j1 f j1 dr by adaptive quadrature to 1e-6 of the kernel's scale."""
    b = radial_basis()
    f = PB.f_nonlocal if kind == "nl" else PB.f_spin_orbit
    ks = np.array([0.2, 1.1, 2.9, 5.3, 8.0])
    ref = np.array([[_quad_kernel(f, a, c) for c in ks] for a in ks])
    u = b.u_at(ks)
    got = u @ b.coef[("Pb", "cubic", kind)] @ u.T
    assert np.abs(got - ref).max() < 1e-6 * np.abs(ref).max()


def test_planewave_matrix_elements_follow_science_md_forms():
    """One Pb in a cubic cell: ⟨K|H|K′⟩ − T δ equals v(|G−G′|)/Ω + λ·12π cosγ ∫…/Ω (+ SO term)."""
    a = 9.0
    cell = np.eye(3) * a
    kpt = np.array([0.1, 0.05, 0.02])
    H = planewave_hamiltonian(cell, np.array([[0.1, 0.2, 0.3]]), ["Pb"], np.zeros(1), kpt, ecut_Ha=1.2)
    D = H.dense()
    n = H.n
    m = np.stack(np.unravel_index(H.index, H.fft_shape), 1)
    m = np.where(m > np.array(H.fft_shape) // 2, m - np.array(H.fft_shape), m)
    K = m * (2 * np.pi / a) + kpt
    R = np.array([0.1, 0.2, 0.3]) * a
    omega = a**3
    rng = np.random.default_rng(1)
    for i, j in rng.integers(0, n, size=(4, 2)):
        q = K[i] - K[j]
        phase = np.exp(-1j * q @ R)
        ki, kj = np.linalg.norm(K[i]), np.linalg.norm(K[j])
        cos = K[i] @ K[j] / (ki * kj)
        vloc = PB.v_local(np.linalg.norm(q)) * phase / omega
        nl = 12 * np.pi * cos * _quad_kernel(PB.f_nonlocal, ki, kj) * phase / omega
        cross = np.cross(K[i], K[j]) / (ki * kj)
        so_rad = 12 * np.pi * _quad_kernel(PB.f_spin_orbit, ki, kj) * phase / omega
        sig = np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]])
        so = so_rad * (-1j) * np.einsum("c,cst->st", cross, sig) / 2
        for s in range(2):
            for t in range(2):
                want = (vloc + nl) * (s == t) + so[s, t] + (0.5 * ki**2 if (i == j and s == t) else 0)
                assert D[s * n + i, t * n + j] == pytest.approx(want, abs=1e-7)


def test_orthorhombic_weights_from_angles():
    """θ ≥ 175° → cubic, θ ≤ 160.6° → orthorhombic, linear between; Pb takes the mean of its I."""
    assert weight_from_angle([180, 175, 167.8, 160.6, 150]).tolist() == pytest.approx([0, 0, 0.5, 1, 1])
    from qdlab.build.recipes import PerovskiteRecipe, build_perovskite

    cub = build_perovskite(PerovskiteRecipe(composition="CsPbI3", size="2", vacuum=5))
    w, th = orthorhombic_weights(cub)
    sym = np.array(cub.get_chemical_symbols())
    bridging = ~np.isnan(th)
    assert bridging.sum() == 12 and np.allclose(th[bridging], 180.0) and np.allclose(w, 0)
    tilt = build_perovskite(PerovskiteRecipe(composition="CsPbI3", size="2", phase="orthorhombic",
                                             tilt_deg=(10, 10, 10), vacuum=5))
    w, th = orthorhombic_weights(tilt)
    assert np.all(th[~np.isnan(th)] < 160.6) and np.allclose(w[~np.isnan(th)], 1.0)
    dangling = (np.array(tilt.get_chemical_symbols()) == "I") & np.isnan(th)
    assert dangling.sum() == 36 - 12 and np.allclose(w[dangling], 0)
    pb = sym == "Pb"
    assert np.allclose(w[pb], 0.5)  # 3 bridging (w = 1) and 3 surface (w = 0) I per Pb of the n=2 cube
