"""Exciton–phonon coupling and emission linewidth from a band-gap trace E_g(t) (seed 004, SCIENCE §7).

- Huang–Rhys spectrum S(ω_k) = |F{E_g}(ω_k)|² / (4 ħω_k k_B T), |F| the one-sided amplitude of the
  cosine at ω_k (so a trace A cos(ωt) gives S = A²/(4ħωk_BT)); by Parseval the reorganisation
  energy Λ = Σ S ħω equals var(E_g)/(2 k_B T) exactly.
- Band-integrated S_⟨ω⟩ = (1/⟨ω⟩) Σ_{ω_min ≤ ω_i < ω_max} S_i ω_i, ⟨ω⟩ = (ω_min + ω_max)/2. Default bands
  0–4, 4–10, 10–24 meV (centres 2, 7, 17 meV: seed 004's bands; the paper does not print its limits).
- Harmonic Γ(T) = 2√(2 ln 2) √(2 Λ k_B T).
- Optical response: C(t) = ⟨δE(t)δE(0)⟩, g(t) = ħ⁻² ∫₀ᵗ∫₀^τ₁ C, D(t) = e^{−g}; D fitted by
  exp(−t²/2t₂*²) → Γ = 2√(2 ln 2) ħ/t₂*. For Gaussian statistics this is the FWHM of the E_g histogram.
Units: time fs, energies eV in arrays, meV in the summary keys, T in K.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase.units import _e, _hbar, _hplanck, _k

from qdlab.errors import QdlabError
from qdlab.store.files import save_figure

HBAR_EV_FS = _hbar / _e * 1e15          # ħ in eV·fs (0.6582)
H_EV_FS = _hplanck / _e * 1e15          # h in eV·fs
KB_EV = _k / _e                          # k_B in eV/K
FWHM_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
DEFAULT_BANDS_MEV = {"2meV": (0.0, 4.0), "7meV": (4.0, 10.0), "17meV": (10.0, 24.0)}


@dataclass(frozen=True)
class GapTrace:
    """A band-gap time series: time (fs), gap (eV), optional HOMO/LUMO (eV), provenance in ``info``."""

    time_fs: np.ndarray
    gap_eV: np.ndarray
    homo_eV: np.ndarray | None = None
    lumo_eV: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    @property
    def dt_fs(self) -> float:
        return float(np.median(np.diff(self.time_fs)))

    def to_csv(self) -> str:
        cols = {"time_fs": self.time_fs, "gap_eV": self.gap_eV}
        if self.homo_eV is not None:
            cols |= {"homo_eV": self.homo_eV, "lumo_eV": self.lumo_eV}
        lines = [",".join(cols)] + [",".join(f"{v:.10g}" for v in row) for row in np.column_stack(list(cols.values()))]
        return "\n".join(lines) + "\n"


def read_gap_trace(path: str | Path) -> GapTrace:
    """A CSV with a header naming ``time_fs`` and ``gap_eV`` (more columns allowed)."""
    path = Path(path)
    try:
        header = path.read_text().splitlines()[0].strip().split(",")
        data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    except (IndexError, ValueError) as exc:
        raise QdlabError(f"{path}: not a CSV gap trace with columns time_fs,gap_eV ({' '.join(str(exc).split())})") from None
    if "time_fs" not in header or "gap_eV" not in header:
        raise QdlabError(f"{path}: the header must name time_fs and gap_eV columns, got {','.join(header)}")
    col = {h: data[:, k] for k, h in enumerate(header)}
    if not np.all(np.isfinite(data)):
        raise QdlabError(f"{path}: non-finite values in the gap trace")
    return GapTrace(col["time_fs"], col["gap_eV"], col.get("homo_eV"), col.get("lumo_eV"), {"source": str(path)})


def _check(trace: GapTrace, resolution_meV: float) -> float:
    t, n = trace.time_fs, len(trace.time_fs)
    if n < 16:
        raise QdlabError(f"gap trace has {n} frames; at least 16 are needed")
    dt = np.diff(t)
    if np.any(dt <= 0) or np.ptp(dt) > 1e-3 * np.median(dt):
        raise QdlabError("gap trace must be sampled at a uniform time step (increasing time_fs)")
    span = float(dt.mean() * n)
    res = H_EV_FS / span * 1e3
    if res > resolution_meV:
        raise QdlabError(f"gap trace too short: {span / 1e3:.3g} ps resolves {res:.3g} meV, the requested "
                         f"{resolution_meV:g} meV needs ≥ {H_EV_FS / resolution_meV:.3g} ps")
    return float(dt.mean())


def huang_rhys(gap_eV: np.ndarray, dt_fs: float, T_K: float) -> tuple[np.ndarray, np.ndarray]:
    """(ħω in eV, S) on the FFT grid ω_k = 2πk/(N dt), k ≥ 1."""
    x = np.asarray(gap_eV, float) - np.mean(gap_eV)
    n = len(x)
    X = np.fft.rfft(x)
    power = 2.0 * np.abs(X) ** 2 / n**2            # variance carried by bin k (0 < k < N/2)
    if n % 2 == 0:
        power[-1] /= 2.0
    k = np.arange(len(X))
    e = H_EV_FS * k / (n * dt_fs)                  # ħω = h f
    S = np.zeros_like(e)
    S[1:] = power[1:] / (2.0 * e[1:] * KB_EV * T_K)
    return e[1:], S[1:]


def band_integrated(energy_eV: np.ndarray, S: np.ndarray, bands_meV: dict) -> dict[str, float]:
    """S_⟨ω⟩ = Σ_{band} S_i ω_i / ⟨ω⟩ per band {name: (lo, hi) meV}."""
    e = energy_eV * 1e3
    out = {}
    for name, (lo, hi) in bands_meV.items():
        m = (e >= lo) & (e < hi)
        out[name] = float(np.sum(S[m] * e[m]) / (0.5 * (lo + hi)))
    return out


def gamma_harmonic(reorganization_eV: float, T_K) -> np.ndarray:
    """Γ(T) = 2√(2 ln 2) √(2 Λ k_B T), eV."""
    return FWHM_SIGMA * np.sqrt(2.0 * reorganization_eV * KB_EV * np.asarray(T_K, float))


def dephasing(gap_eV: np.ndarray, dt_fs: float, max_lag_fs: float | None = None):
    """(t fs, C eV², g, D): autocorrelation (unbiased), lineshape function, dephasing function."""
    from scipy.integrate import cumulative_trapezoid

    x = np.asarray(gap_eV, float) - np.mean(gap_eV)
    n = len(x)
    f = np.fft.rfft(x, 2 * n)
    acf = np.fft.irfft(f * f.conj())[:n] / (n - np.arange(n))
    m = n // 2 if max_lag_fs is None else min(n // 2, int(max_lag_fs / dt_fs) + 1)
    t = np.arange(m) * dt_fs
    C = acf[:m]
    g = cumulative_trapezoid(cumulative_trapezoid(C, t, initial=0.0), t, initial=0.0) / HBAR_EV_FS**2
    return t, C, g, np.exp(-g)


def fit_gaussian_dephasing(t: np.ndarray, D: np.ndarray, floor: float = 0.01) -> float:
    """t₂* (fs) of D ≈ exp(−t²/2t₂*²), least squares on the first decay down to D = ``floor``."""
    from scipy.optimize import curve_fit

    end = int(np.argmax(D < floor)) if np.any(D < floor) else len(D)
    if end < 4:
        raise QdlabError("dephasing faster than 4 time steps: the trace's time step is too coarse for D(t)")
    tt, gg = t[:end], -np.log(D[:end])
    guess = float(np.sqrt(np.sum(tt**4) / (2 * np.sum(tt**2 * gg)))) if np.any(gg > 0) else float(t[end - 1])
    try:
        (tau,), _ = curve_fit(lambda x, s: np.exp(-x**2 / (2 * s**2)), tt, D[:end], p0=[guess], maxfev=2000)
    except RuntimeError:  # D hardly decays within the lags (tiny fluctuations): the closed-form g ∝ t² fit
        tau = guess
    return abs(float(tau))


def histogram_fwhm(gap_eV: np.ndarray, bins: int | None = None) -> tuple[float, np.ndarray, np.ndarray]:
    """FWHM (eV) of a Gaussian fitted to the E_g histogram, with the histogram (centres, density)."""
    from scipy.optimize import curve_fit

    x = np.asarray(gap_eV, float)
    nb = bins or max(10, int(np.sqrt(len(x))))
    dens, edges = np.histogram(x, bins=nb, density=True)
    c = 0.5 * (edges[1:] + edges[:-1])
    p0 = [dens.max(), x.mean(), x.std()]
    try:
        (a, mu, s), _ = curve_fit(lambda e, a, mu, s: a * np.exp(-(e - mu) ** 2 / (2 * s**2)), c, dens, p0=p0,
                                  maxfev=5000)
    except RuntimeError:  # far from Gaussian (a few large modes): FWHM of the equivalent Gaussian
        s = x.std()
    return FWHM_SIGMA * abs(float(s)), c, dens


def harmonic_huang_rhys(frequencies_cm1: np.ndarray, modes: np.ndarray, masses_amu: np.ndarray,
                        gap_gradient_eV_A: np.ndarray, min_cm1: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Huang–Rhys factors from normal modes and the gap gradient (no MD): (ħω_k eV, S_k).

    d_k = Σ_i g_i·e_k,i/√m_i (gradient along the mass-weighted mode), S_k = d_k²/(2ħω_k³), so that
    Λ = Σ S_k ħω_k = Σ d_k²/(2ω_k²), the classical var(E_g)/(2k_BT) of harmonic MD. ``modes`` (M, N, 3)
    mass-weighted and normalised; modes below ``min_cm1`` (zero, imaginary) are dropped.
    """
    from ase.units import _amu, _c

    f = np.asarray(frequencies_cm1, float)
    keep = f > min_cm1
    e = np.asarray(modes)[keep]
    d = np.einsum("kia,ia->k", e, np.asarray(gap_gradient_eV_A) / np.sqrt(np.asarray(masses_amu))[:, None])
    d_si = d * _e / (1e-10 * np.sqrt(_amu))                 # J/(m·√kg)
    omega = 2 * np.pi * _c * 100.0 * f[keep]               # rad/s
    S = d_si**2 / (2 * _hbar * omega**3)
    return _hbar * omega / _e, S


@dataclass(frozen=True)
class LinewidthResult:
    """Everything seed 004 derives from one gap trace (arrays in eV/fs; see :meth:`summary` for units)."""

    T_K: float
    dt_fs: float
    n_frames: int
    mean_gap_eV: float
    energy_eV: np.ndarray          # ħω grid of S
    S: np.ndarray
    bands: dict                    # {name: S_<ω>}
    reorganization_eV: float
    t_fs: np.ndarray
    C_eV2: np.ndarray
    g: np.ndarray
    D: np.ndarray
    t2_fs: float
    fwhm_hist_eV: float
    hist: tuple[np.ndarray, np.ndarray]
    trace: GapTrace

    @property
    def gamma_harmonic_eV(self) -> float:
        return float(gamma_harmonic(self.reorganization_eV, self.T_K))

    @property
    def gamma_dephasing_eV(self) -> float:
        return float(FWHM_SIGMA * HBAR_EV_FS / self.t2_fs)

    def summary(self) -> dict:
        return {"T_K": self.T_K, "n_frames": self.n_frames, "dt_fs": self.dt_fs,
                "duration_ps": self.n_frames * self.dt_fs / 1e3,
                "resolution_meV": H_EV_FS / (self.n_frames * self.dt_fs) * 1e3,
                "mean_gap_eV": self.mean_gap_eV, "std_gap_meV": float(np.std(self.trace.gap_eV) * 1e3),
                "huang_rhys_bands": {f"S_{k}": v for k, v in self.bands.items()},
                "huang_rhys_total": float(self.S.sum()),
                "reorganization_meV": self.reorganization_eV * 1e3,
                "gamma_harmonic_meV": self.gamma_harmonic_eV * 1e3,
                "t2_star_fs": self.t2_fs, "gamma_dephasing_meV": self.gamma_dephasing_eV * 1e3,
                "fwhm_histogram_meV": self.fwhm_hist_eV * 1e3,
                "fwhm_from_std_meV": FWHM_SIGMA * float(np.std(self.trace.gap_eV)) * 1e3}


def linewidth(trace: GapTrace, T_K: float, bands_meV: dict | None = None, resolution_meV: float = 1.0,
              skip_fs: float = 0.0, max_lag_fs: float | None = 2000.0) -> LinewidthResult:
    """The full seed-004 chain on one trace at temperature ``T_K`` (after discarding ``skip_fs``)."""
    if T_K <= 0:
        raise QdlabError("temperature must be > 0 K")
    keep = trace.time_fs >= trace.time_fs[0] + skip_fs
    tr = GapTrace(trace.time_fs[keep], trace.gap_eV[keep], None if trace.homo_eV is None else trace.homo_eV[keep],
                  None if trace.lumo_eV is None else trace.lumo_eV[keep], trace.info)
    dt = _check(tr, resolution_meV)
    e, S = huang_rhys(tr.gap_eV, dt, T_K)
    bands = band_integrated(e, S, bands_meV or DEFAULT_BANDS_MEV)
    t, C, g, D = dephasing(tr.gap_eV, dt, max_lag_fs)
    t2 = fit_gaussian_dephasing(t, D)
    fwhm, hc, hd = histogram_fwhm(tr.gap_eV)
    return LinewidthResult(float(T_K), dt, len(tr.gap_eV), float(np.mean(tr.gap_eV)), e, S, bands,
                           float(np.sum(S * e)), t, C, g, D, t2, fwhm, (hc, hd), tr)


def plot_linewidth(res: LinewidthResult, path: str | Path, max_energy_meV: float = 30.0) -> None:
    """Four panels: gap trace, S(ω), D(t) with its Gaussian fit, histogram with Γ(T) inset values."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 2, figsize=(9, 6.5))
    tr = res.trace
    ax[0, 0].plot(tr.time_fs / 1e3, tr.gap_eV, lw=0.6)
    ax[0, 0].set(xlabel="t (ps)", ylabel="E_g (eV)", title="gap trace")
    m = res.energy_eV * 1e3 <= max_energy_meV
    ax[0, 1].vlines(res.energy_eV[m] * 1e3, 0, res.S[m], lw=1)
    ax[0, 1].set(xlabel="ħω (meV)", ylabel="S(ω)", title=f"Huang–Rhys, Λ = {res.reorganization_eV*1e3:.2f} meV")
    tm = res.t_fs <= 6 * res.t2_fs
    ax[1, 0].plot(res.t_fs[tm], res.D[tm], "o", ms=2, label="D(t)")
    ax[1, 0].plot(res.t_fs[tm], np.exp(-res.t_fs[tm] ** 2 / (2 * res.t2_fs**2)), "k--",
                  label=f"Gaussian t₂* = {res.t2_fs:.1f} fs")
    ax[1, 0].set(xlabel="t (fs)", ylabel="D(t)", title=f"Γ = {res.gamma_dephasing_eV*1e3:.1f} meV")
    ax[1, 0].legend(fontsize=8)
    c, d = res.hist
    ax[1, 1].bar(c, d, width=c[1] - c[0], alpha=0.6)
    ax[1, 1].set(xlabel="E_g (eV)", ylabel="density",
                 title=f"FWHM {res.fwhm_hist_eV*1e3:.1f} meV; Γ_harm({res.T_K:.0f} K) {res.gamma_harmonic_eV*1e3:.1f} meV")
    save_figure(fig, path, dpi=130)


def plot_gamma_T(res: LinewidthResult, path: str | Path, T_max: float = 400.0) -> None:
    """Harmonic Γ(T) = 2√(2 ln 2)√(2Λk_BT) from this trace's Λ, with the dephasing Γ at its T."""
    import matplotlib.pyplot as plt

    T = np.linspace(0, T_max, 200)
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    ax.plot(T, gamma_harmonic(res.reorganization_eV, T) * 1e3, label="harmonic (from S)")
    ax.plot([res.T_K], [res.gamma_dephasing_eV * 1e3], "o", label="D(t) fit")
    ax.set(xlabel="T (K)", ylabel="Γ (meV)")
    ax.legend(fontsize=8)
    save_figure(fig, path, dpi=130)
