"""Hostile input across every command group (issue 13): empty, binary, truncated, NaN, overlapping,
one-atom, huge, unsupported, concurrent, corrupted and out-of-range input. Every case asserts the
exit code, a single ``error:`` line on stderr and that no output (not even a partial file, a lock or
a checkpoint) is left behind. In-process through typer's CliRunner; nothing here runs an engine
for longer than a few force calls."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.io import write
from typer.testing import CliRunner

from qdlab.cli.main import app

HERE = Path(__file__).parent
runner = CliRunner()


def _cluster() -> Atoms:
    from qdlab.build import PerovskiteRecipe, build

    return build(PerovskiteRecipe(composition="CsPbI3", size="1"))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("hostile")
    good = _cluster()
    write(d / "good.extxyz", good)
    (d / "empty.extxyz").write_bytes(b"")
    (d / "binary.extxyz").write_bytes(bytes(range(256)) * 8)
    text = (d / "good.extxyz").read_text()
    (d / "truncated.extxyz").write_text(text[: len(text) // 2])
    nan = good.copy()
    nan.positions[2] = np.nan
    write(d / "nan.extxyz", nan)
    over = good.copy()
    over.positions[1] = over.positions[0] + 0.1
    write(d / "overlap.extxyz", over)
    write(d / "one.extxyz", Atoms("Cs", positions=[[0, 0, 0]]))
    gold = good.copy()
    gold.symbols[0] = "Au"
    write(d / "gold.extxyz", gold)
    uranium = good.copy()
    uranium.symbols[0] = "U"
    write(d / "uranium.extxyz", uranium)
    argon = Atoms("Ar2", positions=[[0, 0, 0], [3.8, 0, 0]])
    write(d / "ar2.extxyz", argon)
    (d / "plan_empty.json").write_bytes(b"")
    (d / "plan_binary.json").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00" + bytes(200))
    (d / "table_binary.csv").write_bytes(b"\x00\x01\x02" * 100)
    (d / "table.csv").write_text("a,b,peak_nm\n" + "".join(f"{i},{i * 2},{500 + i}\n" for i in range(6)))
    return {p.stem: p for p in d.iterdir()}


def _check(res, code: int, pattern: str, absent: list[Path]) -> None:
    err = res.stderr.strip().splitlines()
    assert res.exit_code == code, (res.exit_code, res.output)
    assert len(err) == 1 and err[0].startswith("error: "), res.stderr
    assert pattern.lower() in err[0].lower(), err[0]
    assert "Traceback" not in res.output
    for p in absent:
        assert not p.exists(), f"{p} left behind"
        assert not p.with_name(p.name + ".lock").exists()
        assert not p.with_name(p.name + ".ckpt.npz").exists()


BAD_FILES = {"empty": "is empty", "binary": "is binary", "truncated": "cannot read",
             "nan": "non-finite", "overlap": "overlapping"}
STRUCTURE_COMMANDS = {
    "relax": ["relax", "{f}", "-e", "classical", "-o", "{out}/r.extxyz"],
    "single": ["single", "{f}", "-e", "classical"],
    "md": ["md", "{f}", "-e", "classical", "--steps", "10", "-o", "{out}/m.extxyz"],
    "phonons": ["phonons", "{f}", "-e", "classical", "-o", "{out}/ph"],
    "render": ["render", "{f}", "-o", "{out}/p.png"],
    "rattle": ["rattle", "{f}", "-o", "{out}/rat.extxyz"],
    "export-vasp": ["export", "vasp", "{f}", "-o", "{out}/vasp"],
    "export-cp2k": ["export", "cp2k", "{f}", "-o", "{out}/cp2k"],
}
_OUTS = {"relax": ["r.extxyz", "r.traj"], "md": ["m.extxyz"], "phonons": ["ph"], "render": ["p.png"],
         "rattle": ["rat.extxyz"], "export-vasp": ["vasp"], "export-cp2k": ["cp2k"], "single": []}


def _argv(template: list[str], f: Path | str, out: Path) -> list[str]:
    return [a.format(f=f, out=out) for a in template]


@pytest.mark.parametrize("command", list(STRUCTURE_COMMANDS))
@pytest.mark.parametrize("bad", list(BAD_FILES))
def test_bad_structure_files(files, tmp_path, command, bad):
    res = runner.invoke(app, _argv(STRUCTURE_COMMANDS[command], files[bad], tmp_path))
    _check(res, 2, BAD_FILES[bad], [tmp_path / o for o in _OUTS[command]])


@pytest.mark.parametrize("bad", ["empty", "binary", "truncated"])
def test_info_refuses_unreadable(files, bad):
    _check(runner.invoke(app, ["info", str(files[bad])]), 2, BAD_FILES[bad], [])


@pytest.mark.parametrize("argv, pattern, outs", [
    (["phonons", "{one}", "-e", "classical", "-o", "{out}/ph"], "at least 2", ["ph"]),
    (["relax", "{gold}", "-e", "classical", "-o", "{out}/r.extxyz"], "does not support au", ["r.extxyz"]),
    (["md", "{gold}", "-e", "classical", "-o", "{out}/m.extxyz"], "does not support au", ["m.extxyz"]),
    (["phonons", "{gold}", "-e", "classical", "-o", "{out}/ph"], "does not support au", ["ph"]),
    (["single", "{uranium}", "-e", "xtb"], "does not support u", []),
    (["relax", "{good}", "-e", "nonexistent_module_xyz:factory", "-o", "{out}/r.extxyz"], "cannot import", ["r.extxyz"]),
    (["single", "{ar2}", "-e", "nan_engine:nan"], "non-finite", []),
    (["single", "{ar2}", "-e", "nan_engine:not_a_calculator"], "not an ase calculator", []),
    (["single", "{ar2}", "-e", "nan_engine:missing"], "has no missing", []),
    (["single", "{good}", "-e", "ase.calculators.emt:EMT"], "failed", []),
], ids=["phonons-one-atom", "relax-unsupported", "md-unsupported", "phonons-unsupported", "xtb-uranium",
        "engine-import", "engine-nan", "engine-not-calc", "engine-missing-attr", "engine-emt-elements"])
def test_engines_and_elements(files, tmp_path, monkeypatch, argv, pattern, outs):
    monkeypatch.syspath_prepend(str(HERE))
    args = [a.format(out=tmp_path, **{k: v for k, v in files.items()}) for a in argv]
    _check(runner.invoke(app, args), 2, pattern, [tmp_path / o for o in outs])


def test_outside_engine_by_import_path_works(files, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    res = runner.invoke(app, ["single", str(files["ar2"]), "-e", "nan_engine:lj", "--json"])
    assert res.exit_code == 0, res.output
    from ase.calculators.lj import LennardJones

    ref = Atoms("Ar2", positions=[[0, 0, 0], [3.8, 0, 0]])
    ref.calc = LennardJones(sigma=3.0, epsilon=0.01, rc=12.0)
    assert json.loads(res.stdout)["energy_eV"] == pytest.approx(ref.get_potential_energy(), rel=1e-12)


@pytest.mark.parametrize("argv, pattern, outs", [
    (["build", "perovskite", "--size", "1000", "-o", "{out}/big.extxyz"], "smaller --size", ["big.extxyz"]),
    (["build", "perovskite", "--size", "200x200x200", "-o", "{out}/big.extxyz"], "smaller --size", ["big.extxyz"]),
    (["build", "perovskite", "--size", "3", "--lattice", "1.0", "-o", "{out}/tiny.extxyz"], "", ["tiny.extxyz"]),
    (["export", "vasp", "{good}", "--ntasks", "0", "-o", "{out}/v"], "--ntasks", ["v"]),
    (["export", "vasp", "{good}", "--nodes", "-1", "-o", "{out}/v"], "--nodes", ["v"]),
    (["export", "vasp", "{good}", "--walltime", "forever", "-o", "{out}/v"], "--walltime", ["v"]),
    (["export", "vasp", "{good}", "--set", "encut=abc", "-o", "{out}/v"], "encut", ["v"]),
    (["export", "vasp", "{good}", "--set", "encut=-400", "-o", "{out}/v"], "encut", ["v"]),
    (["export", "vasp", "{good}", "--set", "nsw=2.5", "-o", "{out}/v"], "integer", ["v"]),
    (["export", "cp2k", "{good}", "--set", "cutoff_ry=-1", "-o", "{out}/c"], "cutoff_ry", ["c"]),
    (["export", "cp2k", "{good}", "--set", "max_scf=0", "-o", "{out}/c"], "max_scf", ["c"]),
    (["phonons", "{good}", "-e", "classical", "--sigma", "-1", "-o", "{out}/ph"], "--sigma", ["ph"]),
    (["phonons", "{good}", "-e", "classical", "--delta", "0", "-o", "{out}/ph"], "--delta", ["ph"]),
    (["phonons", "{good}", "-e", "classical", "--workers", "0", "-o", "{out}/ph"], "--workers", ["ph"]),
    (["phonons", "{good}", "-e", "classical", "--method", "magic", "-o", "{out}/ph"], "--method", ["ph"]),
    (["relax", "{good}", "-e", "classical", "--fmax", "0", "-o", "{out}/r.extxyz"], "--fmax", ["r.extxyz"]),
    (["relax", "{good}", "-e", "classical", "--fmax", "nan", "-o", "{out}/r.extxyz"], "--fmax", ["r.extxyz"]),
    (["md", "{good}", "-e", "classical", "--timestep", "0", "-o", "{out}/m.extxyz"], "time step", ["m.extxyz"]),
    (["md", "{good}", "-e", "classical", "-T", "-5", "-o", "{out}/m.extxyz"], "temperature", ["m.extxyz"]),
    (["md", "{good}", "-e", "classical", "-T", "300,-5", "-o", "{out}/ser"], "temperature", ["ser"]),
    (["md", "{good}", "-e", "classical", "--interval", "0", "-o", "{out}/m.extxyz"], "interval", ["m.extxyz"]),
    (["md", "{good}", "-e", "classical", "-o", "{out}/m.dcd"], ".traj", ["m.dcd"]),
    (["md", "{good}", "-e", "classical", "--freeze", "core:0.3", "-o", "{out}/m.extxyz"], "0.5", ["m.extxyz"]),
    (["rattle", "{good}", "--count", "0", "-o", "{out}/rat.extxyz"], "--count", ["rat.extxyz"]),
    (["pl", "models", "{table}", "--target", "peak_nm", "--cv", "1", "--out", "{out}/pl"], "--cv", ["pl"]),
    (["pl", "models", "{table_binary}", "--target", "peak_nm", "--out", "{out}/pl"], "binary", ["pl"]),
    (["plate", "protocol", "{plan_empty}", "-o", "{out}/p.py"], "plan", ["p.py"]),
    (["plate", "protocol", "{plan_binary}", "-o", "{out}/p.py"], "binary", ["p.py"]),
    (["report", "{out}/missing.db", "-o", "{out}/r.html"], "does not exist", ["missing.db", "r.html", "missing_files"]),
], ids=["build-1000", "build-200-cuboid", "build-lattice-too-small", "export-ntasks-0", "export-nodes-neg",
        "export-walltime", "export-encut-abc", "export-encut-neg", "export-nsw-float", "export-cp2k-cutoff",
        "export-cp2k-max-scf", "phonons-sigma", "phonons-delta", "phonons-workers", "phonons-method", "relax-fmax-0",
        "relax-fmax-nan", "md-timestep", "md-temperature", "md-series-bad-second-T", "md-interval", "md-format",
        "md-freeze", "rattle-count", "pl-cv-1", "pl-binary-table", "plate-empty-plan", "plate-binary-plan",
        "report-missing-store"])
def test_out_of_range_options_and_files(files, tmp_path, argv, pattern, outs):
    args = [a.format(out=tmp_path, **{k: v for k, v in files.items()}) for a in argv]
    _check(runner.invoke(app, args), 2, pattern, [tmp_path / o for o in outs])


@pytest.mark.parametrize("bad, pattern", [("empty", "is empty"), ("binary", "is binary"),
                                          ("truncated", "")])
def test_dataset_collect_refuses_bad_sources(files, tmp_path, bad, pattern):
    _check(runner.invoke(app, ["dataset", "collect", str(files[bad]), "-o", str(tmp_path / "d.db")]), 2, pattern,
           [tmp_path / "d.db"])


def test_dataset_collect_never_replaces_silently(files, tmp_path):
    out = tmp_path / "d.extxyz"
    assert runner.invoke(app, ["dataset", "collect", str(files["good"]), "-o", str(out)]).exit_code == 0
    before = out.read_bytes()
    res = runner.invoke(app, ["dataset", "collect", str(files["ar2"]), "-o", str(out)])
    _check(res, 2, "--overwrite", [])
    assert out.read_bytes() == before
    res = runner.invoke(app, ["dataset", "collect", str(files["ar2"]), "-o", str(out), "--overwrite", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["n_frames"] == 1


def test_md_refused_while_another_writer_holds_the_output(files, tmp_path):
    from qdlab.store.locks import output_lock

    out = tmp_path / "m.extxyz"
    with output_lock(out):
        res = runner.invoke(app, ["md", str(files["good"]), "-e", "classical", "--steps", "10", "-o", str(out)])
        err = res.stderr.strip().splitlines()
        assert res.exit_code == 2 and len(err) == 1 and f"pid {os.getpid()}" in err[0], res.stderr
        assert not out.exists()


def test_md_corrupted_checkpoint(files, tmp_path):
    out = tmp_path / "m.extxyz"
    args = ["md", str(files["good"]), "-e", "classical", "--steps", "20", "--interval", "10", "-o", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    ckpt = out.with_name(out.name + ".ckpt.npz")
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    res = runner.invoke(app, args[:-4] + ["--steps", "30", "--interval", "10", "-o", str(out)])
    err = res.stderr.strip().splitlines()
    assert res.exit_code == 2 and len(err) == 1 and "damaged" in err[0], res.stderr


def test_campaign_run_refused_on_a_locked_store(tmp_path):
    from qdlab.store.locks import output_lock

    spec = tmp_path / "spec.toml"
    store = tmp_path / "s.db"
    spec.write_text(f'name = "x"\nstore = "{store}"\n[[grid]]\ncomposition = "CsPbI3"\nsize = "1"\n'
                    '[[engines]]\nname = "classical"\n[[steps]]\nworkflow = "relax"\n')
    with output_lock(tmp_path / "s_files"):
        res = runner.invoke(app, ["campaign", "run", str(spec)])
    err = res.stderr.strip().splitlines()
    assert res.exit_code == 2 and len(err) == 1 and "being written by" in err[0], res.stderr
    assert not store.exists()


def test_one_line_for_ctrl_c(monkeypatch, files, tmp_path):
    import qdlab.workflows.md as md

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(md, "run_md", interrupt)
    res = runner.invoke(app, ["md", str(files["good"]), "-e", "classical", "-o", str(tmp_path / "m.extxyz")])
    assert res.exit_code == 130 and res.stderr.strip().splitlines()[-1].startswith("error: interrupted")


def test_relax_refused_while_another_writer_holds_its_trajectory(files, tmp_path):
    from qdlab.store.locks import output_lock

    out = tmp_path / "r.extxyz"
    with output_lock(tmp_path / "r.traj"):
        res = runner.invoke(app, ["relax", str(files["good"]), "-e", "classical", "-o", str(out)])
    err = res.stderr.strip().splitlines()
    assert res.exit_code == 2 and len(err) == 1 and "being written by" in err[0], res.stderr
    assert not out.exists()
    res = runner.invoke(app, ["relax", str(files["good"]), "-e", "classical", "-o", str(out), "--json"])
    assert res.exit_code in (0, 1) and out.exists() and not (tmp_path / "r.traj.lock").exists()


@pytest.mark.parametrize("argv, pattern", [
    (["label", "{empty}", "-o", "{out}/l.db", "-e", "classical"], "is empty"),
    (["label", "{binary}", "-o", "{out}/l.db", "-e", "classical"], "is binary"),
    (["label", "{gold}", "-o", "{out}/l.db", "-e", "classical"], "does not support au"),
    (["dataset", "info", "{empty}"], "is empty"),
    (["dataset", "info", "{binary}"], "is binary"),
], ids=["label-empty", "label-binary", "label-unsupported", "dataset-info-empty", "dataset-info-binary"])
def test_dataset_commands_refuse_bad_input(files, tmp_path, argv, pattern):
    args = [a.format(out=tmp_path, **{k: v for k, v in files.items()}) for a in argv]
    _check(runner.invoke(app, args), 2, pattern, [tmp_path / "l.db"])
