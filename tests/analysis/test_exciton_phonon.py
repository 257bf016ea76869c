"""Exciton–phonon analyses on synthetic gap traces with known answers (SCIENCE §7).

References are analytic: a trace Σ A_j cos(ω_j t + φ_j) at temperature T has S(ω_j) = A_j²/(4ħω_j k_BT),
Λ = Σ A_j²/(4 k_BT) and Γ(T) = 2√(2 ln 2)·√(Σ A_j²/2); for Gaussian statistics the D(t) linewidth equals
the FWHM of the gap histogram.
"""

import numpy as np
import pytest

from qdlab.analysis.exciton_phonon import (FWHM_SIGMA, H_EV_FS, KB_EV, GapTrace, band_integrated, linewidth,
                                           plot_gamma_T, plot_linewidth, read_gap_trace)
from qdlab.errors import QdlabError


def _trace(amps, bins, n=4000, dt=10.0, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) * dt
    span = n * dt
    x = 2.4 + sum(a * np.cos(2 * np.pi * k * t / span + rng.uniform(0, 2 * np.pi)) for a, k in zip(amps, bins))
    x = x + rng.normal(0.0, noise, n)
    energies = H_EV_FS * np.asarray(bins) / span
    return GapTrace(t, x), energies


def test_huang_rhys_lambda_gamma_recovered_to_one_percent():
    amps, bins = [0.004, 0.003, 0.002, 0.001], [20, 68, 164, 330]   # 2.1, 7.0, 17.0, 34 meV
    T = 10.0
    trace, e = _trace(amps, bins, noise=2e-5)
    res = linewidth(trace, T)
    S_true = np.asarray(amps) ** 2 / (4 * e * KB_EV * T)
    assert np.allclose(res.S[np.asarray(bins) - 1], S_true, rtol=0.01)
    lam = np.sum(np.asarray(amps) ** 2) / (4 * KB_EV * T)
    assert res.reorganization_eV == pytest.approx(lam, rel=0.01)
    gamma = FWHM_SIGMA * np.sqrt(np.sum(np.asarray(amps) ** 2) / 2)
    assert res.gamma_harmonic_eV == pytest.approx(gamma, rel=0.01)
    # band integration picks each mode in its band: S_<ω> = S_j ω_j/<ω>
    b = band_integrated(res.energy_eV, res.S, {"7meV": (4.0, 10.0)})
    assert b["7meV"] == pytest.approx(S_true[1] * e[1] * 1e3 / 7.0, rel=0.01)


def test_dephasing_linewidth_equals_histogram_fwhm_for_gaussian_statistics():
    # a Gaussian process: every FFT bin between 1 and 10 meV is a cosine with a Gaussian complex
    # amplitude (random phase), plus white Gaussian noise; σ = 42 meV dephases in ≈16 fs, much faster
    # than the slowest period (≈400 fs); 524 ps so the histogram samples many correlation times
    rng = np.random.default_rng(3)
    n, dt = 2**18, 2.0
    e = H_EV_FS * np.fft.rfftfreq(n, dt)
    coef = np.where((e > 0.001) & (e < 0.010), rng.normal(size=len(e)) + 1j * rng.normal(size=len(e)), 0)
    x = np.fft.irfft(coef, n)
    x = 0.042 * x / x.std() + rng.normal(0.0, 0.002, n)
    res = linewidth(GapTrace(np.arange(n) * dt, 2.4 + x), 300.0)
    assert res.gamma_dephasing_eV == pytest.approx(res.fwhm_hist_eV, rel=0.02)
    assert res.gamma_dephasing_eV == pytest.approx(FWHM_SIGMA * np.std(x), rel=0.02)


def test_too_short_trace_is_a_one_line_error():
    trace, _ = _trace([0.01], [3], n=100, dt=10.0)            # 1 ps → 4.1 meV resolution
    with pytest.raises(QdlabError, match="too short"):
        linewidth(trace, 300.0, resolution_meV=1.0)


def test_csv_roundtrip_and_plots(tmp_path):
    trace, _ = _trace([0.01, 0.005], [30, 70], n=1000, dt=10.0)
    p = tmp_path / "gap.csv"
    p.write_text(trace.to_csv())
    back = read_gap_trace(p)
    assert np.allclose(back.gap_eV, trace.gap_eV) and np.allclose(back.time_fs, trace.time_fs)
    res = linewidth(back, 300.0)
    plot_linewidth(res, tmp_path / "lw.png")
    plot_gamma_T(res, tmp_path / "gT.png")
    assert (tmp_path / "lw.png").stat().st_size > 0
    bad = tmp_path / "bad.csv"
    bad.write_text("t,E\n1,2\n")
    with pytest.raises(QdlabError, match="time_fs"):
        read_gap_trace(bad)


def test_harmonic_huang_rhys_equals_fourier_route_on_harmonic_motion():
    # a random harmonic model: orthonormal mass-weighted modes, masses, a gap gradient; classical
    # equipartition motion q_k = √(2k_BT)/ω_k cos(ω_k t + φ) gives E_g(t) = E0 + Σ d_k q_k; eq. 5's
    # Fourier S must equal d_k²/(2ħω_k³) mode by mode (frequencies put on FFT bins)
    from ase.units import _amu, _c, _e, _k

    from qdlab.analysis.exciton_phonon import harmonic_huang_rhys

    rng = np.random.default_rng(7)
    n_atoms, n, dt, T = 4, 4096, 5.0, 10.0
    span_s = n * dt * 1e-15
    bins = np.array([9, 20, 33, 47, 60, 80, 95, 110, 130, 150, 170, 190])
    omega = 2 * np.pi * bins / span_s
    freq_cm1 = omega / (2 * np.pi * _c * 100)
    q, _ = np.linalg.qr(rng.normal(size=(3 * n_atoms, 3 * n_atoms)))
    modes = q.T[: len(bins)].reshape(len(bins), n_atoms, 3)
    masses = rng.uniform(30, 200, n_atoms)
    g = rng.normal(0, 0.3, (n_atoms, 3))
    e_h, S_h = harmonic_huang_rhys(freq_cm1, modes, masses, g)
    d = np.einsum("kia,ia->k", modes, g / np.sqrt(masses)[:, None]) * _e / (1e-10 * np.sqrt(_amu))
    t = np.arange(n) * dt * 1e-15
    amp = np.sqrt(2 * _k * T) / omega
    gap = 2.0 + sum(dk * a * np.cos(w * t + rng.uniform(0, 2 * np.pi)) for dk, a, w in zip(d, amp, omega)) / _e
    res = linewidth(GapTrace(t * 1e15, gap), T, resolution_meV=2.0)
    assert np.allclose(res.S[bins - 1], S_h, rtol=1e-6)
    assert np.allclose(res.energy_eV[bins - 1], e_h, rtol=1e-9)
    assert res.reorganization_eV == pytest.approx(np.sum(S_h * e_h), rel=1e-6)
