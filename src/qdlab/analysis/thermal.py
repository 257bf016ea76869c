"""Harmonic thermal properties of a cluster from its Γ-point modes (SCIENCE.md §4; issue 16).

For every vibrational mode k with angular frequency ω_k (x_k = ħω_k / k_BT):

    ZPE = Σ ħω/2
    F   = Σ [ħω/2 + k_BT ln(1 − e^{−x})]                       (includes the ZPE, like phonopy)
    S   = k_B Σ [x / (eˣ − 1) − ln(1 − e^{−x})]
    C_v = k_B Σ x² eˣ / (eˣ − 1)²
    U   = Σ ħω (1/2 + n_BE)

Rigid-body (translation, rotation) and imaginary modes carry no thermal weight: modes below
``cutoff_cm1`` (default 1 cm⁻¹; imaginary modes are negative numbers) are excluded and counted.

Mean-square displacement per atom (harmonic): with mass-weighted normal modes e_k (Σ_i |e_k,i|² = 1),

    ⟨|u_i|²⟩ = Σ_k |e_k,i|² ⟨Q_k²⟩ / m_i,   ⟨Q_k²⟩ = E_k / ω_k²,

E_k = (ħω_k/2) coth(x_k/2) with the quantum occupation, E_k = k_BT classically (equipartition;
compare with the RMSF² of a classical MD run). Units: eV, eV/K, K, Å², amu, cm⁻¹.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from ase import units

from qdlab.errors import QdlabError

#: ħω in eV for ν̃ = 1 cm⁻¹
_CM1_TO_EV = units._hplanck * units._c * 100.0 / units._e
#: k_B in eV/K
KB_EV = units._k / units._e
#: eV per particle → kJ/mol
_EV_TO_KJ_MOL = units._e * units._Nav / 1000.0


@dataclass(frozen=True)
class ThermalProperties:
    """Harmonic vibrational thermodynamics vs temperature (arrays over ``temperatures_K``).

    ``free_energy_eV`` (Helmholtz, with ZPE), ``entropy_eV_K``, ``heat_capacity_eV_K`` (C_v),
    ``internal_energy_eV`` (with ZPE), ``zpe_eV``; ``n_modes`` used, ``n_excluded`` rigid/soft
    modes below ``cutoff_cm1``, ``n_imaginary`` among them.
    """

    temperatures_K: np.ndarray
    free_energy_eV: np.ndarray
    entropy_eV_K: np.ndarray
    heat_capacity_eV_K: np.ndarray
    internal_energy_eV: np.ndarray
    zpe_eV: float
    n_modes: int
    n_excluded: int
    n_imaginary: int
    cutoff_cm1: float

    def to_dict(self) -> dict:
        """JSON-ready table, also in phonopy's units (kJ/mol, J/K/mol per formula unit = the cluster)."""
        d = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in asdict(self).items()}
        d["free_energy_kJ_mol"] = (self.free_energy_eV * _EV_TO_KJ_MOL).tolist()
        d["entropy_J_K_mol"] = (self.entropy_eV_K * _EV_TO_KJ_MOL * 1000).tolist()
        d["heat_capacity_J_K_mol"] = (self.heat_capacity_eV_K * _EV_TO_KJ_MOL * 1000).tolist()
        return d


@dataclass(frozen=True)
class MeanSquareDisplacement:
    """Harmonic ⟨|u_i|²⟩ per atom (T, N) in Å² at ``temperatures_K``; ``by_element`` means (T,)."""

    temperatures_K: np.ndarray
    msd_A2: np.ndarray = field(repr=False)
    symbols: np.ndarray = field(repr=False)
    classical: bool
    n_modes: int

    @property
    def by_element(self) -> dict[str, np.ndarray]:
        return {s: self.msd_A2[:, self.symbols == s].mean(1) for s in sorted(set(self.symbols.tolist()))}

    def group_mean(self, mask: np.ndarray) -> np.ndarray:
        """Mean ⟨u²⟩ (Å²) of the atoms in ``mask`` at each temperature."""
        return self.msd_A2[:, np.asarray(mask, bool)].mean(1)


def _temperatures(temperatures_K) -> np.ndarray:
    t = np.atleast_1d(np.asarray(temperatures_K, float))
    if t.ndim != 1 or not np.all(np.isfinite(t)) or np.any(t < 0):
        raise QdlabError("temperatures must be finite and ≥ 0 K")
    return t


def _kept(frequencies_cm1: np.ndarray, cutoff_cm1: float) -> tuple[np.ndarray, int, int]:
    f = np.asarray(frequencies_cm1, float)
    if f.ndim != 1 or not np.all(np.isfinite(f)):
        raise QdlabError("frequencies must be a finite 1-D array (cm⁻¹)")
    keep = f > cutoff_cm1
    return keep, int((~keep).sum()), int((f < -cutoff_cm1).sum())


def thermal_properties(frequencies_cm1: np.ndarray, temperatures_K, cutoff_cm1: float = 1.0) -> ThermalProperties:
    """Harmonic F, S, C_v, U and ZPE (module docstring) from mode wavenumbers (cm⁻¹) at temperatures (K).

    At T = 0: F = U = ZPE, S = C_v = 0.
    """
    t = _temperatures(temperatures_K)
    keep, n_excl, n_imag = _kept(frequencies_cm1, cutoff_cm1)
    e = np.asarray(frequencies_cm1, float)[keep] * _CM1_TO_EV  # ħω (eV)
    zpe = 0.5 * float(e.sum())
    kt = KB_EV * t[:, None]
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        x = np.where(kt > 0, e[None, :] / np.where(kt > 0, kt, 1.0), np.inf)
        em1 = np.expm1(x)                       # eˣ − 1
        n_be = np.where(np.isinf(x), 0.0, 1.0 / em1)
        log_term = np.log1p(-np.exp(-x))        # ln(1 − e^{−x}) → 0 for x → ∞
        f = zpe + (kt * log_term).sum(1)
        s = KB_EV * (np.where(np.isinf(x), 0.0, x * n_be) - log_term).sum(1)
        cv = KB_EV * np.where(x > 700, 0.0, x ** 2 * np.exp(-x) / (-np.expm1(-x)) ** 2).sum(1)
    u = zpe + (e[None, :] * n_be).sum(1)
    return ThermalProperties(temperatures_K=t, free_energy_eV=f, entropy_eV_K=s, heat_capacity_eV_K=cv,
                             internal_energy_eV=u, zpe_eV=zpe, n_modes=int(keep.sum()), n_excluded=n_excl,
                             n_imaginary=n_imag, cutoff_cm1=float(cutoff_cm1))


def mode_energy_eV(frequencies_cm1: np.ndarray, temperature_K: float, classical: bool = False) -> np.ndarray:
    """Mean energy of each oscillator (eV): (ħω/2) coth(ħω/2k_BT), or k_BT with ``classical``."""
    e = np.asarray(frequencies_cm1, float) * _CM1_TO_EV
    kt = KB_EV * temperature_K
    if classical:
        return np.full_like(e, kt)
    if kt <= 0:
        return 0.5 * e
    return 0.5 * e / np.tanh(0.5 * e / kt)


def mean_square_displacement(frequencies_cm1: np.ndarray, modes: np.ndarray, masses_amu: np.ndarray,
                             temperatures_K, *, classical: bool = False, cutoff_cm1: float = 1.0,
                             symbols=None) -> MeanSquareDisplacement:
    """Harmonic ⟨|u_i|²⟩ (Å²) per atom from mass-weighted modes (M, N, 3), see the module docstring.

    Modes below ``cutoff_cm1`` (rigid, soft, imaginary) are excluded. ``classical`` uses k_BT per mode
    (the limit a classical MD run samples); the default the quantum occupation (finite at T = 0).
    """
    t = _temperatures(temperatures_K)
    modes = np.asarray(modes, float)
    m = np.asarray(masses_amu, float)
    if modes.ndim != 3 or modes.shape[0] != len(frequencies_cm1) or modes.shape[1:] != (len(m), 3):
        raise QdlabError(f"modes must have shape (M, N, 3) = ({len(frequencies_cm1)}, {len(m)}, 3), "
                         f"got {modes.shape}")
    keep, _, _ = _kept(frequencies_cm1, cutoff_cm1)
    nu = np.asarray(frequencies_cm1, float)[keep]
    w2 = (nu * _CM1_TO_EV / units._hbar * units._e) ** 2          # ω² (s⁻²)
    weight = (modes[keep] ** 2).sum(2)                            # |e_k,i|² (M', N)
    # ⟨Q²⟩ = E / ω²: eV / s⁻² → amu Å²
    to_amu_a2 = units._e / (units._amu * 1e-20)
    rows = []
    for temp in t:
        q2 = mode_energy_eV(nu, temp, classical) * to_amu_a2 / w2   # (M',) amu Å²
        rows.append((weight * q2[:, None]).sum(0) / m)
    sym = np.asarray(symbols) if symbols is not None else np.array(["X"] * len(m))
    return MeanSquareDisplacement(temperatures_K=t, msd_A2=np.array(rows), symbols=sym, classical=classical,
                                  n_modes=int(keep.sum()))


def thermal_from_phonons(result, temperatures_K, cutoff_cm1: float = 1.0) -> ThermalProperties:
    """:func:`thermal_properties` of a :class:`~qdlab.workflows.phonons.PhononResult` (campaign step ``thermal``)."""
    return thermal_properties(result.frequencies_cm1, temperatures_K, cutoff_cm1)
