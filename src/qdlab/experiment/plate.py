"""LARP plate design (seed 002, SCIENCE.md §8): a grid of conditions → a checked well map.

Chemistry per well (all volumes in µL):

* a **precursor mix** per (ligand pair, acid:amine ratio, ligand:PbBr2 ratio), prepared by the
  robot in a deep-well plate: PbBr2 stock (50 mM in DMF) + acid + amine with
  (acid + amine) : PbBr2 = 1 : N (v/v) and amine = r × acid for an acid:amine ratio 1 : r;
* each reaction well first receives the Cs stock (Cs-carboxylate in toluene, the acid of the pair)
  and the antisolvent (toluene or chloroform), then ``precursor_uL`` of its mix is injected.

A mix is made large enough for all its injections plus a dead volume, and scaled up until its
smallest component reaches the smallest pipette's minimum volume. Checks: every transferred
volume ≥ the smallest pipette minimum, every reaction well ≤ its capacity, every mix ≤ the
mix-well capacity, stocks fit the reservoir (several reservoir wells per stock if needed), and
the plate has room for all wells. Violations raise :class:`PlateError` naming the well or mix.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from qdlab.errors import QdlabError

LIGAND_PAIRS: dict[str, tuple[str, str]] = {"OAc:OLAm": ("OAc", "OLAm"), "OctAc:OctAm": ("OctAc", "OctAm")}
ANTISOLVENTS = ("toluene", "chloroform")
ROWS = "ABCDEFGH"


class PlateError(QdlabError):
    """A plate design that cannot be made (capacity or pipette limits, too many wells)."""


class Pipette(BaseModel):
    """An OT-2 single-channel pipette: Opentrons name, mount and volume range (µL)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    mount: Literal["left", "right"]
    min_uL: float = Field(gt=0)
    max_uL: float = Field(gt=0)
    tiprack: str


DEFAULT_PIPETTES = [
    Pipette(name="p20_single_gen2", mount="left", min_uL=1.0, max_uL=20.0, tiprack="opentrons_96_tiprack_20ul"),
    Pipette(name="p300_single_gen2", mount="right", min_uL=20.0, max_uL=300.0, tiprack="opentrons_96_tiprack_300ul"),
]


class PlateDesign(BaseModel):
    """The grid of a LARP plate and the labware limits it must respect (volumes in µL)."""

    model_config = ConfigDict(extra="forbid")
    amine_ratios: list[float] = Field([0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0],
                                      description="r in acid:amine = 1:r (e.g. OAc:OLAm 1:0.1 … 1:2)")
    ligand_pairs: list[str] = Field(["OAc:OLAm"], description="acid:amine pairs, from LIGAND_PAIRS")
    ligand_volume_ratios: list[float] = Field([30.0], description="N in ligand:PbBr2 = 1:N (v/v)")
    antisolvents: list[str] = Field(["toluene", "chloroform"])
    replicates: int = Field(1, ge=1)
    cs_uL: float = Field(20.0, ge=0, description="Cs stock (Cs-carboxylate in toluene) per well")
    antisolvent_uL: float = Field(180.0, gt=0, description="antisolvent per well")
    precursor_uL: float = Field(20.0, gt=0, description="precursor mix injected per well")
    mix_dead_uL: float = Field(50.0, ge=0, description="extra volume per mix (dead volume)")
    well_capacity_uL: float = Field(360.0, gt=0, description="reaction well (Corning 96, flat)")
    mix_capacity_uL: float = Field(2000.0, gt=0, description="mix well (NEST 96 deep well, 2 mL)")
    reservoir_capacity_uL: float = Field(15000.0, gt=0, description="one well of the NEST 12 reservoir")
    reservoir_dead_uL: float = Field(1000.0, ge=0)
    n_wells: int = Field(96, description="reaction plate size (96 wells, column-major A1, B1, …)")
    pipettes: list[Pipette] = Field(default_factory=lambda: [p.model_copy() for p in DEFAULT_PIPETTES])

    @field_validator("ligand_pairs")
    @classmethod
    def _pairs(cls, v: list[str]) -> list[str]:
        for p in v:
            if p not in LIGAND_PAIRS:
                raise ValueError(f"unknown ligand pair {p!r} (known: {', '.join(LIGAND_PAIRS)})")
        return v

    @field_validator("antisolvents")
    @classmethod
    def _solvents(cls, v: list[str]) -> list[str]:
        for s in v:
            if s not in ANTISOLVENTS:
                raise ValueError(f"unknown antisolvent {s!r} (known: {', '.join(ANTISOLVENTS)})")
        return v

    @field_validator("amine_ratios", "ligand_volume_ratios")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        if not v or any(x <= 0 for x in v):
            raise ValueError("ratios must be a non-empty list of positive numbers")
        return v


def well_names(n: int = 96) -> list[str]:
    """Well names of a 96-well plate in Opentrons (column-major) order: A1, B1, …, H1, A2, …"""
    return [f"{r}{c}" for c in range(1, 13) for r in ROWS][:n]


def _ratio_label(r: float) -> str:
    return f"1:{r:g}"


def design_plate(design: PlateDesign) -> dict:
    """Lay out the grid and check it; return the plan ``{"design", "wells", "mixes", "reservoir"}``.

    ``wells``: one record per reaction well (condition, volumes per reagent in µL);
    ``mixes``: one record per precursor mix (deep-well position, component volumes in µL);
    ``reservoir``: stock → list of reservoir wells with the volume to load (µL).
    """
    pip_min = min(p.min_uL for p in design.pipettes)
    conds = list(itertools.product(design.ligand_pairs, design.ligand_volume_ratios, design.amine_ratios))
    n_react = len(conds) * len(design.antisolvents) * design.replicates
    if n_react > design.n_wells:
        raise PlateError(f"the grid needs {n_react} wells ({len(conds)} mixes × {len(design.antisolvents)} antisolvents "
                         f"× {design.replicates} replicates) but the plate has {design.n_wells}")
    if len(conds) > 96:
        raise PlateError(f"{len(conds)} precursor mixes exceed the 96 wells of the mix plate")
    for name, v in (("cs_uL", design.cs_uL), ("antisolvent_uL", design.antisolvent_uL),
                    ("precursor_uL", design.precursor_uL)):
        if 0 < v < pip_min:
            raise PlateError(f"{name} = {v:g} µL is below the smallest pipette minimum {pip_min:g} µL")
    per_well = design.cs_uL + design.antisolvent_uL + design.precursor_uL
    if per_well > design.well_capacity_uL:
        raise PlateError(f"every well would hold {per_well:g} µL (Cs {design.cs_uL:g} + antisolvent "
                         f"{design.antisolvent_uL:g} + precursor {design.precursor_uL:g}), over the "
                         f"{design.well_capacity_uL:g} µL well capacity (first well A1)")
    wells_iter = iter(well_names(design.n_wells))
    mix_names = well_names(96)
    mixes, wells = [], []
    n_inject = len(design.antisolvents) * design.replicates
    for m, (pair, nlig, r) in enumerate(conds):
        acid, amine = LIGAND_PAIRS[pair]
        mix_id = f"M{m + 1}"
        need = n_inject * design.precursor_uL + design.mix_dead_uL
        lig_frac = 1.0 / (1.0 + nlig)             # ligand volume fraction of the mix
        smallest = lig_frac * min(1.0, r) / (1.0 + r)
        total = max(need, pip_min / smallest)
        total = math.ceil(total / 10.0) * 10.0     # round up to 10 µL
        if total > design.mix_capacity_uL:
            raise PlateError(f"mix {mix_id} ({pair} 1:{r:g}, ligand:PbBr2 1:{nlig:g}) needs {total:g} µL so that "
                             f"its smallest component reaches {pip_min:g} µL, over the {design.mix_capacity_uL:g} µL "
                             f"mix well")
        lig = total * lig_frac
        vol = {"pbbr2_uL": total - lig, "acid_uL": lig / (1 + r), "amine_uL": lig * r / (1 + r)}
        mixes.append({"mix": mix_id, "mix_well": mix_names[m], "ligand_pair": pair, "acid": acid, "amine": amine,
                      "amine_per_acid": r, "acid_amine": _ratio_label(r), "ligand_pbbr2": nlig,
                      "total_uL": total, **vol})
        for solvent in design.antisolvents:
            for rep in range(design.replicates):
                well = next(wells_iter)
                f = design.precursor_uL / total
                wells.append({"well": well, "row": well[0], "col": int(well[1:]), "mix": mix_id,
                              "mix_well": mix_names[m], "ligand_pair": pair, "acid": acid, "amine": amine,
                              "amine_per_acid": r, "acid_amine": _ratio_label(r), "ligand_pbbr2": nlig,
                              "antisolvent": solvent, "replicate": rep + 1, "cs_stock": f"Cs-{acid}",
                              "cs_uL": design.cs_uL, "antisolvent_uL": design.antisolvent_uL,
                              "precursor_uL": design.precursor_uL, "pbbr2_uL": vol["pbbr2_uL"] * f,
                              "acid_uL": vol["acid_uL"] * f, "amine_uL": vol["amine_uL"] * f,
                              "total_uL": per_well})
    reservoir = _reservoir(design, wells, mixes)
    return {"design": design.model_dump(), "wells": wells, "mixes": mixes, "reservoir": reservoir}


def _reservoir(design: PlateDesign, wells: list[dict], mixes: list[dict]) -> dict[str, list[dict]]:
    """Stock volumes (µL) → reservoir wells A1…A12, several per stock when one is not enough."""
    need: dict[str, float] = {}

    def add(k: str, v: float) -> None:
        if v > 0:
            need[k] = need.get(k, 0.0) + v

    add("PbBr2", sum(m["pbbr2_uL"] for m in mixes))
    for m in mixes:
        add(m["acid"], m["acid_uL"])
        add(m["amine"], m["amine_uL"])
    for w in wells:
        add(w["cs_stock"], w["cs_uL"])
        add(w["antisolvent"], w["antisolvent_uL"])
    usable = design.reservoir_capacity_uL - design.reservoir_dead_uL
    out: dict[str, list[dict]] = {}
    slot = 0
    for stock, v in need.items():
        k = max(1, math.ceil(v / usable))
        out[stock] = []
        for j in range(k):
            if slot >= 12:
                raise PlateError(f"stocks need more than the 12 reservoir wells (stopped at {stock}, "
                                 f"{sum(need.values()) / 1000:.1f} mL in all)")
            share = v / k
            out[stock].append({"well": f"A{slot + 1}", "use_uL": share, "load_uL": share + design.reservoir_dead_uL})
            slot += 1
    return out


def wellmap_frame(plan: dict) -> pd.DataFrame:
    """The well map (one row per reaction well) as a DataFrame."""
    return pd.DataFrame(plan["wells"])


def synthesis_table(wellmap: pd.DataFrame) -> pd.DataFrame:
    """Per-well synthesis features for the models (SCIENCE.md §8), volumes in µL per well.

    Columns OAc, OLAm, OctAc, OctAm, PbBr2, Cs, ligand_ratio (= 1/N of ligand:PbBr2 1:N),
    amine_per_acid, toluene, chloroform, indexed by well.
    """
    out = pd.DataFrame(index=wellmap["well"].to_numpy())
    for lig in ("OAc", "OLAm", "OctAc", "OctAm"):
        v = wellmap["acid_uL"].where(wellmap["acid"] == lig, 0.0) + wellmap["amine_uL"].where(wellmap["amine"] == lig, 0.0)
        out[lig] = v.to_numpy()
    out["PbBr2"] = wellmap["pbbr2_uL"].to_numpy()
    out["Cs"] = wellmap["cs_uL"].to_numpy()
    out["ligand_ratio"] = (1.0 / wellmap["ligand_pbbr2"]).to_numpy()
    out["amine_per_acid"] = wellmap["amine_per_acid"].to_numpy()
    for s in ANTISOLVENTS:
        out[s] = wellmap["antisolvent_uL"].where(wellmap["antisolvent"] == s, 0.0).to_numpy()
    out.index.name = "well"
    return out


def save_plan(plan: dict, path: str | Path) -> Path:
    """Write the plan as JSON (.json) or the well map alone as CSV (.csv), atomically."""
    from qdlab.store.files import atomic_path, write_text

    p = Path(path)
    if p.suffix.lower() == ".csv":
        with atomic_path(p) as tmp:
            wellmap_frame(plan).to_csv(tmp, index=False)
        return p
    return write_text(p, json.dumps(plan, indent=1))


def load_plan(path: str | Path) -> dict:
    """Read a plan written by :func:`save_plan` (JSON) and re-check it against its design."""
    p = Path(path)
    try:
        plan = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise PlateError(f"{p}: not a plan JSON file ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(plan, dict) or not {"design", "wells", "mixes", "reservoir"} <= set(plan):
        raise PlateError(f"{p}: not a plan (needs design, wells, mixes, reservoir)")
    fresh = design_plate(PlateDesign(**plan["design"]))
    if fresh["wells"] != plan["wells"] or fresh["mixes"] != plan["mixes"]:
        raise PlateError(f"{p}: wells or mixes were edited and no longer match the design; regenerate the plan")
    return plan


def load_wellmap(path: str | Path) -> pd.DataFrame:
    """A well map from a plan JSON or a well-map CSV."""
    p = Path(path)
    if p.suffix.lower() == ".json":
        return wellmap_frame(load_plan(p))
    df = pd.read_csv(p)
    if "well" not in df.columns:
        raise PlateError(f"{p}: a well map needs a 'well' column")
    return df
