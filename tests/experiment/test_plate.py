"""Plate design: grid → well map with volumes, checked against well, mix-well and pipette limits."""

import json

import pandas as pd
import pytest
from pydantic import ValidationError

from qdlab.experiment.plate import (PlateDesign, PlateError, design_plate, load_plan, load_wellmap, save_plan,
                                    synthesis_table, well_names, wellmap_frame)


def test_full_grid_layout():
    d = PlateDesign(ligand_pairs=["OAc:OLAm", "OctAc:OctAm"], ligand_volume_ratios=[30, 15], replicates=1)
    plan = design_plate(d)
    wm = wellmap_frame(plan)
    assert len(plan["mixes"]) == 7 * 2 * 2 and len(wm) == 7 * 2 * 2 * 2
    assert list(wm.well[:3]) == ["A1", "B1", "C1"] and wm.well.is_unique
    # every grid point appears exactly once per antisolvent
    combos = wm.groupby(["ligand_pair", "ligand_pbbr2", "amine_per_acid", "antisolvent"]).size()
    assert (combos == 1).all() and len(combos) == 56
    for m in plan["mixes"]:
        lig = m["acid_uL"] + m["amine_uL"]
        assert m["pbbr2_uL"] + lig == pytest.approx(m["total_uL"])
        assert m["pbbr2_uL"] / lig == pytest.approx(m["ligand_pbbr2"])            # ligand:PbBr2 = 1:N
        assert m["amine_uL"] / m["acid_uL"] == pytest.approx(m["amine_per_acid"])  # acid:amine = 1:r
        assert min(m["acid_uL"], m["amine_uL"]) >= 1.0 - 1e-9                     # p20 minimum
        assert m["total_uL"] >= 2 * 20 + 50 and m["total_uL"] <= 2000
    assert (wm.total_uL == 220).all() and (wm.total_uL <= 360).all()
    assert wm.pbbr2_uL.add(wm.acid_uL).add(wm.amine_uL).round(9).eq(20).all()
    # reservoir holds every stock with its dead volume
    res = plan["reservoir"]
    assert sum(w["use_uL"] for w in res["toluene"]) == pytest.approx(28 * 180)
    assert set(res) == {"PbBr2", "OAc", "OLAm", "OctAc", "OctAm", "Cs-OAc", "Cs-OctAc", "toluene", "chloroform"}


def test_large_stock_spans_reservoir_wells():
    plan = design_plate(PlateDesign(amine_ratios=[0.1, 0.5, 1, 2], ligand_volume_ratios=[30, 15], antisolvents=["toluene"],
                                    replicates=12, antisolvent_uL=250, cs_uL=20, precursor_uL=20))
    tol = plan["reservoir"]["toluene"]
    assert len(tol) == 2 and sum(w["use_uL"] for w in tol) == pytest.approx(96 * 250)
    assert all(w["load_uL"] <= 15000 for w in tol)


@pytest.mark.parametrize("kw, msg", [
    (dict(replicates=7), r"needs 98 wells .* plate has 96"),
    (dict(antisolvent_uL=330), r"every well would hold 370 µL .* 360 µL"),
    (dict(amine_ratios=[0.001]), r"mix M1 .*1:0.001.* over the 2000 µL mix well"),
    (dict(precursor_uL=0.5), r"precursor_uL = 0.5 µL is below the smallest pipette minimum 1 µL"),
])
def test_limits_raise_precise_errors(kw, msg):
    with pytest.raises(PlateError, match=msg):
        design_plate(PlateDesign(**kw))


def test_bad_names_rejected():
    with pytest.raises(ValidationError, match="unknown ligand pair"):
        PlateDesign(ligand_pairs=["OAc:MA"])
    with pytest.raises(ValidationError, match="unknown antisolvent"):
        PlateDesign(antisolvents=["water"])
    with pytest.raises(ValidationError, match="positive"):
        PlateDesign(amine_ratios=[0.1, -1])


def test_synthesis_table_features():
    wm = wellmap_frame(design_plate(PlateDesign(ligand_pairs=["OAc:OLAm", "OctAc:OctAm"])))
    st = synthesis_table(wm)
    assert list(st.columns) == ["OAc", "OLAm", "OctAc", "OctAm", "PbBr2", "Cs", "ligand_ratio", "amine_per_acid",
                                "toluene", "chloroform"]
    a1 = st.loc["A1"]
    assert a1.OctAc == 0 and a1.OLAm / a1.OAc == pytest.approx(0.1) and a1.toluene == 180 and a1.chloroform == 0
    assert st.ligand_ratio.eq(1 / 30).all()
    oct_rows = wm.ligand_pair.eq("OctAc:OctAm").to_numpy()
    assert (st.OAc.to_numpy()[oct_rows] == 0).all() and (st.OctAc.to_numpy()[oct_rows] > 0).all()


def test_save_load_plan(tmp_path):
    plan = design_plate(PlateDesign(amine_ratios=[0.1, 1.0]))
    save_plan(plan, tmp_path / "p.json")
    save_plan(plan, tmp_path / "p.csv")
    assert load_plan(tmp_path / "p.json") == json.loads(json.dumps(plan))
    assert list(load_wellmap(tmp_path / "p.csv").well) == list(pd.DataFrame(plan["wells"]).well)
    edited = json.loads((tmp_path / "p.json").read_text())
    edited["wells"][0]["antisolvent_uL"] = 300
    (tmp_path / "e.json").write_text(json.dumps(edited))
    with pytest.raises(PlateError, match="no longer match the design"):
        load_plan(tmp_path / "e.json")


def test_well_names_column_major():
    names = well_names()
    assert names[:9] == ["A1", "B1", "C1", "D1", "E1", "F1", "G1", "H1", "A2"] and names[-1] == "H12"
