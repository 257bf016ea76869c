"""HPC round trip: VASP/CP2K inputs written and read back by ASE; finished relaxations imported."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms, units
from ase.io import read, write

from qdlab.build import PerovskiteRecipe, build
from qdlab.campaign.hpc import export_models, import_runs, read_cp2k_run
from qdlab.errors import QdlabError


@pytest.fixture()
def models(tmp_path):
    paths = []
    for n, lig in (("1", []), ("1", ["MA:0.5"])):
        a = build(PerovskiteRecipe(composition="CsPbBr3", size=n, lattice=5.95, ligands=lig))
        p = tmp_path / f"nc_{len(a)}.extxyz"
        write(p, a, format="extxyz")
        paths.append(p)
    return paths


def test_export_vasp_read_back(tmp_path, models, monkeypatch):
    from ase.calculators.vasp import Vasp

    monkeypatch.delenv("VASP_PP_PATH", raising=False)
    res = export_models("vasp", models, tmp_path / "vasp", partition="normal", ntasks=64, walltime="12:00:00")
    assert len(res["folders"]) == 2
    for folder, src in zip(map(Path, res["folders"]), models):
        atoms = read(folder / "POSCAR")
        orig = read(src)
        assert sorted(atoms.get_chemical_symbols()) == sorted(orig.get_chemical_symbols())
        # 15 Å of vacuum on every side, Γ only
        ext = np.ptp(atoms.positions, 0)
        assert np.allclose(atoms.cell.lengths(), ext + 30.0, atol=1e-6)
        c = Vasp()
        c.read_incar(str(folder / "INCAR"))
        c.read_kpoints(str(folder / "KPOINTS"))
        assert c.float_params["encut"] == 400 and c.exp_params["ediff"] == 1e-4 and c.exp_params["ediffg"] == -0.03
        assert c.string_params["prec"] == "Normal" and c.string_params["algo"] == "Fast"
        assert c.int_params["nelm"] == 60 and c.int_params["ibrion"] == 2
        assert c.string_params["gga"] == "PE"  # PBE
        assert list(c.input_params["kpts"]) == [1, 1, 1] and c.input_params["gamma"]
        assert not (folder / "POTCAR").exists() and "VASP_PP_PATH" in (folder / "POTCAR_MISSING.txt").read_text()
    readme = (tmp_path / "vasp" / "README.md").read_text()
    assert "POTCAR not written" in readme and "encut = 400" in readme
    script = (tmp_path / "vasp" / "submit.slurm").read_text()
    assert "#SBATCH --array=0-1" in script and "#SBATCH --partition=normal" in script
    assert "#SBATCH --ntasks=64" in script and "#SBATCH --time=12:00:00" in script and "vasp_gam" in script


def test_export_cp2k_read_back(tmp_path, models):
    from ase.calculators.cp2k import parse_input

    res = export_models("cp2k", models, tmp_path / "cp2k", overrides={"cutoff_ry": 350})
    folder = Path(res["folders"][1])
    text = (folder / "cp2k.inp").read_text()
    atoms = read(folder / "cp2k.inp", format="cp2k-restart")
    orig = read(models[1])
    assert atoms.get_chemical_formula() == orig.get_chemical_formula()
    # the Martyna–Tuckerman solver needs a box at least twice the cluster
    assert np.all(atoms.cell.lengths() >= 2 * np.ptp(atoms.positions, 0) - 1e-6)
    root = parse_input(text)
    assert root.get_subsection("FORCE_EVAL/DFT/XC/XC_FUNCTIONAL").params == "PBE"
    assert "PERIODIC NONE" in root.get_subsection("FORCE_EVAL/DFT/POISSON").keywords
    assert "POISSON_SOLVER MT" in root.get_subsection("FORCE_EVAL/DFT/POISSON").keywords
    assert "CUTOFF 350" in root.get_subsection("FORCE_EVAL/DFT/MGRID").keywords
    kinds = [k for k in root.get_subsection("FORCE_EVAL/SUBSYS").subsections if k.name == "KIND"]
    assert {k.params for k in kinds} == set(orig.get_chemical_symbols())
    assert all("BASIS_SET DZVP-MOLOPT-SR-GTH" in k.keywords and "POTENTIAL GTH-PBE" in k.keywords for k in kinds)
    assert "RUN_TYPE GEO_OPT" in root.get_subsection("GLOBAL").keywords
    with pytest.raises(QdlabError, match="unknown CP2K setting"):
        export_models("cp2k", models, tmp_path / "x", overrides={"encut": 400})


def write_vasprun(path: Path, frames: list[Atoms]) -> None:
    """A minimal vasprun.xml of a relaxation (the parts ASE's reader uses)."""
    def varray(name, rows):
        return f'<varray name="{name}">' + "".join("<v>" + " ".join(f"{x:.10f}" for x in r) + "</v>" for r in rows) \
            + "</varray>"

    def energy(e):
        return (f'<energy><i name="e_fr_energy">{e:.8f}</i><i name="e_wo_entrp">{e:.8f}</i>'
                f'<i name="e_0_energy">{e:.8f}</i></energy>')

    a0 = frames[0]
    species = "".join(f"<rc><c>{s}</c><c>1</c></rc>" for s in a0.get_chemical_symbols())
    parts = ['<?xml version="1.0" encoding="ISO-8859-1"?>', "<modeling>",
             '<generator><i name="program" type="string">vasp </i></generator>',
             '<kpoints><generation param="Gamma"><v type="int" name="divisions">1 1 1</v></generation>'
             '<varray name="kpointlist"><v>0 0 0</v></varray><varray name="weights"><v>1</v></varray></kpoints>',
             '<parameters><separator name="electronic"><i name="ENCUT">400</i></separator></parameters>',
             f'<atominfo><atoms>{len(a0)}</atoms><array name="atoms"><set>{species}</set></array></atominfo>',
             '<structure name="initialpos"><crystal>' + varray("basis", a0.cell.array) + "</crystal>"
             + varray("positions", a0.get_scaled_positions()) + "</structure>"]
    for a in frames:
        e, f = a.info["E"], a.arrays["F"]
        parts.append("<calculation><scstep>" + energy(e) + "</scstep><structure><crystal>"
                     + varray("basis", a.cell.array) + "</crystal>" + varray("positions", a.get_scaled_positions())
                     + "</structure>" + varray("forces", f) + energy(e) + "</calculation>")
    parts.append("</modeling>")
    path.write_text("\n".join(parts))


def test_import_vasp_relaxation(tmp_path, models):
    base = read(models[0])
    base.cell = np.diag(np.ptp(base.positions, 0) + 30.0)
    base.center()
    rng = np.random.default_rng(0)
    frames = []
    for k in range(4):
        a = base.copy()
        a.positions += rng.normal(0, 0.02 / (k + 1), a.positions.shape)
        a.info["E"] = -30.0 - 0.1 * k
        a.arrays["F"] = rng.normal(0, 0.5 / (k + 1), (len(a), 3))
        frames.append(a)
    run = tmp_path / "runs" / "nc11"
    run.mkdir(parents=True)
    write_vasprun(run / "vasprun.xml", frames)
    (run / "INCAR").write_text("ENCUT = 400\nIBRION = 2\n")
    res = import_runs([tmp_path / "runs"], tmp_path / "dft.extxyz")
    assert res["n_frames"] == 4 and res["runs"][0]["format"] == "vasp-xml"
    got = read(tmp_path / "dft.extxyz", index=":")
    assert len(got) == 4
    for a, ref in zip(got, frames):
        assert a.get_potential_energy() == pytest.approx(ref.info["E"])
        assert np.allclose(a.get_forces(), ref.arrays["F"], atol=1e-8)
        assert np.allclose(a.positions, ref.positions, atol=1e-6)
        assert a.info["engine"] == "vasp" and a.info["status"] == "ok" and json.loads(a.info["settings"])["ENCUT"] == "400"
    # into an ASE database, every 2nd frame (the relaxed last frame always kept)
    res = import_runs([run / "vasprun.xml"], tmp_path / "dft.db", every=3)
    from ase.db import connect

    rows = list(connect(str(tmp_path / "dft.db")).select())
    assert [r.step for r in rows] == [0, 1] and rows[-1].energy == pytest.approx(frames[-1].info["E"])
    assert np.allclose(rows[-1].forces, frames[-1].arrays["F"])
    # the fine-tuning datasets read both files as labelled frames with provenance
    from qdlab.store.db import read_frames

    for path in (tmp_path / "dft.db", tmp_path / "dft.extxyz"):
        got = read_frames(path, labelled=True)
        assert got and all(a.info["engine"] == "vasp" and a.info["frame_key"] for a in got)


def test_import_cp2k_run(tmp_path, models):
    export_models("cp2k", models[:1], tmp_path / "cp2k")
    folder = next((tmp_path / "cp2k").iterdir())
    atoms = read(folder / "cp2k.inp", format="cp2k-restart")
    e_ha = [-120.5, -120.6]
    f_au = [np.full((len(atoms), 3), 0.01), np.full((len(atoms), 3), 0.002)]
    for name, arrays in (("qdlab-pos-1.xyz", [atoms.positions, atoms.positions + 0.01]), ("qdlab-frc-1.xyz", f_au)):
        with open(folder / name, "w") as fh:
            for k, arr in enumerate(arrays):
                fh.write(f"{len(atoms)}\n i = {k}, E = {e_ha[k]:.10f}\n")
                for s, row in zip(atoms.get_chemical_symbols(), arr):
                    fh.write(f"{s} {row[0]:.8f} {row[1]:.8f} {row[2]:.8f}\n")
    frames = read_cp2k_run(folder)
    assert len(frames) == 2
    assert frames[1].get_potential_energy() == pytest.approx(-120.6 * units.Hartree)
    assert np.allclose(frames[0].get_forces(), 0.01 * units.Hartree / units.Bohr)
    assert np.allclose(frames[0].cell.array, atoms.cell.array)
    res = import_runs([tmp_path / "cp2k"], tmp_path / "cp2k.extxyz")
    assert res["n_frames"] == 2 and res["runs"][0]["format"] == "cp2k"


def test_import_refuses_unknown_files(tmp_path):
    (tmp_path / "x.txt").write_text("nothing")
    with pytest.raises(QdlabError, match="not a vasprun.xml"):
        import_runs([tmp_path / "x.txt"], tmp_path / "o.extxyz")
    with pytest.raises(QdlabError, match="use .extxyz"):
        import_runs([tmp_path / "x.txt"], tmp_path / "o.csv")


def test_export_and_import_cli(tmp_path, models, monkeypatch):
    import typer
    from typer.testing import CliRunner

    from qdlab.cli import campaign as cc

    monkeypatch.delenv("VASP_PP_PATH", raising=False)
    app = typer.Typer()
    app.add_typer(cc.export_app, name="export")
    app.command("import")(cc.import_cmd)
    r = CliRunner().invoke(app, ["export", "vasp", *map(str, models), "-o", str(tmp_path / "v"), "--set", "encut=520",
                                 "--partition", "short", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["settings"]["encut"] == 520 and len(d["folders"]) == 2
    assert "ENCUT = 520" in (Path(d["folders"][0]) / "INCAR").read_text()
    r = CliRunner().invoke(app, ["export", "cp2k", str(models[0]), "-o", str(tmp_path / "c"), "--set", "bogus=1"])
    assert r.exit_code == 2 and r.stderr.startswith("error: unknown CP2K setting")
    r = CliRunner().invoke(app, ["import", str(tmp_path / "nothing"), "-o", str(tmp_path / "x.extxyz")])
    assert r.exit_code == 2 and "not found" in r.stderr
