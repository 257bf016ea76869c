"""Γ-point phonons of finite nanocrystals (seed 000, SCIENCE.md §4).

Force constants by central finite differences (every atom ±δ along x, y, z: 6N force calls),
planned, evaluated and assembled by :mod:`qdlab.workflows.hessian`, symmetrised; the dynamical
matrix D = Φ/√(m_i m_j) is projected onto the complement of the rigid-body translations and
rotations (Eckart) and diagonalised (:func:`phonons_from_force_constants`). Frequencies in cm⁻¹, imaginary
modes as negative numbers. Each displacement is appended to a checkpoint file as soon as its
forces are known, so an interrupted run resumes where it stopped. Engines that offer
``get_forces_batch(list_of_atoms)`` (qdlab's CHGNet engine) are called in batches, engines that
offer ``get_hessian(atoms)`` give an analytic Hessian (the classical force field in closed form,
CHGNet by double back-propagation through its autograd forces).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from pydantic import BaseModel, ConfigDict, Field

from qdlab.engines.protocols import AnalyticHessian
from qdlab.engines.spec import EngineSpec, as_engine_spec
from qdlab.errors import QdlabError
from qdlab.workflows.hessian import (  # noqa: F401  (re-exported: the phonon workflow's public API)
    CheckpointDamaged,
    DisplacementPlan,
    HessianCheckpoint,
    assemble_force_constants,
    checkpoint_key,
    displacements,
    evaluate,
    evaluate_chunk,
    plan_displacements,
)

#: λ (eV Å⁻² amu⁻¹) → angular frequency² (s⁻²); ν̃ (cm⁻¹) = √(λ·_FAC) / (2π c · 100)
_OMEGA2 = units._e / (units._amu * 1e-20)
_CM1 = 1.0 / (2 * np.pi * units._c * 100.0)


def eigenvalue_to_cm1(lam: np.ndarray) -> np.ndarray:
    """Dynamical-matrix eigenvalues (eV/Å²/amu) → wavenumbers (cm⁻¹), negative for λ < 0."""
    lam = np.asarray(lam, float)
    return np.sign(lam) * np.sqrt(np.abs(lam) * _OMEGA2) * _CM1


class PhononSettings(BaseModel):
    """Settings of the phonon workflow, shared by ``qdlab phonons``, the API and the campaign's
    phonons step (bounds here only): ``delta`` finite-difference displacement (Å), ``method`` fd |
    analytic, ``batch`` displacements per engine call (batched engines), ``sigma_cm1`` Gaussian
    smearing of the DOS (cm⁻¹)."""

    model_config = ConfigDict(extra="forbid")

    delta: float = Field(0.01, gt=0, description="finite-difference displacement, Å")
    method: Literal["fd", "analytic"] = "fd"
    batch: int | None = Field(None, ge=1, description="displacements per engine call (batched engines)")
    sigma_cm1: float = Field(3.0, gt=0, description="Gaussian smearing of the DOS, cm⁻¹")


@dataclass(frozen=True)
class PhononResult:
    """Γ-point vibrational analysis of a cluster.

    ``frequencies_cm1`` (M,) ascending, imaginary as negative; ``modes`` (M, N, 3) mass-weighted
    eigenvectors, each normalised to 1 (so Σ_atoms |e_k,i|² = 1); ``force_constants_eV_A2`` (3N, 3N)
    symmetrised Hessian; the rigid-body modes removed by the projection are not included;
    ``displacements_reused``: finite-difference forces taken from a checkpoint instead of computed.
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
    displacements_reused: int = 0

    @property
    def n_modes(self) -> int:
        return len(self.frequencies_cm1)

    def to_dict(self) -> dict:
        """Scalars of the result (JSON-ready; the arrays are in :meth:`save`'s NPZ)."""
        f = self.frequencies_cm1
        return {"n_modes": self.n_modes, "n_rigid_projected": self.n_rigid, "n_imaginary": self.n_imaginary,
                "lowest_cm1": float(f.min()) if len(f) else None, "highest_cm1": float(f.max()) if len(f) else None,
                "method": self.method, "seconds": self.seconds, "seconds_in_engine": self.seconds_in_engine,
                "displacements_reused": self.displacements_reused}

    def save(self, path: str | os.PathLike) -> Path:
        """All arrays (frequencies, modes, force constants, masses) and scalars in one NPZ (atomic)."""
        from qdlab.store.files import atomic_path

        final = Path(path)
        with atomic_path(final) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, frequencies_cm1=self.frequencies_cm1, modes=self.modes,
                                    force_constants_eV_A2=self.force_constants_eV_A2, masses_amu=self.masses_amu,
                                    n_rigid=self.n_rigid, method=self.method, n_imaginary=self.n_imaginary,
                                    seconds=self.seconds, seconds_in_engine=self.seconds_in_engine,
                                    displacements_reused=self.displacements_reused)
        return final

    @classmethod
    def load(cls, path: str | os.PathLike) -> PhononResult:
        """A result saved by :meth:`save` (older files without timings read them as 0)."""
        p = Path(path)
        if not p.is_file():
            raise QdlabError(f"phonon result {p} not found")
        with np.load(p) as z:
            scalar = {k: z[k].item() for k in ("n_imaginary", "seconds", "seconds_in_engine", "displacements_reused")
                      if k in z.files}
            return cls(frequencies_cm1=z["frequencies_cm1"], modes=z["modes"],
                       force_constants_eV_A2=z["force_constants_eV_A2"], masses_amu=z["masses_amu"],
                       n_rigid=int(z["n_rigid"]), n_imaginary=int(scalar.get("n_imaginary", 0)),
                       method=str(z["method"]), seconds=float(scalar.get("seconds", 0.0)),
                       seconds_in_engine=float(scalar.get("seconds_in_engine", 0.0)),
                       displacements_reused=int(scalar.get("displacements_reused", 0)))


def force_constants(atoms: Atoms, calc: Calculator | None, delta: float = 0.01, *,
                    checkpoint: str | os.PathLike | None = None, batch_size: int | None = None,
                    progress: Callable[[int, int], None] | None = None,
                    engine_name: str | None = None, workers: int = 1,
                    engine_spec: EngineSpec | dict | None = None) -> tuple[np.ndarray, float]:
    """Symmetrised force-constant matrix Φ (3N×3N, eV/Å²) by central differences.

    Returns (Φ, seconds spent inside the engine, summed over workers). ``batch_size`` > 1 uses
    the engine's batched forces when it has them. ``workers`` > 1 spreads the displacements over
    processes, each building its own engine from ``engine_spec``. ``calc`` may be None when
    ``engine_spec`` is given (built only if a displacement is left to compute).
    """
    run = fd_hessian(atoms, calc, delta, checkpoint=checkpoint, batch_size=batch_size, progress=progress,
                     engine_name=engine_name, workers=workers, engine_spec=engine_spec)
    return run.force_constants_eV_A2, run.seconds_in_engine


@dataclass(frozen=True)
class HessianRun:
    """A finished finite-difference Hessian: Φ (eV/Å²), engine seconds, displacements reused
    from the checkpoint instead of computed."""

    force_constants_eV_A2: np.ndarray = field(repr=False)
    seconds_in_engine: float
    reused: int


def fd_hessian(atoms: Atoms, calc: Calculator | None, delta: float = 0.01, *,
               checkpoint: str | os.PathLike | None = None, batch_size: int | None = None,
               progress: Callable[[int, int], None] | None = None, engine_name: str | None = None,
               workers: int = 1, engine_spec: EngineSpec | dict | None = None) -> HessianRun:
    """Plan → evaluate (resuming the checkpoint, merging chunk files) → assemble; see
    :mod:`qdlab.workflows.hessian`. The checkpoint key's engine part is ``engine_name``, else
    the engine settings' :meth:`~EngineSpec.force_label`, else the calculator's class name."""
    spec = as_engine_spec(engine_spec)
    label = engine_name or (spec.force_label() if spec is not None else type(calc).__name__)
    plan = plan_displacements(atoms, delta, label)
    ck = plan.checkpoint(checkpoint) if checkpoint is not None else None
    done: dict[int, np.ndarray] = ck.load() if ck is not None else {}
    if ck is not None:
        ck.merge()
    reused = len(done)
    if progress:
        progress(reused, plan.n_jobs)

    def sink(j: int, f: np.ndarray) -> None:
        done[j] = f
        if ck is not None:
            ck.append(j, f)

    todo = [j for j in range(plan.n_jobs) if j not in done]
    t_engine = evaluate(plan, todo, calc=calc, engine=spec, batch_size=batch_size, workers=workers, sink=sink,
                        progress=(lambda n: progress(reused + n, plan.n_jobs)) if progress else None)
    return HessianRun(assemble_force_constants(plan, done), t_engine, reused)


def rigid_body_basis(positions: np.ndarray, masses: np.ndarray, tol: float = 1e-6, periodic: bool = False) -> np.ndarray:
    """Orthonormal mass-weighted translation/rotation vectors (k × 3N, k = 6, or 5 if linear; a periodic
    cell: the 3 translations only, a rotation of a crystal is not a zero mode)."""
    sm = np.sqrt(masses)
    com = (masses[:, None] * positions).sum(0) / masses.sum()
    r = positions - com
    vecs = []
    for ax in range(3):
        t = np.zeros_like(positions)
        t[:, ax] = sm
        vecs.append(t.ravel())
    for ax in range(0 if periodic else 3):
        e = np.zeros(3)
        e[ax] = 1.0
        vecs.append((np.cross(e, r) * sm[:, None]).ravel())
    u, s, _ = np.linalg.svd(np.array(vecs).T, full_matrices=False)
    return u[:, s > tol * s.max()].T


def vibrational_analysis(phi: np.ndarray, masses: np.ndarray, positions: np.ndarray | None = None,
                         project: bool = True, periodic: bool = False) -> tuple[np.ndarray, np.ndarray, int]:
    """Frequencies (cm⁻¹) and mass-weighted modes (M, N, 3) from force constants.

    With ``project`` the rigid-body space (Eckart; translations only when ``periodic``) is projected
    out and its modes dropped.
    Returns (frequencies, modes, n_rigid).
    """
    n = len(masses)
    inv_sm = 1.0 / np.sqrt(np.repeat(masses, 3))
    d = phi * inv_sm[:, None] * inv_sm[None, :]
    n_rigid = 0
    if project:
        if positions is None:
            raise QdlabError("projection needs the positions")
        b = rigid_body_basis(positions, masses, periodic=periodic)
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


def phonons_from_force_constants(atoms: Atoms, phi: np.ndarray, *, project: bool = True, method: str = "fd",
                                  seconds: float = 0.0, seconds_in_engine: float = 0.0,
                                  displacements_reused: int = 0, imaginary_tol_cm1: float = 5.0) -> PhononResult:
    """Assemble a :class:`PhononResult` from force constants Φ (3N×3N, eV/Å²) of ``atoms``.

    Imaginary modes larger than ``imaginary_tol_cm1`` trigger a warning with their count and size.
    """
    masses = atoms.get_masses()
    freqs, modes, n_rigid = vibrational_analysis(phi, masses, atoms.positions, project, periodic=bool(np.all(atoms.pbc)))
    imag = freqs[freqs < -imaginary_tol_cm1]
    if len(imag):
        warnings.warn(f"{len(imag)} imaginary mode(s) below −{imaginary_tol_cm1:g} cm⁻¹, largest "
                      f"{-imag.min():.1f}i cm⁻¹: the structure is not at a minimum (relax tighter)", stacklevel=3)
    return PhononResult(frequencies_cm1=freqs, modes=modes, force_constants_eV_A2=phi, masses_amu=masses,
                        n_rigid=n_rigid, n_imaginary=int(len(imag)), method=method, seconds=seconds,
                        seconds_in_engine=seconds_in_engine, displacements_reused=displacements_reused)


def analytic_force_constants(atoms: Atoms, calc: Calculator) -> tuple[np.ndarray, float]:
    """Symmetrised Φ (eV/Å²) from the engine's :class:`AnalyticHessian` and the seconds it took."""
    if not isinstance(calc, AnalyticHessian):
        raise QdlabError(f"{type(calc).__name__} offers no analytic Hessian; use method='fd'")
    ts = time.perf_counter()
    phi = np.asarray(calc.get_hessian(atoms), float)
    return 0.5 * (phi + phi.T), time.perf_counter() - ts


def phonons(atoms: Atoms, calc: Calculator | None, delta: float = 0.01, *, project: bool = True,
            method: str = "fd", checkpoint: str | os.PathLike | None = None, batch_size: int | None = None,
            progress: Callable[[int, int], None] | None = None, engine_name: str | None = None,
            imaginary_tol_cm1: float = 5.0, workers: int = 1,
            engine_spec: EngineSpec | dict | None = None) -> PhononResult:
    """Γ-point phonons of ``atoms`` with ``calc`` (relax the structure first).

    ``method``: ``"fd"`` (central differences, default; see :func:`fd_hessian`) or ``"analytic"``
    (the engine's ``get_hessian``). ``calc`` may be None when ``engine_spec`` is given: the engine
    is then built only if needed (a complete checkpoint needs none).
    """
    t0 = time.perf_counter()
    reused = 0
    if method == "analytic":
        if calc is None and engine_spec is not None:
            calc = as_engine_spec(engine_spec).calculator()
        phi, t_engine = analytic_force_constants(atoms, calc)
    elif method == "fd":
        run = fd_hessian(atoms, calc, delta, checkpoint=checkpoint, batch_size=batch_size, progress=progress,
                         engine_name=engine_name, workers=workers, engine_spec=engine_spec)
        phi, t_engine, reused = run.force_constants_eV_A2, run.seconds_in_engine, run.reused
    else:
        raise QdlabError(f"method must be 'fd' or 'analytic', not {method!r}")
    return phonons_from_force_constants(atoms, phi, project=project, method=method,
                                        seconds=time.perf_counter() - t0, seconds_in_engine=t_engine,
                                        displacements_reused=reused, imaginary_tol_cm1=imaginary_tol_cm1)


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
