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


def with_d3(calc: Calculator, method: str = "PBE", damping: str = "d3bj") -> Calculator:
    """``calc`` + D3 dispersion: energies and forces add."""
    return SumCalculator([calc, d3_calculator(method, damping)])
