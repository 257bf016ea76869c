"""`qdlab binding` and `qdlab committee`: JSON output equal to the library, plots, one-line errors."""

import json

import pytest
from typer.testing import CliRunner

from qdlab.build import PerovskiteRecipe, build
from qdlab.cli.main import app
from qdlab.engines.classical import SEED003_LJ
from qdlab.store.files import write_atoms
from qdlab.workflows.binding import BindingSettings, binding_energies

runner = CliRunner()
LJ = {**SEED003_LJ, "C": (1.2, 0.004), "H": (0.6, 0.002), "O": (1.3, 0.006)}
LJ2 = {**LJ, "I": (4.1, 0.05)}


@pytest.fixture()
def files(tmp_path):
    host = build(PerovskiteRecipe(composition="CsPbI3", size="1", seed=0))
    write_atoms(tmp_path / "host.extxyz", host)
    for name, lj in (("lj1.json", LJ), ("lj2.json", LJ2)):
        (tmp_path / name).write_text(json.dumps({"lj": {k: list(v) for k, v in lj.items()}}))
    return tmp_path, host


def test_binding_cli_json_matches_library(files):
    d, host = files
    out = d / "out"
    res = runner.invoke(app, ["binding", str(d / "host.extxyz"), "-l", "OAc", "-e", "classical", "--model",
                              str(d / "lj1.json"), "--committee", f"classical:{d / 'lj2.json'}", "--no-relax",
                              "-o", str(out), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    lib = binding_energies(host, BindingSettings(ligands=["OAc"], relax=False,
                                                 engine={"name": "classical", "options": {"lj": LJ}},
                                                 committee=[{"name": "classical", "options": {"lj": LJ2}}]), d / "lib")
    assert data["binding"]["OAc"]["values"] == pytest.approx(list(lib.binding["OAc"].values), abs=1e-9)
    assert data["binding"]["OAc"]["spread"] > 0 and (out / "binding.png").stat().st_size > 1000
    assert (out / "binding.json").exists() and "exchange" in data["reference"]["OAc"]


def test_binding_cli_errors(files):
    d, _ = files
    res = runner.invoke(app, ["binding", str(d / "host.extxyz"), "-l", "NoSuchLigand", "-e", "classical",
                              "-o", str(d / "bad")])
    assert res.exit_code == 2 and res.output.count("error:") == 1
    assert not (d / "bad" / "binding.json").exists()
    res = runner.invoke(app, ["binding", "-l", "OAc", "-o", str(d / "bad2")])  # neither host nor --slab
    assert res.exit_code == 2 and "error:" in res.output


def test_committee_cli(files):
    d, host = files
    res = runner.invoke(app, ["committee", str(d / "host.extxyz"), "-m", "classical", "-m",
                              f"classical:{d / 'lj2.json'}", "--method", "analytic", "-o", str(d / "c"), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["members"] == ["classical", f"classical:{d / 'lj2.json'}"] and data["systems"] == ["host"]
    assert (d / "c" / "committee.json").exists() and (d / "c" / "committee_peaks.png").exists()
