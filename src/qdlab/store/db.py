"""Datasets of labelled frames: an ASE database (SQLite by default, or any URL ASE supports) or
extended XYZ, with provenance per frame, deduplication and a seeded train/val/test split.

A *frame* is an :class:`ase.Atoms`. Its reference labels, when it has them, are the results of a
:class:`~ase.calculators.singlepoint.SinglePointCalculator`: ``energy`` (eV) and ``forces`` (eV/Å).
Provenance lives in ``atoms.info``:

``frame_key``  SHA-256 of numbers + positions (+ cell for periodic frames): identifies a geometry
``source``     where the geometry came from (the frame's own ``source`` entry, else the file name)
``engine``     what computed the labels (``cp2k``, ``classical``, ``chgnet:…``; ``unknown``)
``settings``   JSON text of the engine's settings
``split``      ``train`` | ``val`` | ``test`` once split
``status``     ``ok`` | ``failed`` (a frame the reference engine could not label; ``error`` says why)

``frame_key`` is computed once, when a frame enters a dataset, and stored: recomputing it from a
frame read back from extended XYZ (8-decimal positions) can give another key.

Format by name: ``*.db``, ``*.sqlite``, ``*.sqlite3``, ``*.json`` and URLs (``postgresql://…``)
are ASE databases (float64 kept exactly); ``*.extxyz``/``*.xyz`` are extended XYZ (human
readable, forces written with 8 decimals); ``*.traj`` can be read.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from qdlab.errors import QdlabError
from qdlab.store.files import atomic_path

DB_SUFFIXES = (".db", ".sqlite", ".sqlite3", ".json")
XYZ_SUFFIXES = (".extxyz", ".xyz")
SPLITS = ("train", "val", "test")
#: seed 000: 68 % train, 12 % validation, 20 % test
DEFAULT_FRACTIONS = (0.68, 0.12, 0.20)

# atoms.info keys written as database key-value pairs (searchable); the rest goes to row.data
_KVP_KEYS = ("frame_key", "source", "engine", "split", "status", "label_index", "iteration")
_STD_ARRAYS = {"numbers", "positions", "initial_charges", "momenta", "tags", "masses", "initial_magmoms"}


def is_database(path: str | os.PathLike) -> bool:
    """True for an ASE database name (``.db``/``.sqlite``/``.sqlite3``/``.json`` or a URL)."""
    text = str(path)
    return "://" in text or Path(text).suffix.lower() in DB_SUFFIXES


def connect_db(name: str | os.PathLike, append: bool = True):
    """ASE database connection; ``.sqlite``/``.sqlite3`` files are SQLite like ``.db``."""
    from ase.db import connect

    text = str(name)
    kind = "db" if Path(text).suffix.lower() in (".sqlite", ".sqlite3") and "://" not in text else "extract_from_name"
    return connect(text, type=kind, append=append)


def _check_name(path: str | os.PathLike, reading: bool) -> None:
    text = str(path)
    if is_database(text):
        if reading and "://" not in text and not Path(text).exists():
            raise QdlabError(f"dataset {text} does not exist")
        return
    suffix = Path(text).suffix.lower()
    allowed = XYZ_SUFFIXES + ((".traj",) if reading else ())
    if suffix not in allowed:
        raise QdlabError(f"dataset {text}: use an ASE database (.db, .sqlite, a URL) or extended XYZ (.extxyz), "
                         f"not {suffix or 'a name without extension'}")
    if reading and not Path(text).exists():
        raise QdlabError(f"dataset {text} does not exist")


def frame_key(atoms: Atoms, decimals: int = 6) -> str:
    """Identity of a geometry: SHA-256 of atomic numbers and positions rounded to ``decimals`` Å
    (+ cell and pbc for periodic frames)."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(atoms.numbers, np.int64).tobytes())
    h.update((np.round(atoms.positions, decimals) + 0.0).tobytes())  # + 0.0: no negative zeros
    if atoms.pbc.any():
        h.update(np.asarray(atoms.pbc).tobytes() + (np.round(atoms.cell.array, decimals) + 0.0).tobytes())
    return h.hexdigest()[:32]


def has_labels(atoms: Atoms) -> bool:
    """Whether ``atoms`` carries a reference energy and forces (and is not a failed frame)."""
    if atoms.info.get("status", "ok") != "ok" or atoms.calc is None:
        return False
    results = getattr(atoms.calc, "results", {})
    return "energy" in results and "forces" in results


def labels(atoms: Atoms) -> tuple[float, np.ndarray]:
    """Reference (energy eV, forces eV/Å) of a labelled frame."""
    if not has_labels(atoms):
        raise QdlabError(f"frame {atoms.info.get('frame_key', '?')} has no reference energy and forces")
    return float(atoms.calc.results["energy"]), np.asarray(atoms.calc.results["forces"], float)


def set_labels(atoms: Atoms, energy: float, forces: np.ndarray, engine: str | None = None,
               settings: dict | None = None) -> Atoms:
    """Attach reference labels (energy eV, forces eV/Å) and their provenance to ``atoms`` (in place)."""
    atoms.calc = SinglePointCalculator(atoms, energy=float(energy), forces=np.asarray(forces, float))
    if engine is not None:
        atoms.info["engine"] = engine
    if settings is not None:
        atoms.info["settings"] = json.dumps(settings, sort_keys=True, default=str)
    atoms.info["status"] = "ok"
    atoms.info.pop("error", None)
    return atoms


def _clean(value):
    """A JSON-serialisable copy of an info value."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    return value


def _to_row(atoms: Atoms) -> tuple[Atoms, dict, dict]:
    """Split a frame into (atoms for ASE db, key-value pairs, data)."""
    a = _copy_with_calc(atoms)
    kvp = {k: _clean(atoms.info[k]) for k in _KVP_KEYS if k in atoms.info}
    info = {k: _clean(v) for k, v in atoms.info.items() if k not in _KVP_KEYS}
    arrays = {k: v.tolist() for k, v in atoms.arrays.items() if k not in _STD_ARRAYS}
    data = {"info": json.loads(json.dumps(info, default=str)), "arrays": arrays}
    a.info = {}
    for k in list(a.arrays):
        if k not in _STD_ARRAYS:
            del a.arrays[k]
    return a, kvp, data


def _from_row(row) -> Atoms:
    atoms = row.toatoms()
    info = dict(row.key_value_pairs)
    data = row.data or {}
    info.update(data.get("info", {}))
    for k, v in data.get("arrays", {}).items():
        atoms.new_array(k, np.asarray(v))
    atoms.info = info
    return atoms


def _read_xyz(path: Path) -> tuple[list[Atoms], bool]:
    """Complete frames of an extended XYZ file and whether the file ended cleanly."""
    from ase.io import iread

    frames: list[Atoms] = []
    try:
        for a in iread(path, index=":", format="extxyz"):
            frames.append(a)
    except Exception:  # a half-written last frame (interrupted append)
        return frames, False
    return frames, True


def read_frames(path: str | os.PathLike, *, labelled: bool = False, split: str | None = None,
                index: str = ":") -> list[Atoms]:
    """Frames of a dataset (database, extended XYZ, or any ASE-readable trajectory).

    ``labelled`` keeps only frames with reference energy and forces; ``split`` only one split.
    A half-written last frame of an extended XYZ file (an interrupted append) is ignored.
    """
    _check_name(path, reading=True)
    text = str(path)
    if is_database(text):
        with connect_db(text) as db:
            frames = [_from_row(row) for row in db.select()]
        if index != ":":
            from ase.io.formats import string2index

            sel = string2index(index)
            frames = frames[sel] if isinstance(sel, slice) else [frames[sel]]
    elif Path(text).suffix.lower() in XYZ_SUFFIXES and index == ":":
        frames = _read_xyz(Path(text))[0]
    else:
        from ase.io import read

        got = read(text, index)
        frames = got if isinstance(got, list) else [got]
    if labelled:
        frames = [a for a in frames if has_labels(a)]
    if split is not None:
        if split not in SPLITS:
            raise QdlabError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
        frames = [a for a in frames if a.info.get("split") == split]
    return frames


def write_frames(path: str | os.PathLike, frames: Sequence[Atoms], *, append: bool = False) -> Path | str:
    """Write frames to a dataset. A new file appears atomically (complete or not at all);
    ``append`` adds to an existing dataset."""
    _check_name(path, reading=False)
    text = str(path)
    if is_database(text):
        if "://" in text:
            with connect_db(text) as db:
                if not append:
                    ids = [row.id for row in db.select()]
                    if ids:
                        db.delete(ids)
                for a in frames:
                    row, kvp, data = _to_row(a)
                    db.write(row, key_value_pairs=kvp, data=data)
            return text
        if append and Path(text).exists():
            with connect_db(text) as db:
                for a in frames:
                    row, kvp, data = _to_row(a)
                    db.write(row, key_value_pairs=kvp, data=data)
            return Path(text)
        with atomic_path(text) as tmp:
            tmp.unlink()  # ASE's JSON backend must not find an empty file
            with connect_db(tmp, append=False) as db:
                for a in frames:
                    row, kvp, data = _to_row(a)
                    db.write(row, key_value_pairs=kvp, data=data)
        return Path(text)
    from ase.io import write

    final = Path(text)
    if append and final.exists():
        with open(final, "a") as fh:
            write(fh, list(frames), format="extxyz")
            fh.flush()
            os.fsync(fh.fileno())
        return final
    with atomic_path(final) as tmp:
        write(tmp, list(frames), format="extxyz")
    return final


def append_frame(path: str | os.PathLike, frame: Atoms) -> None:
    """Append one frame durably (database: one committed row; extended XYZ: fsync'ed append)."""
    text = str(path)
    if is_database(text):
        row, kvp, data = _to_row(frame)
        with connect_db(text) as db:
            db.write(row, key_value_pairs=kvp, data=data)
        return
    from ase.io import write

    Path(text).parent.mkdir(parents=True, exist_ok=True)
    with open(text, "a") as fh:
        write(fh, frame, format="extxyz")
        fh.flush()
        os.fsync(fh.fileno())


def delete_frames(path: str | os.PathLike, keep: Iterable[bool]) -> None:
    """Remove frames where ``keep`` is False (database rows by id; extended XYZ rewritten atomically)."""
    keep = list(keep)
    text = str(path)
    if is_database(text):
        with connect_db(text) as db:
            ids = [row.id for row in db.select()]
            drop = [i for i, k in zip(ids, keep) if not k]
            if drop:
                db.delete(drop)
        return
    frames = _read_xyz(Path(text))[0]
    write_frames(text, [a for a, k in zip(frames, keep) if k])


def repair_xyz(path: str | os.PathLike) -> int:
    """Drop a half-written last frame of an extended XYZ file (rewritten atomically only when one
    was found); returns the number of complete frames."""
    p = Path(path)
    if is_database(p) or not p.exists():
        return 0
    frames, complete = _read_xyz(p)
    if not complete:
        write_frames(p, frames)
    return len(frames)


def provenance(atoms: Atoms, *, source: str | None = None, engine: str | None = None,
               settings: dict | None = None) -> Atoms:
    """Fill in the provenance keys of a frame (in place; existing values are kept unless given)."""
    atoms.info["frame_key"] = frame_key(atoms)
    if source is not None or "source" not in atoms.info:
        atoms.info["source"] = source or "unknown"
    if has_labels(atoms):
        if engine is not None or "engine" not in atoms.info:
            atoms.info["engine"] = engine or "unknown"
        if settings is not None:
            atoms.info["settings"] = json.dumps(settings, sort_keys=True, default=str)
        atoms.info.setdefault("status", "ok")
    return atoms


def deduplicate(frames: Sequence[Atoms], tol_A: float = 1e-4) -> tuple[list[Atoms], list[int]]:
    """Drop frames whose geometry repeats an earlier one: same atomic numbers (and cell/pbc) and
    every coordinate within ``tol_A`` Å (Chebyshev distance, KD-tree over the flattened
    coordinates of each group). Returns (kept frames, indices dropped)."""
    from scipy.spatial import cKDTree

    if tol_A < 0:
        raise QdlabError("deduplication tolerance must be ≥ 0 Å")
    groups: dict[bytes, list[int]] = {}
    for i, a in enumerate(frames):
        sig = np.ascontiguousarray(a.numbers, np.int64).tobytes() + np.asarray(a.pbc).tobytes()
        if a.pbc.any():
            sig += np.round(a.cell.array, 6).tobytes()
        groups.setdefault(sig, []).append(i)
    drop: set[int] = set()
    for idx in groups.values():
        if len(idx) < 2:
            continue
        x = np.stack([frames[i].positions.ravel() for i in idx])
        pairs = cKDTree(x).query_pairs(tol_A, p=np.inf, output_type="ndarray") if tol_A > 0 else None
        if tol_A == 0:
            _, first = np.unique(x, axis=0, return_index=True)
            drop.update(set(idx) - {idx[k] for k in first})
            continue
        # union-find is not needed: keep the earliest member, drop every later partner of a kept frame
        partners: dict[int, list[int]] = {}
        for p, q in pairs:
            partners.setdefault(min(p, q), []).append(max(p, q))
        dropped_local: set[int] = set()
        for k in range(len(idx)):
            if k in dropped_local:
                continue
            dropped_local.update(partners.get(k, []))
        drop.update(idx[k] for k in dropped_local)
    kept = [a for i, a in enumerate(frames) if i not in drop]
    return kept, sorted(drop)


def split_indices(n: int, fractions: Sequence[float] = DEFAULT_FRACTIONS, seed: int = 0) -> dict[str, np.ndarray]:
    """Random train/val/test split of ``n`` frames (seed 000: 68/12/20) with a seed.

    Counts are rounded so that they add up to ``n`` (100 frames → 68/12/20).
    """
    f = np.asarray(fractions, float)
    if f.shape != (3,) or (f < 0).any() or not np.isclose(f.sum(), 1.0):
        raise QdlabError(f"split fractions must be three numbers ≥ 0 adding up to 1, not {list(fractions)}")
    perm = np.random.default_rng(seed).permutation(n)
    n_train = int(round(f[0] * n))
    n_val = min(int(round(f[1] * n)), n - n_train)
    return {"train": np.sort(perm[:n_train]), "val": np.sort(perm[n_train:n_train + n_val]),
            "test": np.sort(perm[n_train + n_val:])}


def assign_split(frames: Sequence[Atoms], fractions: Sequence[float] = DEFAULT_FRACTIONS, seed: int = 0) -> list[Atoms]:
    """Write ``info["split"]`` (and ``split_seed``) into every frame (in place); returns the frames."""
    parts = split_indices(len(frames), fractions, seed)
    for name, idx in parts.items():
        for i in idx:
            frames[i].info["split"] = name
            frames[i].info["split_seed"] = int(seed)
    return list(frames)


def frames_by_split(frames: Sequence[Atoms], fractions: Sequence[float] = DEFAULT_FRACTIONS,
                    seed: int = 0) -> dict[str, list[Atoms]]:
    """Frames grouped by their ``split`` label; frames without one are split with ``seed`` first."""
    if any("split" not in a.info for a in frames):
        frames = [_copy_with_calc(a) for a in frames]
        assign_split([a for a in frames if "split" not in a.info], fractions, seed)
    return {s: [a for a in frames if a.info.get("split") == s] for s in SPLITS}


def _copy_with_calc(atoms: Atoms) -> Atoms:
    b = atoms.copy()
    if has_labels(atoms):
        e, f = labels(atoms)
        b.calc = SinglePointCalculator(b, energy=e, forces=f)
    return b


@dataclass(frozen=True)
class DatasetSummary:
    """What a dataset holds: counts per split, engine, source and composition; energies in eV."""

    path: str
    n_frames: int
    n_labelled: int
    n_failed: int
    splits: dict[str, int] = field(default_factory=dict)
    engines: dict[str, int] = field(default_factory=dict)
    sources: dict[str, int] = field(default_factory=dict)
    formulas: dict[str, int] = field(default_factory=dict)
    n_atoms_range: tuple[int, int] = (0, 0)
    energy_per_atom_range_eV: tuple[float, float] | None = None
    max_force_eV_A: float | None = None
    dropped_duplicates: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(frames: Sequence[Atoms], path: str = "", dropped_duplicates: int = 0) -> DatasetSummary:
    """Counts and label ranges of a list of frames."""
    lab = [a for a in frames if has_labels(a)]
    e_pa = np.array([labels(a)[0] / len(a) for a in lab]) if lab else None
    fmax = max((float(np.abs(labels(a)[1]).max()) for a in lab), default=None)
    sizes = [len(a) for a in frames] or [0]
    return DatasetSummary(
        path=str(path), n_frames=len(frames), n_labelled=len(lab),
        n_failed=sum(a.info.get("status") == "failed" for a in frames),
        splits=dict(Counter(str(a.info.get("split", "none")) for a in frames)),
        engines=dict(Counter(str(a.info.get("engine", "none")) for a in frames)),
        sources=dict(Counter(str(a.info.get("source", "unknown")) for a in frames)),
        formulas=dict(Counter(a.get_chemical_formula() for a in frames)),
        n_atoms_range=(min(sizes), max(sizes)),
        energy_per_atom_range_eV=(float(e_pa.min()), float(e_pa.max())) if e_pa is not None else None,
        max_force_eV_A=fmax, dropped_duplicates=dropped_duplicates)


def collect(sources: Sequence[str | os.PathLike], out: str | os.PathLike, *, every: int = 1,
            keep_labels: bool = True, engine: str | None = None, source_names: Sequence[str] | None = None,
            dedup_tol_A: float | None = 1e-4, split: bool = True, fractions: Sequence[float] = DEFAULT_FRACTIONS,
            seed: int = 0, append: bool = False) -> DatasetSummary:
    """Collect frames (relaxation trajectories, rattled structures, MD snapshots: any file ASE reads,
    or another dataset) into the dataset ``out``.

    ``every`` keeps every n-th frame of each source; ``keep_labels`` keeps energies/forces found in
    the sources (their provenance ``engine`` is taken from the frame, else ``engine``, else
    ``unknown``); ``dedup_tol_A`` drops repeated geometries (None: keep all); ``split`` assigns
    train/val/test with ``fractions`` and ``seed`` to frames that have no split yet. With
    ``append`` the frames are added to an existing dataset (deduplicated against it).
    """
    if every < 1:
        raise QdlabError("--every must be ≥ 1")
    if not sources:
        raise QdlabError("give at least one source file")
    names = list(source_names) if source_names is not None else [Path(str(s)).name for s in sources]
    if len(names) != len(sources):
        raise QdlabError("one source name per source file")
    frames: list[Atoms] = []
    for src, name in zip(sources, names):
        got = read_frames(src)[::every]
        for a in got:
            if not keep_labels:
                a.calc = None
                for k in ("engine", "settings", "status", "error"):
                    a.info.pop(k, None)
            provenance(a, source=str(a.info.get("source", name)),
                       engine=engine if engine is not None and "engine" not in a.info else None)
            frames.append(a)
    exists = "://" in str(out) or Path(str(out)).exists()
    existing: list[Atoms] = read_frames(out) if append and exists else []
    dropped = 0
    if dedup_tol_A is not None:
        kept, drop = deduplicate(existing + frames, dedup_tol_A)
        drop_new = [i - len(existing) for i in drop if i >= len(existing)]
        frames = [a for i, a in enumerate(frames) if i not in set(drop_new)]
        dropped = len(drop_new)
    if split:
        todo = [a for a in frames if "split" not in a.info]
        if todo:
            assign_split(todo, fractions, seed)
    write_frames(out, frames, append=append)
    return summarize(existing + frames, str(out), dropped_duplicates=dropped)
