"""IR and thermal steps on files: one settings model per step, shared by the CLI, the Python API and a
campaign (steps ``ir`` and ``thermal``). Each step reads its input (an MD trajectory, or a
``qdlab phonons`` output folder with ``phonons.npz`` and the relaxed structure), computes with
:mod:`qdlab.analysis.ir` / :mod:`qdlab.analysis.ir_harmonic` / :mod:`qdlab.analysis.thermal`, and
writes CSV, PNG and a JSON summary atomically into an output folder; the returned dict is that
summary. Units: cm⁻¹, K, eV, Å².
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from qdlab.errors import QdlabError
from qdlab.store.files import atomic_path, write_text


@dataclass(frozen=True)
class IRMDSettings:
    """``dipoles``: charges | seed001 | xtb | a model file; ``resolution_cm1`` (None: half the run);
    ``temperature_K`` (None: kinetic); ``derivative`` velocities | positions | auto; equilibration
    ``skip_ps``; ``fmin_cm1``/``fmax_cm1`` the range written and searched for peaks."""

    dipoles: str = "charges"
    resolution_cm1: float | None = None
    temperature_K: float | None = None
    window: str = "hann"
    derivative: str = "velocities"
    skip_ps: float | None = None
    stride: int = 1
    fmin_cm1: float = 0.0
    fmax_cm1: float = 4000.0
    prominence: float = 0.02


@dataclass(frozen=True)
class HarmonicIRSettings:
    """``dipoles`` source, Born-charge displacement ``delta_A``, broadening ``fwhm_cm1`` and ``shape``."""

    dipoles: str = "seed001"
    delta_A: float = 0.01
    fwhm_cm1: float = 10.0
    shape: str = "lorentzian"
    fmin_cm1: float = 0.0
    fmax_cm1: float = 4000.0


@dataclass(frozen=True)
class ThermalSettings:
    """Temperature grid (K), mode cutoff (cm⁻¹; rigid/imaginary modes excluded), ⟨u²⟩ occupation."""

    tmin_K: float = 0.0
    tmax_K: float = 1000.0
    tstep_K: float = 10.0
    cutoff_cm1: float = 1.0
    classical: bool = False

    def temperatures(self) -> np.ndarray:
        if self.tstep_K <= 0 or self.tmax_K < self.tmin_K or self.tmin_K < 0:
            raise QdlabError("temperatures need 0 ≤ tmin ≤ tmax and tstep > 0 (K)")
        return np.arange(self.tmin_K, self.tmax_K + self.tstep_K / 2, self.tstep_K)


def _csv(path: Path, header: list[str], cols: list[np.ndarray]) -> None:
    rows = np.column_stack(cols)
    text = ",".join(header) + "\n" + "\n".join(",".join(f"{v:.8g}" for v in r) for r in rows) + "\n"
    write_text(path, text)


def load_phonon_folder(folder: str | os.PathLike, structure: str | os.PathLike | None = None
                       ) -> tuple[Atoms, np.ndarray, np.ndarray]:
    """(atoms, frequencies cm⁻¹, mass-weighted modes) from a ``qdlab phonons`` output folder.

    The structure is ``structure`` or the folder's ``relaxed.extxyz``; its atoms must match the modes.
    """
    from ase.io import read

    from qdlab.workflows.phonons import PhononResult

    d = Path(folder)
    npz = d / "phonons.npz" if d.is_dir() else d
    if not npz.exists():
        raise QdlabError(f"{d} holds no phonons.npz (run `qdlab phonons STRUCTURE -o {d}` first)")
    result = PhononResult.load(npz)
    st = Path(structure) if structure else npz.parent / "relaxed.extxyz"
    if not st.exists():
        raise QdlabError(f"no structure for {npz}: pass --structure (the relaxed model the phonons belong to)")
    atoms = read(st)
    modes = result.modes
    if modes.shape[1] != len(atoms) or not np.allclose(result.masses_amu, atoms.get_masses()):
        raise QdlabError(f"{st} ({len(atoms)} atoms) is not the structure of {npz} ({modes.shape[1]} atoms)")
    return atoms, result.frequencies_cm1, modes


def run_ir_md(trajectory: str | os.PathLike, out: str | os.PathLike, settings: IRMDSettings | None = None,
              progress: Callable[[int, int], None] | None = None) -> dict:
    """Campaign step ``ir`` (MD path): spectrum, peaks, carboxylate bands and binding geometry.

    Dipoles of per-frame sources (xTB, ``module:factory`` calculators) are checkpointed in
    ``out/dipoles.ckpt`` after every frame; rerunning continues where a killed run stopped.
    """
    from qdlab.analysis.ir import ir_md
    from qdlab.analysis.trajectory import read_frames
    from qdlab.engines.dipoles import CheckpointedDipole, get_dipole_source

    s = settings or IRMDSettings()
    frames = read_frames(trajectory)
    atoms0 = frames[0]
    o = Path(out)
    source = get_dipole_source(s.dipoles, atoms0)
    if getattr(source, "per_frame", False):  # xTB & co.: dipoles kept frame by frame, a rerun resumes
        source = CheckpointedDipole(source, o / "dipoles.ckpt", progress=progress)
    spec = ir_md(frames, source, temperature_K=s.temperature_K, resolution_cm1=s.resolution_cm1, window=s.window,
                 derivative=s.derivative, skip_ps=s.skip_ps, stride=s.stride, atoms=atoms0)
    return _write_ir_md(o, s, spec, source, frames)


def _write_ir_md(o: Path, s: IRMDSettings, spec, source, frames: list[Atoms]) -> dict:
    """CSV, plots and the JSON summary of an MD spectrum (the returned dict)."""
    from qdlab.analysis.ir_bands import carboxylate_bands
    from qdlab.report.ir_plots import plot_ir

    atoms0 = frames[0]
    m = (spec.frequencies_cm1 >= s.fmin_cm1) & (spec.frequencies_cm1 <= s.fmax_cm1)
    _csv(o / "ir_md.csv", ["wavenumber_cm1", "intensity", "classical"],
         [spec.frequencies_cm1[m], spec.intensity[m], spec.classical[m]])
    plot_ir({f"MD ({source.name})": spec}, o / "ir_md.png", fmin=s.fmin_cm1, fmax=s.fmax_cm1,
            title=f"{atoms0.get_chemical_formula()} IR from MD, resolution {spec.resolution_cm1:.1f} cm⁻¹")
    plot_ir({f"MD ({source.name})": spec}, o / "ir_md_carboxylate.png", fmin=1200.0, fmax=1700.0,
            title="carboxylate region, seed 001 ranges shaded")
    summary = {"settings": asdict(s)} | spec.to_dict(prominence=s.prominence, fmin_cm1=max(s.fmin_cm1, 100.0),
                                                     fmax_cm1=s.fmax_cm1)
    summary["bands"] = carboxylate_bands(spec)
    summary["binding_geometry"] = _binding(frames, s)
    summary["files"] = [str(o / n) for n in ("ir_md.csv", "ir_md.png", "ir_md_carboxylate.png", "ir_md.json")]
    if hasattr(source, "n_reused"):
        summary["dipole_frames"] = {"computed": source.n_computed, "reused": source.n_reused,
                                    "checkpoint": str(source.path)}
        summary["files"].append(str(source.path))
    write_text(o / "ir_md.json", json.dumps(summary, indent=2, default=float) + "\n")
    return summary


def _binding(frames: list[Atoms], s: IRMDSettings) -> dict | None:
    """Binding-geometry classes of ``qdlab analyze coordination`` for the same frames (None without Pb/COO)."""
    from qdlab.analysis.coordination import binding_geometry

    if "Pb" not in frames[0].get_chemical_symbols():
        return None
    try:
        return binding_geometry(frames, skip_ps=s.skip_ps, stride=s.stride).summary()
    except QdlabError:
        return None


def run_ir_harmonic(phonon_folder: str | os.PathLike, out: str | os.PathLike,
                    settings: HarmonicIRSettings | None = None, structure: str | os.PathLike | None = None,
                    progress: Callable[[int, int], None] | None = None) -> dict:
    """Campaign step ``ir`` (harmonic path): Born charges, intensities per mode, broadened spectrum, bands."""
    from qdlab.analysis.ir_bands import carboxylate_bands, harmonic_carboxylate_bands
    from qdlab.analysis.ir_harmonic import harmonic_ir
    from qdlab.engines.dipoles import get_dipole_source
    from qdlab.report.ir_plots import plot_ir

    s = settings or HarmonicIRSettings()
    atoms, freqs, modes = load_phonon_folder(phonon_folder, structure)
    # Born charges by finite differences are checkpointed per atom in the output folder (resumable)
    res = harmonic_ir(atoms, freqs, modes, get_dipole_source(s.dipoles, atoms), delta_A=s.delta_A,
                      checkpoint=Path(out) / "born.ckpt.npz", progress=progress)
    spec = res.spectrum(s.fmin_cm1, s.fmax_cm1, fwhm_cm1=s.fwhm_cm1, shape=s.shape)
    o = Path(out)
    _csv(o / "ir_modes.csv", ["frequency_cm1", "intensity_D2_A2_amu", "intensity_km_mol"],
         [res.frequencies_cm1, res.intensities_D2_A2_amu, res.intensities_km_mol])
    _csv(o / "ir_harmonic.csv", ["wavenumber_cm1", "intensity"], [spec.frequencies_cm1, spec.intensity])
    plot_ir({f"harmonic ({res.source})": spec}, o / "ir_harmonic.png", fmin=s.fmin_cm1, fmax=s.fmax_cm1,
            title=f"{atoms.get_chemical_formula()} harmonic IR, FWHM {s.fwhm_cm1:g} cm⁻¹")
    plot_ir({f"harmonic ({res.source})": spec}, o / "ir_harmonic_carboxylate.png", fmin=1200.0, fmax=1700.0,
            title="carboxylate region, seed 001 ranges shaded")
    strongest = np.argsort(res.intensities_D2_A2_amu)[::-1][:10]
    summary = {"settings": asdict(s), "n_modes": len(freqs), "source": res.source,
               "strongest_modes": [res.modes_table(-np.inf)[i] for i in sorted(strongest)],
               "peaks": [p.__dict__ for p in spec.peaks(fmin_cm1=100.0)],
               "bands": carboxylate_bands(spec),
               "bands_by_mode_character": harmonic_carboxylate_bands(atoms, freqs, modes),
               "files": [str(o / n) for n in ("ir_modes.csv", "ir_harmonic.csv", "ir_harmonic.png",
                                               "ir_harmonic_carboxylate.png", "ir_harmonic.json")]}
    write_text(o / "ir_harmonic.json", json.dumps(summary, indent=2, default=float) + "\n")
    return summary


def run_thermal(phonon_folder: str | os.PathLike, out: str | os.PathLike, settings: ThermalSettings | None = None,
                structure: str | os.PathLike | None = None) -> dict:
    """Campaign step ``thermal``: F, S, C_v, U, ZPE vs T and ⟨u²⟩ per atom/element vs T."""
    from qdlab.analysis.thermal import mean_square_displacement, thermal_properties
    from qdlab.report.ir_plots import plot_thermal

    s = settings or ThermalSettings()
    t = s.temperatures()
    atoms, freqs, modes = load_phonon_folder(phonon_folder, structure)
    tp = thermal_properties(freqs, t, s.cutoff_cm1)
    msd = mean_square_displacement(freqs, modes, atoms.get_masses(), t, classical=s.classical,
                                   cutoff_cm1=s.cutoff_cm1, symbols=np.array(atoms.get_chemical_symbols()))
    o = Path(out)
    by_el = msd.by_element
    _csv(o / "thermal.csv", ["T_K", "F_eV", "S_eV_K", "Cv_eV_K", "U_eV"] + [f"u2_{e}_A2" for e in by_el],
         [t, tp.free_energy_eV, tp.entropy_eV_K, tp.heat_capacity_eV_K, tp.internal_energy_eV, *by_el.values()])
    with atomic_path(o / "msd_per_atom.npz") as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, temperatures_K=t, msd_A2=msd.msd_A2, symbols=np.array(atoms.get_chemical_symbols()))
    plot_thermal(tp, msd, o / "thermal.png", title=atoms.get_chemical_formula())
    pick = [int(np.argmin(np.abs(t - x))) for x in (10.0, 300.0) if t.min() <= x <= t.max()]
    summary = {"settings": asdict(s), "zpe_eV": tp.zpe_eV, "n_modes": tp.n_modes, "n_excluded": tp.n_excluded,
               "n_imaginary": tp.n_imaginary,
               "at": {f"{t[i]:g}K": {"F_eV": float(tp.free_energy_eV[i]), "S_eV_K": float(tp.entropy_eV_K[i]),
                                     "Cv_eV_K": float(tp.heat_capacity_eV_K[i]),
                                     "u2_A2": {e: float(v[i]) for e, v in by_el.items()}} for i in pick},
               "files": [str(o / n) for n in ("thermal.csv", "msd_per_atom.npz", "thermal.png", "thermal.json")]}
    write_text(o / "thermal.json", json.dumps(summary, indent=2) + "\n")
    return summary
