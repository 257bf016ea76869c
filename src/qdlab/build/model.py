"""Per-atom labels and model metadata shared by every builder.

Every model qdlab builds is an :class:`ase.Atoms` with these per-atom arrays (extended XYZ keeps
them):

``role``       ``"A"``, ``"B"``, ``"X"`` (A-site cation, metal, anion of the inorganic core; PbS: Pb is
               ``"B"``, S is ``"X"``) or ``"ligand"``
``ligand``     ligand name (``"-"`` for core atoms)
``ligand_id``  index of the ligand molecule (−1 for core atoms)
``depth``      depth below the surface in half unit cells (0 = surface layer; −1 for ligand atoms)
``facet``      facet(s) an atom of the outer unit cell belongs to (e.g. ``"-x"``, ``"+x+y"``;
               ``"-"`` deeper inside); a ligand carries the facet of its site
``motif``      True for ligand atoms that bind at the surface site
``shell``      True for core atoms in the shell region of a core/shell model
plus ``initial_charges`` (e): formal ionic charges, or the partial charges of the
surface-charge strategy / of the ligands (Gasteiger).

``atoms.info`` holds ``charge`` (net charge an electronic-structure code should use, e),
``extra_electrons``, ``kind``, ``recipe`` (JSON), ``seed``, ``qdlab_version`` and a few sizes.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, chemical_symbols

from qdlab import __version__
from qdlab.errors import BuildError

NONE = "-"  # placeholder for string labels (extended XYZ cannot store empty strings)

# Common oxidation states used for formal ionic charges.
_ALKALI = {"Li", "Na", "K", "Rb", "Cs", "Fr"}
_ALKALINE_EARTH = {"Be", "Mg", "Ca", "Sr", "Ba", "Ra"}
_HALOGENS = {"F", "Cl", "Br", "I", "At"}
_CHALCOGENS = {"O", "S", "Se", "Te"}


def formal_charge(symbol: str, role: str) -> int:
    """Formal ionic charge (e) of an A, B or X ion; B charges follow from neutrality of ABX3."""
    if role == "A":
        if symbol in _ALKALI:
            return 1
        if symbol in _ALKALINE_EARTH:
            return 2
        raise BuildError(f"A-site element {symbol} is not an alkali or alkaline-earth metal")
    if role == "X":
        if symbol in _HALOGENS:
            return -1
        if symbol in _CHALCOGENS:
            return -2
        raise BuildError(f"X-site element {symbol} is not a halogen or chalcogen")
    raise BuildError(f"no formal charge rule for role {role}")


def check_element(symbol: str) -> str:
    """Return ``symbol`` if it is a chemical element, else raise a one-line error."""
    if symbol not in atomic_numbers or symbol == "X":
        raise BuildError(f"unknown element '{symbol}'")
    return symbol


@dataclass(frozen=True)
class PerovskiteComposition:
    """An ABX3 composition with formal charges (e)."""

    A: str
    B: str
    X: str
    q_A: int
    q_B: int
    q_X: int

    @property
    def name(self) -> str:
        return f"{self.A}{self.B}{self.X}3"


def parse_perovskite(formula: str) -> PerovskiteComposition:
    """Parse ``"CsPbBr3"``-style ABX3 formulas (A, B, X element symbols in that order)."""
    tokens = re.findall(r"([A-Z][a-z]?)(\d*)", formula)
    if "".join(s + n for s, n in tokens) != formula or len(tokens) != 3:
        raise BuildError(f"composition '{formula}' is not of the form ABX3 (e.g. CsPbBr3)")
    (a, na), (b, nb), (x, nx) = tokens
    for sym in (a, b, x):
        check_element(sym)
    if na not in ("", "1") or nb not in ("", "1") or nx != "3":
        raise BuildError(f"composition '{formula}' is not of the form ABX3 (e.g. CsPbBr3)")
    q_a, q_x = formal_charge(a, "A"), formal_charge(x, "X")
    q_b = -(q_a + 3 * q_x)
    if q_b <= 0:
        raise BuildError(f"composition '{formula}' gives a non-positive B charge ({q_b})")
    return PerovskiteComposition(a, b, x, q_a, q_b, q_x)


def new_labels(atoms: Atoms, role: np.ndarray, depth: np.ndarray, facet: np.ndarray) -> None:
    """Attach the standard per-atom label arrays for core atoms (no ligands yet)."""
    n = len(atoms)
    atoms.new_array("role", np.asarray(role, dtype="U8"))
    atoms.new_array("ligand", np.full(n, NONE, dtype="U16"))
    atoms.new_array("ligand_id", np.full(n, -1, dtype=int))
    atoms.new_array("depth", np.asarray(depth, dtype=int))
    atoms.new_array("facet", np.asarray(facet, dtype="U16"))
    atoms.new_array("motif", np.zeros(n, dtype=bool))
    atoms.new_array("shell", np.zeros(n, dtype=bool))


def counts(atoms: Atoms) -> dict[str, int]:
    """Element counts in Hill order (C, H, then alphabetical)."""
    c = Counter(atoms.get_chemical_symbols())
    return {s: c[s] for s in sorted(c, key=lambda s: (s != "C", s != "H", s))}


def ligand_counts(atoms: Atoms) -> dict[str, int]:
    """Number of ligand molecules per ligand name."""
    if "ligand_id" not in atoms.arrays:
        return {}
    ids = atoms.arrays["ligand_id"]
    names = atoms.arrays["ligand"]
    seen: dict[int, str] = {}
    for i in np.flatnonzero(ids >= 0):
        seen.setdefault(int(ids[i]), str(names[i]))
    return dict(sorted(Counter(seen.values()).items()))


def finalize(atoms: Atoms, *, kind: str, recipe: dict, seed: int, extra_electrons: int = 0,
             vacuum: float | None = 15.0) -> Atoms:
    """Centre the model in vacuum, check charge bookkeeping and write the metadata into ``info``.

    ``info["charge"]`` is the net charge (e): sum of the per-atom formal/partial charges minus the
    extra electrons; electronic-structure engines use it as the system charge.
    """
    if vacuum is not None and not atoms.pbc.any():
        atoms.center(vacuum=vacuum)
    q = float(atoms.get_initial_charges().sum()) - extra_electrons
    net = int(round(q))
    if abs(q - net) > 1e-6:
        raise BuildError(f"per-atom charges sum to a non-integer net charge {q:.6f} e")
    atoms.info.update(
        kind=kind,
        formula=atoms.get_chemical_formula(mode="hill"),
        charge=net,
        extra_electrons=int(extra_electrons),
        seed=int(seed),
        qdlab_version=__version__,
        recipe=json.dumps(recipe, sort_keys=True),
    )
    return atoms


def summary(atoms: Atoms) -> dict:
    """Machine-readable summary of a model (the ``--json`` output of ``qdlab build``)."""
    return {
        "formula": atoms.get_chemical_formula(mode="hill"),
        "n_atoms": len(atoms),
        "charge": int(atoms.info.get("charge", 0)),
        "extra_electrons": int(atoms.info.get("extra_electrons", 0)),
        "counts": counts(atoms),
        "ligands": ligand_counts(atoms),
        "seed": int(atoms.info.get("seed", 0)),
    }


def symbols_known() -> list[str]:
    """All element symbols ASE knows (index 0 'X' excluded)."""
    return chemical_symbols[1:]
