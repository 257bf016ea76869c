"""Perception of structures made elsewhere (issue 13): qdlab's own models written as PLAIN xyz
(every label stripped) must be perceived with the builder's ligand counts, roles, depth layers,
facets, motif atoms and charges — the builder's labels are the independent reference (they come
from lattice indices, perception from positions only)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms
from ase.io import read, write
from scipy.spatial.transform import Rotation
from typer.testing import CliRunner

from qdlab.analysis.dos import label_selections
from qdlab.build import PbSRecipe, PerovskiteRecipe, build
from qdlab.build.model import ligand_counts
from qdlab.build.perceive import perceive
from qdlab.cli.main import app

runner = CliRunner()


@pytest.fixture(scope="module")
def capped_perovskite():
    return build(PerovskiteRecipe(composition="CsPbBr3", size="3", ligands=["MA:0.4", "BzO:0.4"], seed=1))


@pytest.fixture(scope="module")
def capped_pbs():
    return build(PbSRecipe(size=3, ligand="OAc"))


def _plain(atoms, tmp_path, name):
    path = tmp_path / name
    write(path, Atoms(atoms.get_chemical_symbols(), positions=atoms.positions), format="xyz")
    text = path.read_text()
    assert "role" not in text and "ligand" not in text  # really plain
    return read(path, format="xyz")


@pytest.mark.parametrize("model", ["capped_perovskite", "capped_pbs"])
def test_plain_xyz_is_perceived_like_the_builder_labelled_it(model, request, tmp_path):
    ref = request.getfixturevalue(model)
    labelled, seen = perceive(_plain(ref, tmp_path, "plain.xyz"))
    assert seen.ligands == ligand_counts(ref) and seen.unknown_fragments == {}
    assert (labelled.arrays["role"] == ref.arrays["role"]).all()
    assert (labelled.arrays["depth"] == ref.arrays["depth"]).all()
    core = ref.arrays["role"] != "ligand"
    assert (labelled.arrays["facet"][core] == ref.arrays["facet"][core]).all()
    assert (labelled.arrays["motif"] == ref.arrays["motif"]).all()
    # one molecule id per ligand, same partition of atoms as the builder's
    pairs = {(int(a), int(b)) for a, b in zip(ref.arrays["ligand_id"], labelled.arrays["ligand_id"]) if a >= 0}
    assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs}) == sum(seen.ligands.values())
    assert seen.charge == ref.info["charge"] == 0
    assert np.abs(labelled.get_initial_charges() - ref.get_initial_charges()).max() < 1e-9
    assert seen.lattice_A == pytest.approx(ref.info["lattice_A"], rel=1e-6)


def test_rotated_and_rattled_models(capped_perovskite, capped_pbs):
    for ref in (capped_perovskite, capped_pbs):
        a = Atoms(ref.get_chemical_symbols(), positions=Rotation.from_euler("xyz", [20, 35, -50], degrees=True)
                  .apply(ref.positions))
        a.rattle(0.05, seed=3)  # thermal-size displacements
        labelled, seen = perceive(a)
        assert seen.ligands == ligand_counts(ref)
        assert (labelled.arrays["depth"] == ref.arrays["depth"]).all()


def test_unknown_fragment_is_reported(capped_pbs):
    a = Atoms(capped_pbs.get_chemical_symbols(), positions=capped_pbs.positions)
    from ase.build import molecule

    ethanol = molecule("CH3CH2OH")  # not in the ligand library
    ethanol.positions += capped_pbs.positions.max(0) + 8
    _, seen = perceive(a + ethanol)
    assert seen.ligands == ligand_counts(capped_pbs)
    assert seen.unknown_fragments == {"C2H6O": 1}


def test_partial_dos_selection_and_info_on_plain_files(capped_perovskite, tmp_path):
    plain = _plain(capped_perovskite, tmp_path, "nc.xyz")
    sel = label_selections(plain, "role")
    ref = label_selections(capped_perovskite, "role")
    assert sel.keys() == ref.keys() and all((sel[k] == ref[k]).all() for k in ref)
    res = runner.invoke(app, ["info", str(tmp_path / "nc.xyz"), "--json", "-o", str(tmp_path / "lab.extxyz")])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["ligands"] == {"BzO": 22, "MA": 19} and info["perceived"]["kind"] == "perovskite"
    assert info["perceived"]["roles"] == {"A": 35, "B": 27, "X": 86, "ligand": 460}
    assert (read(tmp_path / "lab.extxyz").arrays["depth"] == capped_perovskite.arrays["depth"]).all()


def test_rmsf_by_layer_on_a_plain_trajectory(capped_pbs, tmp_path):
    frames = []
    for k in range(4):
        f = Atoms(capped_pbs.get_chemical_symbols(), positions=capped_pbs.positions)
        f.rattle(0.02, seed=k)
        frames.append(f)
    write(tmp_path / "traj.xyz", frames, format="xyz")
    res = runner.invoke(app, ["analyze", "rmsf", str(tmp_path / "traj.xyz"), "-o", str(tmp_path / "rmsf"), "--json"])
    assert res.exit_code == 0, res.output
    by_depth = json.loads(res.stdout)["by_depth"]
    sym, depth = np.array(capped_pbs.get_chemical_symbols()), capped_pbs.arrays["depth"]
    for el in ("Pb", "S"):  # the builder's layers of each element (Pb at even, S at odd depths)
        assert set(by_depth[el]) == {str(d) for d in np.unique(depth[sym == el])}


def test_no_nanocrystal_no_guessed_labels():
    from ase.build import molecule

    from qdlab.analysis.trajectory import load_trajectory

    argon = Atoms("Ar4", positions=[[0, 0, 0], [3.8, 0, 0], [0, 3.8, 0], [0, 0, 3.8]])
    _, seen = perceive(argon)
    assert seen.kind == "other" and seen.lattice_A is None and seen.layers == {}
    assert load_trajectory([argon, argon]).labels == {}
    _, seen = perceive(molecule("CH3CH2OH"))
    assert seen.kind == "molecular" and seen.unknown_fragments == {"C2H6O": 1}
    with pytest.raises(Exception, match="no nanocrystal core"):
        label_selections(argon, "role")
    assert set(label_selections(argon, "auto")) == {"Ar"}
