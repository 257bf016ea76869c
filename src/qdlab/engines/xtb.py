"""GFN1/GFN2-xTB through tblite (reference labeller for small clusters).

Exposes energy, forces, Mulliken charges, dipole and the HOMO/LUMO energies (eV) of the
converged calculation. Slow beyond ~100 atoms on 2 cores (≈4 s for 64 atoms, ≈10 min for 189).
The model's net charge defaults to ``atoms.info["charge"]`` (written by the builder).
"""

from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator, all_changes
from ase.units import Hartree

from qdlab.errors import QdlabError

METHODS = {"gfn1": "GFN1-xTB", "gfn2": "GFN2-xTB"}


class XTB(Calculator):
    """tblite GFN-xTB with HOMO/LUMO energies in ``results['homo']``, ``results['lumo']`` (eV)."""

    implemented_properties = ["energy", "free_energy", "forces", "charges", "dipole"]

    def __init__(self, method: str = "gfn2", charge: int | None = None, uhf: int = 0,
                 accuracy: float = 1.0, max_iterations: int = 250, **kwargs):
        super().__init__(**kwargs)
        key = method.lower().replace("-xtb", "").replace("_xtb", "")
        if key not in METHODS:
            raise QdlabError(f"xTB method must be GFN1-xTB or GFN2-xTB (gfn1, gfn2), not {method!r}")
        self.method = METHODS[key]
        self.charge = charge
        self.uhf = uhf
        self.accuracy = accuracy
        self.max_iterations = max_iterations

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        try:
            from tblite.interface import Calculator as TBCalc
        except ImportError:
            raise QdlabError("xTB needs tblite: pip install tblite==0.8.0") from None
        a = self.atoms
        charge = self.charge if self.charge is not None else int(a.info.get("charge", 0))
        from ase.units import Bohr

        calc = TBCalc(self.method, a.numbers, a.positions / Bohr, charge=charge, uhf=self.uhf)
        calc.set("accuracy", self.accuracy)
        calc.set("max-iter", self.max_iterations)
        calc.set("verbosity", 0)
        try:
            res = calc.singlepoint()
        except RuntimeError as exc:
            raise QdlabError(f"xTB failed: {' '.join(str(exc).split())}") from None
        energy = float(res.get("energy")) * Hartree
        forces = -np.asarray(res.get("gradient")) * Hartree / Bohr
        eps = np.asarray(res.get("orbital-energies")) * Hartree
        occ = np.asarray(res.get("orbital-occupations"))
        occupied = occ > 1e-6
        self.results = {
            "energy": energy, "free_energy": energy, "forces": forces,
            "charges": np.asarray(res.get("charges")),
            "dipole": np.asarray(res.get("dipole")) * Bohr,
            "homo": float(eps[occupied].max()) if occupied.any() else float("nan"),
            "lumo": float(eps[~occupied].min()) if (~occupied).any() else float("nan"),
        }
