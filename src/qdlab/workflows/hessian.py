"""Finite-difference Hessians as plan → evaluate → assemble (the shape of phonopy's
``generate_displacements`` / ``forces`` / ``produce_force_constants`` and of ASE
``Vibrations.iterdisplace`` with a cache several processes fill).

* **plan**: :func:`plan_displacements` lists the 6N central-difference jobs of a structure
  (job j = 2·(3i + k) + (0 for +δ, 1 for −δ): atom i, direction k) with the identity ``key`` of the
  run (numbers, positions, δ, engine); :meth:`DisplacementPlan.chunks` splits them into ranges.
* **evaluate**: :func:`evaluate` computes the forces of any set of jobs with one of three back-ends
  (serial, batched through the engine's :class:`~qdlab.engines.protocols.BatchedForces`, or a
  process pool whose workers each build the engine from an :class:`~qdlab.engines.spec.EngineSpec`);
  :func:`evaluate_chunk` is the unit a Dask task (or any other executor) runs: a range of jobs into
  its own chunk file.
* **assemble**: :func:`assemble_force_constants` turns the forces into the symmetrised Φ (eV/Å²).

The checkpoint (:class:`HessianCheckpoint`) is the only reader and writer of the record files:
``hessian.ckpt`` (+ ``hessian.ckpt.json`` with the key) and chunk files under ``hessian.chunks/``.
Each record is (job int64, forces N×3 float64, CRC-32 of both as int64), appended and fsync'ed as
soon as its forces are known; loading reads the main file and every chunk file of the same key, a
half-written last record (a killed run) is dropped silently, a damaged record is reported in one
line and the good records before it are reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from qdlab.engines.protocols import compute_forces
from qdlab.engines.spec import EngineSpec, as_engine_spec
from qdlab.errors import QdlabError

#: record layout version, stored in the ``.ckpt.json`` beside each record file
CHECKPOINT_FORMAT = 2


class CheckpointDamaged(UserWarning):
    """A checkpoint record failed its checksum; the records before it are reused."""


def checkpoint_key(atoms: Atoms, delta: float, engine: str) -> str:
    """Identity of a Hessian run (numbers, positions to 1e-10 Å, δ, engine) stored in its checkpoint."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(atoms.numbers).tobytes())
    h.update(np.round(atoms.positions, 10).tobytes())
    h.update(f"{delta:.8g}|{engine}".encode())
    return h.hexdigest()


# -- checkpoint ----------------------------------------------------------------------------------
class HessianCheckpoint:
    """The record file ``path`` of one Hessian run and the chunk files beside it.

    ``load()`` returns every finished displacement (main file + chunk files of the same key),
    ``append(j, forces)`` adds one record to this file, ``chunk(j0, j1)`` opens the chunk file of a
    job range (for a worker), ``merge()`` copies the chunk records into the main file.
    """

    def __init__(self, path: str | os.PathLike, key: str, n_atoms: int, main: Path | None = None):
        self.path = Path(path)
        self.main = self.path if main is None else Path(main)
        self.meta = self.path.with_suffix(self.path.suffix + ".json")
        self.key = key
        self.n = n_atoms
        if _read_meta(self.meta) is not None:
            _check_meta(self.meta, key)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.exists():
                self.path.unlink()
            tmp = self.meta.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"key": key, "n_atoms": n_atoms, "format": CHECKPOINT_FORMAT}))
            os.replace(tmp, self.meta)

    @property
    def chunk_folder(self) -> Path:
        """Folder of the run's chunk files (``hessian.ckpt`` → ``hessian.chunks/``)."""
        return self.main.with_suffix(".chunks")

    def chunk(self, j0: int, j1: int) -> HessianCheckpoint:
        """The checkpoint of jobs ``j0 ≤ j < j1``, written by one worker."""
        return self.chunk_of(self.main, self.key, self.n, j0, j1)

    @classmethod
    def chunk_of(cls, main: str | os.PathLike, key: str, n_atoms: int, j0: int, j1: int) -> HessianCheckpoint:
        """The chunk checkpoint of jobs ``j0 ≤ j < j1`` of the run whose main file is ``main``,
        without touching the main file (workers of one run open their chunks concurrently)."""
        main = Path(main)
        return cls(main.with_suffix(".chunks") / f"chunk_{j0:06d}_{j1:06d}.ckpt", key, n_atoms, main)

    def own(self) -> dict[int, np.ndarray]:
        """Records of this file alone (a torn or damaged tail is cut off, so appends continue cleanly)."""
        return _read_records(self.path, self.n, truncate=True)

    def load(self) -> dict[int, np.ndarray]:
        """Every finished displacement: this file's records and those of the other files of the
        same run (read-only: a record another process is appending is ignored, never cut)."""
        folder = self.chunk_folder
        others = [self.main] + (sorted(folder.glob("chunk_*.ckpt")) if folder.is_dir() else [])
        done: dict[int, np.ndarray] = {}
        for p in others:
            if p != self.path and p.exists() and _meta_key(p) == self.key:
                done.update(_read_records(p, self.n, truncate=False))
        done.update(self.own())
        return done

    def append(self, j: int, forces: np.ndarray) -> None:
        """Add the forces (N×3, eV/Å) of job ``j`` as one checksummed record (fsync'ed)."""
        with open(self.path, "ab") as fh:
            fh.write(_record(j, forces))
            fh.flush()
            os.fsync(fh.fileno())

    def merge(self) -> int:
        """Copy the other files' records missing from this file into it; returns how many."""
        have = self.own()
        done = self.load()
        missing = sorted(set(done) - set(have))
        if missing:
            with open(self.path, "ab") as fh:
                fh.write(b"".join(_record(j, done[j]) for j in missing))
                fh.flush()
                os.fsync(fh.fileno())
        return len(missing)

    def remove(self) -> None:
        """Delete this file and its metadata."""
        for p in (self.path, self.meta):
            if p.exists():
                p.unlink()


def _record(j: int, forces: np.ndarray) -> bytes:
    body = np.int64(j).tobytes() + np.ascontiguousarray(forces, np.float64).tobytes()
    return body + np.int64(zlib.crc32(body)).tobytes()


def _read_meta(meta: Path) -> dict | None:
    """The ``.ckpt.json`` of a record file (None if absent); a damaged one is a one-line error."""
    if not meta.exists():
        return None
    try:
        data = json.loads(meta.read_text())
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return data
    except (ValueError, UnicodeDecodeError) as exc:
        raise QdlabError(f"checkpoint metadata {meta} is damaged ({type(exc).__name__}); delete it and "
                         f"{meta.with_suffix('')} to start the Hessian over") from None


def _meta_key(path: Path) -> str | None:
    try:
        meta = _read_meta(path.with_suffix(path.suffix + ".json"))
    except QdlabError:
        return None
    return meta.get("key") if meta and meta.get("format") == CHECKPOINT_FORMAT else None


def _check_meta(meta: Path, key: str) -> None:
    data = _read_meta(meta) or {}
    if data.get("format") != CHECKPOINT_FORMAT:
        raise QdlabError(f"checkpoint {meta.with_suffix('')} has record format {data.get('format', 1)}, this qdlab "
                         f"writes {CHECKPOINT_FORMAT}; delete it to start the Hessian over")
    if data.get("key") != key:
        raise QdlabError(f"checkpoint {meta.with_suffix('')} belongs to another structure/engine/δ; "
                         "delete it to start over")


def _read_records(path: Path, n_atoms: int, truncate: bool) -> dict[int, np.ndarray]:
    """The good records of a file: stops at a torn tail (silently) or at a damaged record
    (reported in one line); with ``truncate`` the file is cut back to its good prefix."""
    rec = 16 + 24 * n_atoms
    if not path.exists():
        return {}
    data = path.read_bytes()
    n_full = len(data) // rec
    buf = np.frombuffer(data[: n_full * rec], np.uint8).reshape(n_full, rec)
    stored = buf[:, -8:].copy().view(np.int64).ravel()
    good = n_full
    for k in range(n_full):
        if zlib.crc32(buf[k, :-8].tobytes()) != stored[k]:
            good = k
            warnings.warn(f"checkpoint {path}: record {k + 1} of {n_full} is damaged (checksum); reusing the "
                          f"{k} good record(s) before it", CheckpointDamaged, stacklevel=3)
            break
    if truncate and len(data) != good * rec:
        with open(path, "r+b") as fh:
            fh.truncate(good * rec)
    idx = buf[:good, :8].copy().view(np.int64).ravel()
    forces = buf[:good, 8:-8].copy().view(np.float64).reshape(good, n_atoms, 3)
    return {int(i): f for i, f in zip(idx, forces)}


# -- plan ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DisplacementPlan:
    """The 6N central-difference jobs of a structure, δ (Å) and the run's checkpoint key."""

    atoms: Atoms
    delta: float
    key: str

    @property
    def n_atoms(self) -> int:
        return len(self.atoms)

    @property
    def n_jobs(self) -> int:
        return 6 * len(self.atoms)

    def displaced(self, jobs: Iterable[int] | None = None) -> list[tuple[int, Atoms]]:
        """(job, displaced copy) for the listed jobs (all by default)."""
        jobs = range(self.n_jobs) if jobs is None else jobs
        out = []
        for j in jobs:
            i, k, s = j // 6, (j // 2) % 3, j % 2
            a = self.atoms.copy()
            a.calc = None
            a.constraints = []
            a.positions[i, k] += (1.0, -1.0)[s] * self.delta
            out.append((int(j), a))
        return out

    def chunks(self, n_chunks: int) -> list[tuple[int, int]]:
        """The jobs split into ``n_chunks`` contiguous [j0, j1) ranges."""
        return chunk_ranges(self.n_jobs, n_chunks)

    def checkpoint(self, path: str | os.PathLike) -> HessianCheckpoint:
        """The run's checkpoint at ``path`` (created, or checked to belong to this plan)."""
        return HessianCheckpoint(path, self.key, self.n_atoms)


def chunk_ranges(n_jobs: int, n_chunks: int) -> list[tuple[int, int]]:
    """Split jobs 0..n_jobs-1 into ``n_chunks`` contiguous [j0, j1) ranges (6N jobs for N atoms)."""
    n_chunks = max(1, min(n_chunks, n_jobs))
    edges = np.linspace(0, n_jobs, n_chunks + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def plan_displacements(atoms: Atoms, delta: float = 0.01, engine: EngineSpec | dict | str | None = None
                       ) -> DisplacementPlan:
    """Plan the finite-difference Hessian of ``atoms`` with displacement ``delta`` (Å).

    ``engine``: the engine's settings (its :meth:`~EngineSpec.force_label` enters the key) or a
    label string; the same structure, δ and engine give the same key from any entry point.
    """
    if delta <= 0:
        raise QdlabError("displacement δ must be > 0 Å")
    label = engine if isinstance(engine, str) else (as_engine_spec(engine).force_label() if engine else "")
    a = atoms.copy()
    a.calc = None
    a.constraints = []
    return DisplacementPlan(atoms=a, delta=float(delta), key=checkpoint_key(atoms, delta, label))


def displacements(atoms: Atoms, delta: float, indices: np.ndarray | None = None,
                  jobs: Iterable[int] | None = None) -> list[tuple[int, Atoms]]:
    """The displaced structures: all 6N, those of some atoms (``indices``) or listed ``jobs``."""
    if jobs is None and indices is not None:
        jobs = [2 * (3 * int(i) + k) + s for i in np.asarray(indices) for k in range(3) for s in range(2)]
    return DisplacementPlan(atoms, delta, "").displaced(jobs)


# -- evaluate ------------------------------------------------------------------------------------
ForceStream = Iterator[tuple[int, np.ndarray, float]]


def serial_forces(calc: Calculator, displaced: list[tuple[int, Atoms]], batch_size: int | None = None
                  ) -> ForceStream:
    """(job, forces eV/Å, engine seconds) one structure at a time, or ``batch_size`` at a time
    through the engine's batched path when it has one."""
    step = batch_size if batch_size and batch_size > 1 else 1
    for b in range(0, len(displaced), step):
        part = displaced[b:b + step]
        t0 = time.perf_counter()
        forces = compute_forces(calc, [a for _, a in part], batch_size if step > 1 else None)
        dt = (time.perf_counter() - t0) / len(part)
        for (j, _), f in zip(part, forces):
            yield j, f, dt


_WORKER_CALC: Calculator | None = None


def _init_worker(spec: dict) -> None:
    global _WORKER_CALC
    _WORKER_CALC = EngineSpec.model_validate(spec).calculator()


def _worker_forces(chunk: list[tuple[int, Atoms]]) -> list[tuple[int, np.ndarray, float]]:
    return list(serial_forces(_WORKER_CALC, chunk))


def process_pool_forces(engine: EngineSpec, displaced: list[tuple[int, Atoms]], workers: int) -> ForceStream:
    """(job, forces, engine seconds) from ``workers`` spawned processes, each building its engine
    from ``engine`` (one thread each); results arrive as chunks finish."""
    from concurrent.futures import as_completed

    from qdlab.workflows.pool import worker_pool

    size = max(1, min(16, len(displaced) // (4 * workers)))
    parts = [displaced[k:k + size] for k in range(0, len(displaced), size)]
    with worker_pool(workers, _init_worker, (engine.model_dump(),)) as pool:  # Ctrl-C: workers killed at once
        for fut in as_completed([pool.submit(_worker_forces, c) for c in parts]):
            yield from fut.result()


def evaluate(plan: DisplacementPlan, jobs: Iterable[int], *, calc: Calculator | None = None,
             engine: EngineSpec | dict | None = None, batch_size: int | None = None, workers: int = 1,
             sink: Callable[[int, np.ndarray], None] | None = None,
             progress: Callable[[int], None] | None = None) -> float:
    """Compute the forces of ``jobs`` and hand each to ``sink(j, forces)`` (e.g. a checkpoint's
    ``append``); returns the seconds spent in the engine (summed over workers).

    Back-end: a process pool when ``workers`` > 1 (each builds ``engine``), otherwise ``calc``
    (built from ``engine`` if None), batched when ``batch_size`` > 1 and the engine can batch.
    ``progress(n)`` is told how many forces arrived so far.
    """
    displaced = plan.displaced(jobs)
    if not displaced:
        return 0.0
    spec = as_engine_spec(engine)
    if workers > 1:
        if spec is None:
            raise QdlabError("workers > 1 needs the engine settings (the engine is rebuilt in each process)")
        stream = process_pool_forces(spec, displaced, workers)
    else:
        if calc is None:
            if spec is None:
                raise QdlabError("no engine to compute the remaining displacements with")
            calc = spec.calculator()
        stream = serial_forces(calc, displaced, batch_size)
    t_engine = 0.0
    try:
        for n, (j, f, dt) in enumerate(stream, 1):
            if not np.all(np.isfinite(f)):
                raise QdlabError(f"engine returned non-finite forces for displacement {j}")
            t_engine += dt
            if sink is not None:
                sink(j, f)
            if progress:
                progress(n)
    finally:
        stream.close()  # an interrupted run stops its workers now, not when the generator is collected
    return t_engine


@dataclass(frozen=True)
class ChunkReport:
    """What :func:`evaluate_chunk` did: jobs in the range, newly computed, engine seconds."""

    n_jobs: int
    computed: int
    seconds_in_engine: float


def evaluate_chunk(plan: DisplacementPlan, checkpoint: str | os.PathLike, j0: int, j1: int,
                   calc: Calculator | Callable[[], Calculator], batch_size: int | None = None) -> ChunkReport:
    """Forces of jobs ``j0 ≤ j < j1`` into their own chunk file beside ``checkpoint`` (resumable:
    jobs already in any file of the run are skipped). ``calc`` may be a zero-argument factory,
    called only if something is left to compute."""
    ck = HessianCheckpoint.chunk_of(checkpoint, plan.key, plan.n_atoms, j0, j1)
    done = ck.load()
    todo = [j for j in range(j0, min(j1, plan.n_jobs)) if j not in done]
    seconds = 0.0
    if todo:
        engine = calc() if callable(calc) and not isinstance(calc, Calculator) else calc
        seconds = evaluate(plan, todo, calc=engine, batch_size=batch_size, sink=ck.append)
    return ChunkReport(n_jobs=max(0, min(j1, plan.n_jobs) - j0), computed=len(todo), seconds_in_engine=seconds)


# -- assemble ------------------------------------------------------------------------------------
def assemble_force_constants(plan: DisplacementPlan, forces: dict[int, np.ndarray]) -> np.ndarray:
    """Symmetrised Φ (3N×3N, eV/Å²) from the forces of every job: Φ_row = −(F₊ − F₋)/(2δ)."""
    n = plan.n_atoms
    if len(forces) < plan.n_jobs or any(j not in forces for j in range(plan.n_jobs)):
        raise QdlabError(f"only {len(forces)} of {plan.n_jobs} displacements were computed")
    plus = np.stack([forces[2 * row] for row in range(3 * n)]).reshape(3 * n, 3 * n)
    minus = np.stack([forces[2 * row + 1] for row in range(3 * n)]).reshape(3 * n, 3 * n)
    phi = -(plus - minus) / (2 * plan.delta)
    return 0.5 * (phi + phi.T)
