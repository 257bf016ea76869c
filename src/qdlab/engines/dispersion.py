"""D3 dispersion (the ``dftd3`` package) added on top of any engine (ASE SumCalculator)."""

from __future__ import annotations

from ase.calculators.calculator import Calculator
from ase.calculators.mixing import SumCalculator

from qdlab.errors import QdlabError


def d3_calculator(method: str = "PBE", damping: str = "d3bj") -> Calculator:
    """D3 dispersion alone (default D3(BJ) with PBE parameters, as seed 000 for long MD)."""
    try:
        from dftd3.ase import DFTD3
    except ImportError:
        raise QdlabError("D3 needs the dftd3 package: pip install dftd3==1.7.0") from None
    return DFTD3(method=method, damping=damping)


class D3Sum(SumCalculator):
    """An engine + D3: energies and forces add. Offers no analytic Hessian (D3 has none), so
    phonons of a D3 engine use finite differences."""

    def __init__(self, engine: Calculator, d3: Calculator):
        super().__init__([engine, d3])
        self.engine, self.d3 = engine, d3


class D3SumBatched(D3Sum):
    """:class:`D3Sum` of an engine with batched forces (:class:`~qdlab.engines.protocols.BatchedForces`):
    keeps the batch path (the engine's batch + D3 of each structure)."""

    def get_forces_batch(self, frames: list, **kwargs) -> list:
        """Forces (eV/Å) of many structures: the engine's batch + D3 of each."""
        base = self.engine.get_forces_batch(frames, **kwargs)
        out = []
        for a, f in zip(frames, base):
            b = a.copy()
            b.calc = self.d3
            out.append(f + b.get_forces())
        return out


def with_d3(calc: Calculator, method: str = "PBE", damping: str = "d3bj") -> Calculator:
    """``calc`` + D3 dispersion (:class:`D3Sum`): energies and forces add."""
    from qdlab.engines.protocols import BatchedForces

    cls = D3SumBatched if isinstance(calc, BatchedForces) else D3Sum
    return cls(calc, d3_calculator(method, damping))
