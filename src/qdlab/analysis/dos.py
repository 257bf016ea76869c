"""Phonon density of states, partial DOS and mode-peak analysis (seed 000, SCIENCE.md §4).

g(ν) = Σ_k G_σ(ν − ν_k) with a normalised Gaussian (σ = 3 cm⁻¹ default), so ∫g dν = number of
modes. The partial DOS of an atom set A weights mode k by w_kA = Σ_{i∈A} |e_k,i|² (mass-weighted
eigenvectors normalised over all atoms), so partial DOS of a partition add up to the total.
Peak position = intensity-weighted centre ∫ν g dν / ∫g dν over a window bounded by the nearest
curvature sign changes (g'' = 0) around the maximum inside a named region; M1 uses a fixed
±10 cm⁻¹ window around its maximum.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from qdlab.errors import QdlabError

#: Named mode regions (cm⁻¹) for CsPbBr3: where each peak's maximum is searched, and the fixed
#: half-window (None: bounded by curvature sign changes). M1 PbBr6 rotation (lowest band), M2 ~100,
#: M3 ~129 (Pb–Br–Pb stretch) per seed 000. Pass your own for other materials or engines.
CSPBBR3_REGIONS: dict[str, tuple[float, float, float | None]] = {
    "M1": (15.0, 60.0, 10.0),
    "M2": (85.0, 114.0, None),
    "M3": (114.0, 150.0, None),
}


@dataclass(frozen=True)
class DOS:
    """Total and partial phonon DOS on a wavenumber grid (cm⁻¹); DOS in modes per cm⁻¹."""

    grid_cm1: np.ndarray
    total: np.ndarray
    partial: dict[str, np.ndarray] = field(default_factory=dict)
    sigma_cm1: float = 3.0


def gaussian_dos(freqs_cm1: np.ndarray, grid_cm1: np.ndarray, sigma_cm1: float = 3.0,
                 weights: np.ndarray | None = None) -> np.ndarray:
    """Σ_k w_k G_σ(ν − ν_k) on the grid (vectorised; ∫ = Σ w_k when the grid covers the modes)."""
    if sigma_cm1 <= 0:
        raise QdlabError("σ must be > 0 cm⁻¹")
    f = np.asarray(freqs_cm1, float)
    w = np.ones_like(f) if weights is None else np.asarray(weights, float)
    x = (np.asarray(grid_cm1)[:, None] - f[None, :]) / sigma_cm1
    return (np.exp(-0.5 * x * x) @ w) / (sigma_cm1 * np.sqrt(2 * np.pi))


def mode_weights(modes: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """w_kA = Σ_{i∈A} |e_k,i|² for every mode k (modes shape (M, N, 3))."""
    return (np.abs(modes[:, np.asarray(mask, bool), :]) ** 2).sum(axis=(1, 2))


def phonon_dos(freqs_cm1: np.ndarray, modes: np.ndarray | None = None, selections: dict[str, np.ndarray] | None = None,
               sigma_cm1: float = 3.0, grid_cm1: np.ndarray | None = None, step_cm1: float = 0.5) -> DOS:
    """Total DOS and partial DOS for named atom masks (e.g. {"Pb": sym == "Pb", ...})."""
    f = np.asarray(freqs_cm1, float)
    if grid_cm1 is None:
        lo = min(0.0, f.min() - 5 * sigma_cm1)
        grid_cm1 = np.arange(lo, f.max() + 5 * sigma_cm1 + step_cm1, step_cm1)
    total = gaussian_dos(f, grid_cm1, sigma_cm1)
    partial = {}
    if selections:
        if modes is None:
            raise QdlabError("partial DOS needs the mode eigenvectors")
        for name, mask in selections.items():
            partial[name] = gaussian_dos(f, grid_cm1, sigma_cm1, mode_weights(modes, mask))
    return DOS(grid_cm1=np.asarray(grid_cm1), total=total, partial=partial, sigma_cm1=sigma_cm1)


@dataclass(frozen=True)
class Peak:
    """An intensity-weighted peak centre (cm⁻¹) with its window and maximum."""

    name: str
    centre_cm1: float
    maximum_cm1: float
    window_cm1: tuple[float, float]
    area: float

    def to_dict(self) -> dict:
        return asdict(self)


def find_peak(grid: np.ndarray, g: np.ndarray, lo: float, hi: float, half_window: float | None = None,
              name: str = "peak") -> Peak:
    """Peak in [lo, hi]: the highest local maximum of g there (not a value on the flank of a band
    outside); window = ±half_window around it or bounded by the curvature sign changes."""
    grid = np.asarray(grid, float)
    g = np.asarray(g, float)
    inside = np.flatnonzero((grid >= lo) & (grid <= hi))
    if len(inside) < 3 or g[inside].max() <= 0:
        raise QdlabError(f"no {name} peak in {lo:g}–{hi:g} cm⁻¹")
    # the highest local maximum inside the region (the region's largest value may sit on its edge,
    # on the flank of a band outside it: that is not this region's peak)
    padded = np.concatenate(([-np.inf], g, [-np.inf]))
    is_max = (g >= padded[:-2]) & (g >= padded[2:])
    cand = inside[is_max[inside]]
    if len(cand) == 0:
        m = inside[np.argmax(g[inside])]
        raise QdlabError(f"no {name} peak in {lo:g}–{hi:g} cm⁻¹: its largest DOS value, at {grid[m]:g} cm⁻¹, "
                         f"lies on the flank of a band outside the region")
    m = cand[np.argmax(g[cand])]
    if half_window is not None:
        a = np.searchsorted(grid, grid[m] - half_window)
        b = np.searchsorted(grid, grid[m] + half_window, side="right") - 1
    else:
        curv = np.gradient(np.gradient(g, grid), grid)
        a = m
        while a > 0 and curv[a - 1] < 0:
            a -= 1
        b = m
        while b < len(grid) - 1 and curv[b + 1] < 0:
            b += 1
    a, b = max(a, 0), min(b, len(grid) - 1)
    sl = slice(a, b + 1)
    area = float(np.trapezoid(g[sl], grid[sl]))
    centre = float(np.trapezoid(grid[sl] * g[sl], grid[sl]) / area) if area > 0 else float(grid[m])
    return Peak(name=name, centre_cm1=centre, maximum_cm1=float(grid[m]),
                window_cm1=(float(grid[a]), float(grid[b])), area=area)


def mode_peaks(dos: DOS, regions: dict[str, tuple[float, float, float | None]] | None = None,
               curve: str = "total", missing: dict[str, str] | None = None) -> dict[str, Peak]:
    """Peaks of named regions (default M1/M2/M3 of CsPbBr3) on the total or a partial DOS.

    A region without a peak raises :class:`QdlabError`, or, with a ``missing`` dict, is left out
    and its reason stored there under the region's name."""
    regions = regions or CSPBBR3_REGIONS
    g = dos.total if curve == "total" else dos.partial[curve]
    out = {}
    for name, (lo, hi, hw) in regions.items():
        try:
            out[name] = find_peak(dos.grid_cm1, g, lo, hi, hw, name)
        except QdlabError as exc:
            if missing is None:
                raise
            missing[name] = str(exc)
    return out


def label_selections(atoms, by: str = "role") -> dict[str, np.ndarray]:
    """Atom masks for partial DOS from the builder's labels or elements.

    ``by="role"``: "Pb/Br" style core B+X, "Cs" style A, "ligand" (when present) — a partition;
    ``by="element"``: one mask per element — also a partition; ``by="auto"``: by role where the
    structure has (or perception finds, :mod:`qdlab.build.perceive`) a nanocrystal core, else by element.
    """
    sym = np.array(atoms.get_chemical_symbols())
    if by == "element":
        return {s: sym == s for s in dict.fromkeys(sym)}
    if by not in ("role", "auto"):
        raise QdlabError(f"partial DOS selections by 'role', 'element' or 'auto', not {by!r}")
    if "role" in atoms.arrays:
        role = atoms.arrays["role"]
    else:  # a structure made elsewhere: roles perceived from elements and positions
        from qdlab.build.perceive import perceive

        labelled, seen = perceive(atoms)
        if seen.lattice_A is None:
            if by == "auto":
                return {s: sym == s for s in dict.fromkeys(sym)}
            raise QdlabError("partial DOS by role: no nanocrystal core recognised in this structure; use by='element'")
        role = labelled.arrays["role"]
    out: dict[str, np.ndarray] = {}
    bx = (role == "B") | (role == "X")
    if bx.any():
        out["/".join(dict.fromkeys(sym[bx]))] = bx
    if (role == "A").any():
        out["/".join(dict.fromkeys(sym[role == "A"]))] = role == "A"
    if (role == "ligand").any():
        out["ligand"] = role == "ligand"
    return out


def save_dos_csv(dos: DOS, path: str | os.PathLike, pdos_path: str | os.PathLike | None = None) -> Path:
    """Total DOS (``wavenumber_cm1,total``) to ``path`` and partial DOS columns to ``pdos_path``
    (modes per cm⁻¹); without ``pdos_path`` the partials go into the same file."""
    def table(cols: dict) -> str:
        body = np.column_stack(list(cols.values()))
        return "\n".join([",".join(cols)] + [",".join(f"{v:.8g}" for v in row) for row in body]) + "\n"

    from qdlab.store.files import write_text

    grid = {"wavenumber_cm1": dos.grid_cm1}
    if pdos_path is None:
        return write_text(path, table(grid | {"total": dos.total, **dos.partial}))
    write_text(pdos_path, table(grid | dict(dos.partial)))
    return write_text(path, table(grid | {"total": dos.total}))


def load_dos_csv(folder: str | os.PathLike) -> DOS:
    """Read ``dos.csv`` (+ ``pdos.csv`` if present) of a phonon output folder."""
    folder = Path(folder)
    if not (folder / "dos.csv").is_file():
        raise QdlabError(f"{folder} has no dos.csv (not a `qdlab phonons` output folder)")
    data = np.genfromtxt(folder / "dos.csv", delimiter=",", names=True)
    partial = {}
    if (folder / "pdos.csv").is_file():
        p = np.genfromtxt(folder / "pdos.csv", delimiter=",", names=True)
        with open(folder / "pdos.csv") as fh:
            names = fh.readline().strip().split(",")[1:]
        partial = {n: np.asarray(p[p.dtype.names[i + 1]]) for i, n in enumerate(names)}
    return DOS(grid_cm1=np.asarray(data["wavenumber_cm1"]), total=np.asarray(data["total"]), partial=partial)
