"""Outside engines for the ``--engine module:factory`` tests: a working LJ and one returning NaN."""

from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.lj import LennardJones


def lj(**_: object) -> Calculator:
    return LennardJones(sigma=3.0, epsilon=0.01, rc=12.0)


class NaNCalc(Calculator):
    implemented_properties = ["energy", "forces"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results = {"energy": float("nan"), "forces": np.full((len(self.atoms), 3), np.nan)}


def nan() -> Calculator:
    return NaNCalc()


def not_a_calculator() -> int:
    return 3
