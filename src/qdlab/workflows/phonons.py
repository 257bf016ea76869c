"""Γ-point phonons of finite nanocrystals (seed 000, SCIENCE.md §4).

Force constants by central finite differences (every atom ±δ along x, y, z: 6N force calls),
symmetrised; the dynamical matrix D = Φ/√(m_i m_j) is projected onto the complement of the
rigid-body translations and rotations (Eckart) and diagonalised. Frequencies in cm⁻¹, imaginary
modes as negative numbers. Each displacement is appended to a checkpoint file as soon as its
forces are known, so an interrupted run resumes where it stopped. Engines that offer
``get_forces_batch(list_of_atoms)`` (qdlab's CHGNet engine) are called in batches, engines that
offer ``get_hessian(atoms)`` give an analytic Hessian (the classical force field in closed form,
CHGNet by double back-propagation through its autograd forces).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator

from qdlab.errors import QdlabError

#: λ (eV Å⁻² amu⁻¹) → angular frequency² (s⁻²); ν̃ (cm⁻¹) = √(λ·_FAC) / (2π c · 100)
_OMEGA2 = units._e / (units._amu * 1e-20)
_CM1 = 1.0 / (2 * np.pi * units._c * 100.0)


def eigenvalue_to_cm1(lam: np.ndarray) -> np.ndarray:
    """Dynamical-matrix eigenvalues (eV/Å²/amu) → wavenumbers (cm⁻¹), negative for λ < 0."""
    lam = np.asarray(lam, float)
    return np.sign(lam) * np.sqrt(np.abs(lam) * _OMEGA2) * _CM1


@dataclass(frozen=True)
class PhononResult:
    """Γ-point vibrational analysis of a cluster.

    ``frequencies_cm1`` (M,) ascending, imaginary as negative; ``modes`` (M, N, 3) mass-weighted
    eigenvectors, each normalised to 1 (so Σ_atoms |e_k,i|² = 1); ``force_constants_eV_A2`` (3N, 3N)
    symmetrised Hessian; the rigid-body modes removed by the projection are not included.
    """

    frequencies_cm1: np.ndarray
    modes: np.ndarray = field(repr=False)
    force_constants_eV_A2: np.ndarray = field(repr=False)
    masses_amu: np.ndarray = field(repr=False)
    n_rigid: int
    n_imaginary: int
    method: str
    seconds: float
    seconds_in_engine: float

    @property
    def n_modes(self) -> int:
        return len(self.frequencies_cm1)


def checkpoint_key(atoms: Atoms, delta: float, engine: str) -> str:
    """Identity of a Hessian run (numbers, positions to 1e-10 Å, δ, engine) stored in its checkpoint."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(atoms.numbers).tobytes())
    h.update(np.round(atoms.positions, 10).tobytes())
    h.update(f"{delta:.8g}|{engine}".encode())
    return h.hexdigest()


class DisplacementCheckpoint:
    """Append-only record file: (index int64, forces N×3 float64) per finished displacement."""

    def __init__(self, path: Path, key: str, n_atoms: int):
        self.path = path
        self.meta = path.with_suffix(path.suffix + ".json")
        self.n = n_atoms
        self.rec = 8 + 8 * 3 * n_atoms
        if self.meta.exists():
            meta = json.loads(self.meta.read_text())
            if meta.get("key") != key:
                raise QdlabError(f"checkpoint {path} belongs to another structure/engine/δ; delete it to start over")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():
                path.unlink()
            tmp = self.meta.with_suffix(".tmp")
            tmp.write_text(json.dumps({"key": key, "n_atoms": n_atoms}))
            os.replace(tmp, self.meta)

    def load(self) -> dict[int, np.ndarray]:
        if not self.path.exists():
            return {}
        data = self.path.read_bytes()
        n_full = len(data) // self.rec
        out = {}
        for k in range(n_full):
            chunk = data[k * self.rec:(k + 1) * self.rec]
            idx = int(np.frombuffer(chunk[:8], np.int64)[0])
            out[idx] = np.frombuffer(chunk[8:], np.float64).reshape(self.n, 3).copy()
        if len(data) % self.rec:  # drop a half-written record
            with open(self.path, "r+b") as fh:
                fh.truncate(n_full * self.rec)
        return out

    def append(self, idx: int, forces: np.ndarray) -> None:
        with open(self.path, "ab") as fh:
            fh.write(np.int64(idx).tobytes() + np.ascontiguousarray(forces, np.float64).tobytes())
            fh.flush()
            os.fsync(fh.fileno())

    def remove(self) -> None:
        for p in (self.path, self.meta):
            if p.exists():
                p.unlink()


def displacements(atoms: Atoms, delta: float, indices: np.ndarray | None = None,
                  jobs: Iterable[int] | None = None) -> list[tuple[int, Atoms]]:
    """The 6N displaced structures: job j = 2·(3i + k) + (0 for +δ, 1 for −δ).

    ``indices`` limits them to some atoms; ``jobs`` builds only the listed job numbers (a chunk of
    a large Hessian need not copy the structure 6N times).
    """
    if jobs is None:
        idx = np.arange(len(atoms)) if indices is None else np.asarray(indices)
        jobs = [2 * (3 * int(i) + k) + s for i in idx for k in range(3) for s in range(2)]
    out = []
    for j in jobs:
        i, k, s = j // 6, (j // 2) % 3, j % 2
        a = atoms.copy()
        a.calc = None
        a.constraints = []
        a.positions[i, k] += (1.0, -1.0)[s] * delta
        out.append((int(j), a))
    return out


_WORKER_CALC: Calculator | None = None


def _init_worker(spec: dict) -> None:
    global _WORKER_CALC
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:  # Linux: end with the parent (a killed run must not leave workers computing for nothing)
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6").prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    from qdlab.engines import get_calculator

    _WORKER_CALC = get_calculator(**spec)


def _worker_forces(chunk: list[tuple[int, np.ndarray]]) -> list[tuple[int, np.ndarray, float]]:
    out = []
    for j, a in chunk:
        a.calc = _WORKER_CALC
        t0 = time.perf_counter()
        f = a.get_forces()
        out.append((j, np.asarray(f, float), time.perf_counter() - t0))
    return out


def force_constants(atoms: Atoms, calc: Calculator, delta: float = 0.01, *,
                    checkpoint: str | os.PathLike | None = None, batch_size: int | None = None,
                    progress: Callable[[int, int], None] | None = None,
                    engine_name: str | None = None, workers: int = 1,
                    engine_spec: dict | None = None) -> tuple[np.ndarray, float]:
    """Symmetrised force-constant matrix Φ (3N×3N, eV/Å²) by central differences.

    Returns (Φ, seconds spent inside the engine, summed over workers). ``batch_size`` > 1 uses
    the engine's ``get_forces_batch`` when it has one. ``workers`` > 1 spreads the displacements
    over processes, each building its own engine from ``engine_spec`` (keyword arguments of
    :func:`qdlab.engines.get_calculator`).
    """
    if delta <= 0:
        raise QdlabError("displacement δ must be > 0 Å")
    n = len(atoms)
    jobs = displacements(atoms, delta)
    ck = None
    done: dict[int, np.ndarray] = {}
    if checkpoint is not None:
        key = checkpoint_key(atoms, delta, engine_name or type(calc).__name__)
        ck = DisplacementCheckpoint(Path(checkpoint), key, n)
        done = ck.load()
    todo = [(j, a) for j, a in jobs if j not in done]
    t_engine = 0.0
    if progress:
        progress(len(done), len(jobs))
    def record(j: int, f: np.ndarray) -> None:
        if not np.all(np.isfinite(f)):
            raise QdlabError(f"engine returned non-finite forces for displacement {j}")
        done[j] = f
        if ck is not None:
            ck.append(j, f)

    if workers > 1 and todo:
        if engine_spec is None:
            raise QdlabError("workers > 1 needs engine_spec (the engine is rebuilt in each process)")
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        size = max(1, min(16, len(todo) // (4 * workers)))
        chunks = [todo[k:k + size] for k in range(0, len(todo), size)]
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                                 initargs=(engine_spec,)) as pool:
            for fut in as_completed([pool.submit(_worker_forces, c) for c in chunks]):
                for j, f, dt in fut.result():
                    t_engine += dt
                    record(j, f)
                if progress:
                    progress(len(done), len(jobs))
        todo = []
    batched = batch_size and batch_size > 1 and hasattr(calc, "get_forces_batch")
    step = batch_size if batched else 1
    for b0 in range(0, len(todo), step):
        chunk = todo[b0:b0 + step]
        t0 = time.perf_counter()
        if batched:
            forces = calc.get_forces_batch([a for _, a in chunk])
        else:
            a = chunk[0][1]
            a.calc = calc
            forces = [a.get_forces()]
            a.calc = None
        t_engine += time.perf_counter() - t0
        for (j, _), f in zip(chunk, forces):
            record(j, np.asarray(f, float))
        if progress:
            progress(len(done), len(jobs))
    phi = np.empty((3 * n, 3 * n))
    for row in range(3 * n):
        phi[row] = -(done[2 * row] - done[2 * row + 1]).ravel() / (2 * delta)
    return 0.5 * (phi + phi.T), t_engine


def rigid_body_basis(positions: np.ndarray, masses: np.ndarray, tol: float = 1e-6) -> np.ndarray:
    """Orthonormal mass-weighted translation/rotation vectors (k × 3N, k = 6, or 5 if linear)."""
    sm = np.sqrt(masses)
    com = (masses[:, None] * positions).sum(0) / masses.sum()
    r = positions - com
    vecs = []
    for ax in range(3):
        t = np.zeros_like(positions)
        t[:, ax] = sm
        vecs.append(t.ravel())
    for ax in range(3):
        e = np.zeros(3)
        e[ax] = 1.0
        vecs.append((np.cross(e, r) * sm[:, None]).ravel())
    u, s, _ = np.linalg.svd(np.array(vecs).T, full_matrices=False)
    return u[:, s > tol * s.max()].T


def vibrational_analysis(phi: np.ndarray, masses: np.ndarray, positions: np.ndarray | None = None,
                         project: bool = True) -> tuple[np.ndarray, np.ndarray, int]:
    """Frequencies (cm⁻¹) and mass-weighted modes (M, N, 3) from force constants.

    With ``project`` the rigid-body space (Eckart) is projected out and its modes dropped.
    Returns (frequencies, modes, n_rigid).
    """
    n = len(masses)
    inv_sm = 1.0 / np.sqrt(np.repeat(masses, 3))
    d = phi * inv_sm[:, None] * inv_sm[None, :]
    n_rigid = 0
    if project:
        if positions is None:
            raise QdlabError("projection needs the positions")
        b = rigid_body_basis(positions, masses)
        n_rigid = len(b)
        p = np.eye(3 * n) - b.T @ b
        d = p @ d @ p
        # push the rigid space far above the spectrum, then drop it
        shift = 10.0 * (np.abs(d).max() + 1.0)
        d = d + shift * (b.T @ b)
    lam, vec = np.linalg.eigh(0.5 * (d + d.T))
    if project:
        keep = np.argsort(lam)[: 3 * n - n_rigid]
        lam, vec = lam[keep], vec[:, keep]
    return eigenvalue_to_cm1(lam), vec.T.reshape(-1, n, 3), n_rigid


def phonons(atoms: Atoms, calc: Calculator, delta: float = 0.01, *, project: bool = True,
            method: str = "fd", checkpoint: str | os.PathLike | None = None, batch_size: int | None = None,
            progress: Callable[[int, int], None] | None = None, engine_name: str | None = None,
            imaginary_tol_cm1: float = 5.0, workers: int = 1, engine_spec: dict | None = None) -> PhononResult:
    """Γ-point phonons of ``atoms`` with ``calc`` (relax the structure first).

    ``method``: ``"fd"`` (central differences, default) or ``"analytic"`` (engine's ``get_hessian``).
    Imaginary modes larger than ``imaginary_tol_cm1`` trigger a warning with their count and size.
    """
    t0 = time.perf_counter()
    if method == "analytic":
        if not hasattr(calc, "get_hessian"):
            raise QdlabError(f"{type(calc).__name__} offers no analytic Hessian; use method='fd'")
        ts = time.perf_counter()
        phi = np.asarray(calc.get_hessian(atoms), float)
        phi = 0.5 * (phi + phi.T)
        t_engine = time.perf_counter() - ts
    elif method == "fd":
        phi, t_engine = force_constants(atoms, calc, delta, checkpoint=checkpoint, batch_size=batch_size,
                                        progress=progress, engine_name=engine_name, workers=workers,
                                        engine_spec=engine_spec)
    else:
        raise QdlabError(f"method must be 'fd' or 'analytic', not {method!r}")
    masses = atoms.get_masses()
    freqs, modes, n_rigid = vibrational_analysis(phi, masses, atoms.positions, project)
    imag = freqs[freqs < -imaginary_tol_cm1]
    if len(imag):
        warnings.warn(f"{len(imag)} imaginary mode(s) below −{imaginary_tol_cm1:g} cm⁻¹, largest "
                      f"{-imag.min():.1f}i cm⁻¹: the structure is not at a minimum (relax tighter)", stacklevel=2)
    return PhononResult(frequencies_cm1=freqs, modes=modes, force_constants_eV_A2=phi, masses_amu=masses,
                        n_rigid=n_rigid, n_imaginary=int(len(imag)), method=method,
                        seconds=time.perf_counter() - t0, seconds_in_engine=t_engine)


def harmonicity(atoms: Atoms, calc: Calculator, amplitudes=(-0.03, -0.02, -0.01, 0.01, 0.02, 0.03),
                indices=None) -> np.ndarray:
    """Seed 000 Fig. S2: R² of a linear fit of an atom's own force vs its displacement.

    Each selected atom is displaced alone along x, y and z by each amplitude (Å); returns R²
    per (atom, direction), shape (len(indices), 3). ≈1 means harmonic for |u| ≤ 0.03 Å.
    """
    idx = np.arange(len(atoms)) if indices is None else np.asarray(indices)
    amps = np.asarray(amplitudes, float)
    r2 = np.empty((len(idx), 3))
    a = atoms.copy()
    a.calc = calc
    for n, i in enumerate(idx):
        for k in range(3):
            f = []
            for u in amps:
                a.positions[i, k] += u
                f.append(a.get_forces()[i, k])
                a.positions[i, k] -= u
            f = np.array(f)
            coef = np.polyfit(amps, f, 1)
            resid = f - np.polyval(coef, amps)
            ss = ((f - f.mean()) ** 2).sum()
            r2[n, k] = 1.0 - (resid ** 2).sum() / ss if ss > 0 else 1.0
    return r2
