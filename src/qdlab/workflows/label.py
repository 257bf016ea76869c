"""Labelling: a reference engine (CP2K, xTB, the classical force field, any ASE calculator) computes
energies (eV) and forces (eV/Å) of a list of frames, one frame at a time.

Every finished frame is appended to the output dataset at once (a committed database row, or an
fsync'ed extended-XYZ append), carrying ``label_index`` (its position in the input), its
``frame_key``, the ``engine`` and its ``settings``. A frame the engine cannot handle (an exception,
non-finite results) is written too, with ``status="failed"`` and the ``error``: failures are
recorded, never silently dropped. Rerunning the same command after an interruption reads the
output, checks that it belongs to the same input and engine, and computes only the frames not
there yet (``retry_failed`` also retries the failed ones). Use a database output (``.db``) for
labels kept bit for bit; extended XYZ stores forces with 8 decimals.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from qdlab.errors import QdlabError
from qdlab.store.db import (append_frame, connect_db, delete_frames, frame_key, is_database, read_frames, repair_xyz,
                            set_labels)


@dataclass(frozen=True)
class LabelResult:
    """Outcome of :func:`label`: counts of frames and the failures (input index → error)."""

    output: str
    engine: str
    n_frames: int
    n_labelled: int
    n_failed: int
    n_computed: int
    n_resumed: int
    seconds: float
    failed: dict[int, str] = field(default_factory=dict)

    @property
    def seconds_per_frame(self) -> float:
        return self.seconds / self.n_computed if self.n_computed else 0.0

    def to_dict(self) -> dict:
        return asdict(self) | {"seconds_per_frame": self.seconds_per_frame}


def _settings_of(calc: Calculator) -> dict:
    params = getattr(calc, "parameters", None) or {}
    return json.loads(json.dumps(dict(params), default=str)) | {"calculator": type(calc).__name__}


def _clear(out: str) -> None:
    if "://" in out:
        with connect_db(out) as db:
            ids = [row.id for row in db.select()]
            if ids:
                db.delete(ids)
    elif Path(out).exists():
        Path(out).unlink()



def _resume(out_s: str, keys: list[str], engine: str, retry_failed: bool) -> dict[int, Atoms]:
    """Frames already in ``out_s`` by input index, after checking they belong to this input and engine
    (``retry_failed``: failed records are deleted so that they are computed again)."""
    repair_xyz(out_s)
    previous = read_frames(out_s)
    done: dict[int, Atoms] = {}
    n = len(keys)
    for a in previous:
        idx = a.info.get("label_index")
        if idx is None or not (0 <= int(idx) < n) or a.info.get("frame_key") != keys[int(idx)]:
            raise QdlabError(f"{out_s} holds frames of another input; choose a new output or pass restart=False "
                             "(--overwrite)")
        if a.info.get("engine") != engine:
            raise QdlabError(f"{out_s} was labelled with engine {a.info.get('engine')!r}, not {engine!r}; "
                             "choose a new output or pass restart=False (--overwrite)")
        done[int(idx)] = a
    if retry_failed and any(a.info.get("status") == "failed" for a in previous):
        delete_frames(out_s, [a.info.get("status") != "failed" for a in previous])
        done = {i: a for i, a in done.items() if a.info.get("status") != "failed"}
    return done


def _label_one(frame: Atoms, calc: Calculator, dipole: bool, **info) -> tuple[Atoms, str | None]:
    """One labelled record (energy eV, forces eV/Å, dipole e·Å) or a failed one with its error line."""
    work = frame.copy()
    work.calc = calc
    t1 = time.perf_counter()
    mu = None
    try:
        energy = float(work.get_potential_energy())
        forces = np.array(work.get_forces(), float)
        mu = np.array(work.get_dipole_moment(), float) if dipole else None
        if not (math.isfinite(energy) and np.isfinite(forces).all()) or (mu is not None and
                                                                       not np.isfinite(mu).all()):
            raise QdlabError("non-finite energy or forces")
        error = None
    except Exception as exc:  # recorded, not dropped; KeyboardInterrupt/SystemExit still stop the run
        error = f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:500]
    record = frame.copy()
    record.calc = None
    record.info.update(label_seconds=time.perf_counter() - t1, **info)
    if error is None:
        set_labels(record, energy, forces)
        if mu is not None:
            record.info["dipole_eA"] = [float(v) for v in mu]
    else:
        record.info.update(status="failed", error=error)
    return record, error

def label(frames: Sequence[Atoms], calc: Calculator, out: str | os.PathLike, *, engine: str = "engine",
          settings: dict | None = None, restart: bool = True, retry_failed: bool = False,
          progress: Callable[[int, int], None] | None = None, dipole: bool | None = None) -> LabelResult:
    """Label ``frames`` with ``calc`` into the dataset ``out`` (resumable; see module docstring).

    ``engine`` names the reference for the provenance (e.g. ``"cp2k"``, ``"classical"``),
    ``settings`` its parameters (default: the calculator's ``parameters``). ``restart=False``
    discards an existing output. ``progress(done, total)`` is called after every frame.
    Returns counts; the labelled frames are read back with ``read_frames(out, labelled=True)``.
    ``dipole``: also store the dipole (e·Å) as ``info["dipole_eA"]`` (kept by extended XYZ and
    databases); default: when the calculator implements it (xTB does).
    """
    out_s = str(out)
    if not is_database(out_s) and Path(out_s).suffix.lower() not in (".extxyz", ".xyz"):
        raise QdlabError(f"label output must be a database (.db, a URL) or extended XYZ (.extxyz), not {out_s}")
    if not frames:
        raise QdlabError("no frames to label")
    t0 = time.perf_counter()
    n = len(frames)
    keys = [frame_key(a) for a in frames]
    settings = _settings_of(calc) if settings is None else settings
    if dipole is None:
        dipole = "dipole" in getattr(calc, "implemented_properties", ())
    if not restart:
        _clear(out_s)
    elif "://" not in out_s:
        Path(out_s).parent.mkdir(parents=True, exist_ok=True)
    exists = "://" in out_s or Path(out_s).exists()
    done = _resume(out_s, keys, engine, retry_failed) if exists else {}
    n_resumed = len(done)
    failed = {i: str(a.info.get("error", "")) for i, a in done.items() if a.info.get("status") == "failed"}
    n_ok = n_resumed - len(failed)
    computed = 0
    if progress:
        progress(len(done), n)
    for i in range(n):
        if i in done:
            continue
        record, error = _label_one(frames[i], calc, dipole, label_index=i, frame_key=keys[i], engine=engine,
                                   settings=json.dumps(settings, sort_keys=True, default=str))
        if error is None:
            n_ok += 1
        else:
            failed[i] = error
        append_frame(out_s, record)
        done[i] = record
        computed += 1
        if progress:
            progress(len(done), n)
    return LabelResult(output=out_s, engine=engine, n_frames=n, n_labelled=n_ok, n_failed=len(failed),
                       n_computed=computed, n_resumed=n_resumed, seconds=time.perf_counter() - t0,
                       failed=dict(sorted(failed.items())))
