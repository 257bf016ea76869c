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


def test_single_aliases_and_parameter_file(tmp_path):
    """`qdlab single` JSON; interface aliases ljcoul/sevennet; LJ parameters from a file change the energy."""
    from qdlab.engines import get_calculator
    from qdlab.engines.classical import SEED003_LJ

    nc = tmp_path / "c.extxyz"
    assert runner.invoke(app, ["build", "perovskite", "-c", "CsPbI3", "-n", "2", "--neutrality", "surface-charge",
                               "-o", str(nc)]).exit_code == 0
    res = runner.invoke(app, ["single", str(nc), "--engine", "ljcoul", "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    atoms = read(nc)
    atoms.calc = get_calculator("classical")
    assert info["atoms"] == len(atoms) and abs(info["energy_eV"] - atoms.get_potential_energy()) < 1e-9
    # same parameters from a file: same energy; doubled Cs ε: a different one
    params = tmp_path / "lj.json"
    params.write_text(json.dumps({"lj": {k: list(v) for k, v in SEED003_LJ.items()}}))
    same = json.loads(runner.invoke(app, ["single", str(nc), "-e", "ljcoul", "--model", str(params), "--json"]).stdout)
    assert abs(same["energy_eV"] - info["energy_eV"]) < 1e-9
    lj = {k: list(v) for k, v in SEED003_LJ.items()}
    lj["Cs"][1] *= 2
    params.write_text(json.dumps({"lj": lj}))
    other = json.loads(runner.invoke(app, ["single", str(nc), "-e", "ljcoul", "--model", str(params), "--json"]).stdout)
    assert abs(other["energy_eV"] - info["energy_eV"]) > 1e-3
    params.write_text('{"lj": {"Cs": [1.0]}}')
    bad = runner.invoke(app, ["single", str(nc), "-e", "ljcoul", "--model", str(params)])
    assert bad.exit_code == 2 and bad.stderr.startswith("error:") and "sigma_A" in bad.stderr
    bad = runner.invoke(app, ["single", str(nc), "-e", "nonsense"])
    assert bad.exit_code == 2 and "aliases" in bad.stderr


def test_xtb_method_names():
    from qdlab.engines.xtb import XTB
    from qdlab.errors import QdlabError

    assert XTB(method="GFN2-xTB").method == "GFN2-xTB" and XTB(method="gfn1").method == "GFN1-xTB"
    try:
        XTB(method="GFN0-xTB")
    except QdlabError as exc:
        assert "GFN1-xTB or GFN2-xTB" in str(exc)
    else:
        raise AssertionError("GFN0 accepted")
