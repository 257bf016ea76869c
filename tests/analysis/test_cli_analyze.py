"""``analyze`` CLI sub-app: JSON output and files, one-line errors with exit code 2 and no files left."""

import json

import numpy as np
import pytest
import typer
from ase.io import write
from typer.testing import CliRunner

from analysis.trajectories import cube, cube_frames, pbs, pbs_frames  # noqa: F401 (fixtures)
from analysis.trajectories import rattled_frames
from qdlab.cli.analyze import analyze_app

runner = CliRunner()
app = typer.Typer()
app.add_typer(analyze_app, name="analyze")


@pytest.fixture(scope="module")
def cube_traj(tmp_path_factory, cube):
    path = tmp_path_factory.mktemp("traj") / "md.extxyz"
    write(path, rattled_frames(cube, 12, 0.1, seed=4, dt_fs=50.0), format="extxyz")
    return path


@pytest.fixture(scope="module")
def pbs_traj(tmp_path_factory, pbs):
    path = tmp_path_factory.mktemp("traj") / "pbs.extxyz"
    write(path, rattled_frames(pbs, 4, 0.05, seed=5), format="extxyz")
    return path


def _json(res):
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_rdf_json_and_files(cube_traj, tmp_path):
    out = tmp_path / "rdf"
    data = _json(runner.invoke(app, ["analyze", "rdf", str(cube_traj), "--pair", "Pb-Br", "--pair", "Pb-Pb",
                                     "--skip", "0.2", "--stride", "2", "-o", str(out), "--json"]))
    assert data["n_frames"] == 4 and data["first_frame"] == 4  # frames 4, 6, 8, 10
    assert data["pairs"]["Pb-Br"]["first_peak_A"] == pytest.approx(2.975, abs=0.15)
    assert data["pairs"]["Pb-Br"]["coordination_at_first_minimum"] == pytest.approx(6.0, abs=0.3)
    assert sorted(p.name for p in out.iterdir()) == ["rdf.csv", "rdf.json", "rdf.png"]
    csv = np.genfromtxt(out / "rdf.csv", delimiter=",", names=True)
    assert csv.dtype.names == ("r_A", "g_PbBr", "n_PbBr", "g_PbPb", "n_PbPb")
    assert json.loads((out / "rdf.json").read_text())["pairs"].keys() == data["pairs"].keys()


def test_adf_rmsf_json(cube_traj, tmp_path):
    data = _json(runner.invoke(app, ["analyze", "adf", str(cube_traj), "--triplet", "Pb-Br-Pb", "--triplet",
                                     "Br-Pb-Br", "--cutoff", "3.6", "-o", str(tmp_path), "--json"]))
    assert data["triplets"]["Pb-Br-Pb"]["mean_deg"] > 160
    assert data["triplets"]["Br-Pb-Br"]["angles_per_frame"] == pytest.approx(27 * 15, rel=0.05)
    data = _json(runner.invoke(app, ["analyze", "rmsf", str(cube_traj), "--skip-frames", "2", "-o", str(tmp_path),
                                     "--json"]))
    assert data["n_frames"] == 10 and set(data["by_element"]) == {"Cs", "Pb", "Br"}
    assert set(data["by_depth"]["Br"]) == {"0", "1", "2"}
    rows = (tmp_path / "rmsf.csv").read_text().splitlines()
    assert rows[0] == "index,element,Z,depth,rmsf_A" and len(rows) == 190
    assert (tmp_path / "adf.png").exists() and (tmp_path / "rmsf.png").exists()


def test_traj_with_labels_and_vdos(cube, tmp_path):
    """ASE .traj (momenta kept, labels dropped) + --labels model file."""
    frames = rattled_frames(cube, 32, 0.05, seed=6, dt_fs=5.0)
    rng = np.random.default_rng(0)
    for f in frames:
        f.set_momenta(rng.normal(scale=0.05, size=(len(f), 3)))
    traj, model = tmp_path / "md.traj", tmp_path / "model.extxyz"
    write(traj, frames)
    write(model, cube, format="extxyz")
    data = _json(runner.invoke(app, ["analyze", "vdos", str(traj), "-o", str(tmp_path / "v"), "--json"]))
    assert data["source"] == "velocities" and data["dt_fs"] == pytest.approx(5.0)
    assert data["classical_integral"] == pytest.approx(3 * len(cube), rel=0.05)
    header = (tmp_path / "v" / "vdos.csv").read_text().splitlines()[0]
    assert header == "wavenumber_cm1,total,classical_total,total_Cs,total_Pb,total_Br"
    res = runner.invoke(app, ["analyze", "rmsf", str(traj), "-o", str(tmp_path / "r"), "--json"])
    perceived = _json(res)["by_depth"]  # no labels in the .traj: depth perceived from the lattice (issue 13)
    data = _json(runner.invoke(app, ["analyze", "rmsf", str(traj), "--labels", str(model), "-o",
                                     str(tmp_path / "r"), "--json"]))
    assert set(data["by_depth"]["Pb"]) == {"1", "3"}  # Pb sit half a cell (1) and 1.5 cells (3) deep
    assert perceived == data["by_depth"]


def test_coordination_json(pbs_traj, tmp_path):
    data = _json(runner.invoke(app, ["analyze", "coordination", str(pbs_traj), "-o", str(tmp_path), "--json"]))
    assert data["n_groups"] == 26 and data["n_frames"] == 4
    assert sum(data["fractions"].values()) == pytest.approx(1.0)
    lines = (tmp_path / "binding.csv").read_text().splitlines()
    assert lines[0].startswith("# class: 0=bridge") and len(lines) == 2 + 4 * 26


@pytest.mark.parametrize("args,msg", [
    (["rdf", "MISSING", "--pair", "Pb-Br"], "No such file or directory"),
    (["rdf", "TRAJ", "--pair", "Pb-Xx"], "unknown element 'Xx'"),
    (["rdf", "TRAJ", "--pair", "Pb-O"], "no O atoms"),
    (["rdf", "TRAJ", "--pair", "PbBr"], "not an element pair"),
    (["rdf", "TRAJ", "--volume", "big"], "--volume"),
    (["adf", "TRAJ", "--triplet", "Pb-Br"], "triplet"),
    (["adf", "TRAJ", "--cutoff", "x"], "--cutoff"),
    (["rmsf", "TRAJ", "--skip", "100"], "no frames left"),
    (["rmsf", "TRAJ", "--stride", "0"], "stride"),
    (["vdos", "TRAJ"], "temperature"),
    (["vdos", "TRAJ", "--source", "velocities"], "no velocities"),
    (["coordination", "TRAJ"], "no carboxylate"),
    (["rmsf", "BADFILE"], "cannot read trajectory"),
])
def test_bad_input_one_line_exit_2_no_files(cube_traj, tmp_path, args, msg):
    bad = tmp_path / "bad.extxyz"
    bad.write_text("this is not a trajectory\n")
    args = [{"MISSING": str(tmp_path / "missing.traj"), "TRAJ": str(cube_traj), "BADFILE": str(bad)}.get(a, a)
            for a in args]
    out = tmp_path / "out"
    res = runner.invoke(app, ["analyze", *args, "-o", str(out), "--json"])
    assert res.exit_code == 2, res.output
    err = res.stderr.strip()
    assert err.startswith("error:") and "\n" not in err and msg in err, err
    assert res.stdout == ""
    assert not out.exists()  # nothing written, not even the folder
