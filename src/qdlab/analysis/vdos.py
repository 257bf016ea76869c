"""Vibrational density of states from an MD trajectory (seed 004 eq. 1; SCIENCE.md §6).

    g_i(ω) = m_i ω² |F{r_i(t)}|² · (ħω / k_BT) (1 + n_BE(ω)),   g(ω) = Σ_i g_i(ω),

i.e. the mass-weighted velocity power spectrum m_i |F{v_i(t)}|² (|F{ṙ}|² = ω²|F{r}|²) times the
harmonic quantum correction Q(ν) = x (1 + 1/(eˣ − 1)) = x / (1 − e⁻ˣ), x = hν / k_BT.

Velocities are used when the frames carry momenta (``.traj`` files from ASE MD do), otherwise
positions (mean removed per atom, frames aligned first to remove rigid rotation by default) with
the ω² factor applied in frequency space. Each Cartesian component is windowed (``window``: any
``scipy.signal.get_window`` name, "none" for a box; the window is scaled so that Σ w² = F, which
keeps the power), optionally zero-padded (``pad`` × F samples), and Fourier transformed.

Normalisation: the one-sided spectral density S_i(ν) of the velocity satisfies
∫₀^∞ S_i dν = ⟨|v_i|²⟩ (Parseval), and the *classical* VDOS

    g_cl(ν) = Σ_i m_i S_i(ν) / (k_B T)

therefore integrates to Σ_i m_i⟨|v_i|²⟩ / k_BT = 3 N_sel by equipartition (exactly 3N when T is
the trajectory's kinetic temperature, the default, computed with 3 degrees of freedom per moving
atom: frozen atoms, whose velocity is zero throughout, are not counted), i.e. modes per cm⁻¹ like
:func:`qdlab.analysis.dos.phonon_dos`. A run with its centre of mass and angular momentum fixed has
3N − 6 vibrational modes; pass ``temperature_K`` to normalise with the thermostat's temperature. The quantum-corrected g = Q·g_cl
follows eq. 1 and integrates to more than 3N. Frequencies ν̃ in cm⁻¹; spectral resolution
1 / (F Δt) converted to cm⁻¹ (``resolution_cm1``); Nyquist limit 1 / (2Δt).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ase import units

from qdlab.analysis.align import align_frames
from qdlab.analysis.trajectory import Frames, Trajectory, load_trajectory
from qdlab.errors import QdlabError

#: 1 / (fs) → cm⁻¹ : ν̃ = ν / c
_PER_FS_TO_CM1 = 1e15 / (units._c * 100.0)
#: h·c·(1 cm⁻¹) / k_B in K: x = hν/k_BT = ν̃ · _CM1_TO_K / T
_CM1_TO_K = units._hplanck * units._c * 100.0 / units._k
#: amu Å² fs⁻² → eV (kinetic energy unit)
_AMU_A2_FS2_TO_EV = units._amu * 1e10 / units._e


@dataclass(frozen=True)
class VDOS:
    """Vibrational DOS on ``frequencies_cm1`` (one-sided, from 0 to the Nyquist limit).

    ``total``/``partial`` are the quantum-corrected g (eq. 1) and ``classical_total``/
    ``classical_partial`` the uncorrected g_cl (∫ g_cl dν = 3N_sel modes); units: per cm⁻¹.
    ``temperature_K`` used for k_BT and the correction; ``resolution_cm1`` = 1/(F Δt).
    """

    frequencies_cm1: np.ndarray
    total: np.ndarray
    classical_total: np.ndarray
    partial: dict[str, np.ndarray] = field(default_factory=dict)
    classical_partial: dict[str, np.ndarray] = field(default_factory=dict)
    temperature_K: float = 0.0
    kinetic_temperature_K: float = 0.0
    dt_fs: float = 0.0
    n_frames: int = 0
    resolution_cm1: float = 0.0
    nyquist_cm1: float = 0.0
    source: str = "velocities"
    window: str = "hann"
    sigma_cm1: float = 0.0

    def peaks(self, prominence: float = 0.05, curve: str = "classical") -> np.ndarray:
        """Positions (cm⁻¹) of local maxima with a prominence ≥ ``prominence`` × max (scipy.signal)."""
        from scipy.signal import find_peaks

        g = self.classical_total if curve == "classical" else self.total
        idx, _ = find_peaks(g, prominence=prominence * float(g.max()))
        return self.frequencies_cm1[idx]


def quantum_correction(freqs_cm1: np.ndarray, temperature_K: float) -> np.ndarray:
    """Q(ν) = (hν/k_BT)(1 + n_BE) = x / (1 − e⁻ˣ); Q(0) = 1."""
    x = np.asarray(freqs_cm1, float) * _CM1_TO_K / temperature_K
    out = np.ones_like(x)
    nz = x > 1e-12
    out[nz] = x[nz] / -np.expm1(-x[nz])
    return out


def _spectra(signal: np.ndarray, window: str, pad: int) -> np.ndarray:
    """|FFT|² summed over Cartesian components, per atom: (F, N, 3) → (K, N), one-sided rfft bins."""
    from scipy.signal import get_window

    f = signal.shape[0]
    if window in ("none", "box", "boxcar", "rect"):
        w = np.ones(f)
    else:
        try:
            w = get_window(window, f, fftbins=False)
        except (ValueError, TypeError) as exc:
            raise QdlabError(f"unknown window {window!r}: {exc}") from None
    w = w * np.sqrt(f / (w ** 2).sum())
    spec = np.fft.rfft(signal * w[:, None, None], n=pad * f, axis=0)
    return (spec.real ** 2 + spec.imag ** 2).sum(2)


def vdos(frames: Frames, temperature_K: float | None = None, dt_fs: float | None = None,
         selections: dict[str, str | np.ndarray] | str | None = None, source: str = "auto",
         window: str = "hann", pad: int = 1, sigma_cm1: float = 0.0, align: bool = True,
         skip: int = 0, skip_ps: float | None = None, stride: int = 1) -> VDOS:
    """VDOS (total and partial) of a trajectory; see the module docstring for the definitions.

    ``temperature_K``: for k_BT and Q (default: kinetic temperature of the analysed frames, which
    needs velocities); ``dt_fs``: time between frames (default from ``info["time_fs"]``);
    ``selections``: {name: selection} for partial VDOS, or ``"element"`` for one per element;
    ``source``: "auto" | "velocities" | "positions"; ``window``/``pad`` as above; ``sigma_cm1``:
    optional Gaussian smoothing of the spectra; ``align``: align frames before using positions.
    """
    traj: Trajectory = load_trajectory(frames, skip=skip, skip_ps=skip_ps, stride=stride)
    if traj.n_frames < 8:
        raise QdlabError(f"a VDOS needs a time series: {traj.n_frames} frames are too few")
    if pad < 1:
        raise QdlabError("pad must be ≥ 1")
    dt = float(dt_fs) if dt_fs is not None else traj.timestep_fs()
    if dt <= 0:
        raise QdlabError("time between frames must be > 0 fs")
    if source == "auto":
        source = "velocities" if traj.velocities_A_fs is not None else "positions"
    if source not in ("velocities", "positions"):
        raise QdlabError(f"VDOS source must be auto, velocities or positions, not {source!r}")
    if source == "velocities" and traj.velocities_A_fs is None:
        raise QdlabError("the frames carry no velocities (momenta); use source='positions'")
    m = traj.masses_amu
    t_kin = 0.0
    if traj.velocities_A_fs is not None:
        v = traj.velocities_A_fs
        moving = int(np.any(v != 0.0, axis=(0, 2)).sum())  # frozen atoms (v ≡ 0) carry no kinetic energy
        ke = 0.5 * np.einsum("n,fnk,fnk->", m, v, v) / traj.n_frames
        t_kin = float(2.0 * ke * _AMU_A2_FS2_TO_EV / (3 * max(moving, 1) * units.kB))
    temp = float(temperature_K) if temperature_K is not None else t_kin
    if not temp > 0:
        raise QdlabError("a VDOS needs a temperature > 0 K (pass temperature_K when the frames carry no velocities)")
    if source == "velocities":
        power = _spectra(traj.velocities_A_fs, window, pad)
    else:
        pos = traj.positions_A
        if align and traj.n_atoms >= 3:
            pos = align_frames(pos, m, "first").positions_A
        power = _spectra(pos - pos.mean(0), window, pad)
    n_fft = pad * traj.n_frames
    nu_fs = np.fft.rfftfreq(n_fft, d=dt)  # 1/fs
    if source == "positions":
        power = power * ((2 * np.pi * nu_fs) ** 2)[:, None]  # |F{ṙ}|² = ω² |F{r}|²
    # one-sided PSD in (Å/fs)² per (1/fs): two-sided S = |V|² Δt / F, doubled except at 0 and Nyquist
    psd = power * dt / traj.n_frames  # zero padding: Δν shrinks by pad, Σ|V|² grows by pad
    psd[1:] *= 2.0
    if n_fft % 2 == 0:
        psd[-1] /= 2.0
    kt = units.kB * temp  # eV
    # g_cl per (1/fs) = m S / k_BT (dimensionless per unit frequency); per cm⁻¹: divide by the fs⁻¹→cm⁻¹ factor
    weighted = psd * m[None, :] * _AMU_A2_FS2_TO_EV / kt / _PER_FS_TO_CM1
    freqs = nu_fs * _PER_FS_TO_CM1
    if sigma_cm1 > 0:
        from scipy.ndimage import gaussian_filter1d

        weighted = gaussian_filter1d(weighted, sigma_cm1 / (freqs[1] - freqs[0]), axis=0, mode="reflect")
    q = quantum_correction(freqs, temp)
    g_cl = weighted.sum(1)
    partial_cl: dict[str, np.ndarray] = {}
    if selections is not None:
        if isinstance(selections, str):
            if selections != "element":
                raise QdlabError(f"partial VDOS selections: a dict or 'element', not {selections!r}")
            sym = traj.symbols
            selections = {s: sym == s for s in dict.fromkeys(sym)}
        for name, sel in selections.items():
            mask = traj.mask(sel)
            if not mask.any():
                raise QdlabError(f"selection {name!r} matches no atoms")
            partial_cl[name] = weighted[:, mask].sum(1)
    return VDOS(freqs, g_cl * q, g_cl, {k: v * q for k, v in partial_cl.items()}, partial_cl, temp, t_kin, dt,
                traj.n_frames, _PER_FS_TO_CM1 / (traj.n_frames * dt), _PER_FS_TO_CM1 / (2 * dt), source, window,
                sigma_cm1)
