"""Save/load phonon results: NPZ + JSON + CSV, and phonopy-readable force constants and modes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from ase import Atoms

from qdlab.analysis.dos import DOS, Peak, load_dos_csv, save_dos_csv  # noqa: F401  (re-exported)
from qdlab.store.files import atomic_path, write_text
from qdlab.workflows.phonons import PhononResult


def save_phonons(result: PhononResult, path: str | os.PathLike) -> Path:
    """All arrays of a :class:`PhononResult` in one NPZ (atomic; :meth:`PhononResult.save`)."""
    return result.save(path)


def dos_and_peaks(atoms: Atoms, frequencies_cm1: np.ndarray, modes: np.ndarray, *, sigma_cm1: float = 3.0,
                  regions: dict | None = None) -> tuple[DOS, dict[str, Peak], dict[str, str]]:
    """The one place phonon DOS and peaks are computed: total + partial DOS (by role, or by element
    without labels) smeared by ``sigma_cm1``, and the M1/M2/M3 peaks (``regions``: default CsPbBr3's).
    Returns (dos, peaks, missing): a region without a peak is recorded in ``missing``, not fatal."""
    from qdlab.analysis.dos import label_selections, mode_peaks, phonon_dos

    sel = label_selections(atoms, "auto")  # roles from labels or perception, else elements
    dos = phonon_dos(frequencies_cm1, modes, sel, sigma_cm1=sigma_cm1)
    missing: dict[str, str] = {}
    peaks = mode_peaks(dos, regions, missing=missing)
    return dos, peaks, missing


def load_peaks(folder: str | os.PathLike) -> dict[str, Peak]:
    """Peaks of a phonon output folder (``peaks.json``), empty if none were found."""
    path = Path(folder) / "peaks.json"
    if not path.is_file():
        return {}
    raw = json.loads(path.read_text())
    return {k: Peak(**{f: (tuple(v) if isinstance(v, list) else v) for f, v in d.items()}) for k, d in raw.items()}


def save_frequencies_csv(result: PhononResult, path: str | os.PathLike) -> Path:
    """All 3N frequencies (cm⁻¹, ascending, imaginary negative) in one column ``frequency_cm1``;
    the rigid translations/rotations removed by the Eckart projection are written as 0."""
    freqs = np.sort(np.concatenate([result.frequencies_cm1, np.zeros(result.n_rigid)]))
    return write_text(path, "frequency_cm1\n" + "\n".join(f"{f:.6f}" for f in freqs) + "\n")


def save_peaks(peaks: dict[str, Peak], json_path: str | os.PathLike, csv_path: str | os.PathLike | None = None) -> None:
    """Peak table as JSON (and CSV)."""
    write_text(json_path, json.dumps({k: p.to_dict() for k, p in peaks.items()}, indent=2) + "\n")
    if csv_path is not None:
        rows = ["name,centre_cm1,maximum_cm1,window_lo_cm1,window_hi_cm1,area"]
        rows += [f"{p.name},{p.centre_cm1:.4f},{p.maximum_cm1:.4f},{p.window_cm1[0]:.4f},{p.window_cm1[1]:.4f},{p.area:.6g}"
                 for p in peaks.values()]
        write_text(csv_path, "\n".join(rows) + "\n")


def to_phonopy(atoms: Atoms, force_constants: np.ndarray):
    """A phonopy object (1×1×1 cell = the cluster in its vacuum box) holding our force constants."""
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    cell = atoms.cell.array if atoms.cell.rank == 3 else np.diag(np.ptp(atoms.positions, 0) + 30.0)
    unit = PhonopyAtoms(symbols=atoms.get_chemical_symbols(), cell=cell, positions=atoms.positions,
                        masses=atoms.get_masses())
    ph = Phonopy(unit, supercell_matrix=np.eye(3, dtype=int), primitive_matrix="P")  # the cluster cell itself
    n = len(atoms)
    ph.force_constants = force_constants.reshape(n, 3, n, 3).transpose(0, 2, 1, 3)
    return ph


def export_phonopy(atoms: Atoms, result: PhononResult, folder: str | os.PathLike) -> dict[str, Path]:
    """Write ``phonopy_params.yaml`` (structure + force constants; ``phonopy.load`` reads it),
    ``FORCE_CONSTANTS`` and ``qpoints.yaml`` (Γ frequencies and eigenvectors from phonopy)."""
    from phonopy.file_IO import write_FORCE_CONSTANTS

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    ph = to_phonopy(atoms, result.force_constants_eV_A2)
    files = {}
    with atomic_path(out / "phonopy_params.yaml") as tmp:
        ph.save(str(tmp), settings={"force_constants": True})
    files["params"] = out / "phonopy_params.yaml"
    with atomic_path(out / "FORCE_CONSTANTS") as tmp:
        write_FORCE_CONSTANTS(ph.force_constants, filename=str(tmp))
    files["force_constants"] = out / "FORCE_CONSTANTS"
    ph.run_qpoints([[0, 0, 0]], with_eigenvectors=True)
    with atomic_path(out / "qpoints.yaml") as tmp:
        ph.qpoints.write_yaml(filename=str(tmp))
    files["qpoints"] = out / "qpoints.yaml"
    return files


def write_phonon_outputs(atoms: Atoms, result: PhononResult, folder: str | os.PathLike, *, sigma_cm1: float = 3.0,
                         regions: dict | None = None, title: str = "", phonopy_export: bool = True) -> dict:
    """DOS (total + partial by role, or by element without labels), peaks, plots and exports.

    Writes phonons.npz, frequencies.csv, dos.csv, pdos.csv, peaks.json/.csv, dos.png, phonopy/ and summary.json into
    ``folder``; returns the summary (peak centres in cm⁻¹, counts of imaginary modes, timings).
    """
    from qdlab.report.plots import plot_dos

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    dos, peaks, missing = dos_and_peaks(atoms, result.frequencies_cm1, result.modes, sigma_cm1=sigma_cm1,
                                        regions=regions)
    failed = {"missing_peaks": missing} if missing else {}
    save_phonons(result, out / "phonons.npz")
    save_dos_csv(dos, out / "dos.csv", out / "pdos.csv")
    save_frequencies_csv(result, out / "frequencies.csv")
    save_peaks(peaks, out / "peaks.json", out / "peaks.csv")
    plot_dos(dos, peaks, out / "dos.png", title=title or atoms.get_chemical_formula(mode="hill"))
    if phonopy_export:
        export_phonopy(atoms, result, out / "phonopy")
    summary = {"formula": atoms.get_chemical_formula(mode="hill"), "n_atoms": len(atoms)} | result.to_dict() | {
        "peaks_cm1": {k: round(p.centre_cm1, 3) for k, p in peaks.items()},
        "seconds": round(result.seconds, 3), "seconds_in_engine": round(result.seconds_in_engine, 3), **failed}
    write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary | {"dos": dos, "peaks": peaks}
