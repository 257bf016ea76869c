"""Atom selections by the builder's labels: ``"role=B"``, ``"depth>=2"``, ``"element=Pb&depth<2"``.

Keys are any per-atom array (role, ligand, ligand_id, depth, facet, motif, shell, ...) or
``element``; operators ``= != < <= > >=``; terms joined with ``&`` (and) or ``|`` (or, lower
precedence). Shorthands: ``ligand``/``core`` (ligand atoms / everything else), ``shell``, ``all``.
"""

from __future__ import annotations

import operator
import re

import numpy as np
from ase import Atoms

from qdlab.errors import QdlabError

_OPS = {"=": operator.eq, "==": operator.eq, "!=": operator.ne, "<=": operator.le, ">=": operator.ge,
        "<": operator.lt, ">": operator.gt}
_TERM = re.compile(r"^\s*([A-Za-z_]\w*)\s*(==|!=|<=|>=|=|<|>)\s*(\S+)\s*$")


def _term(atoms: Atoms, term: str) -> np.ndarray:
    t = term.strip()
    n = len(atoms)
    if t == "all":
        return np.ones(n, bool)
    if t in ("ligand", "core"):
        role = atoms.arrays.get("role")
        if role is None:
            raise QdlabError(f"selection {t!r} needs the builder's 'role' labels")
        lig = role == "ligand"
        return lig if t == "ligand" else ~lig
    if t == "shell":
        if "shell" not in atoms.arrays:
            raise QdlabError("selection 'shell' needs the builder's 'shell' labels")
        return atoms.arrays["shell"].astype(bool)
    m = _TERM.match(t)
    if not m:
        raise QdlabError(f"cannot parse selection term {term!r} (e.g. role=B, depth>=2, element=Pb)")
    key, op, value = m.groups()
    if key == "element":
        arr = np.array(atoms.get_chemical_symbols())
    elif key in atoms.arrays:
        arr = atoms.arrays[key]
    else:
        raise QdlabError(f"selection key {key!r} is not a per-atom label here "
                         f"(have: element, {', '.join(sorted(k for k in atoms.arrays if k not in ('numbers', 'positions')))})")
    if arr.dtype.kind in "iuf":
        try:
            val: object = float(value)
        except ValueError:
            raise QdlabError(f"selection {term!r}: {key} is numeric, {value!r} is not") from None
    elif arr.dtype.kind == "b":
        val = value.lower() in ("1", "true", "t", "yes")
    else:
        val = value
        if op not in ("=", "==", "!="):
            raise QdlabError(f"selection {term!r}: only = and != work on text labels")
    return np.asarray(_OPS[op](arr, val), bool)


def select(atoms: Atoms, expr: str) -> np.ndarray:
    """Boolean mask of the atoms matching ``expr``."""
    if not expr or not expr.strip():
        raise QdlabError("empty selection")
    mask = np.zeros(len(atoms), bool)
    for alt in expr.split("|"):
        part = np.ones(len(atoms), bool)
        for term in alt.split("&"):
            part &= _term(atoms, term)
        mask |= part
    return mask
