"""CLI: qdlab engines list, qdlab relax (errors one line, no output file on failure)."""

import json

from ase.io import read
from typer.testing import CliRunner

from qdlab.cli.main import app

runner = CliRunner()


def test_engines_list_json():
    res = runner.invoke(app, ["engines", "list", "--json"])
    assert res.exit_code == 0
    names = [e["name"] for e in json.loads(res.stdout)]
    assert names[:2] == ["chgnet", "sevenn"] and "classical" in names


def test_relax_classical_and_errors(tmp_path):
    nc = tmp_path / "c.extxyz"
    res = runner.invoke(app, ["build", "perovskite", "-c", "CsPbI3", "-n", "2", "--neutrality", "surface-charge",
                              "-o", str(nc)])
    assert res.exit_code == 0
    out = tmp_path / "c_rel.extxyz"
    res = runner.invoke(app, ["relax", str(nc), "-o", str(out), "--engine", "classical", "--fmax", "0.05", "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["converged"] and info["fmax_eV_A"] < 0.05
    assert "role" in read(out).arrays
    bad = tmp_path / "bad.extxyz"
    res = runner.invoke(app, ["relax", str(nc), "-o", str(bad), "--engine", "nonsense"])
    assert res.exit_code == 2 and "unknown engine" in res.stderr and not bad.exists()
    res = runner.invoke(app, ["relax", str(nc), "-o", str(bad), "-e", "classical", "--steps", "2", "--fmax", "1e-6"])
    assert res.exit_code == 1 and "NOT converged" in res.stderr
