"""Optional fast paths of an engine beside the ASE Calculator interface, as typed protocols.

:class:`BatchedForces` (``get_forces_batch``: the forces of many structures per call, qdlab's CHGNet
engine) and :class:`AnalyticHessian` (``get_hessian``: exact second derivatives, the classical
force field and CHGNet). Workflows test for them with ``isinstance`` and fall back to plain
``get_forces`` calls. The D3 wrapper (:func:`qdlab.engines.dispersion.with_d3`) keeps batched forces
(the wrapped engine's batch + D3 per structure) and has no analytic Hessian.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator


@runtime_checkable
class BatchedForces(Protocol):
    """An engine that computes the forces (eV/Å) of many structures in one call."""

    def get_forces_batch(self, frames: list[Atoms]) -> list[np.ndarray]: ...


@runtime_checkable
class AnalyticHessian(Protocol):
    """An engine that gives the exact Hessian ∂²E/∂x∂x' (3N × 3N, eV/Å²) of a structure."""

    def get_hessian(self, atoms: Atoms) -> np.ndarray: ...


def compute_forces(calc: Calculator, frames: Sequence[Atoms], batch_size: int | None = None) -> list[np.ndarray]:
    """Forces (eV/Å) of each frame (the frames are not modified): ``batch_size`` frames per call
    through the engine's :class:`BatchedForces` path when it has one and ``batch_size`` is given,
    otherwise one ``get_forces`` call per frame."""
    if batch_size and isinstance(calc, BatchedForces):
        out: list[np.ndarray] = []
        for b in range(0, len(frames), batch_size):
            out += [np.asarray(f, float) for f in calc.get_forces_batch([a.copy() for a in frames[b:b + batch_size]])]
        return out
    out = []
    for a in frames:
        b = a.copy()
        b.calc = calc
        out.append(np.array(b.get_forces(), float))
    return out
