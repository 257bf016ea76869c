"""Parity of a model against reference labels (seed 000, Fig. 2): energy per atom and forces.

Metrics: R² = 1 − Σ(y−ŷ)²/Σ(y−ȳ)², RMSE, MAE and the largest error, for energies per atom (eV/atom)
and for force components (eV/Å), per element for the forces, and for the low-force region
(|F_ref| ≤ ``zoom_eV_A``, where seed 000's pretrained model fails near equilibrium).

Energies of a model trained on another reference code carry a per-element offset. With
``refit_frames`` (the training frames), per-element reference energies are refitted by linear least
squares on the residuals per atom against the composition fractions — the form of CHGNet's AtomRef
and of SevenNet's per-species shift — and added to the predictions before the energy metrics;
forces are unaffected. The shifts applied are reported (``energy_shift_eV``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.data import chemical_symbols

from qdlab.errors import QdlabError
from qdlab.store.db import has_labels, labels
from qdlab.store.files import write_text


@dataclass(frozen=True)
class Metrics:
    """Agreement of predictions with references (units of the quantity)."""

    n: int
    r2: float
    rmse: float
    mae: float
    max_abs: float

    def to_dict(self) -> dict:
        return {"n": self.n, "r2": self.r2, "rmse": self.rmse, "mae": self.mae, "max_abs": self.max_abs}


def metrics(ref: np.ndarray, pred: np.ndarray) -> Metrics:
    """R², RMSE, MAE and max |error| of ``pred`` against ``ref`` (flattened)."""
    y = np.asarray(ref, float).ravel()
    p = np.asarray(pred, float).ravel()
    if y.shape != p.shape:
        raise QdlabError(f"parity: {y.size} reference values but {p.size} predictions")
    if y.size == 0:
        return Metrics(0, float("nan"), float("nan"), float("nan"), float("nan"))
    err = p - y
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((err ** 2).sum()) / ss_tot if ss_tot > 0 else float("nan")
    return Metrics(int(y.size), r2, float(np.sqrt((err ** 2).mean())), float(np.abs(err).mean()),
                   float(np.abs(err).max()))


def composition_fractions(numbers: Sequence[np.ndarray], elements: Sequence[int]) -> np.ndarray:
    """(frames × elements) matrix of atom fractions n_Z / N."""
    z = np.asarray(elements, int)
    return np.stack([(np.asarray(n)[:, None] == z[None, :]).mean(0) for n in numbers]) if len(numbers) else \
        np.zeros((0, len(z)))


def fit_element_shift(numbers: Sequence[np.ndarray], residual_eV_atom: np.ndarray) -> dict[int, float]:
    """Per-element reference energies δ_Z (eV per atom of Z) minimising
    Σ_frames (r_f − Σ_Z x_fZ δ_Z)², x_fZ = n_fZ/N_f, r_f a residual per atom (reference − model).

    Minimum-norm linear least squares: with a single composition (one equation) the shift is
    spread over the elements in proportion to their fractions, the smallest consistent choice.
    """
    if len(numbers) != len(residual_eV_atom) or not len(numbers):
        raise QdlabError("element-shift fit needs one residual per frame and at least one frame")
    elements = sorted({int(z) for n in numbers for z in np.unique(n)})
    x = composition_fractions(numbers, elements)
    delta, *_ = np.linalg.lstsq(x, np.asarray(residual_eV_atom, float), rcond=None)
    return {z: float(d) for z, d in zip(elements, delta)}


def shift_per_atom(numbers: Sequence[np.ndarray], shift: dict[int, float]) -> np.ndarray:
    """Energy shift per atom (eV/atom) of each frame for per-element shifts δ_Z."""
    if not shift:
        return np.zeros(len(numbers))
    elements = sorted(shift)
    x = composition_fractions(numbers, elements)
    return x @ np.array([shift[z] for z in elements])


def ensure_cell(atoms: Atoms, vacuum_A: float = 15.0) -> Atoms:
    """A copy of a non-periodic frame with a box (``vacuum_A`` Å of vacuum each side, atoms not
    moved) when it has no cell or one too small for its extent; graph-based potentials (CHGNet)
    need a cell even for clusters. Periodic frames are returned as copies unchanged."""
    from qdlab.build.box import has_clear_cell, vacuum_box

    if atoms.pbc.any() or has_clear_cell(atoms, 6.0):  # ≥ 6 Å (CHGNet's cutoff) between periodic images
        a = atoms.copy()
        a.calc = None
        return a
    return vacuum_box(atoms, vacuum_A, move=False)


def predict(calc: Calculator, frames: Sequence[Atoms], *, forces: bool = True,
            progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
    """Energies (eV) and forces (eV/Å) of ``frames`` from ``calc`` (cell-less clusters get a box)."""
    energies = np.empty(len(frames))
    out_forces: list[np.ndarray] = []
    for k, frame in enumerate(frames):
        a = ensure_cell(frame)
        a.calc = calc
        energies[k] = a.get_potential_energy()
        if forces:
            out_forces.append(np.array(a.get_forces(), float))
        if progress:
            progress(k + 1, len(frames))
    return energies, out_forces


@dataclass(frozen=True)
class ParityResult:
    """Parity of one model on labelled frames.

    ``energy``: per-atom energies (eV/atom) after ``energy_shift_eV`` (element → eV per atom of that
    element; empty when no refit); ``forces``: force components (eV/Å), also ``forces_by_element`` and
    ``forces_low`` (components with |F_ref| ≤ ``zoom_eV_A``). Arrays: per-frame energies per atom and
    every force component with its element symbol.
    """

    label: str
    n_frames: int
    n_atoms: int
    energy: Metrics
    forces: Metrics
    forces_by_element: dict[str, Metrics]
    forces_low: Metrics
    zoom_eV_A: float
    energy_shift_eV: dict[str, float]
    energy_ref_eV_atom: np.ndarray = field(repr=False)
    energy_pred_eV_atom: np.ndarray = field(repr=False)
    force_ref_eV_A: np.ndarray = field(repr=False)
    force_pred_eV_A: np.ndarray = field(repr=False)
    force_symbols: np.ndarray = field(repr=False)

    def to_dict(self) -> dict:
        return {"label": self.label, "n_frames": self.n_frames, "n_atoms": self.n_atoms,
                "energy_eV_atom": self.energy.to_dict(), "forces_eV_A": self.forces.to_dict(),
                "forces_by_element_eV_A": {k: v.to_dict() for k, v in self.forces_by_element.items()},
                "forces_low_eV_A": self.forces_low.to_dict() | {"zoom_eV_A": self.zoom_eV_A},
                "energy_shift_eV": self.energy_shift_eV}


def parity(frames: Sequence[Atoms], pred_energies_eV: np.ndarray, pred_forces_eV_A: Sequence[np.ndarray], *,
           label: str = "model", energy_shift: dict[int, float] | None = None, zoom_eV_A: float = 0.25) -> ParityResult:
    """Parity of predictions (total energies eV, forces eV/Å per frame) against the labels of ``frames``."""
    if any(not has_labels(a) for a in frames):
        raise QdlabError("parity needs frames with reference energy and forces")
    if len(pred_energies_eV) != len(frames) or len(pred_forces_eV_A) != len(frames):
        raise QdlabError("parity: one predicted energy and force array per frame")
    n_at = np.array([len(a) for a in frames])
    numbers = [a.numbers for a in frames]
    ref = [labels(a) for a in frames]
    e_ref = np.array([e for e, _ in ref]) / n_at
    shift = energy_shift or {}
    e_pred = np.asarray(pred_energies_eV, float) / n_at + shift_per_atom(numbers, shift)
    f_ref = np.concatenate([f for _, f in ref])
    f_pred = np.concatenate([np.asarray(f, float) for f in pred_forces_eV_A])
    if f_ref.shape != f_pred.shape:
        raise QdlabError("parity: predicted forces do not match the frames' atoms")
    symbols = np.array(chemical_symbols)[np.concatenate(numbers)]
    return parity_from_arrays(e_ref, e_pred, f_ref, f_pred, label=label, zoom_eV_A=zoom_eV_A, symbols=symbols,
                              n_atoms=int(n_at.sum()), energy_shift_eV={chemical_symbols[z]: v for z, v in shift.items()})


def parity_from_arrays(energy_ref_eV_atom: np.ndarray, energy_pred_eV_atom: np.ndarray, force_ref_eV_A: np.ndarray,
                       force_pred_eV_A: np.ndarray, *, label: str = "model", zoom_eV_A: float = 0.25,
                       symbols: np.ndarray | None = None, n_atoms: int | None = None,
                       energy_shift_eV: dict[str, float] | None = None) -> ParityResult:
    """A :class:`ParityResult` from per-frame energies per atom (eV/atom) and force components
    (eV/Å; (M, 3) with per-atom ``symbols``, or flat without them)."""
    e_ref, e_pred = np.asarray(energy_ref_eV_atom, float), np.asarray(energy_pred_eV_atom, float)
    f_ref, f_pred = np.asarray(force_ref_eV_A, float), np.asarray(force_pred_eV_A, float)
    by_el = {}
    if symbols is not None:
        symbols = np.asarray(symbols, str)
        by_el = {str(s): metrics(f_ref[symbols == s], f_pred[symbols == s]) for s in sorted(set(symbols))}
    low = np.abs(f_ref) <= zoom_eV_A
    sym3 = np.repeat(symbols, 3).reshape(-1, 3) if symbols is not None else np.full(f_ref.shape, "", str)
    return ParityResult(label=label, n_frames=len(e_ref), n_atoms=n_atoms if n_atoms is not None else len(f_ref),
                        energy=metrics(e_ref, e_pred), forces=metrics(f_ref, f_pred), forces_by_element=by_el,
                        forces_low=metrics(f_ref[low], f_pred[low]), zoom_eV_A=zoom_eV_A,
                        energy_shift_eV=energy_shift_eV or {}, energy_ref_eV_atom=e_ref, energy_pred_eV_atom=e_pred,
                        force_ref_eV_A=f_ref, force_pred_eV_A=f_pred, force_symbols=sym3)


def load_parity_arrays(path: str | os.PathLike, label: str = "model", zoom_eV_A: float = 0.25) -> ParityResult:
    """A :class:`ParityResult` from an NPZ of ``energy_ref_eV_atom``, ``energy_pred_eV_atom``,
    ``forces_ref_eV_A`` and ``forces_pred_eV_A`` (what the report shows)."""
    with np.load(path) as z:
        return parity_from_arrays(z["energy_ref_eV_atom"], z["energy_pred_eV_atom"], z["forces_ref_eV_A"],
                                  z["forces_pred_eV_A"], label=label, zoom_eV_A=zoom_eV_A)


def evaluate(calc: Calculator, frames: Sequence[Atoms], *, label: str = "model",
             refit_frames: Sequence[Atoms] | None = None, zoom_eV_A: float = 0.25,
             progress: Callable[[int, int], None] | None = None) -> ParityResult:
    """Predict ``frames`` with ``calc`` and compare with their labels; with ``refit_frames``
    (labelled, e.g. the training split) per-element energy references are refitted first."""
    shift = None
    if refit_frames:
        if any(not has_labels(a) for a in refit_frames):
            raise QdlabError("refit frames need reference energies")
        e_fit, _ = predict(calc, refit_frames, forces=False)
        n_fit = np.array([len(a) for a in refit_frames])
        resid = np.array([labels(a)[0] for a in refit_frames]) / n_fit - e_fit / n_fit
        shift = fit_element_shift([a.numbers for a in refit_frames], resid)
    energies, forces = predict(calc, frames, progress=progress)
    return parity(frames, energies, forces, label=label, energy_shift=shift, zoom_eV_A=zoom_eV_A)


def write_parity(results: Sequence[ParityResult], out: str | os.PathLike, *, title: str = "",
                 plot: bool = True) -> dict[str, Path]:
    """Write ``parity.json`` (metrics of every model; force-RMSE ratio first/last) and, with
    ``plot``, ``parity.png`` (models side by side) into the folder ``out``."""
    if not results:
        raise QdlabError("no parity results to write")
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"title": title, "models": [r.to_dict() for r in results]}
    if len(results) > 1 and results[-1].forces.rmse > 0:
        doc["force_rmse_ratio_first_over_last"] = results[0].forces.rmse / results[-1].forces.rmse
    paths = {"json": write_text(folder / "parity.json", json.dumps(doc, indent=2) + "\n")}
    if plot:
        from qdlab.report.parity_plots import plot_parity

        paths["png"] = plot_parity(results, folder / "parity.png", title=title)
    return paths
