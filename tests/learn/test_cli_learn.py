"""CLI of the learning commands on a local typer app (registration in main.py is separate):
dataset collect/split/info, label, finetune, parity, learn; one-line errors with exit code 2."""

import json

import pytest
import typer
from ase.io import write
from typer.testing import CliRunner

from learn.conftest import classical_frames
from qdlab.cli import learn as learn_cli

runner = CliRunner()


@pytest.fixture(scope="module")
def app():
    a = typer.Typer()
    a.add_typer(learn_cli.dataset_app, name="dataset")
    a.command("label")(learn_cli.label_cmd)
    a.command("finetune")(learn_cli.finetune_cmd)
    a.command("parity")(learn_cli.parity_cmd)
    a.command("learn")(learn_cli.learn_cmd)
    return a


def run(app, *args):
    res = runner.invoke(app, [str(a) for a in args])
    return res, (json.loads(res.stdout) if res.exit_code == 0 and "--json" in args else None)


def test_dataset_label_finetune_parity(app, tmp_path):
    frames = classical_frames(7, seed0=100)
    write(tmp_path / "rattled.extxyz", frames, format="extxyz")
    res, info = run(app, "dataset", "collect", tmp_path / "rattled.extxyz", "-o", tmp_path / "d.db",
                    "--drop-labels", "--fractions", "0.6,0.2,0.2", "--seed", "2", "--json")
    assert res.exit_code == 0, res.output
    assert info["n_frames"] == 7 and info["n_labelled"] == 0 and info["splits"] == {"train": 4, "val": 1, "test": 2}
    res, lab = run(app, "label", tmp_path / "d.db", "-o", tmp_path / "l.db", "-e", "classical", "--json")
    assert res.exit_code == 0, res.output
    assert lab["n_labelled"] == 7 and lab["n_computed"] == 7
    res, lab = run(app, "label", tmp_path / "d.db", "-o", tmp_path / "l.db", "-e", "classical", "--json")
    assert lab["n_computed"] == 0 and lab["n_resumed"] == 7
    res, info = run(app, "dataset", "info", tmp_path / "l.db", "--json")
    assert info["n_labelled"] == 7 and info["engines"] == {"classical": 7} and info["splits"]["val"] == 1
    res, ft = run(app, "finetune", tmp_path / "l.db", "-o", tmp_path / "ft", "--epochs", "1", "--batch-size", "4",
                  "--json")
    assert res.exit_code == 0, res.output
    assert ft["n_train"] == 4 and ft["n_val"] == 1 and ft["n_test"] == 2 and ft["epochs_done"] == 1
    ckpt = ft["checkpoint"]
    res, par = run(app, "parity", "chgnet", ckpt, tmp_path / "l.db", "-o", tmp_path / "par", "--split", "val",
                   "--json")
    assert res.exit_code == 0, res.output
    assert [m["label"] for m in par["models"]] == ["chgnet", "best.pth.tar"]
    assert all(m["n_frames"] == 1 for m in par["models"]) and "force_rmse_ratio_first_over_last" in par
    assert (tmp_path / "par" / "parity.png").exists()
    res, info = run(app, "dataset", "split", tmp_path / "l.db", "-o", tmp_path / "l2.extxyz", "--seed", "5", "--json")
    assert res.exit_code == 0 and info["n_frames"] == 7 and sum(info["splits"].values()) == 7


def test_errors_are_one_line(app, tmp_path):
    res, _ = run(app, "label", tmp_path / "none.db", "-o", tmp_path / "l.db", "-e", "classical")
    assert res.exit_code == 2 and res.stderr.startswith("error:") and "does not exist" in res.stderr
    write(tmp_path / "x.extxyz", classical_frames(2), format="extxyz")
    res, _ = run(app, "label", tmp_path / "x.extxyz", "-o", tmp_path / "l.db", "-e", "nonsense")
    assert res.exit_code == 2 and "unknown engine" in res.stderr
    res, _ = run(app, "parity", tmp_path / "x.extxyz")
    assert res.exit_code == 2 and "at least one model" in res.stderr
    res, _ = run(app, "dataset", "collect", tmp_path / "x.extxyz", "-o", tmp_path / "d.db", "--fractions", "1,2")
    assert res.exit_code == 2 and "--fractions" in res.stderr
    res, _ = run(app, "finetune", tmp_path / "x.extxyz", "-o", tmp_path / "f", "-e", "mace")
    assert res.exit_code == 2 and "supports" in res.stderr


def test_learn_command(app, cube, tmp_path):
    write(tmp_path / "start.extxyz", cube, format="extxyz")
    res, out = run(app, "learn", tmp_path / "start.extxyz", "-o", tmp_path / "L", "-r", "classical",
                   "--rattle-count", "3", "--committee", "2", "--iterations", "1", "--epochs", "1", "--batch-size", "4",
                   "--md-steps", "4", "--interval", "2", "--trust-lo", "0", "--trust-hi", "50", "--max-select", "1",
                   "--json")
    assert res.exit_code == 0, res.output
    assert out["n_labelled_total"] == 1 and out["n_frames"] == 4 and len(out["iterations"]) == 1
    assert (tmp_path / "L" / "iter_000" / "state.json").exists() and (tmp_path / "L" / "initial.db").exists()
