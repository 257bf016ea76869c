"""Checks a campaign-level command makes before writing anything: DFT export options and models.

``qdlab export vasp|cp2k`` used to accept ``--ntasks 0``, negative cutoffs, ``--set encut=abc`` and
NaN models and write folders from them; :func:`check_export` refuses each in one line first.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from qdlab.build.gate import InputError, check_option, check_structure, read_structure

#: settings that must be numbers, with their lower bound (exclusive ``gt`` or inclusive ``ge``)
NUMERIC = {
    "encut": {"gt": 0}, "ediff": {"gt": 0}, "nelm": {"ge": 1}, "nsw": {"ge": 0}, "sigma": {"gt": 0},
    "ibrion": {"ge": -1}, "isif": {"ge": 0}, "ispin": {"ge": 1}, "ismear": {"ge": -5}, "ediffg": {},
    "cutoff_ry": {"gt": 0}, "rel_cutoff_ry": {"gt": 0}, "max_scf": {"ge": 1}, "eps_scf": {"gt": 0},
    "max_force_eV_A": {"gt": 0}, "steps": {"ge": 0}, "charge": {},
}
INTEGER = {"nelm", "nsw", "ibrion", "isif", "ispin", "ismear", "max_scf", "steps", "charge"}


def check_settings(overrides: dict) -> None:
    """Each ``--set`` value of a known numeric key is a finite number in range (integers where VASP/CP2K need one)."""
    for key, val in overrides.items():
        if key not in NUMERIC:
            continue
        if key == "charge" and val is None:
            continue
        if isinstance(val, bool) or not isinstance(val, (int, float)):
            raise InputError(f"--set {key}={val}: {key} must be a number")
        if key in INTEGER and not isinstance(val, int):
            raise InputError(f"--set {key}={val}: {key} must be an integer")
        check_option(f"--set {key}", val, **NUMERIC[key])


def check_job(nodes: int, ntasks: int, walltime: str) -> None:
    """SLURM resources: ≥ 1 node and task, a walltime of [D-]HH:MM:SS."""
    check_option("--nodes", nodes, ge=1)
    check_option("--ntasks", ntasks, ge=1)
    if not re.fullmatch(r"(\d+-)?\d{1,3}:[0-5]\d:[0-5]\d", walltime or ""):
        raise InputError(f"--walltime must be HH:MM:SS or D-HH:MM:SS, not {walltime!r}")


def check_models(models: Sequence[str | os.PathLike]) -> None:
    """Structure files (not stores) pass the input gate: readable, finite, no overlapping atoms."""
    if not models:
        raise InputError("give at least one structure file or results store")
    for m in models:
        text = str(m)
        if "://" in text or Path(text).suffix.lower() in (".db", ".sqlite", ".sqlite3"):
            if "://" not in text and not Path(text).is_file():
                raise InputError(f"results store {text} does not exist")
            continue
        check_structure(read_structure(text), what=text)


def check_export(models: Sequence[str | os.PathLike], overrides: dict, *, nodes: int, ntasks: int,
                 walltime: str) -> None:
    """Everything ``export`` needs, before the first folder is written."""
    check_job(nodes, ntasks, walltime)
    check_settings(overrides)
    check_models(models)
