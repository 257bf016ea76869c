"""`qdlab plate ...` and `qdlab pl ...` end to end with typer's CliRunner."""

import json
import os

import pandas as pd
import pytest
from typer.testing import CliRunner

from qdlab.cli.main import app

runner = CliRunner()


def _ok(args):
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout) if "--json" in args else res


def _err(args):
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0]


def test_plate_design_and_protocol(tmp_path):
    plan, csv, proto = tmp_path / "plan.json", tmp_path / "wm.csv", tmp_path / "larp.py"
    info = _ok(["plate", "design", "-o", str(plan), "--csv", str(csv), "--ratios", "0.1,1,2", "--pair", "OAc:OLAm",
                "--pair", "OctAc:OctAm", "--ligand-ratio", "30", "--json"])
    assert info["wells"] == 12 and info["mixes"] == 6 and len(pd.read_csv(csv)) == 12
    args = ["plate", "protocol", str(plan), "-o", str(proto), "--json"]
    if os.environ.get("QDLAB_SKIP_OT2") != "1":
        args.append("--simulate")
    info = _ok(args)
    assert proto.exists() and info["steps"] > 12
    if "--simulate" in args:
        assert info["simulated"] and info["transfers"] == info["steps"]
        assert info["volume_uL"] == pytest.approx(12 * 220 + sum(m["total_uL"] for m in json.loads(plan.read_text())["mixes"]), abs=0.1)


def test_plate_errors_one_line_no_file(tmp_path):
    out = tmp_path / "p.json"
    msg = _err(["plate", "design", "-o", str(out), "--antisolvent-ul", "400"])
    assert "over the 360 µL well capacity" in msg and not out.exists()
    msg = _err(["plate", "design", "-o", str(out), "--pair", "OAc:MA"])
    assert "unknown ligand pair" in msg and not out.exists()
    assert "ratios" in _err(["plate", "design", "-o", str(out), "--ratios", "a,b"])
    assert "no such file" in _err(["plate", "simulate", str(tmp_path / "none.py")])


def test_pl_pipeline(tmp_path):
    plan, export = tmp_path / "plan.json", tmp_path / "run.xlsx"
    _ok(["plate", "design", "-o", str(plan), "--ratios", "0.1,0.5,1,2"])  # 8 wells
    _ok(["pl", "synthetic", "--export", str(export), "--wells", "8", "--reads", "4", "--table", str(tmp_path / "syn.csv"),
         "--rows", "60"])
    info = _ok(["pl", "import", str(export), "-o", str(tmp_path / "s.parquet"), "--wellmap", str(plan), "--json"])
    assert (info["wells"], info["reads"], info["wavelengths"]) == (8, 4, 126)
    tidy = pd.read_parquet(tmp_path / "s.parquet")
    assert {"antisolvent", "amine_per_acid"} <= set(tidy.columns)
    fits_path = tmp_path / "fits.parquet"
    info = _ok(["pl", "fit", str(tmp_path / "s.parquet"), "-o", str(fits_path), "--window", "440:620", "--json"])
    assert info["spectra"] == 32 and info["ok"] == 32 and info["flagged"] == 0
    fits = pd.read_parquet(fits_path)
    assert len(fits) == 32 and fits["amine_per_acid"].notna().all()
    info = _ok(["pl", "plot", str(fits_path), "--spectra", str(tmp_path / "s.parquet"), "--out", str(tmp_path / "plots"),
                "--antisolvent", "toluene", "--json"])
    assert len(info["written"]) == 3 and all(os.path.getsize(p) > 5000 for p in info["written"])
    info = _ok(["pl", "table", str(fits_path), "--wellmap", str(plan), "--time", "0", "-o", str(tmp_path / "t.csv"),
                "--json"])
    assert info["wells"] == 8 and "peak_nm" in info["columns"] and "toluene" in info["columns"]
    info = _ok(["pl", "models", str(tmp_path / "syn.csv"), "--target", "peak_nm", "--model", "linear", "--model",
                "random_forest", "--n-estimators", "20", "--cv", "3", "--out", str(tmp_path / "mo"), "--json"])
    assert set(info["shap_ranking"][:3]) == {"toluene", "chloroform", "OLAm"}
    assert (tmp_path / "mo" / "shap_beeswarm.png").exists() and (tmp_path / "mo" / "rmse.csv").exists()


def test_pl_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("Read 1:EM Spectrum\n\nWavelength,A1,A2\n400,1,2\n402,3\n")
    out = tmp_path / "f.csv"
    msg = _err(["pl", "fit", str(bad), "-o", str(out)])
    assert "bad.csv line 5: ragged row" in msg and not out.exists()
    assert "LO < HI" in _err(["pl", "fit", str(bad), "--window", "600:400"])
    assert "no target column" in _err(["pl", "models", str(bad), "--target", "nope"])
