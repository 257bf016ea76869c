"""Carboxylate IR band analysis (seed 001 Fig. 4; SCIENCE.md §6).

Acetate on PbS (001, from its MD spectrum): ν_s 1370–1420 (symmetric COO stretch), CH3 umbrella
~1450, CH bend ~1480, ν_as 1550–1600 cm⁻¹ (antisymmetric COO stretch); the splitting Δν = ν_as − ν_s
is the usual experimental indicator of the binding geometry. Each band is searched in a window
(``BAND_WINDOWS_CM1``, wider than the paper's ranges so that a potential with shifted frequencies
still finds them): position = highest point, centre = intensity-weighted mean, area = integral in
the window. For harmonic modes, each mode's COO stretch character (symmetric vs antisymmetric share
of its C–O bond-length changes) is reported as well, an assignment that needs no window.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

from qdlab.analysis.ir import IRSpectrum

#: seed 001's reported ranges (cm⁻¹): the paper's numbers, for reports beside ours
SEED001_BANDS_CM1 = {"nu_s": (1370.0, 1420.0), "umbrella": (1450.0, 1450.0), "ch_bend": (1480.0, 1480.0),
                     "nu_as": (1550.0, 1600.0)}
#: search windows (cm⁻¹)
BAND_WINDOWS_CM1 = {"nu_s": (1300.0, 1440.0), "umbrella": (1440.0, 1466.0), "ch_bend": (1466.0, 1520.0),
                    "nu_as": (1520.0, 1700.0)}


def carboxylate_bands(spectrum: IRSpectrum, windows: dict[str, tuple[float, float]] | None = None,
                      curve: str = "quantum") -> dict:
    """{band: {position_cm1, centre_cm1, area, window_cm1, paper_cm1}} and ``delta_nu_cm1`` (ν_as − ν_s)."""
    win = windows or BAND_WINDOWS_CM1
    f = spectrum.frequencies_cm1
    y = np.clip(spectrum.intensity if curve == "quantum" else spectrum.classical, 0.0, None)
    df = float(f[1] - f[0]) if len(f) > 1 else 1.0
    out: dict = {}
    for name, (lo, hi) in win.items():
        m = (f >= lo) & (f <= hi)
        if not m.any() or y[m].sum() <= 0:
            out[name] = None
            continue
        fm, ym = f[m], y[m]
        out[name] = {"position_cm1": float(fm[ym.argmax()]), "centre_cm1": float((fm * ym).sum() / ym.sum()),
                     "area": float(ym.sum() * df), "window_cm1": [lo, hi],
                     "paper_cm1": list(SEED001_BANDS_CM1.get(name, (np.nan, np.nan)))}
    if out.get("nu_s") and out.get("nu_as"):
        out["delta_nu_cm1"] = out["nu_as"]["position_cm1"] - out["nu_s"]["position_cm1"]
    return out


def coo_stretch_character(atoms: Atoms, modes: np.ndarray) -> np.ndarray:
    """Per mode (M, 2): the symmetric and antisymmetric shares of the C–O stretches of all carboxylates
    (Σ_g (δr1 ± δr2)² / 2 over Σ_g |u_g|² of the COO atoms; both 0 for modes that do not move a COO)."""
    from qdlab.analysis.coordination import find_carboxylates

    pairs, cs = find_carboxylates(atoms)
    m = np.asarray(modes, float)
    if len(cs) == 0:
        return np.zeros((len(m), 2))
    u = m / np.sqrt(atoms.get_masses())[None, :, None]
    pos = atoms.positions
    e1 = pos[pairs[:, 0]] - pos[cs]
    e2 = pos[pairs[:, 1]] - pos[cs]
    e1 /= np.linalg.norm(e1, axis=1)[:, None]
    e2 /= np.linalg.norm(e2, axis=1)[:, None]
    d1 = np.einsum("kgc,gc->kg", u[:, pairs[:, 0]] - u[:, cs], e1)
    d2 = np.einsum("kgc,gc->kg", u[:, pairs[:, 1]] - u[:, cs], e2)
    norm = (u[:, pairs[:, 0]] ** 2).sum((1, 2)) + (u[:, pairs[:, 1]] ** 2).sum((1, 2)) + (u[:, cs] ** 2).sum((1, 2))
    norm = np.where(norm > 0, norm, 1.0)
    return np.stack([((d1 + d2) ** 2).sum(1) / 2 / norm, ((d1 - d2) ** 2).sum(1) / 2 / norm], axis=1)


def harmonic_carboxylate_bands(atoms: Atoms, frequencies_cm1: np.ndarray, modes: np.ndarray,
                               intensities: np.ndarray, fmin_cm1: float = 1200.0, fmax_cm1: float = 1800.0,
                               min_share: float = 0.3) -> dict:
    """ν_s and ν_as from mode character: the intensity-weighted mean frequency of the modes in
    [fmin, fmax] whose symmetric (antisymmetric) COO-stretch share is ≥ ``min_share`` and larger
    than the other; Δν their difference; the mode counts are reported too."""
    ch = coo_stretch_character(atoms, modes)
    f = np.asarray(frequencies_cm1, float)
    w = np.asarray(intensities, float)
    inside = (f >= fmin_cm1) & (f <= fmax_cm1)
    out = {}
    for k, name in enumerate(("nu_s", "nu_as")):
        sel = inside & (ch[:, k] >= min_share) & (ch[:, k] > ch[:, 1 - k])
        if not sel.any():
            out[name] = None
            continue
        wt = w[sel] if w[sel].sum() > 0 else np.ones(sel.sum())
        out[name] = {"centre_cm1": float((f[sel] * wt).sum() / wt.sum()), "n_modes": int(sel.sum()),
                     "range_cm1": [float(f[sel].min()), float(f[sel].max())],
                     "paper_cm1": list(SEED001_BANDS_CM1[name])}
    if out.get("nu_s") and out.get("nu_as"):
        out["delta_nu_cm1"] = out["nu_as"]["centre_cm1"] - out["nu_s"]["centre_cm1"]
    return out
