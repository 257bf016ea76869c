"""Fit tight binding on training geometries, then validate on held-out normal-mode geometries.

The proper protocol for the TB-vs-DFT comparison of :mod:`qdlab.workflows.gap_validation`:

- :func:`rattle_geometries` makes the training set: seeded Gaussian rattles of the relaxed cluster
  (``sigma_A`` per Cartesian component, Å), never the normal-mode geometries that are validated;
- :func:`run_rattles` gets their DFT gaps with exactly the validation's CP2K settings
  (:func:`~qdlab.workflows.gap_validation.evaluate_dft`, same input writer), one atomic JSON
  checkpoint per geometry (``workdir/<name>/record.json``), resumable, finished CP2K outputs reused;
- :func:`fit_on_rattles` fits η and undercoordination on-site shifts (``shift:El:orb``) with
  :func:`qdlab.electronic.tb.fit.fit_params` to the gap changes of [reference + rattles] (relative fit,
  SOC as in the validation settings);
- :func:`held_out_table` recomputes only the TB side of a finished validation (its DFT records are
  reused, never recomputed) with the fitted parameters.
Energies eV, displacements Å.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read

from qdlab.errors import QdlabError
from qdlab.workflows.gap_validation import (GapGeometry, GapValidationSettings, ValidationResult, assemble,
                                            dft_gap_of, evaluate_dft, has_dft_gap)

DEFAULT_FIT_NAMES = ("eta", "shift:Br:p", "shift:Pb:s", "shift:Pb:p")


def rattle_geometries(atoms: Atoms, n: int, sigma_A: float = 0.05, seed: int = 1000,
                      periodic: bool = False) -> list[GapGeometry]:
    """``n`` rattles ``r0…``: positions + N(0, sigma_A²) per Cartesian component, geometry i from seed ``seed + i``
    (clusters, or 3D-periodic cells with ``periodic``, as ``GapValidationSettings.periodic``)."""
    if n < 1 or sigma_A <= 0:
        raise QdlabError("need at least one rattle and sigma_A > 0")
    ref = atoms.copy()
    ref.pbc = periodic
    out = []
    for i in range(n):
        a = ref.copy()
        a.positions = ref.positions + np.random.default_rng(seed + i).normal(0.0, sigma_A, ref.positions.shape)
        out.append(GapGeometry(f"r{i}", "rattle", None, 0, a))
    return out


def run_rattles(geoms: list[GapGeometry], workdir: str | os.PathLike, settings: GapValidationSettings, *,
                restart: str | None = None, dft: Callable[[GapGeometry, str | None], dict] | None = None,
                max_new: int | None = None) -> dict[str, dict]:
    """DFT gap of every training geometry (checkpointed per geometry); returns ``{name: record}`` of those finished."""
    from qdlab.store.files import write_atoms, write_text

    wd = Path(workdir)
    records: dict[str, dict] = {}
    new = 0
    for g in geoms:
        rec, geo = wd / g.name / "record.json", wd / g.name / "geometry.extxyz"
        if geo.is_file() and not np.allclose(read(geo).positions, g.atoms.positions, atol=1e-5):
            raise QdlabError(f"{geo} holds another geometry (other seed/sigma?): use a fresh work folder")
        if rec.is_file() and geo.is_file():
            records[g.name] = json.loads(rec.read_text())
            if has_dft_gap(records[g.name]["dft"], settings):
                continue
            records.pop(g.name)  # a record without the Pb-derived edge: rerun (CP2K restarts from its wfn)
        if max_new is not None and new >= max_new:
            continue
        write_atoms(wd / g.name / "geometry.extxyz", g.atoms)
        res = dft(g, restart) if dft is not None else evaluate_dft(g, wd, settings, restart)
        records[g.name] = {"name": g.name, "dft": res}
        write_text(rec, json.dumps(records[g.name]))
        new += 1
    return records


def fit_on_rattles(reference: Atoms, reference_dft_gap_eV: float, geoms: list[GapGeometry], records: dict[str, dict],
                   settings: GapValidationSettings, names=DEFAULT_FIT_NAMES, bounds: dict | None = None,
                   starts: int = 1):
    """Relative fit of ``names`` to the DFT gaps of the reference + the finished rattles (a ``FitResult``)."""
    from qdlab.electronic.tb.fit import fit_params
    from qdlab.electronic.tb.params import load_params

    done = [g for g in geoms if g.name in records]
    if not done:
        raise QdlabError("no finished training geometry to fit on")
    ref = reference.copy()
    ref.pbc = settings.periodic
    frames = [ref] + [g.atoms for g in done]
    gaps = [reference_dft_gap_eV] + [dft_gap_of(records[g.name]["dft"], settings) for g in done]
    return fit_params(frames, gaps, load_params(settings.params), names, relative=True, soc=settings.soc,
                      bounds=bounds, starts=starts)


def held_out_table(plan: list[GapGeometry], chars: dict, records: dict[str, dict], settings: GapValidationSettings,
                   params) -> ValidationResult:
    """The validation table with the TB gaps recomputed with ``params`` (a TBParams); DFT records reused."""
    from qdlab.electronic.tb.cluster import TightBinding

    tb = TightBinding(params, soc=settings.soc)
    redone = {g.name: records[g.name] | {"tb_gap_eV": tb.gap_eV(g.atoms)} for g in plan if g.name in records}
    return assemble(plan, chars, redone, settings)
