"""Slater–Koster parameter sets: loading, validation, the shipped sets.

A parameter set is a JSON (or TOML) file with the keys ``name``, ``source``, ``conventions``,
``orbitals`` (element → ``["s", "p"]`` or ``["p"]``), ``electrons`` (element → valence electrons
it brings to the TB basis, for occupation counting), ``onsite_eV``, ``soc_lambda_eV``
(H_SO = 2λ L·S), ``bonds`` (list of ``{"pair": [A, B], "d0_A", "r_on_A", "r_max_A", "V_eV":
{ss_sigma, sp_sigma, ps_sigma, pp_sigma, pp_pi}}``; ``sp_sigma`` is V(s on A, p on B), a missing
V is 0 only where an orbital is absent), ``eta`` (Harrison exponent), ``bulk``
(``a_A``, ``A``, ``B``, ``X`` of the cubic reference cell), optional ``reference`` and
``undercoordinated_shift_eV`` (element → {orbital: shift} for an atom with fewer bonds than in
the bulk, scaled by the fraction of missing bonds), and optional ``onsite_strain_eV`` (element →
{orbital: κ}: the on-site energy moves by κ·Σ_j [(d₀/d_ij)² − 1] over the atom's bonds of the
nearest-neighbour kind, so a compressed or stretched octahedron shifts its own levels). Energies in eV,
lengths in Å.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

from qdlab.errors import QdlabError

V_KEYS = ("ss_sigma", "sp_sigma", "ps_sigma", "pp_sigma", "pp_pi")
BUILTIN = {
    "CsPbI3-nestoklon": "cspbi3_nestoklon2021.json",
    "CsPbBr3-kashikar": "cspbbr3_kashikar2021.json",
}
DEFAULT_FOR_HALIDE = {"I": "CsPbI3-nestoklon", "Br": "CsPbBr3-kashikar"}


@dataclass(frozen=True)
class Bond:
    """Two-centre integrals of one element pair at the reference length d0 (eV, Å)."""

    pair: tuple[str, str]
    d0_A: float
    r_on_A: float
    r_max_A: float
    V_eV: dict[str, float]


@dataclass(frozen=True)
class TBParams:
    """One orthogonal Slater–Koster parameter set (see the module docstring for the file format)."""

    name: str
    source: str
    conventions: str
    orbitals: dict[str, tuple[str, ...]]
    electrons: dict[str, int]
    onsite_eV: dict[str, dict[str, float]]
    soc_lambda_eV: dict[str, float]
    bonds: tuple[Bond, ...]
    eta: float
    bulk: dict
    reference: dict = field(default_factory=dict)
    undercoordinated_shift_eV: dict[str, dict[str, float]] = field(default_factory=dict)
    onsite_strain_eV: dict[str, dict[str, float]] = field(default_factory=dict)
    path: str = ""

    @property
    def elements(self) -> tuple[str, ...]:
        return tuple(self.orbitals)

    @property
    def r_max_A(self) -> float:
        return max(b.r_max_A for b in self.bonds)

    def bond(self, a: str, b: str) -> tuple[Bond, bool] | None:
        """The bond of (a, b) and whether it is stored reversed (as (b, a)); None if absent."""
        for bd in self.bonds:
            if bd.pair == (a, b):
                return bd, False
            if bd.pair == (b, a):
                return bd, True
        return None

    def with_changes(self, eta: float | None = None, shifts: dict | None = None) -> "TBParams":
        """A copy with another Harrison exponent and/or undercoordination shifts (for fitting)."""
        return replace(self, eta=self.eta if eta is None else float(eta),
                       undercoordinated_shift_eV=self.undercoordinated_shift_eV if shifts is None else shifts)

    def to_dict(self) -> dict:
        return {"name": self.name, "source": self.source, "conventions": self.conventions,
                "orbitals": {k: list(v) for k, v in self.orbitals.items()}, "electrons": self.electrons,
                "onsite_eV": self.onsite_eV, "soc_lambda_eV": self.soc_lambda_eV,
                "bonds": [{"pair": list(b.pair), "d0_A": b.d0_A, "r_on_A": b.r_on_A, "r_max_A": b.r_max_A,
                           "V_eV": b.V_eV} for b in self.bonds],
                "eta": self.eta, "bulk": self.bulk, "reference": self.reference,
                "undercoordinated_shift_eV": self.undercoordinated_shift_eV,
                **({"onsite_strain_eV": self.onsite_strain_eV} if self.onsite_strain_eV else {})}


def _num(where: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise QdlabError(f"parameter set: {where} must be a finite number, got {value!r}")
    return float(value)


def _need(d: dict, key: str, where: str):
    if not isinstance(d, dict) or key not in d:
        raise QdlabError(f"parameter set: missing entry {where}{key}")
    return d[key]


def _parse_bond(k: int, raw: dict, orbitals: dict) -> Bond:
    where = f"bonds[{k}]."
    pair = _need(raw, "pair", where)
    if not (isinstance(pair, list) and len(pair) == 2 and all(p in orbitals for p in pair)):
        raise QdlabError(f"parameter set: {where}pair must name two elements with orbitals, got {pair!r}")
    lengths = {key: _num(where + key, _need(raw, key, where)) for key in ("d0_A", "r_on_A", "r_max_A")}
    if not 0 < lengths["d0_A"] <= lengths["r_on_A"] < lengths["r_max_A"]:
        raise QdlabError(f"parameter set: {where} needs 0 < d0_A <= r_on_A < r_max_A")
    V = _need(raw, "V_eV", where)
    a, b = (set(orbitals[p]) for p in pair)
    needed = {"ss_sigma": "s" in a and "s" in b, "sp_sigma": "s" in a and "p" in b,
              "ps_sigma": "p" in a and "s" in b, "pp_sigma": "p" in a and "p" in b, "pp_pi": "p" in a and "p" in b}
    if pair[0] == pair[1] and "sp_sigma" in V and "ps_sigma" not in V:
        V = V | {"ps_sigma": V["sp_sigma"]}
    vals = {}
    for key in V_KEYS:
        if needed[key]:
            vals[key] = _num(f"{where}V_eV.{key}", _need(V, key, f"{where}V_eV."))
        else:
            vals[key] = 0.0
    return Bond((pair[0], pair[1]), lengths["d0_A"], lengths["r_on_A"], lengths["r_max_A"], vals)


def params_from_dict(raw: dict, path: str = "") -> TBParams:
    """Validate a parameter-set dictionary (one-line :class:`QdlabError` on any defect)."""
    if not isinstance(raw, dict):
        raise QdlabError("parameter set: the file must hold a table/object")
    orbitals = _need(raw, "orbitals", "")
    if not isinstance(orbitals, dict) or not orbitals:
        raise QdlabError("parameter set: orbitals must map elements to ['s', 'p'] or ['p']")
    orbs = {}
    for el, o in orbitals.items():
        if not isinstance(o, list) or not o or set(o) - {"s", "p"}:
            raise QdlabError(f"parameter set: orbitals.{el} must be a list drawn from 's', 'p', got {o!r}")
        orbs[el] = tuple(x for x in ("s", "p") if x in o)
    onsite_raw, electrons_raw = _need(raw, "onsite_eV", ""), _need(raw, "electrons", "")
    onsite = {el: {o: _num(f"onsite_eV.{el}.{o}", _need(_need(onsite_raw, el, "onsite_eV."), o, f"onsite_eV.{el}."))
                   for o in orbs[el]} for el in orbs}
    electrons = {el: int(_num(f"electrons.{el}", _need(electrons_raw, el, "electrons."))) for el in orbs}
    soc = {el: _num(f"soc_lambda_eV.{el}", v) for el, v in raw.get("soc_lambda_eV", {}).items()}
    bonds = tuple(_parse_bond(k, b, orbs) for k, b in enumerate(_need(raw, "bonds", "")))
    if not bonds:
        raise QdlabError("parameter set: no bonds")
    bulk = _need(raw, "bulk", "")
    _num("bulk.a_A", _need(bulk, "a_A", "bulk."))
    for key in ("B", "X"):
        if _need(bulk, key, "bulk.") not in orbs:
            raise QdlabError(f"parameter set: bulk.{key} must be an element with orbitals")
    shifts, strain = ({el: {o: _num(f"{key}.{el}.{o}", v) for o, v in d.items()} for el, d in raw.get(key, {}).items()}
                      for key in ("undercoordinated_shift_eV", "onsite_strain_eV"))
    for el, d in strain.items():
        if el not in orbs or set(d) - set(orbs[el]):
            raise QdlabError(f"parameter set: onsite_strain_eV.{el} must name orbitals of an element of the set")
    return TBParams(name=str(_need(raw, "name", "")), source=str(_need(raw, "source", "")),
                    conventions=str(raw.get("conventions", "")), orbitals=orbs, electrons=electrons,
                    onsite_eV=onsite, soc_lambda_eV=soc, bonds=bonds, eta=_num("eta", _need(raw, "eta", "")),
                    bulk=dict(bulk), reference=dict(raw.get("reference", {})), undercoordinated_shift_eV=shifts,
                    onsite_strain_eV=strain, path=path)


def load_params(name_or_path: str | Path) -> TBParams:
    """A shipped set by name (``CsPbI3-nestoklon``, ``CsPbBr3-kashikar``) or a JSON/TOML file."""
    key = str(name_or_path)
    if key in BUILTIN:
        text = resources.files("qdlab.electronic.data").joinpath(BUILTIN[key]).read_text()
        return params_from_dict(json.loads(text), path=key)
    path = Path(key)
    if not path.exists():
        raise QdlabError(f"parameter set {key!r}: neither a shipped set ({', '.join(BUILTIN)}) nor a file")
    try:
        raw = tomllib.loads(path.read_text()) if path.suffix == ".toml" else json.loads(path.read_text())
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise QdlabError(f"parameter set {path}: not valid {path.suffix.lstrip('.') or 'JSON'} ({exc})") from None
    return params_from_dict(raw, path=str(path))


def default_params_for(symbols) -> TBParams:
    """The shipped set for the halide present (I → Nestoklon CsPbI3, Br → Kashikar CsPbBr3)."""
    present = set(symbols)
    for x, name in DEFAULT_FOR_HALIDE.items():
        if x in present:
            return load_params(name)
    halides = sorted(present & {"F", "Cl", "Br", "I"})
    raise QdlabError(f"no shipped tight-binding set for halide(s) {halides or 'none'}; "
                     f"shipped: {', '.join(BUILTIN)} (pass --params FILE)")
