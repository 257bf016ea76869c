"""Infrared spectra from MD dipoles and from harmonic normal modes (seed 001; SCIENCE.md §6).

**MD path.** From an NVE trajectory's dipole time derivative μ̇(t) (e·Å/fs):

    I(ν̃) = Q(ν̃) · S(ν̃),   S(ν̃) = 2 ∫ dt w(t) C(t) cos(2πνt),   C(t) = ⟨μ̇(τ)·μ̇(τ+t)⟩_τ,

C from an FFT (zero-padded, unbiased 1/(F−j) normalisation) up to the maximum lag τ_max, tapered
by a half window w (Hann by default), and Q = βħω/(1 − e^{−βħω}) the harmonic quantum correction.
S is one-sided per cm⁻¹ with ∫₀^∞ S dν̃ = ⟨|μ̇|²⟩ ((e·Å/fs)²) for a box window, so the area of a
band is the mean-square dipole derivative it carries. μ̇ comes from the source's analytic
derivative with the velocities (fixed charges: Σ q_i v_i; the learned model: a Jacobian–vector
product), or from μ(t) with the derivative taken in frequency space (|F{μ̇}|² = ω²|F{μ}|²).

Resolution: ``resolution_cm1`` = 1/τ_max (a pure cosine gives a Hann line of FWHM ≈ 0.72·resolution);
the trajectory must span at least τ_max (otherwise an error); the default τ_max is half the run.

**Harmonic path.** Born charges Z_i,ab = ∂μ_b/∂r_ia (analytic for fixed charges, otherwise central
differences ±δ of any dipole source), mode dipole derivative dμ/dQ_k = Σ_i Z_iᵀ e_k,i / √m_i for
mass-weighted modes e_k, intensity |dμ/dQ_k|² in (D/Å)²/amu (ASE ``Infrared``'s unit; × 42.255 →
km/mol), broadened by normalised Lorentzians or Gaussians. Units: cm⁻¹, fs, K, e, Å, D.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ase import Atoms, units

from qdlab.analysis.trajectory import Frames, Trajectory, load_trajectory
from qdlab.analysis.vdos import _AMU_A2_FS2_TO_EV, _PER_FS_TO_CM1, quantum_correction
from qdlab.errors import QdlabError

#: (D/Å)²/amu → km/mol (ASE ``Infrared``)
KM_MOL = 42.255


@dataclass(frozen=True)
class Peak:
    """A band maximum: position (cm⁻¹), height, integrated area (same units as the curve × cm⁻¹)."""

    position_cm1: float
    height: float
    area: float
    relative_area: float


@dataclass(frozen=True)
class IRSpectrum:
    """IR absorption vs wavenumber: ``intensity`` = Q·S (quantum corrected), ``classical`` = S.

    Units of S: (e·Å/fs)² per cm⁻¹ (MD path) or (D/Å)²/amu per cm⁻¹ (harmonic, broadened).
    ``resolution_cm1`` the spectral resolution (MD: 1/τ_max; harmonic: the broadening FWHM).
    """

    frequencies_cm1: np.ndarray
    intensity: np.ndarray
    classical: np.ndarray
    temperature_K: float
    resolution_cm1: float
    method: str
    source: str = ""
    dt_fs: float = 0.0
    n_frames: int = 0
    max_lag_fs: float = 0.0
    window: str = "hann"
    meta: dict = field(default_factory=dict)

    def peaks(self, prominence: float = 0.02, fmin_cm1: float = 0.0, fmax_cm1: float | None = None,
              curve: str = "quantum") -> list[Peak]:
        """Local maxima with prominence ≥ ``prominence`` × max, with areas between the neighbouring minima
        (of the curve clipped at 0: a tapered correlation estimate can dip below zero between bands)."""
        from scipy.signal import find_peaks

        y = self.intensity if curve == "quantum" else self.classical
        f = self.frequencies_cm1
        sel = (f >= fmin_cm1) & (f <= (np.inf if fmax_cm1 is None else fmax_cm1))
        if not sel.any() or y[sel].max() <= 0:
            return []
        yy = np.where(sel, np.clip(y, 0.0, None), 0.0)  # negative lobes of the estimate are no bands
        idx, props = find_peaks(yy, prominence=prominence * float(yy.max()))
        df = f[1] - f[0] if len(f) > 1 else 1.0
        out = []
        for i, lo, hi in zip(idx, props["left_bases"], props["right_bases"]):
            lo = max(lo, _valley(yy, i, -1))
            hi = min(hi, _valley(yy, i, +1))
            out.append((float(f[i]), float(yy[i]), float(yy[lo:hi + 1].sum() * df)))
        total = sum(a for *_, a in out) or 1.0
        return [Peak(p, h, a, a / total) for p, h, a in out]

    def to_dict(self, peaks: bool = True, **peak_options) -> dict:
        d = {"method": self.method, "source": self.source, "temperature_K": self.temperature_K,
             "resolution_cm1": self.resolution_cm1, "dt_fs": self.dt_fs, "n_frames": self.n_frames,
             "max_lag_fs": self.max_lag_fs, "window": self.window} | self.meta
        if peaks:
            d["peaks"] = [p.__dict__ for p in self.peaks(**peak_options)]
        return d


def _valley(y: np.ndarray, i: int, step: int) -> int:
    """Index of the first local minimum from ``i`` in direction ``step``."""
    j = i
    while 0 < j + step < len(y) and y[j + step] <= y[j]:
        j += step
    return j


def _half_window(name: str, n: int) -> np.ndarray:
    """Decreasing taper of length n, w(0) = 1 (second half of a symmetric window of length 2n)."""
    if name in ("none", "box", "boxcar", "rect"):
        return np.ones(n)
    from scipy.signal import get_window

    try:
        w = get_window(name, 2 * n, fftbins=False)
    except (ValueError, TypeError) as exc:
        raise QdlabError(f"unknown window {name!r}: {exc}") from None
    return w[n:] / w[n]


def autocorrelation(x: np.ndarray, max_lag: int) -> np.ndarray:
    """C(j) = ⟨x(t)·x(t+j)⟩ for j < ``max_lag`` of a (F, 3) or (F,) series (unbiased), by FFT."""
    x = np.asarray(x, float)
    x = x[:, None] if x.ndim == 1 else x
    f = x.shape[0]
    nfft = 1 << int(np.ceil(np.log2(2 * f)))
    s = np.fft.rfft(x, n=nfft, axis=0)
    c = np.fft.irfft((s * s.conj()).real, n=nfft, axis=0)[:max_lag].sum(1)
    return c / (f - np.arange(max_lag))


def max_lag_for(resolution_cm1: float | None, n_frames: int, dt_fs: float) -> int:
    """Number of lags for a requested resolution (cm⁻¹); an error when the run is too short."""
    if resolution_cm1 is None:
        return max(2, n_frames // 2)
    if not resolution_cm1 > 0:
        raise QdlabError(f"resolution must be > 0 cm⁻¹, not {resolution_cm1}")
    lag = int(np.ceil(_PER_FS_TO_CM1 / (resolution_cm1 * dt_fs)))
    if lag >= n_frames:
        need_ps = lag * dt_fs / 1000
        raise QdlabError(f"{resolution_cm1:g} cm⁻¹ resolution needs a run of ≥ {need_ps:.3g} ps "
                         f"({lag + 1} frames at {dt_fs:g} fs); this one has {n_frames} frames "
                         f"({(n_frames - 1) * dt_fs / 1000:.3g} ps)")
    return lag


def spectrum_from_derivative(mu_dot: np.ndarray, dt_fs: float, temperature_K: float, *,
                             resolution_cm1: float | None = None, window: str = "hann", pad: int = 4,
                             from_dipole: bool = False, source: str = "", method: str = "md") -> IRSpectrum:
    """IR spectrum (module docstring) of μ̇(t) (F, 3) e·Å/fs sampled every ``dt_fs``.

    ``from_dipole``: the input is μ(t) itself (e·Å); the derivative is taken in frequency space.
    """
    x = np.asarray(mu_dot, float)
    if x.ndim != 2 or x.shape[1] != 3:
        raise QdlabError(f"dipole series must have shape (F, 3), got {x.shape}")
    if not (dt_fs > 0):
        raise QdlabError(f"time between frames must be > 0 fs, not {dt_fs}")
    if temperature_K <= 0:
        raise QdlabError(f"temperature must be > 0 K for the quantum correction, not {temperature_K}")
    f = x.shape[0]
    if f < 8:
        raise QdlabError(f"a spectrum needs ≥ 8 frames, got {f}")
    lag = max_lag_for(resolution_cm1, f, dt_fs)
    c = autocorrelation(x - x.mean(0), lag) * _half_window(window, lag)
    nfft = max(2 * lag, int(pad) * 2 * lag)
    spec = dt_fs * (2.0 * np.fft.rfft(c, n=nfft).real - c[0])      # two-sided density (fs · signal²)
    nu = np.fft.rfftfreq(nfft, d=dt_fs)                              # 1/fs
    s = 2.0 * spec / _PER_FS_TO_CM1                                  # one-sided, per cm⁻¹ (not clipped)
    if from_dipole:
        s = s * (2 * np.pi * nu) ** 2
    wn = nu * _PER_FS_TO_CM1
    return IRSpectrum(frequencies_cm1=wn, intensity=s * quantum_correction(wn, temperature_K), classical=s,
                      temperature_K=float(temperature_K), resolution_cm1=float(_PER_FS_TO_CM1 / (lag * dt_fs)),
                      method=method, source=source, dt_fs=float(dt_fs), n_frames=f, max_lag_fs=lag * dt_fs,
                      window=window)


def kinetic_temperature(traj: Trajectory) -> float:
    """Mean kinetic temperature (K) of the frames, 3 degrees of freedom per atom."""
    if traj.velocities_A_fs is None:
        raise QdlabError("the trajectory has no velocities: pass the temperature")
    ke = 0.5 * np.einsum("n,fnk->", traj.masses_amu, traj.velocities_A_fs ** 2) * _AMU_A2_FS2_TO_EV / traj.n_frames
    return float(2 * ke / (3 * traj.n_atoms * units.kB))


def dipole_derivatives(source, atoms: Atoms, traj: Trajectory) -> np.ndarray:
    """μ̇ (F, 3) e·Å/fs from the velocities: analytic for sources with ``dipole_derivatives``,
    Born charges of a :class:`~qdlab.engines.dipoles.ChargeDipole` otherwise an error."""
    if traj.velocities_A_fs is None:
        raise QdlabError("the trajectory has no velocities (write momenta, e.g. extended XYZ from `qdlab md`), "
                         "or use derivative='positions'")
    if hasattr(source, "dipole_derivatives"):
        return np.asarray(source.dipole_derivatives(atoms, traj.positions_A, traj.velocities_A_fs), float)
    if hasattr(source, "born_charges"):
        z = source.born_charges(atoms)
        return np.einsum("fia,iab->fb", traj.velocities_A_fs, z)
    raise QdlabError(f"dipole source {getattr(source, 'name', source)!r} has no analytic derivative: "
                     "use derivative='positions'")


def ir_md(frames: Frames, source, *, temperature_K: float | None = None, dt_fs: float | None = None,
          resolution_cm1: float | None = None, window: str = "hann", derivative: str = "auto",
          skip: int = 0, skip_ps: float | None = None, stride: int = 1, atoms: Atoms | None = None) -> IRSpectrum:
    """IR spectrum of a trajectory with a dipole source (``qdlab.engines.dipoles``).

    ``atoms``: the structure the source sees (numbers, masses, ``info["charge"]``; default the first frame).
    ``derivative``: ``velocities`` (μ̇ analytically from the velocities; an error without them),
    ``positions`` (μ(t) from positions, derivative in frequency space), ``auto`` (velocities when
    the frames carry them and the source has an analytic derivative). ``temperature_K`` defaults
    to the kinetic temperature of the frames. ``dt_fs`` defaults to the spacing of ``info["time_fs"]``.
    """
    traj = load_trajectory(frames, skip=skip, skip_ps=skip_ps, stride=stride)
    if derivative not in ("auto", "velocities", "positions"):
        raise QdlabError(f"derivative must be auto, velocities or positions, not {derivative!r}")
    dt = dt_fs if dt_fs is not None else traj.timestep_fs()
    if traj.n_frames < 8:
        raise QdlabError(f"a spectrum needs ≥ 8 frames, the trajectory has {traj.n_frames}")
    max_lag_for(resolution_cm1, traj.n_frames, dt)  # fail before any dipole is computed
    if derivative == "velocities" and traj.velocities_A_fs is None:
        raise QdlabError("the trajectory has no velocities (write momenta, e.g. extended XYZ from `qdlab md`), "
                         "or use derivative='positions'")
    atoms = traj.atoms(0) if atoms is None else atoms
    analytic = hasattr(source, "dipole_derivatives") or hasattr(source, "born_charges")
    use_vel = derivative == "velocities" or (derivative == "auto" and analytic and traj.velocities_A_fs is not None)
    temp = temperature_K if temperature_K is not None else kinetic_temperature(traj)
    if use_vel:
        series = dipole_derivatives(source, atoms, traj)
    else:
        series = np.asarray(source.dipoles(atoms, traj.positions_A), float)
    return spectrum_from_derivative(series, dt, temp, resolution_cm1=resolution_cm1, window=window,
                                    from_dipole=not use_vel, source=getattr(source, "name", ""),
                                    method="md-" + ("velocities" if use_vel else "positions"))
