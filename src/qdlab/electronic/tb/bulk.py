"""Bulk mode: Bloch sums on a periodic cell, bands along Γ–X–M–R, gap and effective masses at R.

k in Cartesian 1/Å (k = 2π·frac·B with B the reciprocal basis of the cell); energies in eV;
effective masses in electron masses, from central finite differences of the band energy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ase import Atoms
from ase import units

from qdlab.electronic.tb.hamiltonian import hamiltonian, prepare
from qdlab.electronic.tb.params import TBParams
from qdlab.errors import QdlabError
from qdlab.store.files import save_figure

HBAR2_OVER_ME = units._hbar**2 / units._me / units._e * 1e20  # ħ²/m_e in eV·Å² (7.62)
POINTS = {"G": (0.0, 0.0, 0.0), "X": (0.5, 0.0, 0.0), "M": (0.5, 0.5, 0.0), "R": (0.5, 0.5, 0.5)}


def cubic_cell(params: TBParams, a_A: float | None = None) -> Atoms:
    """The cubic ABX3 reference cell of a parameter set: B at 0, X at a/2 along x, y, z, A at the centre."""
    b = params.bulk
    a = float(a_A or b["a_A"])
    A = b.get("A", "Cs")
    return Atoms([b["B"], b["X"], b["X"], b["X"], A],
                 scaled_positions=[(0, 0, 0), (0.5, 0, 0), (0, 0.5, 0), (0, 0, 0.5), (0.5, 0.5, 0.5)],
                 cell=np.eye(3) * a, pbc=True)


@dataclass(frozen=True)
class BulkBands:
    """Band structure of a periodic cell (eV) with the gap and effective masses at R (m_e)."""

    params: str
    x: np.ndarray                  # (n_k,) path coordinate, 1/Å
    energies_eV: np.ndarray        # (n_k, n_bands)
    ticks: tuple[tuple[str, float], ...]
    n_occupied: int
    vbm_R_eV: float
    cbm_R_eV: float
    gap_R_eV: float
    gap_path_eV: float
    masses_me: dict = field(default_factory=dict)   # {"electron": {"100": m, ...}, "hole": {...}}
    soc: bool = True

    def summary(self) -> dict:
        return {"params": self.params, "soc": self.soc, "gap_R_eV": self.gap_R_eV, "vbm_R_eV": self.vbm_R_eV,
                "cbm_R_eV": self.cbm_R_eV, "gap_path_eV": self.gap_path_eV, "n_occupied": self.n_occupied,
                "effective_masses_me": self.masses_me}


def _kcart(atoms: Atoms, frac) -> np.ndarray:
    return 2 * np.pi * np.asarray(frac, float) @ atoms.cell.reciprocal()


def band_energies(sys, ks: np.ndarray, soc: bool = True) -> np.ndarray:
    """(n_k, dim) eigenvalues (eV) at Cartesian k-points (1/Å) by dense diagonalisation."""
    return np.array([np.linalg.eigvalsh(hamiltonian(sys, k, soc=soc).toarray()) for k in ks])


def gamma_edges(atoms: Atoms, params: TBParams, soc: bool = True) -> tuple[float, float]:
    """Highest occupied and lowest empty level (eV) at Γ of the periodic cell ``atoms`` (dense).

    The cell's own Γ: in an n×n×n supercell of the cubic cell (n even) the R-point band edges fold
    onto Γ, so a 2×2×2 supercell's Γ gap is the bulk gap at R; displacements inside the supercell
    (its Γ phonons: the primitive cell's Γ, X, M and R phonons) change it as in a frozen-phonon DFT run.
    """
    if not np.all(atoms.pbc):
        raise QdlabError("gamma_edges needs a 3D-periodic cell (pbc True)")
    sys = prepare(atoms, params)
    e = band_energies(sys, [np.zeros(3)], soc)[0]
    n = sys.n_electrons
    return float(e[n - 1]), float(e[n])


def effective_masses(sys, k0: np.ndarray, band: int, dk: float = 0.01, soc: bool = True) -> dict[str, float]:
    """m*/m_e = ħ²/(m_e ∂²E/∂k²) of ``band`` at ``k0`` along [100], [110], [111] (central differences)."""
    out = {}
    for name, v in {"100": (1, 0, 0), "110": (1, 1, 0), "111": (1, 1, 1)}.items():
        u = np.asarray(v, float) / np.linalg.norm(v)
        e = band_energies(sys, [k0 - dk * u, k0, k0 + dk * u], soc)[:, band]
        curv = (e[0] - 2 * e[1] + e[2]) / dk**2
        out[name] = float(HBAR2_OVER_ME / curv)
    return out


def bulk_bands(params: TBParams, atoms: Atoms | None = None, path: str = "GXMR", n_per_segment: int = 40,
               soc: bool = True) -> BulkBands:
    """Bands along ``path`` (points G, X, M, R in reciprocal-lattice fractions), gap and masses at R."""
    atoms = cubic_cell(params) if atoms is None else atoms
    sys = prepare(atoms, params)
    fr = [np.array(POINTS[p]) for p in path]
    ks, x, ticks, x0 = [], [], [(path[0], 0.0)], 0.0
    for a, b in zip(fr[:-1], fr[1:]):
        seg = np.linspace(0, 1, n_per_segment, endpoint=False)[:, None] * (b - a) + a
        kc = _kcart(atoms, seg)
        length = np.linalg.norm(_kcart(atoms, b) - _kcart(atoms, a))
        ks.append(kc)
        x.append(x0 + np.linspace(0, length, n_per_segment, endpoint=False))
        x0 += length
        ticks.append((path[len(ticks)], x0))
    ks.append(_kcart(atoms, fr[-1])[None])
    x.append(np.array([x0]))
    ks, x = np.vstack(ks), np.concatenate(x)
    E = band_energies(sys, ks, soc)
    n_occ = sys.n_electrons  # occupied spin-orbitals (spin is kept without SOC too)
    kR = _kcart(atoms, POINTS["R"])
    ER = band_energies(sys, [kR], soc)[0]
    vbm, cbm = float(ER[n_occ - 1]), float(ER[n_occ])
    masses = {"electron": effective_masses(sys, kR, n_occ, soc=soc),
              "hole": {k: -v for k, v in effective_masses(sys, kR, n_occ - 1, soc=soc).items()}}
    return BulkBands(params.name, x, E, tuple(ticks), n_occ, vbm, cbm, cbm - vbm,
                     float(E[:, n_occ].min() - E[:, n_occ - 1].max()), masses, soc)


def plot_bands(bands: BulkBands, path, window_eV: float = 4.0) -> None:
    """Band structure PNG around the gap (±window about mid-gap)."""
    import matplotlib.pyplot as plt

    mid = 0.5 * (bands.vbm_R_eV + bands.cbm_R_eV)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot(bands.x, bands.energies_eV - mid, color="k", lw=0.8)
    for name, xt in bands.ticks:
        ax.axvline(xt, color="0.7", lw=0.5)
    ax.set_xticks([t[1] for t in bands.ticks], [("Γ" if t[0] == "G" else t[0]) for t in bands.ticks])
    ax.set_ylim(-window_eV, window_eV)
    ax.set_xlim(bands.x[0], bands.x[-1])
    ax.set_ylabel("E − E_mid (eV)")
    ax.set_title(f"{bands.params}: E_g(R) = {bands.gap_R_eV:.3f} eV", fontsize=9)
    save_figure(fig, path, dpi=150)
