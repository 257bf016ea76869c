"""Harmonic IR intensities from Γ normal modes and Born effective charges (see :mod:`qdlab.analysis.ir`).

Plan → evaluate → assemble: :func:`born_displacements` lists the 6N displaced geometries (±δ along
x, y, z per atom), any dipole source evaluates them in one call (vectorised for fixed charges and
the learned model, one electronic-structure call each for xTB), :func:`assemble_born_charges`
turns the dipoles into Z (N, 3, 3) e. Sources with analytic ``born_charges`` skip the displacements.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms, units

from qdlab.analysis.ir import KM_MOL, IRSpectrum
from qdlab.errors import QdlabError
from qdlab.store.files import atomic_path


@dataclass(frozen=True)
class HarmonicIR:
    """Per mode: ``frequencies_cm1`` (M,), ``intensities_D2_A2_amu`` (M,) |dμ/dQ|² in (D/Å)²/amu,
    ``dmu_dq`` (M, 3) e/√amu; ``born_charges`` (N, 3, 3) e (Z_i,ab = ∂μ_b/∂r_ia)."""

    frequencies_cm1: np.ndarray
    intensities_D2_A2_amu: np.ndarray
    dmu_dq: np.ndarray = field(repr=False)
    born_charges: np.ndarray = field(repr=False)
    source: str = ""

    @property
    def intensities_km_mol(self) -> np.ndarray:
        return self.intensities_D2_A2_amu * KM_MOL

    def spectrum(self, fmin_cm1: float = 0.0, fmax_cm1: float = 4000.0, step_cm1: float = 1.0,
                 fwhm_cm1: float = 10.0, shape: str = "lorentzian") -> IRSpectrum:
        """Broadened spectrum (normalised line shapes, so a band's area is its intensity in (D/Å)²/amu)."""
        if fwhm_cm1 <= 0 or step_cm1 <= 0 or fmax_cm1 <= fmin_cm1:
            raise QdlabError("broadening needs fwhm > 0, step > 0 and fmax > fmin (cm⁻¹)")
        f = np.arange(fmin_cm1, fmax_cm1 + step_cm1 / 2, step_cm1)
        d = f[:, None] - self.frequencies_cm1[None, :]
        if shape == "lorentzian":
            g = (fwhm_cm1 / 2 / np.pi) / (d ** 2 + (fwhm_cm1 / 2) ** 2)
        elif shape == "gaussian":
            s = fwhm_cm1 / (2 * np.sqrt(2 * np.log(2)))
            g = np.exp(-0.5 * (d / s) ** 2) / (s * np.sqrt(2 * np.pi))
        else:
            raise QdlabError(f"line shape must be lorentzian or gaussian, not {shape!r}")
        y = g @ self.intensities_D2_A2_amu
        return IRSpectrum(frequencies_cm1=f, intensity=y, classical=y, temperature_K=0.0, resolution_cm1=fwhm_cm1,
                          method="harmonic", source=self.source, window=shape)

    def modes_table(self, min_cm1: float = 1.0) -> list[dict]:
        """[{frequency_cm1, intensity_D2_A2_amu, intensity_km_mol}] for modes above ``min_cm1``."""
        return [{"frequency_cm1": float(f), "intensity_D2_A2_amu": float(i), "intensity_km_mol": float(i * KM_MOL)}
                for f, i in zip(self.frequencies_cm1, self.intensities_D2_A2_amu) if f > min_cm1]


def born_displacements(atoms: Atoms, delta_A: float = 0.01) -> np.ndarray:
    """Plan: positions (6N, N, 3) displaced by −δ, +δ along x, y, z for each atom (order: atom, axis, sign)."""
    n = len(atoms)
    x = np.repeat(atoms.positions[None], 6 * n, axis=0).reshape(n, 3, 2, n, 3)
    for i in range(n):
        for a in range(3):
            x[i, a, 0, i, a] -= delta_A
            x[i, a, 1, i, a] += delta_A
    return x.reshape(6 * n, n, 3)


def assemble_born_charges(dipoles: np.ndarray, n_atoms: int, delta_A: float = 0.01) -> np.ndarray:
    """Assemble: dipoles (6N, 3) e·Å of :func:`born_displacements` → Z (N, 3, 3), central differences."""
    d = np.asarray(dipoles, float).reshape(n_atoms, 3, 2, 3)
    return (d[:, :, 1] - d[:, :, 0]) / (2 * delta_A)


def born_charges(atoms: Atoms, source, delta_A: float = 0.01, *, checkpoint: str | os.PathLike | None = None,
                 progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Z (N, 3, 3) e of ``atoms`` with a dipole source: analytic when it offers ``born_charges``.

    With ``checkpoint`` (an .npz path) the six displaced dipoles of each atom are saved after that
    atom (atomic rewrite) and a rerun with the same structure, δ and source resumes from them
    (worth it for electronic-structure sources: 6N calls).
    """
    if hasattr(source, "born_charges"):
        return np.asarray(source.born_charges(atoms), float)
    x = born_displacements(atoms, delta_A)
    n = len(atoms)
    if checkpoint is None:
        return assemble_born_charges(source.dipoles(atoms, x), n, delta_A)
    key = hashlib.sha256(np.ascontiguousarray(atoms.positions).tobytes() + atoms.numbers.tobytes()
                         + f"{delta_A:.6g}|{getattr(source, 'name', '')}".encode()).hexdigest()
    path = Path(checkpoint)
    d = np.full((6 * n, 3), np.nan)
    if path.exists():
        try:
            with np.load(path) as z:
                stored_key, stored = str(z["key"]), z["dipoles"]
        except Exception:  # not an npz, truncated by something other than our atomic rewrite, wrong keys
            raise QdlabError(f"Born-charge checkpoint {path} is damaged; remove it to start the charges over") from None
        if stored_key != key or stored.shape != d.shape:
            raise QdlabError(f"{path} is a Born-charge checkpoint of another structure or source; remove it")
        d = stored
    for i in range(n):
        if np.isfinite(d[6 * i:6 * i + 6]).all():
            continue
        d[6 * i:6 * i + 6] = source.dipoles(atoms, x[6 * i:6 * i + 6])
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, key=key, dipoles=d)
        if progress:
            progress(i + 1, n)
    return assemble_born_charges(d, n, delta_A)


def harmonic_ir(atoms: Atoms, frequencies_cm1: np.ndarray, modes: np.ndarray, source=None, *,
                born: np.ndarray | None = None, delta_A: float = 0.01,
                checkpoint: str | os.PathLike | None = None,
                progress: Callable[[int, int], None] | None = None) -> HarmonicIR:
    """Harmonic IR intensities of mass-weighted normal modes (M, N, 3) (e.g. a ``PhononResult``'s
    ``frequencies_cm1``/``modes`` of the same ``atoms``) with Born charges from ``source`` or ``born``
    (``checkpoint``/``progress``: see :func:`born_charges`)."""
    modes = np.asarray(modes, float)
    n = len(atoms)
    if modes.ndim != 3 or modes.shape[1:] != (n, 3) or modes.shape[0] != len(frequencies_cm1):
        raise QdlabError(f"modes must have shape (M, {n}, 3) for this structure, got {modes.shape}")
    if born is None:
        if source is None:
            raise QdlabError("harmonic IR needs a dipole source or Born charges")
        born = born_charges(atoms, source, delta_A, checkpoint=checkpoint, progress=progress)
    z = np.asarray(born, float)
    u = modes / np.sqrt(atoms.get_masses())[None, :, None]          # Cartesian displacement per unit Q
    dmu = np.einsum("kia,iab->kb", u, z)                              # e·Å / (Å·√amu)
    inten = (dmu ** 2).sum(1) / units.Debye ** 2                     # (D/Å)²/amu
    return HarmonicIR(np.asarray(frequencies_cm1, float), inten, dmu, z, getattr(source, "name", "born"))
