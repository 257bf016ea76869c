"""Ligand attachment: coverage counts, spacing, adjacency of mixed pairs, charge, PbS capping."""

import numpy as np
import pytest

from conftest import closest_ligand_contact
from qdlab.build import PbSRecipe, PerovskiteRecipe, SlabRecipe, build, summary
from qdlab.build.attach import quotas
from qdlab.errors import LigandError


@pytest.mark.parametrize("n,cov,expected", [(3, 0.2, 10), (4, 0.6, 51), (3, 0.4, 19)])
def test_ma_coverage_counts_match_science(n, cov, expected):
    atoms = build(PerovskiteRecipe(size=str(n), ligands=[f"MA:{cov}"]))
    assert summary(atoms)["ligands"] == {"MA": expected}


def test_anion_pool_is_outward_x_and_counts():
    n = 3
    atoms = build(PerovskiteRecipe(size=str(n), ligands=["BzO:0.4"]))
    assert summary(atoms)["ligands"] == {"BzO": int(np.ceil(0.4 * 6 * n * n))}  # 6n² outward X
    atoms = build(PerovskiteRecipe(size=str(n), ligands=["BzO:12", "PhS:5"]))
    assert summary(atoms)["ligands"] == {"BzO": 12, "PhS": 5}
    assert atoms.info["charge"] == 0


@pytest.mark.parametrize("n", [3, 4, 5, 7])
def test_no_close_contacts_mixed_ma_bzo(n):
    atoms = build(PerovskiteRecipe(size=str(n), ligands=["MA:0.5", "BzO:0.5"]))
    assert closest_ligand_contact(atoms) >= 1.8
    assert atoms.info["charge"] == 0
    assert abs(atoms.get_initial_charges().sum()) < 1e-9


@pytest.mark.parametrize("ligs", [["MA:0.5", "PhS:0.5"], ["MA:0.5", "PhP:0.5"], ["BzO:1.0"], ["MA:1.0"],
                                  ["OLA:0.3", "OA:0.3"], ["MA:0.5", "DBS:0.3"]])
def test_no_close_contacts_other_ligands(ligs):
    atoms = build(PerovskiteRecipe(size="3", ligands=ligs))
    assert closest_ligand_contact(atoms) >= 1.8


def test_ligand_labels_and_motif_position():
    a = 5.95
    atoms = build(PerovskiteRecipe(size="3", lattice=a, ligands=["MA:0.5", "BzO:0.5"], vacuum=15.0))
    lig = atoms.arrays["ligand_id"] >= 0
    assert (atoms.arrays["role"][lig] == "ligand").all()
    assert (atoms.arrays["depth"][lig] == -1).all()
    motif = atoms.arrays["motif"]
    # one N per MA and two O per BzO bind
    names = atoms.arrays["ligand"]
    assert (atoms.symbols[motif & (names == "MA")] == "N").sum() == 23
    assert (atoms.symbols[motif & (names == "BzO")] == "O").sum() == 54
    # every MA nitrogen sits on a former A lattice site (integer multiples of a from a core A)
    cs = atoms.positions[atoms.symbols == "Cs"][0]
    n_pos = atoms.positions[motif & (names == "MA")]
    frac = (n_pos - cs) / a
    np.testing.assert_allclose(frac, np.rint(frac), atol=1e-6)


def test_mixed_pairs_adjacent():
    """Each MA has an anion on a neighbouring X site (A–X distance a/√2 on a facet)."""
    a = 5.95
    atoms = build(PerovskiteRecipe(size="4", lattice=a, ligands=["MA:0.3", "BzO:0.3"]))
    ids, names, motif = atoms.arrays["ligand_id"], atoms.arrays["ligand"], atoms.arrays["motif"]
    n_pos = atoms.positions[motif & (names == "MA")]
    o_centres = np.array([atoms.positions[(ids == i) & motif].mean(0)
                          for i in np.unique(ids[names == "BzO"])])
    d = np.linalg.norm(n_pos[:, None] - o_centres[None], axis=2).min(1)
    # the motif may be pushed out by ≤ 0.9 Å along the normal to clear contacts
    assert (d < a / np.sqrt(2) + 1.0).all()


def test_sites_spread_over_facets():
    atoms = build(PerovskiteRecipe(size="4", ligands=["BzO:0.5"]))
    facets = atoms.arrays["facet"][atoms.arrays["motif"]]
    _, counts = np.unique(facets, return_counts=True)
    assert len(counts) == 6 and counts.min() >= 2 * 8 - 2  # 48 ligands → 8 per facet, 2 O each
    q = quotas(np.array(["a"] * 10 + ["b"] * 5 + ["c"] * 5), 8)
    assert q == {"a": 4, "b": 2, "c": 2}


def test_neutral_x_ligand_balance():
    atoms = build(PerovskiteRecipe(size="3", ligands=["Py:6"]))
    assert atoms.info["charge"] == 0
    assert summary(atoms)["counts"]["Cs"] == 54 - 6  # one more A removed per neutral ligand on X
    kept = build(PerovskiteRecipe(size="3", ligands=["Py:6"], balance="keep"))
    assert kept.info["charge"] == 6


def test_coverage_errors():
    with pytest.raises(LigandError, match="only 46 A sites"):
        build(PerovskiteRecipe(size="3", ligands=["MA:47"]))
    with pytest.raises(LigandError, match="fraction in"):
        build(PerovskiteRecipe(size="3", ligands=["MA:1.5"]))
    with pytest.raises(LigandError, match="must be > 0"):
        build(PerovskiteRecipe(size="3", ligands=["MA:0"]))
    with pytest.raises(LigandError, match="only 54 are available"):
        build(PerovskiteRecipe(size="3", ligands=["BzO:0.6", "PhS:0.6"]))


def test_pbs_seed001_model():
    atoms = build(PbSRecipe(size=2, ligand="OAc"))
    s = summary(atoms)
    assert s["counts"] == {"C": 52, "H": 78, "O": 52, "Pb": 19, "S": 6}  # Pb19S6(CH3COO)26
    assert s["ligands"] == {"OAc": 26} and s["charge"] == 0
    assert closest_ligand_contact(atoms) >= 1.8
    # Pb-terminated: every outermost core atom is Pb; O of each acetate near surface Pb
    core = atoms.arrays["role"] != "ligand"
    assert set(atoms.symbols[core & (atoms.arrays["depth"] == 0)]) == {"Pb"}
    pb = atoms.positions[atoms.symbols == "Pb"]
    o = atoms.positions[(atoms.symbols == "O")]
    assert np.linalg.norm(o[:, None] - pb[None], axis=2).min(1).max() < 3.6


@pytest.mark.parametrize("m,pb,s", [(1, 6, 1), (3, 44, 19), (4, 85, 44)])
def test_pbs_octahedron_sizes(m, pb, s):
    atoms = build(PbSRecipe(size=m, ligand=None))
    c = summary(atoms)["counts"]
    assert (c["Pb"], c["S"]) == (pb, s)
    assert atoms.info["charge"] == 2 * (pb - s)  # bare: metal-rich and charged


def test_pbs_oleate():
    atoms = build(PbSRecipe(size=2, ligand="OA"))
    assert summary(atoms)["ligands"] == {"OA": 26} and atoms.info["charge"] == 0
    assert closest_ligand_contact(atoms) >= 1.8


def test_slab_ligands_top_only():
    atoms = build(SlabRecipe(size="3x3x3", ligands=["MA:0.5", "BzO:0.5"]))
    assert atoms.info["charge"] == 0
    lig = atoms.arrays["ligand_id"] >= 0
    assert set(atoms.arrays["facet"][lig]) == {"+z"}
    # minimum-image distances (periodic in x, y): brute force over ASE's neighbour list
    from ase.neighborlist import neighbor_list

    i, j, d = neighbor_list("ijd", atoms, 1.8)
    ids = atoms.arrays["ligand_id"]
    clash = ((ids[i] >= 0) | (ids[j] >= 0)) & (ids[i] != ids[j])
    assert not clash.any()
