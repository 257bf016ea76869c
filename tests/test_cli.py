"""The command line: JSON output, one-line errors with non-zero exit and no file, demo."""

import json
import re

import pytest
from ase.io import read
from typer.testing import CliRunner

from qdlab.cli.main import app

runner = CliRunner()


def test_build_perovskite_json(tmp_path):
    out = tmp_path / "nc.extxyz"
    res = runner.invoke(app, ["build", "perovskite", "--composition", "CsPbBr3", "--size", "3", "--lattice", "5.95",
                              "--phase", "cubic", "--neutrality", "remove-a", "--ligand", "MA:0.5", "--ligand",
                              "BzO:0.5", "--seed", "0", "-o", str(out), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["formula"] == "C212H273Br81Cs31N23O54Pb27"
    assert data["n_atoms"] == 701 and data["charge"] == 0
    assert data["counts"]["Pb"] == 27 and data["ligands"] == {"BzO": 27, "MA": 23}
    atoms = read(out)
    assert len(atoms) == 701 and "role" in atoms.arrays


@pytest.mark.parametrize("args", [
    ["build", "perovskite", "--size", "4x4x6", "--neutrality", "surface-charge"],
    ["build", "perovskite", "--size", "6", "--shell", "Ca:1", "--neutrality", "electrons"],
    ["build", "perovskite", "--composition", "CsPbI3", "--size", "3", "--phase", "orthorhombic"],
    ["build", "pbs", "--size", "2", "--ligand", "OAc"],
    ["build", "slab", "--size", "2x2x3", "--ligand", "BzO:2"],
])
def test_build_variants(tmp_path, args):
    out = tmp_path / "m.extxyz"
    res = runner.invoke(app, [*args, "-o", str(out), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["n_atoms"] == len(read(out))


@pytest.mark.parametrize("args,msg", [
    (["--ligand", "NOPE:0.5"], "unknown ligand 'NOPE'"),
    (["--ligand", "MA:1.5"], "fraction in (0, 1]"),
    (["--ligand", "MA:500"], "only 46 A sites"),
    (["--size", "0"], "at least 1"),
    (["--composition", "CsZzBr3"], "unknown element 'Zz'"),
    (["--phase", "hexagonal"], "phase"),
    (["--tilt", "1,2"], "tilt"),
])
def test_bad_input_one_line_nonzero_no_file(tmp_path, args, msg):
    out = tmp_path / "bad.extxyz"
    res = runner.invoke(app, ["build", "perovskite", *args, "-o", str(out)])
    assert res.exit_code == 2
    err = res.stderr.strip()
    assert err.startswith("error:") and "\n" not in err and msg in err
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary left behind either


def test_invalid_smiles_via_ligand_add_and_file(tmp_path):
    res = runner.invoke(app, ["ligands", "add", "bad", "C1CC(", "--motif", "[O-:1]", "--site", "X"])
    assert res.exit_code == 2 and "invalid SMILES" in res.stderr
    lf = tmp_path / "l.toml"
    lf.write_text('[[ligand]]\nname = "bad"\nsmiles = "c1ccc"\nmotif = "[O-:1]"\nsite = "X"\n')
    out = tmp_path / "x.extxyz"
    res = runner.invoke(app, ["build", "perovskite", "--ligand-file", str(lf), "-l", "bad:0.5", "-o", str(out)])
    assert res.exit_code == 2 and "invalid SMILES" in res.stderr and not out.exists()


def test_ligands_list_add_show(tmp_path):
    res = runner.invoke(app, ["ligands", "list", "--json"])
    assert res.exit_code == 0
    names = {d["name"] for d in json.loads(res.stdout)}
    assert {"MA", "BzO", "PhS", "PhP", "OAc", "OA", "OLA", "Cys"} <= names
    res = runner.invoke(app, ["ligands", "add", "PrO", "CCC(=O)[O-]", "--motif", "[O-:1]C=[O:2]", "--site", "X"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["ligands", "list", "--json"])
    assert "PrO" in {d["name"] for d in json.loads(res.stdout)}
    out = tmp_path / "pro.xyz"
    res = runner.invoke(app, ["ligands", "show", "PrO", "-o", str(out), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["formula"] == "C3H5O2"
    res = runner.invoke(app, ["build", "perovskite", "-l", "PrO:0.5", "-o", str(tmp_path / "p.extxyz"), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["ligands"] == {"PrO": 27}
    res = runner.invoke(app, ["ligands", "list"])
    assert res.exit_code == 0 and "BzO" in res.stdout


def test_render_rattle_info(tmp_path):
    nc = tmp_path / "nc.extxyz"
    assert runner.invoke(app, ["build", "perovskite", "--size", "2", "-o", str(nc)]).exit_code == 0
    png = tmp_path / "nc.png"
    res = runner.invoke(app, ["render", str(nc), "-o", str(png)])
    assert res.exit_code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = runner.invoke(app, ["rattle", str(nc), "-o", str(tmp_path / "r.extxyz"), "--count", "3", "--json"])
    assert res.exit_code == 0 and len(read(tmp_path / "r.extxyz", ":")) == 3
    res = runner.invoke(app, ["info", str(nc), "--json"])
    assert json.loads(res.stdout)["counts"] == {"Br": 36, "Cs": 20, "Pb": 8}
    res = runner.invoke(app, ["render", str(tmp_path / "missing.extxyz")])
    assert res.exit_code == 2 and "missing.extxyz does not exist" in res.stderr


def test_help_everywhere():
    for cmd in ([], ["build"], ["build", "perovskite"], ["build", "pbs"], ["build", "slab"], ["ligands"],
                ["ligands", "list"], ["render"], ["demo"], ["rattle"], ["info"]):
        res = runner.invoke(app, [*cmd, "--help"])
        assert res.exit_code == 0, cmd


def test_demo_small_end_to_end(tmp_path):
    """The demo's whole path as a campaign on 1×1×1 models (the real demo uses 2×2×2; see `make
    demo`): structure, store rows, DOS comparison, ligand shifts, reports; a rerun resumes without
    recomputing."""
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--size", "1", "--workers", "1", "--fmax", "0.02", "--json"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert set(rep["phonons"]) == {"bare 1x1x1", "BzO/MA 1x1x1 (25 %)"}
    assert list(rep["skipped"]) == ["BzO/MA 3x3x3 (50 %)"]
    bare, capped = rep["phonons"]["bare 1x1x1"]["peaks_cm1"], rep["phonons"]["BzO/MA 1x1x1 (25 %)"]["peaks_cm1"]
    assert rep["shifts_cm1"]["BzO/MA 1x1x1 (25 %)"] == {m: round(capped[m] - bare[m], 2) for m in capped if m in bare}
    assert rep["campaign"]["n_done"] == 6 and rep["campaign"]["n_failed"] == 0
    for name, ph in rep["phonons"].items():
        assert ph["n_modes"] == 3 * ph["n_atoms"] - 6, name
        assert ph["fmax_eV_A"] <= 0.02 and set(ph["peaks_cm1"]) <= {"M1", "M2", "M3"}
    for f in ("nc_1x1x1_MA-BzO.extxyz", "nc_1x1x1_MA-BzO.png", "report.md", "report.json", "report.html",
              "dos_comparison.png", "demo.db"):
        assert (out / f).exists(), f
    assert "| bare 1x1x1 | " in (out / "report.md").read_text() and "ΔM1" in (out / "report.md").read_text()
    assert "Demo: DOS comparison" in (out / "report.html").read_text()
    from qdlab.store.results import DONE, ResultStore

    rows = ResultStore(out / "demo.db", out / "demo_files").rows(campaign="demo")
    assert len(rows) == 6 and all(r.status == DONE for r in rows)
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    rep2 = json.loads(again.stdout)
    assert rep2["campaign"]["n_skipped"] == 6 and rep2["campaign"]["n_done"] == 0
    assert rep2["phonons"] == rep["phonons"]


def test_demo_leaves_capped_3x3x3_out_on_cpu(tmp_path):
    """Without --full on CPU the demo is the bare/capped pair of one size; seed 000's capped 3×3×3
    (50 %) is left out with the cost model's estimate, and --full adds the 3×3×3 pair."""
    from qdlab.campaign.demo import _skipped_estimate, demo_spec

    spec = demo_spec(tmp_path)
    labels = {(g.model_extra["size"][0], tuple(g.ligands[0]), tuple(g.coverage or ())) for g in spec.grid}
    assert labels == {("2", (), ()), ("2", ("MA", "BzO"), (0.25,))}
    skipped = _skipped_estimate(spec, workers=2)
    assert list(skipped) == ["BzO/MA 3x3x3 (50 %)"]
    calls = re.search(r"skipped on CPU: (\d+) force calls", skipped["BzO/MA 3x3x3 (50 %)"])
    assert calls and int(calls.group(1)) > 6 * 701  # the Hessian's 6N plus the relaxation's estimate
    full = demo_spec(tmp_path, full=True)
    assert [["2"], ["2"], ["3"], ["3"]] == [g.model_extra["size"] for g in full.grid] and _skipped_estimate(full, 2) == {}
